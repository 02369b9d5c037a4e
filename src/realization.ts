// Realization on the Tensor side: computing tensors (one schedule per device), reading their
// values, and moving them between devices. The compiler and runtime behind it are in
// src/runtime/realize.ts. Around each realization:
// - variables waiting for a value that the graph reaches are computed with it, and an assigned
//   value's predecessor is freed once it is stored (pending.ts);
// - before storage is freed, the lazy values the library protects that still read it are
//   computed (computeReadersOf);
// - reads hold the storage they read until the copy is made, and the asynchronous ones give the
//   garbage-collection backstop its chance (runtime/backstop.ts).

import type { TypedArray } from "./ir/dtype.ts";
import { topoSort } from "./ir/graph.ts";
import * as ir from "./ir/node.ts";
import type { Node } from "./ir/node.ts";
import {
  acquireHold,
  capturedReadsRefusedBelow,
  endHold,
  freeValue,
  releaseHandle,
  tracing,
} from "./ownership.ts";
import {
  abandonAssignment,
  afterStored,
  awaitsStoring,
  awaitsSuccessor,
  freeAbandoned,
  freeIfReplaced,
  hasReaders,
  readersOf,
  replacedWhileHeld,
  stopWaiting,
  withWaitingVariables,
} from "./pending.ts";
import { backendFor } from "./runtime/backends.ts";
import { backstop, noteHostArray } from "./runtime/backstop.ts";
import { type Backend, type DeviceBuffer, type DeviceName, DEVICES } from "./runtime/device.ts";
import { holdBuffers, releaseReason, trackValue } from "./runtime/lifetime.ts";
import { InputGoneError, realizedBuffer, realizeNodes } from "./runtime/realize.ts";
import {
  createTensor,
  isTensor,
  liveNode,
  type NestedArray,
  nodeOf,
  type Tensor,
} from "./tensor.ts";
import { checkDeviceDtype, described, fail } from "./validate.ts";

/**
 * Realizes `nodes` on `device` with the variables they reach, and does the bookkeeping of what
 * was stored (an assigned value's predecessor freed): every realization goes through here.
 */
export function realizeOn(
  device: DeviceName,
  nodes: readonly Node[],
  fn = "realize",
): void | Promise<void> {
  const backend = backendFor(device);
  const all = withWaitingVariables(nodes, device);
  const apart = (e: unknown) => {
    // a value pulled in (a variable waiting for an assigned value, a gradient) that cannot be
    // computed fails only its own reads: a pending assign reading a disposed tensor made every
    // read of an unrelated tensor fail for good, blaming it
    // (by what was pulled in, not by counts: `all` has no duplicates, `nodes` may)
    const extras = all.filter((n) => !nodes.includes(n));
    if (extras.length === 0) failGone(fn, e, all);
    // the stored values they read are held while the chain of runs goes on (an input disposed
    // meanwhile, once the caller returned, was gone when its turn came: webgpu)
    const unhold = holdBuffers(storedBelow([...nodes, ...extras], device));
    let apartRan: void | Promise<void>;
    try {
      apartRan = realizeApart(fn, [...new Set(nodes)], extras, backend);
    } catch (e) {
      unhold();
      throw e;
    }
    if (apartRan instanceof Promise) return apartRan.finally(unhold);
    unhold();
  };
  let ran: void | Promise<void>;
  try {
    ran = realizeNodes(all, backend);
  } catch (e) {
    return apart(e);
  }
  if (!(ran instanceof Promise)) return afterStored(all, backend);
  // Until it settles, it holds the values it pulled in (as a read holds its tensor): waiting
  // for a run in flight, it saw another realization store a later assignment and free the
  // value it was about to load (webgpu: a read issued before an assign rejected, "overwritten
  // by assign()"). A value replaced meanwhile is freed when the last hold ends, as its
  // successor's storing would have.
  const requested = new Set(nodes);
  const pulledIn = all.filter((n) => !requested.has(n));
  for (const n of pulledIn) acquireHold(n, device);
  // ...and the stored values it reads, until the runs made apart after a failure settle too:
  // the first attempt's own hold ended as it failed, freeing an input disposed meanwhile, so the
  // rescue of a read issued before that dispose found its input gone
  const unhold = holdBuffers(storedBelow(all, device));
  return ran.then(() => afterStored(all, backend), apart).finally(() => {
    unhold();
    for (const n of pulledIn) {
      endHold(n, device);
      // the last handle: its tensor was disposed meanwhile (stored after its dispose, or
      // disposed while held, it stayed until garbage collection), or it was replaced; one whose
      // successor is not stored yet is freed by that storing, not computed early here
      if (releaseHandle(n, device) && !awaitsSuccessor(n)) freeUnheld(n, device);
    }
  });
}

/** The buffers of the stored values the graphs of `nodes` read on `device` (theirs included). */
function storedBelow(nodes: readonly Node[], device: DeviceName): DeviceBuffer[] {
  const stored = (n: Node) => realizedBuffer(n, device) !== undefined;
  return topoSort(nodes, stored).flatMap((n) => realizedBuffer(n, device) ?? []);
}

/**
 * Realizes `extras` one by one, giving up on each one that fails (no longer waited for, its
 * failure kept for its own reads), then `nodes`; what they replace is freed only once all are
 * stored, as in one realization (freeing b's old value as soon as b's new one was stored lost a
 * lazy value of the program's, in `nodes`, that read it).
 */
function realizeApart(
  fn: string,
  nodes: readonly Node[],
  extras: readonly Node[],
  backend: Backend,
  stored: Node[] = [],
): void | Promise<void> {
  const giveUp = (n: Node, e: unknown) => {
    noteFailedBeforeFree(n, e);
    stopWaiting(n);
  };
  for (const [i, n] of extras.entries()) {
    let ran: void | Promise<void>;
    try {
      ran = realizeNodes([n], backend);
    } catch (e) {
      giveUp(n, e);
      continue;
    }
    if (ran instanceof Promise) {
      return ran.then(() => void stored.push(n), (e) => giveUp(n, e))
        .then(() => realizeApart(fn, nodes, extras.slice(i + 1), backend, stored));
    }
    stored.push(n);
  }
  const done = () => afterStored([...stored, ...nodes], backend);
  let ran: void | Promise<void>;
  try {
    ran = realizeNodes(nodes, backend);
  } catch (e) {
    afterStored(stored, backend); // what was computed stays computed
    failGone(fn, e, nodes);
  }
  if (ran instanceof Promise) {
    return ran.then(done, (e) => {
      afterStored(stored, backend);
      failGone(fn, e, nodes);
    });
  }
  done();
}

/**
 * Why a value the library protects could not be computed before storage it read was freed
 * (computeReadersOf): a later read of it finds that storage gone, and says this instead (it
 * said the input "was disposed", blaming a dispose the program was allowed to make, where
 * the cause was a device limit).
 */
const failedBeforeFree = new WeakMap<Node, unknown>();

/** Keeps `error` for reads of `node`, unless it already says what they will (an input gone). */
function noteFailedBeforeFree(node: Node, error: unknown): void {
  if (!(error instanceof InputGoneError)) failedBeforeFree.set(node, error);
}

/** Rethrows `error`, naming `fn` if it says an input's storage is gone. */
export function failGone(fn: string, error: unknown, nodes: readonly Node[] = []): never {
  if (!(error instanceof InputGoneError)) throw error;
  for (const n of nodes.length > 0 ? topoSort(nodes) : []) {
    const cause = failedBeforeFree.get(n);
    if (cause === undefined) continue;
    throw new Error(
      `${fn}: a value could not be computed before storage it reads was freed: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }
  fail(
    fn,
    "needs the values it is computed from (compute results before disposing or assigning what they read)",
    described(error.input),
  );
}

/**
 * Before the storage of `stored` (values on `device`) is freed: computes the protected readers
 * that still read it (see pending.ts), and the `lazy` tensors that do.
 */
export function computeReadersOf(
  stored: ReadonlySet<Node>,
  device: DeviceName,
  lazy: readonly Tensor[] = [],
): void {
  const isStored = (n: Node) => realizedBuffer(n, device) !== undefined;
  const mine = lazy.filter((t) =>
    t.device === device && !t.isDisposed && realizedBuffer(nodeOf(t), device) === undefined
  );
  const needy = mine.length > 0 &&
    topoSort(mine.map(nodeOf), isStored).some((n) => stored.has(n));
  const nodes = [...(needy ? mine.map(nodeOf) : []), ...readersOf(stored, device)];
  if (nodes.length === 0) return;
  const attempt = (some: Node[]) => {
    const ran = realizeOn(device, some);
    // it holds its inputs while it runs
    // (a failure of several together is not any one's: each read finds its own)
    if (ran instanceof Promise) {
      ran.catch((e) => some.length === 1 && noteFailedBeforeFree(some[0], e));
    }
  };
  try {
    attempt(nodes); // together: in one schedule they share work
  } catch {
    // one that cannot be computed fails them all: each alone, so the others still are (a
    // failure is reported when its value is used: realizing it retries and finds its input
    // gone, and says why it was not computed in time)
    for (const n of nodes) {
      try {
        attempt([n]);
      } catch (e) {
        noteFailedBeforeFree(n, e);
      }
    }
  }
}

/**
 * Drops one handle on `node` (a tensor's, a read's or a jit call's hold). When it was the last
 * and the value is stored, the lazy values the library protects that read it (an assigned
 * value, a gradient) are computed first, then its storage is freed. A read in flight used to
 * free it without that: `w.assign(w.mul(2))` while a read of the old `w` was in flight lost `w`.
 */
export function releaseValue(node: Node, device: DeviceName): void {
  if (!releaseHandle(node, device)) return;
  if (awaitsStoring(node)) abandon(node, device);
  else freeUnheld(node, device);
}

/**
 * The last handle of an assigned value not computed yet went (`w.assign(w.mul(2));
 * w.dispose()`): nothing will compute it, so what it replaces is freed now, the protected
 * values reading those computed first. It stayed until garbage collection, waiting for a
 * storing that never came.
 */
function abandon(node: Node, device: DeviceName): void {
  const stored = abandonAssignment(node);
  if (stored.length === 0) return;
  if (hasReaders()) computeReadersOf(new Set(stored), device);
  freeAbandoned(stored, backendFor(device));
}

/** Frees the stored value of `node`, whose last handle on `device` just went (releaseValue). */
function freeUnheld(node: Node, device: DeviceName): void {
  if (realizedBuffer(node, device) === undefined) return;
  // replaced by an assignment while a read held it: freed as the assignment's storing would
  // have (the Error of a graph still reading it said "disposed", though nothing was)
  if (replacedWhileHeld(node)) return freeIfReplaced(node, backendFor(device));
  // replaced by an assignment not stored yet, which frees it once stored: left to it (freed
  // here, after computing the assignment, a lazy graph reading it was told on webgpu that it was
  // disposed, not overwritten, helper-159)
  if (awaitsSuccessor(node)) return;
  if (hasReaders()) computeReadersOf(new Set([node]), device);
  freeValue(node, backendFor(device), "disposed");
}

/** Realizes several tensors together (one schedule per device, shared work). */
export async function realizeTensors(fn: string, tensors: readonly Tensor[]): Promise<void> {
  const nodes = tensors.map((t) => liveNode(fn, t));
  // every device's realization starts before the first await, so each holds its inputs from
  // the call on (the second device's started after the first's finished: an input disposed
  // right after the call was gone by then)
  const perDevice = [...new Set(tensors.map((t) => t.device))].map((device) => {
    const mine = nodes.filter((_, i) => tensors[i].device === device);
    let ran: void | Promise<void>;
    try {
      ran = realizeOn(device, mine, fn);
    } catch (e) {
      ran = Promise.reject(e); // after the others have started, and awaited with them
    }
    return { device, mine, ran };
  });
  const settled = await Promise.allSettled(perDevice.map(({ ran }) => ran));
  const failed = settled.find((r) => r.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  for (const { device, mine } of perDevice) {
    // and a copy from another device has arrived: realize() resolved while `to()`'s copy was
    // still on its way, and a dataSync() after it failed
    const backend = backendFor(device);
    for (const node of mine) {
      const stored = realizedBuffer(node, device);
      // (a jit stand-in has no copy to wait for: asked after its trace, it rejected)
      const arriving = stored === undefined || stored.standIn ? null : backend.pending(stored);
      if (arriving !== null) await arriving;
    }
  }
  await backstop();
}

/** The buffer holding `node`'s value, or an Error if its storage is gone. */
function storedBuffer(fn: string, node: Node, device: DeviceName): DeviceBuffer {
  const buffer = realizedBuffer(node, device)!;
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
  acquireHold(node, device);
  try {
    // asked at the call, not after an await: a jit stand-in notes a read only while fn runs
    // (an argument read without await went unnoticed, and its read rejected later)
    const stored = realizedBuffer(node, device);
    const arriving = stored === undefined ? null : backend.pending(stored);
    await realizeOn(device, [node], fn);
    if (arriving !== null) await arriving;
    const buffer = storedBuffer(fn, node, device);
    const unhold = holdBuffers([buffer]);
    try {
      return await backend.read(buffer);
    } finally {
      unhold();
    }
  } finally {
    endHold(node, device);
    releaseValue(node, device);
  }
}

/** `t.data()`: the values as a new typed array. */
export async function readData(fn: string, t: Tensor): Promise<TypedArray> {
  const values = await readNode(fn, liveNode(fn, t), t.device);
  noteHostArray(values.byteLength);
  await backstop();
  return values;
}

/** What reading a tensor built on a jit argument's stand-in after its trace is refused with. */
const ESCAPED_STAND_IN =
  "a tensor with a value (this one was built from a jit argument while fn was traced and kept " +
  "past the trace: the argument had no value then, and has none now; return it from fn instead)";

/** Whether `node`'s value is computed from a jit stand-in (an argument while fn is traced). */
function readsStandIn(node: Node): boolean {
  return topoSort([node], (n) => realizedBuffer(n, "cpu") !== undefined).some((n) =>
    realizedBuffer(n, "cpu")?.standIn === true
  );
}

/**
 * Throws while jit traces a function for a call when `t`'s value reads a captured value (a
 * stored value or a variable made before the trace): read then, it became a constant of the
 * plan, and every later call reused it (`x.mul(w.dataSync()[0])` and `w.sum().to("cpu")` kept
 * w's first value after `w.assign`). Values fn makes itself (`tensor([3])`, constants) are the same at every
 * call and may be read; a read of an argument's stand-in keeps its own path (noted, it fails
 * the trace once fn returns). Synchronous, at the call: fn cannot await, so a rejected read
 * would go unhandled.
 */
export function refuseReadWhileTracing(fn: string, t: Tensor): void {
  const below = capturedReadsRefusedBelow();
  if (below === null || !isTensor(t) || t.isDisposed) return; // the read says what is wrong
  // made before the trace: storage (a leaf that is no constant), or a variable (a leaf's value
  // after `assign`, a fresh detach: `w.assign(3)` is detach(const), and its 3 was baked in);
  // an argument's stand-in was made before fn ran too, and is not captured
  const captured = (n: Node) =>
    n.id < below &&
    (n.srcs.length === 0 ? n.op !== "const" : n.op === "detach" && n.arg !== null) &&
    realizedBuffer(n, t.device)?.standIn !== true;
  if (!topoSort([nodeOf(t)]).some(captured)) return;
  fail(
    fn,
    "no read of a captured tensor while jit traces fn (its value read now would be a constant " +
      "of every call; build the results with tensor ops, pass the tensor as an argument, or " +
      "read it after the call)",
    described("a read while tracing"),
  );
}

/** `t.dataSync()`: the values of a cpu tensor, computed and read synchronously. */
export function readDataSync(t: Tensor): TypedArray {
  const node = liveNode("dataSync", t);
  if (t.device !== "cpu") {
    fail("dataSync", `needs a cpu tensor (use await data() on "${t.device}")`, t.device);
  }
  const cpu = backendFor("cpu");
  const ran = realizeOn("cpu", [node], "dataSync");
  const copy = ran instanceof Promise ? null : cpu.failedCopy(realizedBuffer(node, "cpu")!);
  if (copy !== null) throw copy.error; // as await data() rejects: the copy will never arrive
  if (ran instanceof Promise || cpu.pending(realizedBuffer(node, "cpu")!) !== null) {
    // a copy from another device is still arriving: only the async path can wait for it
    ran?.catch(() => {});
    // or a jit stand-in, which has no value: told so (it was told of a copy from a device)
    if (readsStandIn(node)) {
      if (tracing()) {
        fail(
          "dataSync",
          "a value, not one fn computes from its arguments while jit traces it (build the " +
            "results with tensor ops, and read them after the call)",
          described("a read while tracing"),
        );
      }
      // kept past its trace (a closure, a global): it was told of a copy from a device
      fail("dataSync", ESCAPED_STAND_IN, described("a tensor kept past its jit trace"));
    }
    fail(
      "dataSync",
      "inputs that are ready now (this tensor depends on data still being copied from another device; use await data())",
      described("a pending copy"),
    );
  }
  const values = cpu.readSync!(storedBuffer("dataSync", node, "cpu"));
  noteHostArray(values.byteLength);
  return values;
}

/**
 * `t.to(device)`: a new leaf on `device` holding a copy (the same tensor if already there). The
 * source is held (a handle on its node) until the copy is made, and the destination's storage
 * until the copy lands: disposing either meanwhile frees it afterwards, never under the copy.
 */
export function moveTo(t: Tensor, device: DeviceName): Tensor {
  const node = liveNode("to", t);
  if (!DEVICES.includes(device)) fail("to", `device must be "cpu" or "webgpu"`, device);
  if (device === t.device) return t; // nothing read: fine while jit traces too
  refuseReadWhileTracing("to", t);
  checkDeviceDtype("to", device, node.dtype);
  const toBackend = backendFor(device);
  const data = readNode("to", node, t.device);
  const buffer = toBackend.uploadLater(data, node.dtype, node.numel);
  const landed = holdBuffers([buffer]);
  data.then(landed, landed);
  const moved = ir.buffer(buffer, node.shape, node.dtype);
  trackValue(moved, buffer);
  return createTensor(moved, device, t.requiresGrad, true);
}

/** Flat row-major values as nested arrays of `shape` (a number for a 0-D shape). */
export function nest(flat: number[], shape: readonly number[]): NestedArray {
  // the innermost axis first, each axis grouping the arrays of the one inside it, without
  // recursion (a tensor of 5,000 axes overflowed the call stack)
  const leading = [1]; // the number of arrays at each depth
  for (const n of shape) leading.push(leading[leading.length - 1] * n);
  let items: NestedArray[] = flat;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const size = shape[axis];
    const arrays: NestedArray[] = new Array(leading[axis]);
    for (let i = 0; i < arrays.length; i++) arrays[i] = items.slice(i * size, (i + 1) * size);
    items = arrays;
  }
  return items[0];
}
