// The cpu device: storage is typed arrays behind handles, kernels are JavaScript functions
// compiled once per executable with `new Function` (executables are shared by every plan with
// an equal kernel). Released buffers go to a pool keyed by dtype and length, because on this
// kind of machine a fresh multi-megabyte buffer costs more than the kernel that fills it.

import { allocArray, type DType, type TypedArray } from "../ir/dtype.ts";
import type { Executable } from "../../codegen/compile.ts";
import { JS_TARGET, type Target } from "../../codegen/targets.ts";
import { type Backend, type DeviceBuffer, type Launch, newBufferId } from "./device.ts";

/** A cpu buffer: a handle on a typed array. */
export class CpuBuffer implements DeviceBuffer {
  readonly id: number = newBufferId();
  readonly device = "cpu" as const;
  /** Set while the contents are still being copied in from another device. */
  pending: Promise<void> | null = null;
  constructor(readonly dtype: DType, readonly data: TypedArray) {}
  get length(): number {
    return this.data.length;
  }
}

type CompiledKernel = (out: TypedArray, ...inputs: TypedArray[]) => void;

/** Bytes the pool may hold before it drops released buffers instead. */
const POOL_LIMIT_BYTES = 512 * 1024 * 1024;

class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly limits = JS_TARGET;
  private compiledCount_ = 0;
  private readonly pool = new Map<string, CpuBuffer[]>();
  private pooledBytes = 0;
  private live = 0;

  targetFor(): Target {
    return JS_TARGET;
  }

  allocate(dtype: DType, length: number): CpuBuffer {
    this.live++;
    const free = this.pool.get(`${dtype}:${length}`);
    const reused = free?.pop();
    if (reused) {
      // a new handle on the pooled storage: handles are never reused, storage is
      this.pooledBytes -= reused.data.byteLength;
      return new CpuBuffer(dtype, reused.data);
    }
    return new CpuBuffer(dtype, allocArray(dtype, length));
  }

  release(buffer: DeviceBuffer): void {
    const b = buffer as CpuBuffer;
    this.live--;
    if (this.pooledBytes + b.data.byteLength > POOL_LIMIT_BYTES) return;
    const key = `${b.dtype}:${b.length}`;
    const list = this.pool.get(key) ?? [];
    list.push(b);
    this.pool.set(key, list);
    this.pooledBytes += b.data.byteLength;
  }

  upload(data: TypedArray, dtype: DType): CpuBuffer {
    const b = this.allocate(dtype, data.length);
    b.data.set(data);
    return b;
  }

  uploadLater(data: Promise<TypedArray>, dtype: DType, length: number): CpuBuffer {
    const b = this.allocate(dtype, length);
    b.pending = data.then((values) => {
      b.data.set(values);
      b.pending = null;
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
    launches.forEach((l, i) =>
      fns[i]((l.output as CpuBuffer).data, ...l.inputs.map((b) => (b as CpuBuffer).data))
    );
  }

  async read(buffer: DeviceBuffer): Promise<TypedArray> {
    const pending = (buffer as CpuBuffer).pending;
    if (pending) await pending; // a copy from another device still arriving
    return this.readSync(buffer);
  }

  readSync(buffer: DeviceBuffer): TypedArray {
    return (buffer as CpuBuffer).data.slice();
  }

  liveBuffers(): number {
    return this.live;
  }
}

/** The cpu backend (one per process). */
export const cpuBackend: CpuBackend = new CpuBackend();
