// Rule CHECKPOINT: values a realization stores without being asked, so that a value built step by
// step and read only through results is not computed from its first step at every read. Like
// gradient checkpointing in reverse: there, values are dropped and recomputed to save memory;
// here, a value recomputed again and again is kept to save time.
//
// Rules:
// - Chosen: a value the realization computes that an earlier realization computed too, once
//   CHECKPOINT_DEPTH computing ops (views and constants do not count) lie between it and the
//   stored values it starts from, counting from the last value so chosen on the way.
// - Only a value that computes (not a view, a constant or a detach) and is no larger than the
//   largest value the realization loads: storing a broadcast could take far more memory than the
//   realization did.
// - A checkpoint is a cache the runtime alone sees: plans load it, but for everything else
//   (what is stored, what a dispose frees, what must be computed before storage is freed, when
//   history is dropped) its value is not stored, so the library behaves as it did without it,
//   only faster, and dropping it at any moment is safe: what needs it computes it again from
//   its history, which it keeps.
// - It is dropped when a stored value it was computed from (its roots) is freed (what is built
//   on it could not be computed from its history any more; a loop that disposes what it makes
//   keeps none), when its node is garbage collected, and, least recently used first, when the
//   checkpoints of a device take more than CHECKPOINT_BYTES (a larger value is never one).
//   Asked for (a read, `realize()`), it becomes an ordinary stored value.

import { type Node, numelOf } from "../ir/node.ts";
import { isMovement } from "../ir/ops.ts";
import type { Backend, DeviceBuffer, DeviceName } from "./device.ts";
import { isReleaseRequested, releaseBuffer } from "./lifetime.ts";
import { bytesPerElement } from "../ir/dtype.ts";

/** Rule CHECKPOINT's depth: computing ops between a chosen value and what it is computed from. */
export const CHECKPOINT_DEPTH = 64;

/**
 * The values rule CHECKPOINT chooses in a realization of `outputs`: `order` is its graph, each
 * node after its sources, with `isSource[i]` telling the values it loads, and each node's place
 * in it stamped on the node (`Node.place`).
 */
export function chooseCheckpoints(
  order: readonly Node[],
  isSource: readonly boolean[],
  outputs: readonly Node[],
): Node[] {
  // the common cases: no value that computes was computed before (a graph realized for the first
  // time; constants and views of them are shared by every step of a loop, and computed each time),
  // or too few values compute for any to lie CHECKPOINT_DEPTH deep (a training step's backward
  // pass computes its forward pass again)
  let computedBefore = false;
  let computing = 0;
  for (let i = 0; i < order.length; i++) {
    const n = order[i];
    if (isSource[i] || n.op === "const" || isMovement(n.op)) continue;
    computing++;
    computedBefore ||= n.computed;
  }
  if (!computedBefore || computing < CHECKPOINT_DEPTH) return [];
  const requested = new Set(outputs);
  let largestSource = 0;
  for (let i = 0; i < order.length; i++) {
    if (isSource[i]) largestSource = Math.max(largestSource, numelOf(order[i].shape));
  }
  const depth = new Int32Array(order.length);
  const chosen: Node[] = [];
  for (let i = 0; i < order.length; i++) {
    if (isSource[i]) continue;
    const n = order[i];
    let deepest = 0;
    for (let j = 0; j < n.srcs.length; j++) deepest = Math.max(deepest, depth[n.srcs[j].place]);
    if (requested.has(n)) continue; // stored anyway: depth 0
    const computes = n.op !== "const" && !isMovement(n.op);
    if (
      deepest + 1 >= CHECKPOINT_DEPTH && n.computed && computes && n.op !== "detach" &&
      numelOf(n.shape) <= largestSource &&
      numelOf(n.shape) * bytesPerElement(n.dtype) <= CHECKPOINT_BYTES
    ) {
      chosen.push(n);
    } else depth[i] = deepest + (computes ? 1 : 0);
  }
  return chosen;
}

/**
 * The memory checkpoints may take on a device: beyond it the least recently used are dropped,
 * and a value larger than it is never kept (two kept whatever they weighed, 256 MB values kept
 * 512 MB unasked).
 */
export const CHECKPOINT_BYTES = 32 * 1024 * 1024;

/** A checkpoint: the node's value in `buffer`, computed from `roots`. */
interface Checkpoint {
  readonly node: WeakRef<Node>;
  readonly buffer: DeviceBuffer;
  readonly backend: Backend;
  readonly bytes: number;
  readonly roots: readonly DeviceBuffer[];
}

/** Per device: the checkpoints by node, and all of them from least to most recently used. */
const byNode: Record<DeviceName, WeakMap<Node, Checkpoint>> = {
  cpu: new WeakMap(),
  webgpu: new WeakMap(),
};
const recency: Record<DeviceName, Set<Checkpoint>> = { cpu: new Set(), webgpu: new Set() };
const bytesHeld: Record<DeviceName, number> = { cpu: 0, webgpu: 0 };
/** Per root, the checkpoints computed from it. */
const dependents = new WeakMap<DeviceBuffer, Set<Checkpoint>>();
// A checkpoint whose node is collected gives its storage back.
const collected = new FinalizationRegistry<Checkpoint>((c) => drop(c));

/** The checkpoint of `node` on `device`, if there is one. */
export function checkpointBuffer(node: Node, device: DeviceName): DeviceBuffer | undefined {
  return byNode[device].get(node)?.buffer;
}

/** Whether `node` has a checkpoint on some device (for tests and inspection). */
export function isCheckpoint(node: Node): boolean {
  return byNode.cpu.has(node) || byNode.webgpu.has(node);
}

/** The bytes the checkpoints of `device` take, and how many there are. */
export function checkpointStats(device: DeviceName): { bytes: number; count: number; } {
  return { bytes: bytesHeld[device], count: recency[device].size };
}

/**
 * The roots of `node`'s checkpoint on `device` (none if it has none): what a realization that
 * loads it and waits must hold too, since the checkpoint goes with them and it would plan again
 * without it.
 */
export function checkpointRoots(node: Node, device: DeviceName): readonly DeviceBuffer[] {
  return byNode[device].get(node)?.roots ?? [];
}

/** `node`'s checkpoint on `device` was loaded by a realization: the most recently used. */
export function touchCheckpoint(node: Node, device: DeviceName): void {
  const c = byNode[device].get(node);
  if (c === undefined) return;
  recency[device].delete(c);
  recency[device].add(c);
}

/**
 * The roots of a value computed from `inputs` (the stored values a run loaded) on `device`:
 * each input that is not a checkpoint, and the roots of each one that is.
 */
export function rootsOf(
  inputs: readonly { node: Node; buffer: DeviceBuffer; }[],
  device: DeviceName,
) {
  const found = new Set<DeviceBuffer>();
  for (const { node, buffer } of inputs) {
    const c = byNode[device].get(node);
    if (c === undefined) found.add(buffer);
    else for (const b of c.roots) found.add(b);
  }
  return [...found];
}

/** Keeps `buffer` as the checkpoint of `node`, computed from `roots`, on `backend`'s device. */
export function keepCheckpoint(
  node: Node,
  buffer: DeviceBuffer,
  roots: readonly DeviceBuffer[],
  backend: Backend,
): void {
  const device = backend.name;
  const c: Checkpoint = {
    node: new WeakRef(node),
    buffer,
    backend,
    bytes: buffer.length * bytesPerElement(buffer.dtype),
    roots,
  };
  byNode[device].set(node, c);
  recency[device].add(c);
  bytesHeld[device] += c.bytes;
  collected.register(node, c, c);
  for (const r of roots) {
    const set = dependents.get(r);
    if (set === undefined) dependents.set(r, new Set([c]));
    else set.add(c);
  }
  // a root freed while the run computing it was in flight: it is of no use
  if (roots.some(isReleaseRequested)) return drop(c);
  for (const oldest of recency[device]) {
    if (bytesHeld[device] <= CHECKPOINT_BYTES) break;
    drop(oldest);
  }
}

/**
 * Takes `node`'s checkpoint on `device` out of the cache, its storage kept: it is about to be
 * an ordinary stored value (it was asked for). Returns its buffer, if there was one.
 */
export function takeCheckpoint(node: Node, device: DeviceName): DeviceBuffer | undefined {
  const c = byNode[device].get(node);
  if (c === undefined) return undefined;
  forget(c);
  return c.buffer;
}

/** Drops the checkpoints computed from `root`, whose release was requested. */
export function dropCheckpointsFrom(root: DeviceBuffer): void {
  const set = dependents.get(root);
  if (set === undefined) return;
  dependents.delete(root);
  for (const c of [...set]) drop(c);
}

/** Removes `c` from the bookkeeping; true if it was there. */
function forget(c: Checkpoint): boolean {
  const device = c.buffer.device;
  if (!recency[device].delete(c)) return false;
  bytesHeld[device] -= c.bytes;
  const node = c.node.deref();
  if (node !== undefined && byNode[device].get(node) === c) byNode[device].delete(node);
  for (const r of c.roots) dependents.get(r)?.delete(c);
  collected.unregister(c);
  return true;
}

/** Drops `c` and gives its storage back (once no run in flight reads it). */
function drop(c: Checkpoint): void {
  if (forget(c)) releaseBuffer(c.buffer, c.backend);
}
