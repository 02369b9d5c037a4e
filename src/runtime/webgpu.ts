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
// - Storage buffer sizes are multiples of 4 and at least 4 bytes; float32 and int32 only.

import { allocArray, type DType, type TypedArray } from "../ir/dtype.ts";
import { type Target, WGSL_TARGET } from "../../codegen/targets.ts";
import { type Backend, type DeviceBuffer, type Launch, newBufferId } from "./device.ts";
import type { StorageStats } from "./device.ts";

// GPUBufferUsage / GPUMapMode values, spelled out so this module loads where WebGPU is missing.
const USAGE_MAP_READ = 0x0001;
const USAGE_COPY_SRC = 0x0004;
const USAGE_COPY_DST = 0x0008;
const USAGE_STORAGE = 0x0080;
const MAP_MODE_READ = 0x0001;

/** Compiled pipelines kept (by WGSL source). */
const PIPELINE_LIMIT = 1024;

/** Bytes the pool may hold before released storage is destroyed instead. */
const POOL_LIMIT_BYTES = 256 * 1024 * 1024;

/** The device limits this backend checks, requested at the adapter's maximum. */
const LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupsPerDimension",
] as const;

/** The storage behind one handle. Shared with the finalizer, so it never points at the handle. */
interface Storage {
  /** The GPU buffer, once a kernel or an upload on a live device needed one. */
  gpu: GPUBuffer | null;
  /** Which device (acquisition count) `gpu` belongs to. */
  generation: number;
  /** Contents waiting on the host for the device (uploads made before it existed). */
  host: TypedArray | null;
  /** Size of the storage buffer: 4 * length, at least 4. */
  readonly bytes: number;
  released: boolean;
}

/** A webgpu buffer: a handle on pooled GPU storage (or on host data not yet uploaded). */
export class WebGpuBuffer implements DeviceBuffer {
  readonly id: number = newBufferId();
  readonly device = "webgpu" as const;
  /** Set while the contents are still being copied in from another device. */
  pending: Promise<void> | null = null;
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
  #device: GPUDevice | null = null;
  #acquiring: Promise<GPUDevice> | null = null;
  #generation = 0;
  /** The loss to report on the next call, if the device was lost. */
  #lost: string | null = null;
  #pool = new Map<number, GPUBuffer[]>();
  #pooledBytes = 0;
  #pipelines = new Map<string, GPUComputePipeline>();
  #layouts = new Map<number, { bind: GPUBindGroupLayout; pipeline: GPUPipelineLayout; }>();
  #live = 0;
  #bytesInUse = 0;
  #bytesAllocated = 0;
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
      generation: 0,
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

  #free(s: Storage): void {
    if (s.released) return;
    s.released = true;
    this.#live--;
    this.#bytesInUse -= s.bytes;
    s.host = null;
    const gpu = s.gpu;
    s.gpu = null;
    if (gpu === null) return;
    if (s.generation !== this.#generation || this.#device === null) return; // lost with its device
    if (this.#pooledBytes + s.bytes > POOL_LIMIT_BYTES) {
      gpu.destroy();
      return;
    }
    const list = this.#pool.get(s.bytes) ?? [];
    list.push(gpu);
    this.#pool.set(s.bytes, list);
    this.#pooledBytes += s.bytes;
  }

  upload(data: TypedArray, dtype: DType): WebGpuBuffer {
    const b = this.allocate(dtype, data.length);
    this.#fill(b.storage, data, dtype);
    return b;
  }

  uploadLater(data: Promise<TypedArray>, dtype: DType, length: number): WebGpuBuffer {
    const b = this.allocate(dtype, length);
    const pending = data.then((values) => {
      b.pending = null;
      if (!b.storage.released) this.#fill(b.storage, values, dtype);
    });
    pending.catch(() => {}); // whoever waits on the buffer sees the error; nobody else must
    b.pending = pending;
    return b;
  }

  /** Puts `data` into `s`: straight into GPU storage when the device is up, else on the host. */
  #fill(s: Storage, data: ArrayLike<number>, dtype: DType): void {
    if (data.length === 0) return;
    const device = this.#device;
    if (device !== null && s.bytes <= this.#limit("maxStorageBufferBindingSize")) {
      device.queue.writeBuffer(this.#storageOf(s, device), 0, plainCopyIfNeeded(dtype, data));
    } else {
      s.host = copyAs(dtype, data);
    }
  }

  pending(buffer: DeviceBuffer): Promise<void> | null {
    return (buffer as WebGpuBuffer).pending;
  }

  liveBuffers(): number {
    return this.#live;
  }

  storageStats(): StorageStats {
    return {
      liveBuffers: this.#live,
      bytesInUse: this.#bytesInUse,
      bytesPooled: this.#pooledBytes,
      bytesAllocated: this.#bytesAllocated,
    };
  }

  /** Number of compiled compute pipelines in the cache (one per distinct WGSL source). */
  cachedPipelines(): number {
    return this.#pipelines.size;
  }

  // ---- the device --------------------------------------------------------------------------

  /** Whether a WebGPU adapter can be acquired here (no device is created). */
  async available(): Promise<boolean> {
    if (this.#device !== null) return true;
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
    if (this.#device !== null) return Promise.resolve(this.#device);
    this.#acquiring ??= this.#requestDevice().finally(() => (this.#acquiring = null));
    return this.#acquiring;
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
    this.#generation++;
    this.#device = device;
    device.lost.then((info) => this.#onLost(device, info));
    return device;
  }

  #onLost(device: GPUDevice, info: GPUDeviceLostInfo): void {
    if (this.#device !== device) return;
    this.#device = null;
    this.#pool.clear();
    this.#pooledBytes = 0;
    this.#pipelines.clear();
    this.#layouts.clear();
    this.#lost = `webgpu: the device was lost (${info.reason}${
      info.message ? `: ${info.message}` : ""
    }); tensors computed on it are gone, and the next call acquires a new device`;
  }

  #limit(name: (typeof LIMITS)[number]): number {
    return this.#device?.limits[name] ?? Infinity;
  }

  /** The GPU storage of `s`, taken from the pool (or created) and filled on first use. */
  #storageOf(s: Storage, device: GPUDevice): GPUBuffer {
    if (s.released) throw new Error("webgpu: a buffer was used after it was released");
    if (s.gpu !== null) {
      if (s.generation !== this.#generation) throw lostBufferError();
      return s.gpu;
    }
    let gpu = this.#pool.get(s.bytes)?.pop();
    if (gpu !== undefined) this.#pooledBytes -= s.bytes;
    else {
      gpu = device.createBuffer({
        size: s.bytes,
        usage: USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST,
      });
    }
    s.gpu = gpu;
    s.generation = this.#generation;
    if (s.host !== null) {
      device.queue.writeBuffer(
        gpu,
        0,
        plainCopyIfNeeded(s.host instanceof Int32Array ? "int32" : "float32", s.host),
      );
      s.host = null;
    }
    return gpu;
  }

  // ---- kernels -----------------------------------------------------------------------------

  #layout(device: GPUDevice, inputs: number) {
    let layout = this.#layouts.get(inputs);
    if (layout === undefined) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (let i = 0; i <= inputs; i++) {
        entries.push({
          binding: i,
          visibility: GPUShaderStage_COMPUTE,
          buffer: { type: i === 0 ? "storage" : "read-only-storage" },
        });
      }
      const bind = device.createBindGroupLayout({ entries });
      layout = { bind, pipeline: device.createPipelineLayout({ bindGroupLayouts: [bind] }) };
      this.#layouts.set(inputs, layout);
    }
    return layout;
  }

  async #pipeline(device: GPUDevice, launch: Launch): Promise<GPUComputePipeline> {
    const { name, text } = launch.executable;
    const cached = this.#pipelines.get(text);
    if (cached !== undefined) return cached;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: text, label: name });
    const pipeline = device.createComputePipeline({
      label: name,
      layout: this.#layout(device, launch.inputs.length).pipeline,
      compute: { module, entryPoint: name },
    });
    const error = await device.popErrorScope();
    if (error !== null) {
      throw new Error(`webgpu: kernel ${name} failed to compile: ${error.message}`);
    }
    this.#pipelines.set(text, pipeline);
    // bounded like the plan cache: the oldest pipeline goes first
    if (this.#pipelines.size > PIPELINE_LIMIT) {
      this.#pipelines.delete(this.#pipelines.keys().next().value!);
    }
    return pipeline;
  }

  /** Throws if `launch` cannot run on `device`; returns its workgroup grid. */
  #check(launch: Launch, device: GPUDevice): [number, number] {
    const { name } = launch.executable;
    const limits = device.limits;
    const buffers = [launch.output, ...launch.inputs];
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
      if (s.gpu !== null && s.generation !== this.#generation) throw lostBufferError();
    }
    const grid = launch.executable.workgroups;
    const maxGroups = limits.maxComputeWorkgroupsPerDimension;
    if (grid[0] > maxGroups || grid[1] > maxGroups) {
      throw new Error(
        `webgpu: kernel ${name} needs a ${grid[0]} x ${grid[1]} workgroup grid for ` +
          `${launch.output.length} elements, above this device's ` +
          `maxComputeWorkgroupsPerDimension of ${maxGroups}`,
      );
    }
    return [grid[0], grid[1]];
  }

  async run(launches: readonly Launch[]): Promise<void> {
    const work = launches.filter((l) => l.output.length > 0); // empty outputs never launch
    if (work.length === 0) return;
    const device = await this.acquireDevice();
    // everything that can fail is checked before anything is encoded
    const grids = work.map((l) => this.#check(l, device));
    const pipelines = await Promise.all(work.map((l) => this.#pipeline(device, l)));
    if (this.#device !== device) throw new Error(this.#lost ?? "webgpu: the device was lost");
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    let thrown: unknown = null;
    try {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      work.forEach((launch, i) => {
        const buffers = [launch.output, ...launch.inputs];
        const bindGroup = device.createBindGroup({
          layout: this.#layout(device, launch.inputs.length).bind,
          entries: buffers.map((b, binding) => ({
            binding,
            resource: { buffer: this.#storageOf((b as WebGpuBuffer).storage, device) },
          })),
        });
        pass.setPipeline(pipelines[i]);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(grids[i][0], grids[i][1]);
      });
      pass.end();
      device.queue.submit([encoder.finish()]);
    } catch (e) {
      thrown = e; // the error scopes are popped first
    }
    const invalid = await device.popErrorScope();
    const oom = await device.popErrorScope();
    if (thrown !== null) throw thrown;
    const error = invalid ?? oom;
    if (error !== null) {
      const names = work.map((l) => l.executable.name).join(", ");
      throw new Error(`webgpu: running ${names} failed: ${error.message}`);
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
    const device = await this.acquireDevice();
    if (s.released) throw new Error(`webgpu: read of a ${describe(b)} buffer that was released`);
    const gpu = this.#storageOf(s, device);
    const bytes = b.length * 4;
    const staging = device.createBuffer({ size: bytes, usage: USAGE_MAP_READ | USAGE_COPY_DST });
    try {
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(gpu, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(MAP_MODE_READ);
      const mapped = staging.getMappedRange();
      const out = b.dtype === "int32"
        ? new Int32Array(mapped).slice()
        : new Float32Array(mapped).slice();
      staging.unmap();
      return out;
    } finally {
      staging.destroy();
    }
  }
}

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
 */
export const webgpu: WebGpuInfo = {
  available: () => webgpuBackend().available(),
  liveBuffers: () => instance?.liveBuffers() ?? 0,
};
