// The cpu device: every tensor is a handle on a block of one shared WebAssembly.Memory
// (memory.ts); typed-array views of a block are made when a kernel runs or a value is read,
// never kept (after the memory grows, an old view still has the old length). Kernels are
// JavaScript functions compiled once per executable with `new Function` (executables are
// shared by every plan with an equal kernel).

import { bytesPerElement, type DType, type TypedArray } from "../ir/dtype.ts";
import type { Executable } from "../../codegen/compile.ts";
import { JS_TARGET, type Target } from "../../codegen/targets.ts";
import { type Backend, type DeviceBuffer, type Launch, newBufferId } from "./device.ts";
import { type Block, HeapMemory } from "./memory.ts";

/** A cpu buffer: a handle on a block of the cpu memory. */
export class CpuBuffer implements DeviceBuffer {
  readonly id: number = newBufferId();
  readonly device = "cpu" as const;
  /** Set while the contents are still being copied in from another device. */
  pending: Promise<void> | null = null;
  /** Set once the block went back to the allocator: reading is then an error. */
  released = false;
  constructor(
    readonly dtype: DType,
    readonly length: number,
    /** @internal The block holding the elements. */
    readonly block: Block,
  ) {}
}

type CompiledKernel = (out: TypedArray, ...inputs: TypedArray[]) => void;

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
  private compiledCount_ = 0;
  private live = 0;

  targetFor(): Target {
    return JS_TARGET;
  }

  /** A view of `buffer`'s elements, valid until the memory next grows. */
  view(buffer: CpuBuffer): TypedArray {
    if (buffer.released) throw releasedError(buffer);
    return viewOf(this.heap.memory.buffer, buffer.dtype, buffer.block.offset, buffer.length);
  }

  allocate(dtype: DType, length: number): CpuBuffer {
    const block = this.heap.allocate(length * bytesPerElement(dtype));
    this.live++;
    return new CpuBuffer(dtype, length, block);
  }

  release(buffer: DeviceBuffer): void {
    const b = buffer as CpuBuffer;
    if (b.released) return;
    b.released = true;
    this.live--;
    this.heap.release(b.block);
  }

  upload(data: TypedArray, dtype: DType): CpuBuffer {
    const b = this.allocate(dtype, data.length);
    this.view(b).set(data);
    return b;
  }

  uploadLater(data: Promise<TypedArray>, dtype: DType, length: number): CpuBuffer {
    const b = this.allocate(dtype, length);
    b.pending = data.then((values) => {
      b.pending = null;
      if (!b.released) this.view(b).set(values);
    });
    return b;
  }

  pending(buffer: DeviceBuffer): Promise<void> | null {
    return (buffer as CpuBuffer).pending;
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

  /** Number of kernels compiled to functions so far. */
  compiledCount(): number {
    return this.compiledCount_;
  }

  run(launches: readonly Launch[]): void {
    const fns = launches.map((l) => this.compile(l.executable));
    launches.forEach((l, i) => {
      const out = this.view(l.output as CpuBuffer);
      fns[i](out, ...l.inputs.map((b) => this.view(b as CpuBuffer)));
    });
  }

  async read(buffer: DeviceBuffer): Promise<TypedArray> {
    const pending = (buffer as CpuBuffer).pending;
    if (pending) await pending; // a copy from another device still arriving
    return this.readSync(buffer);
  }

  readSync(buffer: DeviceBuffer): TypedArray {
    return this.view(buffer as CpuBuffer).slice();
  }

  liveBuffers(): number {
    return this.live;
  }
}

/** The cpu backend (one per process). */
export const cpuBackend: CpuBackend = new CpuBackend();
