// The cpu device: every tensor is a handle on a block of one shared WebAssembly.Memory
// (heap.ts); typed-array views of a block are made when a kernel runs or a value is read,
// never kept (after the memory grows, an old view still has the old length). A kernel runs as
// WebAssembly (SIMD) when it fits that target (float32 data, ops Wasm has) and the runtime has
// SIMD, else as a JavaScript function; `LUCID_CPU_KERNELS=js` or `cpu.configure({ kernels:
// "js" })` asks for JavaScript everywhere. Each executable is compiled once (a Function, or a
// WebAssembly.Module instantiated on this memory) and kept with it: every plan with an equal
// kernel shares it.
//
// A handle dropped without release (its tensor and node were garbage collected) gives its
// block back through a FinalizationRegistry whose held value is the block, not the handle.

import { bytesPerElement, type DType, type TypedArray } from "../ir/dtype.ts";
import type { Executable } from "../../codegen/compile.ts";
import {
  fitsWasm,
  JS_BESIDE_WASM_TARGET,
  JS_TARGET,
  type Target,
  WASM_TARGET,
  WASM_UNSHARED_TARGET,
} from "../../codegen/targets.ts";
import type { Kernel } from "../../codegen/kernel.ts";
import {
  arriveLater,
  type Arriving,
  type Backend,
  type DeviceBuffer,
  type Launch,
  newBufferId,
  type StorageStats,
} from "./device.ts";
import { envSetting, warnOnce } from "./env.ts";
import { type Block, HeapMemory, isShared } from "./heap.ts";
import { defaultThreads, ThreadPool } from "./threads.ts";
import { fmt, settingsObject } from "../validate.ts";

/**
 * Rule THREAD_MIN_ELEMENTS: a Wasm kernel writing fewer elements than this runs on the calling
 * thread alone. Measured with LocalResponseNorm on 2 cores (whole calls with their copies,
 * blocks of 20 calls alternating between two thresholds in one process, median ratio of the
 * blocks' medians, 2026-12-06): forward on (2, 96, 27, 27), 140K elements, split over two
 * threads takes 0.83-0.92 of its time on one in a loop of calls, but 1.01-1.07 when each call
 * follows the bench's hand-written loop (the worker asleep, its caches cold), 1.3-1.6 in
 * `deno bench` while the second core was busy elsewhere; forward + backward there 0.96-1.02;
 * forward on (4, 32, 64), 8K elements, 1.22. The first kernel this large also starts the
 * workers, which blocks for 65-80 ms (threads.ts): a first call on such a tensor would pay it.
 * Worker threads cost memory too (a Deno isolate each) and slow finalizers (see backstop.ts),
 * so kernels below a quarter million elements keep to one thread.
 */
export const THREAD_MIN_ELEMENTS = 262144;

/** Which kernels the cpu device runs: `auto` (Wasm where it can), `wasm` or `js`. */
export type CpuKernels = "auto" | "wasm" | "js";

/** Whether this runtime validates WebAssembly SIMD (a module using one v128 instruction). */
export const simdAvailable: boolean = (() => {
  try {
    // (func (result v128) v128.const 0) with no imports
    return WebAssembly.validate(
      new Uint8Array([
        0,
        97,
        115,
        109,
        1,
        0,
        0,
        0,
        1,
        5,
        1,
        96,
        0,
        1,
        123,
        3,
        2,
        1,
        0,
        10,
        22,
        1,
        20,
        0,
        253,
        12,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        11,
      ]),
    );
  } catch {
    return false;
  }
})();

function kernelsFromEnv(): CpuKernels {
  const kernels = envSetting(
    "LUCID_CPU_KERNELS",
    (v) => v === "auto" || v === "js" || v === "wasm" ? v : undefined,
    '"auto", "wasm" or "js"',
  ) ?? "auto";
  if (kernels === "wasm" && !simdAvailable) {
    // as cpu.kernels = "wasm" throws: asked for Wasm, the kernels ran as JavaScript unsaid
    warnOnce(
      "LUCID_CPU_KERNELS",
      'LUCID_CPU_KERNELS="wasm" needs WebAssembly SIMD, which this runtime lacks; kernels run as ' +
        'JavaScript ("auto")',
    );
    return "auto";
  }
  return kernels;
}

function threadsFromEnv(): number {
  const threads = envSetting(
    "LUCID_THREADS",
    (v) => /^[1-9][0-9]*$/.test(v) && Number(v) <= 64 ? Number(v) : undefined,
    "an integer from 1 to 64",
  );
  return threads ?? defaultThreads();
}

/** A cpu buffer: a handle on a block of the cpu memory. */
export class CpuBuffer implements DeviceBuffer, Arriving {
  readonly id: number = newBufferId();
  readonly device = "cpu" as const;
  /** Set while the contents are still being copied in from another device. */
  pending: Promise<void> | null = null;
  /** Set when that copy failed. */
  copyFailure: { readonly error: unknown; } | null = null;
  /** Set once the block went back to the allocator: reading is then an error. */
  released = false;
  constructor(
    readonly dtype: DType,
    readonly length: number,
    /** @internal The block holding the elements. */
    readonly block: Block,
  ) {}
}

type CompiledKernel = (...outputsThenInputs: TypedArray[]) => void;
/** A Wasm kernel: byte offsets of the outputs and inputs, then the outer loop's [start, end). */
type WasmKernel = (...offsetsAndRange: number[]) => void;

/** The typed array of `dtype` over `length` elements at `offset` of `buffer`. */
function viewOf(buffer: ArrayBufferLike, dtype: DType, offset: number, length: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, offset, length);
    case "float64":
      return new Float64Array(buffer, offset, length);
    case "int32":
      return new Int32Array(buffer, offset, length);
  }
}

function releasedError(b: CpuBuffer): Error {
  return new Error(`cpu: read of a ${b.dtype}[${b.length}] buffer that was released`);
}

class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly limits = JS_TARGET;
  /** The memory every cpu tensor lives in. */
  readonly heap = new HeapMemory();
  /** Worker threads for large Wasm kernels. */
  readonly pool = new ThreadPool(this.heap.memory, threadsFromEnv());
  /** Rule THREAD_MIN_ELEMENTS, settable (tests split every kernel). */
  threadMinElements = THREAD_MIN_ELEMENTS;
  private compiledCount_ = 0;
  private live = 0;
  private bytesInUse = 0;
  private bytesAllocated = 0;
  /** Gives back the block of a handle collected without release (with its byte count). */
  private readonly dropped = new FinalizationRegistry<{ block: Block; bytes: number; }>(
    ({ block, bytes }) => {
      this.live--;
      this.bytesInUse -= bytes;
      this.heap.release(block);
    },
  );
  #kernels: CpuKernels = kernelsFromEnv();

  /** Which kernels run: `auto` (Wasm where it can), `wasm` or `js`. */
  get kernels(): CpuKernels {
    return this.#kernels;
  }
  set kernels(value: CpuKernels) {
    if (value === "wasm" && !simdAvailable) {
      throw new Error(
        'cpu: kernels "wasm" needs WebAssembly SIMD, which this runtime lacks; use "auto" or "js"',
      );
    }
    this.#kernels = value;
  }

  /** What plans compiled for this device depend on besides the graph: the kernel target. */
  get planKey(): string {
    return this.#useWasm() ? "wasm" : "js";
  }

  #useWasm(): boolean {
    return this.#kernels !== "js" && simdAvailable;
  }

  targetFor(kernel: Kernel): Target {
    if (!this.#useWasm()) return JS_TARGET;
    if (!fitsWasm(kernel)) return JS_BESIDE_WASM_TARGET;
    return isShared(this.heap.memory.buffer) ? WASM_TARGET : WASM_UNSHARED_TARGET;
  }

  /** A view of `buffer`'s elements, valid until the memory next grows. */
  view(buffer: CpuBuffer): TypedArray {
    if (buffer.released) throw releasedError(buffer);
    return viewOf(this.heap.memory.buffer, buffer.dtype, buffer.block.offset, buffer.length);
  }

  allocate(dtype: DType, length: number): CpuBuffer {
    const bytes = length * bytesPerElement(dtype);
    const block = this.heap.allocate(bytes);
    this.live++;
    this.bytesInUse += bytes;
    this.bytesAllocated += bytes;
    const b = new CpuBuffer(dtype, length, block);
    this.dropped.register(b, { block, bytes }, b);
    return b;
  }

  release(buffer: DeviceBuffer): void {
    const b = buffer as CpuBuffer;
    if (b.released) return;
    b.released = true;
    this.dropped.unregister(b);
    this.live--;
    this.bytesInUse -= b.length * bytesPerElement(b.dtype);
    this.heap.release(b.block);
  }

  upload(data: TypedArray, dtype: DType): CpuBuffer {
    const b = this.allocate(dtype, data.length);
    try {
      this.view(b).set(data);
    } catch (e) {
      this.release(b); // (a copy that throws leaves no storage behind)
      throw e;
    }
    // a kernel on data this large will likely be split: its threads can wake meanwhile
    if (data.length >= this.threadMinElements) this.pool.prewake();
    return b;
  }

  uploadLater(data: Promise<TypedArray>, dtype: DType, length: number): CpuBuffer {
    const b = this.allocate(dtype, length);
    arriveLater(b, data, (values) => {
      if (!b.released) this.view(b).set(values);
    });
    return b;
  }

  pending(buffer: DeviceBuffer): Promise<void> | null {
    return (buffer as CpuBuffer).pending;
  }

  failedCopy(buffer: DeviceBuffer): { readonly error: unknown; } | null {
    return (buffer as CpuBuffer).copyFailure ?? null; // a jit stand-in has none
  }

  /** The function of a JavaScript executable (compiled on its first run, then kept with it). */
  compile(executable: Executable): CompiledKernel {
    if (executable.artifact === undefined) {
      const { text, name } = executable;
      executable.artifact = new Function(`"use strict";\n${text}\nreturn ${name};`)();
      this.compiledCount_++;
    }
    return executable.artifact as CompiledKernel;
  }

  /** The function of a Wasm executable, instantiated on this memory (once). */
  compileWasm(executable: Executable): WasmKernel {
    if (executable.artifact === undefined) {
      const module = new WebAssembly.Module(executable.binary! as Uint8Array<ArrayBuffer>);
      const instance = new WebAssembly.Instance(module, { env: { memory: this.heap.memory } });
      executable.artifact = instance.exports[executable.name];
      this.compiledCount_++;
    }
    return executable.artifact as WasmKernel;
  }

  /** Number of kernels compiled to functions so far. */
  compiledCount(): number {
    return this.compiledCount_;
  }

  run(launches: readonly Launch[]): void {
    for (const l of launches) {
      const outputs = l.outputs as readonly CpuBuffer[];
      if (outputs[0].length === 0) continue; // empty outputs never launch
      const inputs = l.inputs as readonly CpuBuffer[];
      for (let i = 0; i < outputs.length; i++) {
        if (outputs[i].released) throw releasedError(outputs[i]);
      }
      for (let i = 0; i < inputs.length; i++) {
        if (inputs[i].released) throw releasedError(inputs[i]);
      }
      if (l.executable.target === "wasm") {
        const outer = l.executable.splitExtent!;
        const offsets: number[] = [];
        for (let i = 0; i < outputs.length; i++) offsets.push(outputs[i].block.offset);
        for (let i = 0; i < inputs.length; i++) offsets.push(inputs[i].block.offset);
        const fn = this.compileWasm(l.executable);
        const split = outputs[0].length >= this.threadMinElements && outer > 1 &&
          this.pool.run(l.executable, fn, offsets, outer);
        if (!split) fn(...offsets, 0, outer);
      } else {
        const views = [...outputs, ...inputs].map((b) => this.view(b));
        this.compile(l.executable)(...views);
      }
    }
  }

  async read(buffer: DeviceBuffer): Promise<TypedArray> {
    const pending = (buffer as CpuBuffer).pending;
    if (pending) await pending; // a copy from another device still arriving
    return this.readSync(buffer);
  }

  readSync(buffer: DeviceBuffer): TypedArray {
    const b = buffer as CpuBuffer;
    if (b.released) throw releasedError(b);
    // one copy, by the typed-array constructor: it fills a new, non-shared buffer it leaves
    // uninitialized, where slice() and set() zero it first (measured, 9.3 MB out of shared memory:
    // 1.3 ms against 2.2 for slice() of the same bytes)
    const bytes = new Uint8Array(
      this.heap.memory.buffer,
      b.block.offset,
      b.length * bytesPerElement(b.dtype),
    );
    return viewOf(new Uint8Array(bytes).buffer, b.dtype, 0, b.length);
  }

  liveBuffers(): number {
    return this.live;
  }

  storageStats(): StorageStats {
    return {
      liveBuffers: this.live,
      bytesInUse: this.bytesInUse,
      bytesPooled: this.heap.bytesPooled,
      bytesAllocated: this.bytesAllocated,
    };
  }
}

/** The cpu backend (one per process). */
export const cpuBackend: CpuBackend = new CpuBackend();

/** The `cpu` namespace of the public API: which kernels the cpu device runs. */
export interface CpuInfo {
  /** Whether WebAssembly SIMD is available here (Wasm kernels can run). */
  readonly simd: boolean;
  /**
   * Which kernels run: `"auto"` (the default: WebAssembly SIMD for every kernel that fits it,
   * exp, log, tanh and sigmoid included; JavaScript for the rest: float64 and int32 data, a
   * general pow), `"wasm"` (the same, but an Error where SIMD is missing) or `"js"`
   * (JavaScript everywhere). The environment variable `LUCID_CPU_KERNELS` sets the starting
   * value (a value it cannot take is ignored with a warning).
   */
  kernels: CpuKernels;
  /**
   * Threads that run a large Wasm kernel together (the calling one included; default: the
   * hardware's, or the environment variable `LUCID_THREADS`). Results do not depend on it.
   * Worker threads start in the background on the first kernel large enough to share.
   */
  threads: number;
}

/**
 * The cpu device's settings: `cpu.kernels = "js"` runs every kernel as JavaScript;
 * `cpu.simd` says whether WebAssembly SIMD is available.
 *
 * @example
 * ```ts
 * import { cpu, kernels, randn } from "@lucid/nn";
 * console.log(cpu.simd, cpu.kernels, cpu.threads); // e.g. true auto 8
 * cpu.kernels = "js"; // JavaScript kernels only
 * cpu.threads = 1; // no worker threads
 * console.log(kernels(randn(1000).exp())[0].target); // js
 * ```
 */
export const cpu: CpuInfo = settingsObject("cpu", {
  get simd(): boolean {
    return simdAvailable;
  },
  get kernels(): CpuKernels {
    return cpuBackend.kernels;
  },
  set kernels(value: CpuKernels) {
    if (value !== "auto" && value !== "wasm" && value !== "js") {
      throw new Error(`cpu.kernels: must be "auto", "wasm" or "js", got ${fmt(value)}`);
    }
    cpuBackend.kernels = value;
  },
  get threads(): number {
    return cpuBackend.pool.threads;
  },
  set threads(value: number) {
    if (!Number.isInteger(value) || value < 1 || value > 64) {
      throw new Error(`cpu.threads: must be an integer from 1 to 64, got ${fmt(value)}`);
    }
    cpuBackend.pool.threads = value;
  },
}, ["kernels", "threads"]);
