// Storage lifetimes: when a device buffer may go back to its device's pool. A buffer backs a
// value (a tensor made from data, or a realized node) or is a temporary of one realization.
// Its storage returns to the pool only when nothing can still read it:
// - release is requested by dispose (through the Tensor layer), by assign() replacing a value,
//   or by the end of a realization (its temporaries); a buffer whose node is garbage collected
//   is never released here: its handle goes with the node, and each backend frees the storage
//   of a collected handle itself (cpu.ts, webgpu.ts);
// - a reader in flight (a running plan reading its inputs, a read or a copy to another device)
//   holds the buffer: a release requested meanwhile happens when the last hold ends. Until then
//   the storage keeps its data, so whatever still references it reads the right values (a plan
//   waiting for another to finish, say); after, reading it is an Error saying why it is gone.
// Release is idempotent: the first request wins, later ones do nothing.

import type { Node } from "../ir/node.ts";
import type { Backend, DeviceBuffer, DeviceName } from "./device.ts";

/** Why a buffer was released, for the Error a later reader gets. */
export type ReleaseReason = "disposed" | "overwritten by assign()";

const released = new WeakMap<DeviceBuffer, ReleaseReason>();
/** Readers in flight per buffer, and the release waiting for the last of them. */
const holds = new Map<DeviceBuffer, number>();
const waiting = new Map<
  DeviceBuffer,
  { backend: Backend; reason: ReleaseReason; onRelease: (() => void) | undefined; }
>();
/** Values (not temporaries) whose storage is live, per device. */
const valueCounts: Record<DeviceName, number> = { cpu: 0, webgpu: 0 };
/** A counted value: shared by its buffer and the collector below, pointing at neither. */
interface Counted {
  readonly device: DeviceName;
  live: boolean;
}
const counted = new WeakMap<DeviceBuffer, Counted>();
const uncount = (c: Counted | undefined) => {
  if (c === undefined || !c.live) return;
  c.live = false;
  valueCounts[c.device]--;
};
// A value whose node is garbage collected is no longer counted.
const collector = new FinalizationRegistry<Counted>(uncount);

/**
 * Returns `buffer` to its device once nothing reads it (at once if no reader holds it), calling
 * `onRelease` just before (at once if it is back already). Later calls release nothing; once it
 * is back, `releaseReason(buffer)` says why it is gone.
 */
export function releaseBuffer(
  buffer: DeviceBuffer,
  backend: Backend,
  reason: ReleaseReason = "disposed",
  onRelease?: () => void,
): void {
  // a jit argument's stand-in (one kept past its trace, say) has no storage to give back
  if (released.has(buffer) || buffer.standIn === true) return onRelease?.();
  const later = waiting.get(buffer);
  if (later !== undefined) {
    // requested twice while held: both callers are told when it goes back
    const first = later.onRelease;
    if (onRelease !== undefined) {
      later.onRelease = first === undefined ? onRelease : () => {
        first();
        onRelease();
      };
    }
    return;
  }
  uncount(counted.get(buffer));
  releaseRequested(buffer);
  if (holds.has(buffer)) waiting.set(buffer, { backend, reason, onRelease });
  else {
    onRelease?.();
    released.set(buffer, reason);
    backend.release(buffer);
  }
}

let releaseRequested: (buffer: DeviceBuffer) => void = () => {};

/**
 * Calls `fn` with each buffer whose release is requested, the first time (realize.ts drops the
 * checkpoints computed from it).
 */
export function onReleaseRequested(fn: (buffer: DeviceBuffer) => void): void {
  releaseRequested = fn;
}

/** Whether `buffer`'s release was requested (it is back, or goes back when the last hold ends). */
export function isReleaseRequested(buffer: DeviceBuffer): boolean {
  return released.has(buffer) || waiting.has(buffer);
}

/** Whether a reader in flight holds `buffer` (a release requested now waits for it). */
export function isHeld(buffer: DeviceBuffer): boolean {
  return holds.has(buffer);
}

/** Why `buffer` was released, or undefined while it is live. */
export function releaseReason(buffer: DeviceBuffer): ReleaseReason | undefined {
  return released.get(buffer);
}

/**
 * Keeps the storage of `buffers` from returning to the pool until the returned function is
 * called (once); a release requested meanwhile happens then.
 */
export function holdBuffers(buffers: Iterable<DeviceBuffer>): () => void {
  const held = [...new Set(buffers)];
  for (const b of held) holds.set(b, (holds.get(b) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    for (const b of held) {
      const n = holds.get(b)! - 1;
      if (n > 0) {
        holds.set(b, n);
        continue;
      }
      holds.delete(b);
      const release = waiting.get(b);
      if (release !== undefined) {
        waiting.delete(b);
        release.onRelease?.();
        released.set(b, release.reason);
        release.backend.release(b);
      }
    }
  };
}

/** Counts `buffer` as the storage of `node`'s value until it is released or `node` is collected. */
export function trackValue(node: Node, buffer: DeviceBuffer): void {
  if (counted.has(buffer)) return;
  const c: Counted = { device: buffer.device, live: true };
  counted.set(buffer, c);
  valueCounts[c.device]++;
  collector.register(node, c);
}

/** Number of values (tensors made from data, realized results) whose storage is live on `device`. */
export function liveValues(device: DeviceName): number {
  return valueCounts[device];
}
