// Rule CHECKPOINT: values a realization stores without being asked, so that a value built step by
// step and read only through results is not computed from its first step at every read. Like
// gradient checkpointing in reverse: there, values are dropped and recomputed to save memory;
// here, a value recomputed again and again is kept to save time. realize.ts stores them and
// frees them; this file chooses them and keeps their bookkeeping.
//
// Rules:
// - Chosen: a value the realization computes that an earlier realization computed too, once
//   CHECKPOINT_DEPTH computing ops (views and constants do not count) lie between it and the
//   stored values it starts from, counting from the last value so chosen on the way.
// - Only a value that computes (not a view, a constant or a detach) and is no larger than the
//   largest value the realization loads: storing a broadcast could take far more memory than the
//   realization did.
// - Once stored, its history is dropped when no gradient can flow through it (history.ts), as
//   for a stored value built upon, so the steps before it can be collected.
// - It is the library's: dispose() of its tensor leaves it, since lazy values built on it load
//   it (as a lazy value, it could be disposed and still be computed from its history). It goes
//   when its node is collected, or when a stored value it was computed from (its roots: buffers
//   and values asked for) is freed: what is built on it could not be computed any more either
//   way, and a loop that disposes what it makes must not keep checkpoints until the garbage
//   collector runs (a loop of `dataSync()` never lets it).
// - Asked for (a read, `realize()`), it becomes an ordinary stored value.

import { type Node, numelOf } from "../ir/node.ts";
import { isMovement } from "../ir/ops.ts";
import type { DeviceBuffer, DeviceName } from "./device.ts";

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
  let computedBefore = false;
  for (let i = 0; i < order.length && !computedBefore; i++) {
    computedBefore = !isSource[i] && order[i].computed;
  }
  if (!computedBefore) return []; // the common case: a graph realized for the first time
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
      numelOf(n.shape) <= largestSource
    ) {
      chosen.push(n);
    } else depth[i] = deepest + (computes ? 1 : 0);
  }
  return chosen;
}

/** Per device, the checkpoints stored there and their roots (the stored data they start from). */
const roots: Record<DeviceName, WeakMap<Node, readonly DeviceBuffer[]>> = {
  cpu: new WeakMap(),
  webgpu: new WeakMap(),
};

/** Per root, the checkpoints computed from it (weakly: one collected needs no freeing). */
const dependents = new WeakMap<DeviceBuffer, WeakRef<Node>[]>();

/** Whether `node`'s value is a checkpoint on some device. */
export function isCheckpoint(node: Node): boolean {
  return roots.cpu.has(node) || roots.webgpu.has(node);
}

/** Whether `node`'s value on `device` is a checkpoint. */
export function isCheckpointOn(node: Node, device: DeviceName): boolean {
  return roots[device].has(node);
}

/**
 * The roots of a value computed from `sources` on `device`: each source that is not a
 * checkpoint itself, and the roots of each one that is.
 */
export function rootsOf(
  sources: readonly { node: Node; buffer: DeviceBuffer; }[],
  device: DeviceName,
): DeviceBuffer[] {
  const found = new Set<DeviceBuffer>();
  for (const { node, buffer } of sources) {
    const below = roots[device].get(node);
    if (below === undefined) found.add(buffer);
    else for (const b of below) found.add(b);
  }
  return [...found];
}

let stored: (node: Node) => void = () => {};

/** Calls `fn` with each checkpoint once it is stored (history.ts drops its history if dead). */
export function onCheckpointStored(fn: (node: Node) => void): void {
  stored = fn;
}

/** Records `node`'s value on `device` as a checkpoint computed from `from` (its roots). */
export function noteCheckpoint(node: Node, device: DeviceName, from: readonly DeviceBuffer[]) {
  roots[device].set(node, from);
  stored(node);
  const ref = new WeakRef(node);
  for (const b of from) {
    const list = dependents.get(b);
    if (list === undefined) dependents.set(b, [ref]);
    else {
      // a root that lives long (the first value of a loop) gathers one entry per checkpoint:
      // the collected and the freed go when the list doubles
      if (list.length >= 16 && (list.length & (list.length - 1)) === 0) {
        const live = list.filter((r) => {
          const n = r.deref();
          return n !== undefined && roots[device].has(n);
        });
        list.length = 0;
        list.push(...live);
      }
      list.push(ref);
    }
  }
}

/** `node`'s value on `device` is no checkpoint (any more): asked for, or freed. */
export function forgetCheckpoint(node: Node, device: DeviceName): void {
  roots[device].delete(node);
}

/** The checkpoints on `root`'s device computed from `root`, which is being freed. */
export function checkpointsFrom(root: DeviceBuffer): Node[] {
  const list = dependents.get(root);
  if (list === undefined) return [];
  dependents.delete(root);
  return list.flatMap((r) => {
    const n = r.deref();
    return n !== undefined && roots[root.device].has(n) ? [n] : [];
  });
}
