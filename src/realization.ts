// Realization on the Tensor side: computing tensors (one schedule per device), reading their
// values, and moving them between devices. The compiler and runtime behind it are in
// src/runtime/realize.ts. Around each realization:
// - variables waiting for a value (a computed leaf made to require grad, a tensor given a new
//   value by assign()) that the graph reaches are computed with it and stored, so the next
//   step builds on their stored value instead of their history;
// - once an assigned value is stored, the value it replaced is freed (nothing may read it any
//   more: a graph that still does gets an Error saying it was overwritten);
// - reads hold the storage they read until the copy is made, and the asynchronous ones give the
//   garbage-collection backstop its chance (runtime/backstop.ts).

import type { TypedArray } from "./ir/dtype.ts";
import { topoSort } from "./ir/graph.ts";
import * as ir from "./ir/node.ts";
import { type Node, numelOf } from "./ir/node.ts";
import { settleIfDead } from "./history.ts";
import { acquireHandle, freeValue, handleCount, releaseHandle } from "./ownership.ts";
import { backendFor } from "./runtime/backends.ts";
import { backstop } from "./runtime/backstop.ts";
import { type Backend, type DeviceBuffer, type DeviceName, DEVICES } from "./runtime/device.ts";
import { holdBuffers, releaseReason, trackValue } from "./runtime/lifetime.ts";
import { realizedBuffer, realizeNodes } from "./runtime/realize.ts";
import { liveNode, type NestedArray, Tensor } from "./tensor.ts";
import { described, fail } from "./validate.ts";

/** Variable nodes waiting for a value, and how many were registered and not yet realized. */
const waitingVariables = new WeakSet<Node>();
let waitingCount = 0;
/** For an assigned node: the nodes whose values it replaces, freed once it is stored. */
const replaces = new WeakMap<Node, Node[]>();

/** @internal Computes `node` (a variable) with the next realization whose graph reaches it. */
export function computeWithNextRealization(node: Node): void {
  if (waitingVariables.has(node)) return;
  waitingVariables.add(node);
  waitingCount++;
}

/**
 * @internal `next` is the new value of a tensor whose value was `old`: once `next` is stored,
 * `old`'s storage is freed (with whatever `old` itself was going to replace).
 */
export function replaceWhenStored(next: Node, old: Node): void {
  const olds = replaces.get(old) ?? [];
  replaces.delete(old);
  replaces.set(next, [...olds, old]);
}

/** `nodes` and the waiting variables their graph reaches (walked down to stored values). */
function withWaitingVariables(nodes: readonly Node[]): Node[] {
  if (waitingCount === 0) return [...nodes];
  const stored = (n: Node) => realizedBuffer(n) !== undefined;
  const extra = topoSort(nodes, stored).filter((n) => waitingVariables.has(n) && !stored(n));
  return [...new Set([...nodes, ...extra])];
}

/** Bookkeeping once `nodes` are stored on `backend`. */
function afterRealized(nodes: readonly Node[], backend: Backend): void {
  for (const n of nodes) {
    if (waitingVariables.delete(n)) waitingCount--;
    const olds = replaces.get(n);
    if (olds !== undefined) {
      replaces.delete(n);
      // a handle still on the old node (a view of it, say) keeps it until collection
      for (const old of olds) {
        if (handleCount(old) === 0) freeValue(old, backend, "overwritten by assign()");
      }
    }
    if (n.op === "detach") settleIfDead(n); // no gradient flows through it: history is dead
  }
}

/** Realizes the nodes of `tensors` on `device`, with the variables they reach. */
function realizeOn(device: DeviceName, nodes: readonly Node[]): void | Promise<void> {
  const backend = backendFor(device);
  const all = withWaitingVariables(nodes);
  const ran = realizeNodes(all, backend);
  if (ran instanceof Promise) return ran.then(() => afterRealized(all, backend));
  afterRealized(all, backend);
}

/**
 * Starts computing `tensors` now: done on return for the cpu; on webgpu the computation runs
 * on and holds its inputs. A failure surfaces when the tensor is next used.
 */
export function startRealization(tensors: readonly Tensor[]): void {
  for (const device of new Set(tensors.map((t) => t.device))) {
    const nodes = tensors.filter((t) => t.device === device).map((t) => t.node);
    try {
      const ran = realizeOn(device, nodes);
      if (ran instanceof Promise) ran.catch(() => {});
    } catch {
      // reported again when the tensor is used: realizing it retries and throws
    }
  }
}

/** Realizes several tensors together (one schedule per device, shared work). */
export async function realizeTensors(fn: string, tensors: readonly Tensor[]): Promise<void> {
  const nodes = tensors.map((t) => liveNode(fn, t));
  for (const device of new Set(tensors.map((t) => t.device))) {
    await realizeOn(device, nodes.filter((_, i) => tensors[i].device === device));
  }
  await backstop();
}

/** The buffer holding `node`'s value, or an Error if its storage is gone. */
function storedBuffer(fn: string, node: Node): DeviceBuffer {
  const buffer = realizedBuffer(node)!;
  const gone = releaseReason(buffer);
  if (gone !== undefined) {
    fail(fn, "a tensor whose storage is live", described(`a tensor whose storage was ${gone}`));
  }
  return buffer;
}

/**
 * Computes `node` on `device` and reads its value. The read holds a handle on the node from
 * the call on: a dispose() of the tensor meanwhile frees the storage after the read, never
 * under it.
 */
async function readNode(fn: string, node: Node, device: DeviceName): Promise<TypedArray> {
  const backend = backendFor(device);
  acquireHandle(node);
  try {
    await realizeOn(device, [node]);
    const buffer = storedBuffer(fn, node);
    const unhold = holdBuffers([buffer]);
    try {
      return await backend.read(buffer);
    } finally {
      unhold();
    }
  } finally {
    if (releaseHandle(node)) freeValue(node, backend, "disposed");
  }
}

/** `t.data()`: the values as a new typed array. */
export async function readData(fn: string, t: Tensor): Promise<TypedArray> {
  const values = await readNode(fn, liveNode(fn, t), t.device);
  await backstop();
  return values;
}

/** `t.dataSync()`: the values of a cpu tensor, computed and read synchronously. */
export function readDataSync(t: Tensor): TypedArray {
  const node = liveNode("dataSync", t);
  if (t.device !== "cpu") {
    fail("dataSync", `needs a cpu tensor (use await data() on "${t.device}")`, t.device);
  }
  const cpu = backendFor("cpu");
  const ran = realizeOn("cpu", [node]);
  if (ran instanceof Promise || cpu.pending(realizedBuffer(node)!) !== null) {
    // a copy from another device is still arriving: only the async path can wait for it
    ran?.catch(() => {});
    fail(
      "dataSync",
      "inputs that are ready now (this tensor depends on data still being copied from another device; use await data())",
      described("a pending copy"),
    );
  }
  return cpu.readSync!(storedBuffer("dataSync", node));
}

/**
 * `t.to(device)`: a new leaf on `device` holding a copy (the same tensor if already there). The
 * source is held (a handle on its node) until the copy is made, and the destination's storage
 * until the copy lands: disposing either meanwhile frees it afterwards, never under the copy.
 */
export function moveTo(t: Tensor, device: DeviceName): Tensor {
  const node = liveNode("to", t);
  if (!DEVICES.includes(device)) fail("to", `device must be "cpu" or "webgpu"`, device);
  if (device === t.device) return t;
  const toBackend = backendFor(device);
  const data = readNode("to", node, t.device);
  const buffer = toBackend.uploadLater(data, node.dtype, node.numel);
  const landed = holdBuffers([buffer]);
  data.then(landed, landed);
  const moved = ir.buffer(buffer, node.shape, node.dtype);
  trackValue(moved, buffer);
  return new Tensor(moved, device, t.requiresGrad, true);
}

/** Flat row-major values as nested arrays of `shape` (a number for a 0-D shape). */
export function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const [n, ...rest] = shape;
  const size = numelOf(rest);
  return Array.from({ length: n }, (_, i) => nest(flat.slice(i * size, (i + 1) * size), rest));
}
