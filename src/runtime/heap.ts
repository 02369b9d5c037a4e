// The cpu device's memory: one growable WebAssembly.Memory holding every cpu tensor, so
// JavaScript kernels, WebAssembly kernels and their worker threads all read tensors in place.
// The allocator hands out 64-byte aligned blocks (SIMD loads and cache lines) from free ranges
// that coalesce with their neighbours, so a program whose shapes change over time reuses its
// memory instead of growing it forever; a block of the exact size asked for, the common case in
// a loop, is found without a search. A memory can grow but never shrink: freed blocks stay
// with the allocator ("pooled") for the next tensors. wasm32 caps a memory at 4 GiB. Where the
// runtime has no WebAssembly, a resizable ArrayBuffer stands in (JavaScript kernels only).
// Ideas from jax-js's WasmAllocator (size classes on a bump pointer) and from classic
// first-fit allocators with boundary coalescing.

/** Bytes per WebAssembly page. */
const PAGE = 65536;
/** Block alignment and granularity. */
const ALIGN = 64;
/** The most a wasm32 memory can hold. */
export const MAX_MEMORY_BYTES = 2 ** 32;
/** The largest tensor one memory holds: all of it but the first block, kept for empty ones. */
export const MAX_TENSOR_BYTES = MAX_MEMORY_BYTES - ALIGN;

/**
 * Whether `buffer` is shared. A browser page that is not cross-origin isolated has no
 * `SharedArrayBuffer` at all: `instanceof SharedArrayBuffer` there threw a ReferenceError on
 * every realization.
 */
export function isShared(buffer: ArrayBuffer | SharedArrayBuffer): boolean {
  return typeof SharedArrayBuffer === "function" && buffer instanceof SharedArrayBuffer;
}

/** Whether shared memory (and so worker threads) is available in this JavaScript runtime. */
export function sharedMemoryAvailable(): boolean {
  return typeof SharedArrayBuffer === "function" &&
    (globalThis as { crossOriginIsolated?: boolean; }).crossOriginIsolated !== false;
}

/**
 * What the heap needs of a memory: its bytes, and growth by pages. A `WebAssembly.Memory` is
 * one; a runtime without WebAssembly gets a {@link PlainMemory}.
 */
export interface CpuMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Adds `pages` pages; returns the page count before. Throws where it cannot. */
  grow(pages: number): number;
}

/**
 * The memory of a runtime without WebAssembly (V8's `--jitless`, a browser's lockdown mode): a
 * resizable ArrayBuffer, grown in place, for JavaScript kernels only. The library failed to
 * import there (a ReferenceError from `new WebAssembly.Memory`).
 */
export class PlainMemory implements CpuMemory {
  readonly buffer: ArrayBuffer;

  /** A memory of `pages` pages that may grow to `maximum`. */
  constructor(pages: number, maximum: number) {
    this.buffer = new ArrayBuffer(pages * PAGE, { maxByteLength: maximum * PAGE });
  }

  grow(pages: number): number {
    const before = this.buffer.byteLength / PAGE;
    this.buffer.resize((before + pages) * PAGE);
    return before;
  }
}

/** A new memory: shared (so workers can use it) where the runtime allows, else plain. */
function newMemory(): CpuMemory {
  if (typeof WebAssembly === "undefined") {
    // a resizable buffer reserves its maximum up front, as a shared memory does
    for (const maximum of [65536, 32768, 16384, 4096, 256]) {
      try {
        return new PlainMemory(16, maximum);
      } catch {
        // this runtime could not reserve that much address space
      }
    }
    throw new Error(
      "cpu: no memory for tensors: this runtime has no WebAssembly and could " +
        "not reserve a 16 MiB ArrayBuffer",
    );
  }
  if (sharedMemoryAvailable()) {
    // a shared memory needs a maximum, reserved up front: try 4 GiB, then less
    for (const maximum of [65536, 32768, 16384]) {
      try {
        return new WebAssembly.Memory({ initial: 16, maximum, shared: true });
      } catch {
        // this runtime could not reserve that much address space
      }
    }
  }
  return new WebAssembly.Memory({ initial: 16 });
}

/** One allocated block. */
export interface Block {
  /** Byte offset in the memory (a multiple of 64; 0 for empty blocks). */
  readonly offset: number;
  /** Bytes reserved (the size asked for, rounded up to 64). */
  readonly size: number;
}

/** The cpu memory and its allocator. */
export class HeapMemory {
  /** The memory every cpu tensor lives in. */
  readonly memory: CpuMemory;
  /** End of the highest block handed out and not released; memory above it is free. */
  #top = ALIGN; // offset 0 is kept for empty blocks
  /** The highest the top has been: memory above it was never written. */
  #peak = ALIGN;
  /** Free blocks below the top: offset -> size, and the offsets sorted, for coalescing. */
  #freeSize = new Map<number, number>();
  #freeOffsets: number[] = [];
  /** Free blocks by size, for exact reuse. */
  #bySize = new Map<number, Set<number>>();
  #inUse = 0;

  /** A memory holding nothing yet (`memory` for tests: a given one). */
  constructor(memory: CpuMemory = newMemory()) {
    this.memory = memory;
  }

  /** Bytes in blocks handed out and not released. */
  get bytesInUse(): number {
    return this.#inUse;
  }

  /**
   * Bytes released and kept for reuse: free ranges below the top, and what the top came down
   * from (a memory never shrinks: that storage is still the process's). It read 0 after the
   * highest tensor was freed, however large.
   */
  get bytesPooled(): number {
    return this.#peak - ALIGN - this.#inUse;
  }

  /** Bytes the memory holds (grown so far). */
  get bytesReserved(): number {
    return this.memory.buffer.byteLength;
  }

  /** A block of at least `bytes` bytes. Throws a RangeError past the 4 GiB of wasm32. */
  allocate(bytes: number): Block {
    if (bytes === 0) return { offset: 0, size: 0 };
    if (bytes > MAX_TENSOR_BYTES) {
      // alone, not "together": the memory could never hold it, whatever else is freed
      throw new RangeError(
        `cpu: out of memory: a tensor of ${bytes} bytes, above the ${MAX_TENSOR_BYTES} (4 GiB ` +
          "less 64) one WebAssembly memory holds",
      );
    }
    const size = Math.ceil(bytes / ALIGN) * ALIGN;
    const offset = this.#takeFree(size) ?? this.#takeTop(size);
    this.#inUse += size;
    this.#peak = Math.max(this.#peak, this.#top);
    return { offset, size };
  }

  /** Returns a block; its bytes may be handed out again at once. */
  release(block: Block): void {
    if (block.size === 0) return;
    this.#inUse -= block.size;
    let { offset, size } = block;
    // coalesce with the free neighbours on both sides
    const i = lowerBound(this.#freeOffsets, offset);
    const before = this.#freeOffsets[i - 1];
    if (before !== undefined && before + this.#freeSize.get(before)! === offset) {
      size += this.#freeSize.get(before)!;
      offset = before;
      this.#removeFree(before);
    }
    const after = offset + size;
    if (this.#freeSize.has(after)) {
      size += this.#freeSize.get(after)!;
      this.#removeFree(after);
    }
    if (offset + size === this.#top) this.#top = offset; // the top comes down instead
    else this.#addFree(offset, size);
  }

  /** A free block of exactly `size`, else the smallest larger one, split; null if none. */
  #takeFree(size: number): number | null {
    const exact = this.#bySize.get(size);
    if (exact !== undefined && exact.size > 0) {
      const offset = exact.values().next().value!;
      this.#removeFree(offset);
      return offset;
    }
    let best = -1;
    let bestSize = Infinity;
    for (const [free, set] of this.#bySize) {
      if (free > size && free < bestSize && set.size > 0) [best, bestSize] = [free, free];
    }
    if (best < 0) return null;
    // (small blocks sent to the top while a far larger range was free, to keep that range whole
    // for the next large tensor, pinned the top above every freed range: a loop keeping small
    // values grew the memory 2-4x, and a 1, 1.5, 2 GB sequence of temporaries stopped fitting)
    const offset = this.#bySize.get(best)!.values().next().value!;
    this.#removeFree(offset);
    this.#addFree(offset + size, bestSize - size);
    return offset;
  }

  /** A block at the top, growing the memory as needed. */
  #takeTop(size: number): number {
    const offset = this.#top;
    const end = offset + size;
    if (end > MAX_MEMORY_BYTES) {
      // (it said the tensors needed `end` bytes together: the top's address, however few bytes
      // were in use below it)
      let largest = MAX_MEMORY_BYTES - this.#top;
      for (const free of this.#bySize.keys()) largest = Math.max(largest, free);
      throw new RangeError(
        `cpu: out of memory: a tensor of ${size} bytes fits nowhere in the 4 GiB one ` +
          `WebAssembly memory holds: ${this.#inUse} bytes are in use, and the largest free ` +
          `range is ${largest} bytes (tensors never move, so the ranges freed between them can ` +
          "be too small; dispose tensors no longer needed)",
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      // grow by at least a quarter of the memory, so a growing program grows rarely
      const pages = Math.max(Math.ceil((end - have) / PAGE), Math.ceil(have / PAGE / 4));
      const cap = MAX_MEMORY_BYTES / PAGE - have / PAGE;
      try {
        this.memory.grow(Math.min(pages, cap));
      } catch {
        try {
          this.memory.grow(Math.ceil((end - have) / PAGE));
        } catch (e) {
          throw new RangeError(
            `cpu: out of memory: could not grow the tensor memory from ${have} to ${end} ` +
              `bytes (${e instanceof Error ? e.message : e})`,
          );
        }
      }
    }
    this.#top = end;
    return offset;
  }

  #addFree(offset: number, size: number): void {
    this.#freeSize.set(offset, size);
    this.#freeOffsets.splice(lowerBound(this.#freeOffsets, offset), 0, offset);
    let set = this.#bySize.get(size);
    if (set === undefined) this.#bySize.set(size, set = new Set());
    set.add(offset);
  }

  #removeFree(offset: number): void {
    const size = this.#freeSize.get(offset)!;
    this.#freeSize.delete(offset);
    this.#freeOffsets.splice(lowerBound(this.#freeOffsets, offset), 1);
    const set = this.#bySize.get(size)!;
    set.delete(offset);
    if (set.size === 0) this.#bySize.delete(size);
  }
}

/** The first index of sorted `xs` whose value is at least `x`. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
