// The webgpu device: kernels printed as WGSL (codegen/wgsl.ts) and run through `navigator.gpu`.
//
// - Creating tensors is synchronous but acquiring a device is not, so the backend object exists
//   at once and the adapter and device are requested on the first `run` or `read`. Data
//   uploaded before that stays on the host, in the handle, until a kernel needs it.
// - Storage is pooled by byte size: a released handle's GPUBuffer goes to the pool and the next
//   allocation of that size gets it under a new handle (handles are never reused). Every
//   handle is also registered with a FinalizationRegistry, so storage of a tensor that is
//   dropped without `dispose()` returns to the pool when it is garbage collected.
// - Compiled pipelines are cached by WGSL source; bind group layouts are explicit, so a kernel
//   that does not read one of its inputs still binds it.
// - Before anything is encoded, every launch is checked against the device's limits
//   (maxStorageBufferBindingSize, maxStorageBuffersPerShaderStage,
//   maxComputeWorkgroupsPerDimension); a launch that does not fit throws an Error naming the
//   limit and the size asked for, and nothing runs.
// - Reading copies into a MAP_READ staging buffer and awaits `mapAsync`.
// - A lost device is reported as an Error by the next `run` or `read`; the call after that
//   acquires a new device. Buffers that lived on the lost device are gone.
// - Everything made on a device (storage in use or pooled, staging buffers of reads in flight,
//   pipelines, layouts) belongs to its DeviceScope. When the device is lost or given up, the
//   scope is retired at once: every buffer of it is destroyed and its caches are dropped, so
//   nothing of a dead device waits for the garbage collector or for process exit, and a late
//   `release` or finalizer only forgets its handle.
// - Storage buffer sizes are multiples of 4 and at least 4 bytes; float32 and int32 only.

import { allocArray, type DType, type TypedArray } from "../ir/dtype.ts";
import { type Target, WGSL_TARGET } from "../../codegen/targets.ts";
import { BoundedCache } from "../../codegen/cache.ts";
import {
  arriveLater,
  type Arriving,
  type Backend,
  type DeviceBuffer,
  type Launch,
  newBufferId,
} from "./device.ts";
import type { StorageStats } from "./device.ts";
import { settingsObject } from "../validate.ts";

// GPUBufferUsage / GPUMapMode values, spelled out so this module loads where WebGPU is missing.
const USAGE_MAP_READ = 0x0001;
const USAGE_COPY_SRC = 0x0004;
const USAGE_COPY_DST = 0x0008;
const USAGE_STORAGE = 0x0080;
const MAP_MODE_READ = 0x0001;

/** Compiled pipelines kept (by WGSL source). */
const PIPELINE_LIMIT = 1024;

/** Bytes of writes the queue may hold in staging before they are submitted (DeviceScope.write). */
const UNSUBMITTED_WRITE_BYTES = 16 * 1024 * 1024;
/** Bytes the pool may hold; past them the sizes released longest ago are destroyed. */
const POOL_LIMIT_BYTES = 256 * 1024 * 1024;

/** The device limits this backend checks, requested at the adapter's maximum. */
const LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupsPerDimension",
] as const;

/** A bind group layout and the pipeline layout made of it, for kernels of one input count. */
interface Layout {
  readonly bind: GPUBindGroupLayout;
  readonly pipeline: GPUPipelineLayout;
}

/**
 * What this backend made on one device. Retiring it (device lost or given up) destroys every
 * buffer in `buffers` and empties the caches; a retired scope is never used again.
 */
class DeviceScope {
  /** Storage buffers released to the pool, by byte size (each is also in `buffers`). */
  readonly pool = new Map<number, GPUBuffer[]>();
  pooledBytes = 0;
  /** Compiled pipelines by WGSL source (a kernel run at every step was compiled again once
   * 1,024 others had come, with first in, first out). */
  readonly pipelines = new BoundedCache<string, GPUComputePipeline>(PIPELINE_LIMIT);
  /** Layouts by number of inputs. */
  /** Bind group layouts by `outputs/inputs`. */
  readonly layouts = new Map<string, Layout>();
  /** Every buffer made on the device and not destroyed yet: storage in use or pooled, staging. */
  readonly buffers = new Set<GPUBuffer>();
  retired = false;
  /** Why the device was lost, once it was (every call failing on it is told; see #lossError). */
  lossMessage: string | null = null;

  /** Bytes written by `writeBuffer` since the queue last submitted (held in staging till then). */
  unsubmittedBytes = 0;
  #flushScheduled = false;

  constructor(readonly device: GPUDevice) {}

  /**
   * Writes `data` into `gpu`. The queue keeps a staging copy of each write until its next
   * submit, and nothing else submits in a program that only makes and disposes tensors: 150
   * uploads of 4 MB held 620 MB that `memory()` never saw. So the writes are submitted once
   * UNSUBMITTED_WRITE_BYTES pile up, and at the end of the task that made them.
   */
  write(gpu: GPUBuffer, data: BufferSource): void {
    this.device.queue.writeBuffer(gpu, 0, data);
    this.unsubmittedBytes += data.byteLength;
    if (this.unsubmittedBytes > UNSUBMITTED_WRITE_BYTES) {
      this.submit([]);
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        if (this.unsubmittedBytes > 0 && !this.retired) this.submit([]);
      });
    }
  }

  /** Submits `commands` (and with them every write before). */
  submit(commands: GPUCommandBuffer[]): void {
    this.unsubmittedBytes = 0;
    this.device.queue.submit(commands);
  }

  createBuffer(size: number, usage: number): GPUBuffer {
    const buffer = this.device.createBuffer({ size, usage });
    this.buffers.add(buffer);
    return buffer;
  }

  destroyBuffer(buffer: GPUBuffer): void {
    if (!this.buffers.delete(buffer)) return; // destroyed already (by retire)
    buffer.destroy();
  }

  /** Destroys every buffer of the device and drops every cached object; idempotent. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    for (const buffer of this.buffers) buffer.destroy();
    this.buffers.clear();
    this.pool.clear();
    this.pooledBytes = 0;
    this.pipelines.clear();
    this.layouts.clear();
  }
}

/** The storage behind one handle. Shared with the finalizer, so it never points at the handle. */
interface Storage {
  /** The GPU buffer, once a kernel or an upload on a live device needed one. */
  gpu: GPUBuffer | null;
  /** The device scope `gpu` belongs to (destroyed with it when the scope is retired). */
  scope: DeviceScope | null;
  /** Contents waiting on the host for the device (uploads made before it existed). */
  host: TypedArray | null;
  /** Size of the storage buffer: 4 * length, at least 4. */
  readonly bytes: number;
  released: boolean;
}

/** A webgpu buffer: a handle on pooled GPU storage (or on host data not yet uploaded). */
export class WebGpuBuffer implements DeviceBuffer, Arriving {
  readonly id: number = newBufferId();
  readonly device = "webgpu" as const;
  /** Set while the contents are still being copied in from another device. */
  pending: Promise<void> | null = null;
  /** Set when that copy failed. */
  copyFailure: { readonly error: unknown; } | null = null;
  constructor(
    readonly dtype: DType,
    readonly length: number,
    /** @internal */
    readonly storage: Storage,
  ) {}
}

function checkDtype(dtype: DType): void {
  if (dtype !== "float32" && dtype !== "int32") {
    throw new Error(
      `webgpu: ${dtype} tensors cannot live on WebGPU (WGSL has no 64-bit floats); ` +
        `use float32 or int32 on "webgpu", or the "cpu" device for ${dtype}`,
    );
  }
}

/** `data` as a typed array of `dtype` (a copy). */
function copyAs(dtype: DType, data: ArrayLike<number>): TypedArray {
  const out = allocArray(dtype, data.length);
  out.set(data);
  return out;
}

/** `data` itself if it is a typed array of `dtype` on a plain ArrayBuffer, else such a copy. */
function plainCopyIfNeeded(dtype: DType, data: ArrayLike<number>): BufferSource {
  const type = dtype === "int32" ? Int32Array : Float32Array;
  if (data instanceof type && data.buffer instanceof ArrayBuffer) {
    return data as Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer>;
  }
  return copyAs(dtype, data) as Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer>;
}

const describe = (b: DeviceBuffer) => `${b.dtype}[${b.length}]`;

/** The webgpu backend. Use {@link webgpuBackend} for the process-wide instance. */
export class WebGpuBackend implements Backend {
  readonly name = "webgpu" as const;
  readonly limits = WGSL_TARGET;
  readonly #gpu: () => GPU | undefined;
  /** The current device and what was made on it; null before acquisition and after a loss. */
  #scope: DeviceScope | null = null;
  #acquiring: Promise<GPUDevice> | null = null;
  /** The loss to report on the next call, if the device was lost. */
  #lost: string | null = null;
  /** Whether a device was lost or given up: buffers of it may be live still. */
  #retiredAny = false;
  #live = 0;
  #bytesInUse = 0;
  #bytesAllocated = 0;
  /** @internal POOL_LIMIT_BYTES, settable for tests. */
  poolLimitBytes: number = POOL_LIMIT_BYTES;
  readonly #finalizer = new FinalizationRegistry<Storage>((s) => this.#free(s));

  /** `gpu` says where WebGPU comes from (default: `navigator.gpu`). */
  constructor(gpu: () => GPU | undefined = defaultGpu) {
    this.#gpu = gpu;
  }

  targetFor(): Target {
    return WGSL_TARGET;
  }

  // ---- storage handles ---------------------------------------------------------------------

  allocate(dtype: DType, length: number): WebGpuBuffer {
    checkDtype(dtype);
    const storage: Storage = {
      gpu: null,
      scope: null,
      host: null,
      bytes: Math.max(4, length * 4),
      released: false,
    };
    this.#live++;
    this.#bytesInUse += storage.bytes;
    this.#bytesAllocated += storage.bytes;
    const b = new WebGpuBuffer(dtype, length, storage);
    // every handle, not only uploads: a computed value whose node is collected frees its storage
    this.#finalizer.register(b, storage, b);
    return b;
  }

  release(buffer: DeviceBuffer): void {
    this.#finalizer.unregister(buffer);
    this.#free((buffer as WebGpuBuffer).storage);
  }

  /**
   * Returns the storage of `s` to its device's pool (or destroys it when the pool is full). Also
   * run by the finalizer, at any time: storage of a retired device was destroyed with it, so
   * then the handle is only forgotten.
   */
  #free(s: Storage): void {
    if (s.released) return;
    s.released = true;
    this.#live--;
    this.#bytesInUse -= s.bytes;
    s.host = null;
    const gpu = s.gpu;
    const scope = s.scope;
    s.gpu = null;
    s.scope = null;
    if (gpu === null || scope === null || scope.retired) return;
    if (s.bytes > this.poolLimitBytes) {
      scope.destroyBuffer(gpu);
      return;
    }
    // a full pool gives up the sizes released longest ago (the map keeps sizes in order of
    // their latest release): it kept what filled it first, and a loop of changing sizes then
    // held 256 MB of sizes never asked for again while destroying every new one
    while (scope.pooledBytes + s.bytes > this.poolLimitBytes) {
      const [bytes, list] = scope.pool.entries().next().value!;
      scope.destroyBuffer(list.pop()!);
      scope.pooledBytes -= bytes;
      if (list.length === 0) scope.pool.delete(bytes);
    }
    const list = scope.pool.get(s.bytes) ?? [];
    scope.pool.delete(s.bytes); // now the latest released
    list.push(gpu);
    scope.pool.set(s.bytes, list);
    scope.pooledBytes += s.bytes;
  }

  upload(data: TypedArray, dtype: DType): WebGpuBuffer {
    const b = this.allocate(dtype, data.length);
    this.#fill(b.storage, data, dtype);
    return b;
  }

  uploadLater(data: Promise<TypedArray>, dtype: DType, length: number): WebGpuBuffer {
    const b = this.allocate(dtype, length);
    arriveLater(b, data, (values) => {
      if (!b.storage.released) this.#fill(b.storage, values, dtype);
    });
    return b;
  }

  /** Puts `data` into `s`: straight into GPU storage when the device is up, else on the host. */
  #fill(s: Storage, data: ArrayLike<number>, dtype: DType): void {
    if (data.length === 0) return;
    const scope = this.#scope;
    if (scope !== null && s.bytes <= this.#limit("maxStorageBufferBindingSize")) {
      scope.write(this.#storageOf(s, scope), plainCopyIfNeeded(dtype, data));
    } else {
      s.host = copyAs(dtype, data);
    }
  }

  pending(buffer: DeviceBuffer): Promise<void> | null {
    return (buffer as WebGpuBuffer).pending;
  }

  failedCopy(buffer: DeviceBuffer): { readonly error: unknown; } | null {
    return (buffer as WebGpuBuffer).copyFailure ?? null; // a jit stand-in has none
  }

  lostAny(): boolean {
    return this.#retiredAny;
  }

  lost(buffer: DeviceBuffer): boolean {
    const s = (buffer as WebGpuBuffer).storage;
    return s.gpu !== null && s.scope !== null && s.scope.retired;
  }

  liveBuffers(): number {
    return this.#live;
  }

  storageStats(): StorageStats {
    return {
      liveBuffers: this.#live,
      bytesInUse: this.#bytesInUse,
      bytesPooled: this.#scope?.pooledBytes ?? 0,
      bytesAllocated: this.#bytesAllocated,
    };
  }

  /** @internal Bytes written to the device and not submitted yet (DeviceScope.write). */
  unsubmittedBytes(): number {
    return this.#scope?.unsubmittedBytes ?? 0;
  }

  /** Number of compiled compute pipelines in the cache (one per distinct WGSL source). */
  cachedPipelines(): number {
    return this.#scope?.pipelines.size ?? 0;
  }

  /**
   * @internal Number of GPU buffers of the current device not destroyed yet (storage in use or
   * pooled, staging of reads in flight): 0 when there is no device. For tests.
   */
  deviceBuffers(): number {
    return this.#scope?.buffers.size ?? 0;
  }

  // ---- the device --------------------------------------------------------------------------

  /** Whether a WebGPU adapter can be acquired here (no device is created). */
  async available(): Promise<boolean> {
    if (this.#scope !== null) return true;
    try {
      return (await this.#gpu()?.requestAdapter()) != null;
    } catch {
      return false;
    }
  }

  /**
   * @internal The device, acquiring it if needed (reports a pending device loss first). For
   * tests of device loss; the library itself goes through `run` and `read`.
   */
  acquireDevice(): Promise<GPUDevice> {
    if (this.#lost !== null) {
      const message = this.#lost;
      this.#lost = null;
      return Promise.reject(new Error(message));
    }
    if (this.#scope !== null) return Promise.resolve(this.#scope.device);
    this.#acquiring ??= this.#requestDevice().finally(() => (this.#acquiring = null));
    return this.#acquiring;
  }

  /**
   * @internal Gives up the device: destroys every buffer made on it and the device itself, and
   * drops the cached pipelines. Handles keep working: their contents are gone (reading one that
   * had GPU storage throws), and the next `run` or `read` acquires a new device. For tests and
   * for owners of a private backend; a pending loss report is dropped too.
   */
  destroyDevice(): void {
    const scope = this.#scope;
    this.#scope = null;
    this.#lost = null;
    if (scope === null) return;
    this.#retiredAny = true;
    scope.retire();
    scope.device.destroy();
  }

  async #requestDevice(): Promise<GPUDevice> {
    const gpu = this.#gpu();
    if (gpu === undefined || gpu === null) {
      throw new Error(
        "webgpu: navigator.gpu is missing: this JavaScript runtime does not expose WebGPU " +
          '(browsers need a secure context and WebGPU support); use the "cpu" device',
      );
    }
    const adapter = await gpu.requestAdapter();
    if (adapter === null) {
      throw new Error(
        "webgpu: no WebGPU adapter: navigator.gpu.requestAdapter() returned null (no usable " +
          'GPU or software adapter on this machine); use the "cpu" device',
      );
    }
    const requiredLimits: Record<string, number> = {};
    for (const name of LIMITS) requiredLimits[name] = adapter.limits[name];
    const device = await adapter.requestDevice({ requiredLimits });
    const scope = new DeviceScope(device);
    this.#scope = scope;
    device.lost.then((info) => this.#onLost(scope, info));
    return device;
  }

  #onLost(scope: DeviceScope, info: GPUDeviceLostInfo): void {
    this.#retiredAny = true;
    scope.retire(); // whether current or given up already: nothing of a lost device survives
    if (this.#scope !== scope) return; // given up on purpose (destroyDevice): nothing to report
    this.#scope = null;
    this.#lost = scope.lossMessage = `webgpu: the device was lost (${info.reason}${
      info.message ? `: ${info.message}` : ""
    }); tensors computed on it are gone, and the next call acquires a new device`;
  }

  #limit(name: (typeof LIMITS)[number]): number {
    return this.#scope?.device.limits[name] ?? Infinity;
  }

  /** The GPU storage of `s` on `scope`'s device, taken from the pool (or created) and filled. */
  #storageOf(s: Storage, scope: DeviceScope): GPUBuffer {
    if (s.released) throw new Error("webgpu: a buffer was used after it was released");
    if (s.gpu !== null) {
      if (s.scope !== scope) throw lostBufferError();
      return s.gpu;
    }
    const pooled = scope.pool.get(s.bytes);
    let gpu = pooled?.pop();
    if (pooled?.length === 0) scope.pool.delete(s.bytes);
    if (gpu !== undefined) scope.pooledBytes -= s.bytes;
    else gpu = scope.createBuffer(s.bytes, USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST);
    s.gpu = gpu;
    s.scope = scope;
    if (s.host !== null) {
      scope.write(
        gpu,
        plainCopyIfNeeded(s.host instanceof Int32Array ? "int32" : "float32", s.host),
      );
      s.host = null;
    }
    return gpu;
  }

  // ---- kernels -----------------------------------------------------------------------------

  /** The layout of a kernel binding `launch`'s outputs (read_write), then its inputs. */
  #layout(scope: DeviceScope, launch: Launch): Layout {
    const device = scope.device;
    const outputs = launch.outputs.length;
    const key = `${outputs}/${launch.inputs.length}`;
    let layout = scope.layouts.get(key);
    if (layout === undefined) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (let i = 0; i < outputs + launch.inputs.length; i++) {
        entries.push({
          binding: i,
          visibility: GPUShaderStage_COMPUTE,
          buffer: { type: i < outputs ? "storage" : "read-only-storage" },
        });
      }
      const bind = device.createBindGroupLayout({ entries });
      layout = { bind, pipeline: device.createPipelineLayout({ bindGroupLayouts: [bind] }) };
      scope.layouts.set(key, layout);
    }
    return layout;
  }

  async #pipeline(scope: DeviceScope, launch: Launch): Promise<GPUComputePipeline> {
    const { name, text } = launch.executable;
    const cached = scope.pipelines.get(text);
    if (cached !== undefined) return cached;
    const device = scope.device;
    device.pushErrorScope("validation");
    let pipeline: GPUComputePipeline;
    try {
      const module = device.createShaderModule({ code: text, label: name });
      pipeline = device.createComputePipeline({
        label: name,
        layout: this.#layout(scope, launch).pipeline,
        compute: { module, entryPoint: name },
      });
    } catch (e) {
      // the scope is popped first: left pushed, it would take the next call's errors
      await device.popErrorScope();
      throw await this.#failure(scope, e);
    }
    const error = await device.popErrorScope();
    if (error !== null) {
      throw await this.#failure(
        scope,
        new Error(`webgpu: kernel ${name} failed to compile: ${error.message}`),
      );
    }
    if (scope.retired) return pipeline; // lost meanwhile: run() reports it; cache nothing
    scope.pipelines.set(text, pipeline); // bounded like the plan cache (least recently used)
    return pipeline;
  }

  /** Throws if `launch` cannot run on `device`; returns its workgroup grid. */
  #check(launch: Launch, scope: DeviceScope): [number, number] {
    const { name } = launch.executable;
    const limits = scope.device.limits;
    const buffers = [...launch.outputs, ...launch.inputs];
    if (buffers.length > limits.maxStorageBuffersPerShaderStage) {
      throw new Error(
        `webgpu: kernel ${name} binds ${buffers.length} storage buffers, above this device's ` +
          `maxStorageBuffersPerShaderStage of ${limits.maxStorageBuffersPerShaderStage}`,
      );
    }
    const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    for (const b of buffers) {
      const s = (b as WebGpuBuffer).storage;
      if (s.bytes > maxBinding) {
        const limit = limits.maxStorageBufferBindingSize <= limits.maxBufferSize
          ? "maxStorageBufferBindingSize"
          : "maxBufferSize";
        throw new Error(
          `webgpu: kernel ${name} needs a buffer of ${s.bytes} bytes (${describe(b)}), above ` +
            `this device's ${limit} of ${maxBinding} bytes`,
        );
      }
      if (s.released) {
        throw new Error(`webgpu: kernel ${name} reads a ${describe(b)} buffer that was released`);
      }
      if (s.gpu !== null && s.scope !== scope) throw lostBufferError();
    }
    const grid = launch.executable.workgroups;
    const maxGroups = limits.maxComputeWorkgroupsPerDimension;
    if (grid[0] > maxGroups || grid[1] > maxGroups) {
      throw new Error(
        `webgpu: kernel ${name} needs a ${grid[0]} x ${grid[1]} workgroup grid for ` +
          `${launch.outputs[0].length} elements, above this device's ` +
          `maxComputeWorkgroupsPerDimension of ${maxGroups}`,
      );
    }
    return [grid[0], grid[1]];
  }

  async run(launches: readonly Launch[]): Promise<void> {
    const work = launches.filter((l) => l.outputs[0].length > 0); // empty outputs never launch
    if (work.length === 0) return;
    const scope = await this.#acquireScope();
    const device = scope.device;
    // everything that can fail is checked before anything is encoded
    const grids = work.map((l) => this.#check(l, scope));
    const pipelines = await Promise.all(work.map((l) => this.#pipeline(scope, l)));
    if (scope.retired) throw this.#lossError(scope);
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    let thrown: unknown = null;
    try {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      work.forEach((launch, i) => {
        const buffers = [...launch.outputs, ...launch.inputs];
        const bindGroup = device.createBindGroup({
          layout: this.#layout(scope, launch).bind,
          entries: buffers.map((b, binding) => ({
            binding,
            resource: { buffer: this.#storageOf((b as WebGpuBuffer).storage, scope) },
          })),
        });
        pass.setPipeline(pipelines[i]);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(grids[i][0], grids[i][1]);
      });
      pass.end();
      scope.submit([encoder.finish()]);
    } catch (e) {
      thrown = e; // the error scopes are popped first
    }
    // both popped before any await: the scopes are the device's, one stack for every run, and
    // a run started during the first await pushed its own, whose out-of-memory error this
    // run's second pop took (and the other run, this one's)
    const popped = [device.popErrorScope(), device.popErrorScope()];
    const [invalid, oom] = await Promise.all(popped);
    if (thrown !== null) throw await this.#failure(scope, thrown);
    const error = invalid ?? oom;
    if (error !== null) {
      const names = work.map((l) => l.executable.name).join(", ");
      throw await this.#failure(
        scope,
        new Error(`webgpu: running ${names} failed: ${error.message}`),
      );
    }
  }

  async read(buffer: DeviceBuffer): Promise<TypedArray> {
    const b = buffer as WebGpuBuffer;
    if (b.pending !== null) await b.pending;
    const s = b.storage;
    if (s.gpu === null || b.length === 0) {
      if (this.#lost !== null) await this.acquireDevice(); // reports the loss
      if (s.released) throw new Error(`webgpu: read of a ${describe(b)} buffer that was released`);
      return s.host !== null ? s.host.slice() : allocArray(b.dtype, b.length);
    }
    const scope = await this.#acquireScope();
    if (s.released) throw new Error(`webgpu: read of a ${describe(b)} buffer that was released`);
    const gpu = this.#storageOf(s, scope);
    const bytes = b.length * 4;
    // the staging buffer belongs to the scope too: a loss while the read waits destroys it
    const staging = scope.createBuffer(bytes, USAGE_MAP_READ | USAGE_COPY_DST);
    try {
      const encoder = scope.device.createCommandEncoder();
      encoder.copyBufferToBuffer(gpu, 0, staging, 0, bytes);
      scope.submit([encoder.finish()]);
      try {
        await staging.mapAsync(MAP_MODE_READ);
      } catch (e) {
        throw await this.#failure(scope, e);
      }
      if (scope.retired) throw this.#lossError(scope);
      const mapped = staging.getMappedRange();
      // copies by the constructor, which does not zero the new buffer first as slice() does
      const out = b.dtype === "int32"
        ? new Int32Array(new Int32Array(mapped))
        : new Float32Array(new Float32Array(mapped));
      staging.unmap();
      return out;
    } finally {
      scope.destroyBuffer(staging);
    }
  }

  /** The current device's scope, acquiring the device if needed (reports a loss first). */
  async #acquireScope(): Promise<DeviceScope> {
    const device = await this.acquireDevice();
    const scope = this.#scope;
    if (scope === null || scope.device !== device) throw this.#lossError();
    return scope;
  }

  /**
   * The error to throw for `error`, met on `scope`'s device: the loss's, when the device was
   * lost. A loss is known once `device.lost` settles, which takes a task: work that awaited only
   * promises after a `destroy()` met WebGPU's bare "validation error occurred" on every call and
   * never acquired a new device, so a failure waits a few tasks (LOSS_WAIT_TASKS) before it is told apart.
   */
  async #failure(scope: DeviceScope, error: unknown): Promise<unknown> {
    // a few tasks at most, on the failure path only (one was not always enough for the event)
    for (let i = 0; i < LOSS_WAIT_TASKS && !scope.retired; i++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return scope.retired ? this.#lossError(scope) : error;
  }

  /**
   * The error for work that the device was lost (or given up) under; reports the loss once (the
   * call after it acquires a new device). Every call that ran on the lost device (`scope`) is
   * told the loss: the second of two reads failing together was told the device was "given up".
   */
  #lossError(scope?: DeviceScope): Error {
    const message = scope?.lossMessage ?? this.#lost ??
      "webgpu: the device was given up while this call ran; the next call acquires a new one";
    // reported now; a later device's loss, pending still, waits for its own call
    if (this.#lost === message) this.#lost = null;
    return new Error(message);
  }
}

/** Tasks a failed call waits for `device.lost` to settle before it reports the error as is. */
const LOSS_WAIT_TASKS = 3;

// GPUShaderStage.COMPUTE, spelled out for the same reason as the usage flags.
const GPUShaderStage_COMPUTE = 0x4;

function lostBufferError(): Error {
  return new Error(
    "webgpu: this buffer's contents were lost with the device it lived on; create the tensor again",
  );
}

function defaultGpu(): GPU | undefined {
  return (globalThis.navigator as { gpu?: GPU; } | undefined)?.gpu;
}

let instance: WebGpuBackend | null = null;

/** The webgpu backend (one per process, created on first use; the device comes later). */
export function webgpuBackend(): WebGpuBackend {
  instance ??= new WebGpuBackend();
  return instance;
}

/** The `webgpu` namespace of the public API: what the WebGPU device can tell about itself. */
export interface WebGpuInfo {
  /**
   * Whether WebGPU is usable here: `navigator.gpu` exists and gives an adapter (a software
   * adapter counts). Tensors can be created on "webgpu" regardless; running them needs this.
   */
  available(): Promise<boolean>;
  /** Number of webgpu buffers allocated and not yet released (for finding leaks). */
  liveBuffers(): number;
}

/**
 * The WebGPU device: `await webgpu.available()` says whether tensors on `"webgpu"` can run here;
 * `webgpu.liveBuffers()` counts the buffers it holds.
 *
 * @example
 * ```ts
 * import { randn, webgpu } from "@lucid/nn";
 * if (await webgpu.available()) {
 *   const x = randn([1024], { device: "webgpu" });
 *   console.log(await x.exp().sum().item()); // computed by a WGSL kernel
 *   console.log(x.to("cpu").device); // cpu: a copy on the cpu device
 * }
 * ```
 */
export const webgpu: WebGpuInfo = settingsObject("webgpu", {
  available: () => webgpuBackend().available(),
  liveBuffers: () => instance?.liveBuffers() ?? 0,
}, []);
