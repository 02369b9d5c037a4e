// The cpu device: storage is typed arrays behind handles, kernels are the JavaScript printer's
// functions compiled once with `new Function` and cached by their source (equal structure
// prints equal source). Released buffers go to a pool keyed by dtype and length, because on
// this kind of machine a fresh multi-megabyte buffer costs more than the kernel that fills it.
// A handle dropped without release (its tensor and node were garbage collected) takes its
// storage with it: the garbage collector frees the typed array, and a FinalizationRegistry
// only keeps the counts right. Holding the storage for the pool instead would keep every
// dropped buffer alive until the registry's callback runs, which needs a macrotask.

import { allocArray, type DType, type TypedArray } from "../ir/dtype.ts";
import { printJs } from "../../codegen/js.ts";
import type { Kernel } from "../../codegen/kernel.ts";
import { type Backend, type DeviceBuffer, type Launch, newBufferId } from "./device.ts";
import type { StorageStats } from "./device.ts";

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

/** Compiled kernels kept (by source). */
const COMPILED_LIMIT = 1024;

/** Bytes the pool may hold before it drops released buffers instead. */
const POOL_LIMIT_BYTES = 512 * 1024 * 1024;

class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly target = "js";
  private readonly compiled = new Map<string, CompiledKernel>();
  private readonly pool = new Map<string, CpuBuffer[]>();
  private pooledBytes = 0;
  private live = 0;
  private bytesInUse = 0;
  private bytesAllocated = 0;
  /** Counts a handle collected without release; the held value is its size, not its storage. */
  private readonly dropped = new FinalizationRegistry<number>((bytes) => {
    this.live--;
    this.bytesInUse -= bytes;
  });

  print(kernel: Kernel): string {
    return printJs(kernel);
  }

  allocate(dtype: DType, length: number): CpuBuffer {
    const free = this.pool.get(`${dtype}:${length}`);
    const reused = free?.pop();
    // a pooled storage comes back under a new handle: handles are never reused, storage is
    if (reused) this.pooledBytes -= reused.data.byteLength;
    const b = new CpuBuffer(dtype, reused?.data ?? allocArray(dtype, length));
    this.live++;
    this.bytesInUse += b.data.byteLength;
    this.bytesAllocated += b.data.byteLength;
    this.dropped.register(b, b.data.byteLength, b);
    return b;
  }

  release(buffer: DeviceBuffer): void {
    const b = buffer as CpuBuffer;
    this.dropped.unregister(b);
    this.live--;
    this.bytesInUse -= b.data.byteLength;
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

  /** The compiled function for `source` (compiled on first use). */
  compile(source: string, name: string): CompiledKernel {
    let fn = this.compiled.get(source);
    if (fn === undefined) {
      fn = new Function(`"use strict";\n${source}\nreturn ${name};`)() as CompiledKernel;
      this.compiled.set(source, fn);
      // bounded like the plan cache: the oldest compiled kernel goes first
      if (this.compiled.size > COMPILED_LIMIT) {
        this.compiled.delete(this.compiled.keys().next().value!);
      }
    }
    return fn;
  }

  /** Number of distinct kernels compiled so far. */
  compiledCount(): number {
    return this.compiled.size;
  }

  run(launches: readonly Launch[]): void {
    const fns = launches.map((l) => this.compile(l.source, l.kernel.name));
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

  storageStats(): StorageStats {
    return {
      liveBuffers: this.live,
      bytesInUse: this.bytesInUse,
      bytesPooled: this.pooledBytes,
      bytesAllocated: this.bytesAllocated,
    };
  }
}

/** The cpu backend (one per process). */
export const cpuBackend: CpuBackend = new CpuBackend();
