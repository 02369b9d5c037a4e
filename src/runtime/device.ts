// What a device is to the rest of the library: storage handles, the targets its kernels
// compile for, and a way to run them. `cpu` (JavaScript kernels) and `webgpu` (WGSL)
// implement it; the realizer (realize.ts) drives either through this interface only.

import type { DType, TypedArray } from "../ir/dtype.ts";
import type { BufferRef } from "../ir/node.ts";
import type { Kernel } from "../../codegen/kernel.ts";
import type { Target } from "../../codegen/targets.ts";
import type { Executable } from "../../codegen/compile.ts";

/** A device name: `"cpu"` or `"webgpu"`. */
export type DeviceName = "cpu" | "webgpu";

/** Every device name. */
export const DEVICES: readonly DeviceName[] = ["cpu", "webgpu"];

/** Storage on a device: a handle, never the bytes themselves. */
export interface DeviceBuffer extends BufferRef {
  readonly device: DeviceName;
  readonly dtype: DType;
  /** Number of elements. */
  readonly length: number;
  /** True for a jit stand-in, which has no value (asking for its `pending` notes a read). */
  readonly standIn?: boolean;
}

/** One kernel launch: the executable, its output buffers and input buffers in slot order. */
export interface Launch {
  readonly executable: Executable;
  readonly outputs: readonly DeviceBuffer[];
  readonly inputs: readonly DeviceBuffer[];
}

/** What a device's storage holds now. */
export interface StorageStats {
  /** Buffers allocated and not yet released. */
  readonly liveBuffers: number;
  /** Bytes of those buffers. */
  readonly bytesInUse: number;
  /** Bytes of released storage kept in the pool for reuse. */
  readonly bytesPooled: number;
  /** Bytes handed out by all allocations so far (never decreases). */
  readonly bytesAllocated: number;
}

/** A backend: storage, the targets kernels compile for, and execution. */
export interface Backend {
  readonly name: DeviceName;
  /** The target whose limits every kernel of this device meets (its most constrained one). */
  readonly limits: Target;
  /** The target `kernel` compiles for on this device. */
  targetFor(kernel: Kernel): Target;
  /** What plans for this device depend on besides the graph (its kernel targets), if anything. */
  readonly planKey?: string;
  /** A buffer of `length` elements (contents unspecified), from the pool when possible. */
  allocate(dtype: DType, length: number): DeviceBuffer;
  /** Returns a buffer to the pool; it must not be used afterwards. */
  release(buffer: DeviceBuffer): void;
  /** A new buffer holding a copy of `data`. */
  upload(data: TypedArray, dtype: DType): DeviceBuffer;
  /** A new buffer that will hold `data` once it arrives (a copy between devices). */
  uploadLater(data: Promise<TypedArray>, dtype: DType, length: number): DeviceBuffer;
  /** Null when `buffer` can be read now, else a promise that settles when it can. */
  pending(buffer: DeviceBuffer): Promise<void> | null;
  /**
   * The error a copy into `buffer` (`uploadLater`) failed with, if it did: its `pending` stays
   * rejected for good, and a synchronous reader says why instead of "still being copied".
   */
  failedCopy(buffer: DeviceBuffer): { readonly error: unknown; } | null;
  /** Runs launches in order; throws before running any if one cannot run. */
  run(launches: readonly Launch[]): void | Promise<void>;
  /** A copy of the buffer's contents. */
  read(buffer: DeviceBuffer): Promise<TypedArray>;
  /** A copy of the buffer's contents, synchronously (cpu only). */
  readSync?(buffer: DeviceBuffer): TypedArray;
  /** Whether the buffer's contents were lost with the device they lived on (webgpu). */
  lost?(buffer: DeviceBuffer): boolean;
  /** Whether any buffer's contents may have been lost so (a device was lost or given up). */
  lostAny?(): boolean;
  /** Number of live (allocated, not released) buffers. */
  liveBuffers(): number;
  /** Live and pooled storage, and the bytes allocated so far. */
  storageStats(): StorageStats;
}

let nextBufferId = 1;

/** A fresh buffer id (buffer ids are unique across devices). */
export function newBufferId(): number {
  return nextBufferId++;
}

/** What a buffer filled by a copy from another device records (see `arriveLater`). */
export interface Arriving {
  /** Set while the contents are still being copied in from another device. */
  pending: Promise<void> | null;
  /** Set when that copy failed (`pending` then stays rejected with the same error). */
  copyFailure: { readonly error: unknown; } | null;
}

/**
 * Makes `b` wait for `data`: `fill` puts the values in once they arrive. A failure is recorded
 * on `b` as well: a failed copy had left `pending` set and looking in flight forever.
 */
export function arriveLater(
  b: Arriving,
  data: Promise<TypedArray>,
  fill: (values: TypedArray) => void,
): void {
  const pending = data.then((values) => {
    b.pending = null;
    fill(values);
  }, (error: unknown) => {
    b.copyFailure = { error };
    throw error;
  });
  pending.catch(() => {}); // whoever waits on the buffer sees the error; nobody else must
  b.pending = pending;
}
