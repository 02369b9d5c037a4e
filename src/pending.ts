// Lazy values the library itself is responsible for, between the moment they are defined and
// the moment they are stored:
// - variables waiting for a value: a computed leaf made to require grad, and the new value of
//   a tensor given by assign(). The next realization whose graph reaches one computes and stores
//   it, so later steps build on the stored value instead of its history;
// - for an assigned value, the values it replaces, freed once it is stored;
// - readers to protect: the waiting variables and the gradients stored in leaves' `grad`. When
//   storage they read is about to be freed (dispose, the end of a tidy scope), they are
//   computed first (realization.ts), as a running computation holds what it reads.
// Registries are weak: a value nobody can reach any more is nobody's concern.

import { topoSort } from "./ir/graph.ts";
import type { Node } from "./ir/node.ts";
import { settleStoredDetach } from "./history.ts";
import { freeValue, handlesOn } from "./ownership.ts";
import type { Backend, DeviceName } from "./runtime/device.ts";
import { isInFlight, storedAnywhere } from "./runtime/realize.ts";
import { checkpointBuffer } from "./runtime/checkpoint.ts";

const waiting = new WeakSet<Node>();
let waitingCount = 0;
/**
 * The waiting variables again, weakly and with their device, for withWaitingVariables' search
 * (walking only these, not every protected reader: a deref() keeps its target to the end of the
 * task, and gradients that were cleared and never computed would pile up uncollected).
 */
const waitingRefs = new Map<WeakRef<Node>, DeviceName>();
const waitingRefOf = new WeakMap<Node, WeakRef<Node>>();
const replaces = new WeakMap<Node, Node[]>();
/** Readers to protect, by a weak reference, with their device. */
const readers = new Map<WeakRef<Node>, DeviceName>();
const readerRefs = new WeakMap<Node, WeakRef<Node>>();

const isStored = (n: Node) => storedAnywhere(n) !== undefined;
const isWaiting = (n: Node) => waiting.has(n);

let sweepAt = 64;

/**
 * How many holders protect each reader: equal gradients are one node (hash-consing), so two
 * leaves' gradients can be one reader, and clearing one leaf's unprotected the other's.
 */
const protections = new WeakMap<Node, number>();

/**
 * Protects the lazy value `node` on `device`: it is computed before storage it reads is freed.
 * Returns whether it counted a protection (a stored value needs none): only then may the caller
 * give one back with {@link unprotectReader}.
 */
export function protectReader(node: Node, device: DeviceName): boolean {
  if (isStored(node)) return false;
  protections.set(node, (protections.get(node) ?? 0) + 1);
  if (readerRefs.has(node)) return true;
  const ref = new WeakRef(node);
  readerRefs.set(node, ref);
  readers.set(ref, device);
  if (readers.size >= sweepAt) {
    // most entries of a long loop are gone or stored by now: drop them, in amortized O(1)
    for (const [r] of readers) {
      const n = r.deref();
      if (n === undefined || isStored(n)) forget(r, n);
    }
    sweepAt = Math.max(64, 2 * readers.size);
  }
  return true;
}

function forget(ref: WeakRef<Node>, node: Node | undefined): void {
  readers.delete(ref);
  if (node !== undefined) readerRefs.delete(node);
}

/** Computes the variable `node` with the next realization whose graph reaches it. */
export function awaitValue(node: Node, device: DeviceName): void {
  protectReader(node, device);
  if (waiting.has(node)) return;
  waiting.add(node);
  waitingCount++;
  const ref = new WeakRef(node);
  waitingRefs.set(ref, device);
  waitingRefOf.set(node, ref);
}

/**
 * `node` is no longer the library's to protect (a gradient that zeroGrad cleared or a later sum
 * replaced): a dispose no longer computes it first, and no search walks it. Cleared gradients
 * stayed protected until collected, and a loop that never let finalizers run walked more of
 * them on every dispose (a training loop disposing its loss: 1.1 ms a step, then 33 ms).
 */
export function unprotectReader(node: Node): void {
  const left = (protections.get(node) ?? 1) - 1;
  if (left > 0) {
    protections.set(node, left); // another holder still protects it
    return;
  }
  protections.delete(node);
  const ref = readerRefs.get(node);
  if (ref !== undefined) forget(ref, node);
}

/**
 * `next` replaces `old`: `old`'s storage is freed once `next` is stored (and so is what `old`
 * was to replace, if `old` is never stored itself).
 */
export function replaceWhenStored(next: Node, old: Node): void {
  replaces.set(next, [old]);
  awaitingSuccessor.add(old);
}

/** Values replaced by an assignment not stored yet (freeReplaced frees them once it is). */
const awaitingSuccessor = new WeakSet<Node>();

/** Whether a later assignment, not stored yet, replaces `node` (and will free it when stored). */
export function awaitsSuccessor(node: Node): boolean {
  return awaitingSuccessor.has(node);
}

/**
 * What abandoning `node`, an assigned value not computed yet, would give up: the uncomputed
 * assignments it replaced that nothing else holds (`abandoned`, `node` first), and the stored
 * values at the end of that chain (`stored`), which its storing would have freed. An earlier
 * assignment a handle still holds (a view `w.reshape(w.shape)` taken between two assigns) ends
 * the walk: it stays waited for, and frees what it replaces when it is stored itself (walked
 * through, what it read was freed under it). No side effects (tidy asks before it disposes).
 */
export function abandonedBy(node: Node): { abandoned: Node[]; stored: Node[]; } {
  const abandoned: Node[] = [];
  const stored: Node[] = [];
  if (!waiting.has(node) || isStored(node)) return { abandoned, stored };
  abandoned.push(node);
  const stack = [...(replaces.get(node) ?? [])];
  while (stack.length > 0) {
    const old = stack.pop()!;
    if (isStored(old)) stored.push(old);
    else if (old.handles === 0 && waiting.has(old)) {
      abandoned.push(old);
      stack.push(...(replaces.get(old) ?? []));
    }
  }
  return { abandoned, stored };
}

/**
 * `node`, an assigned value not computed yet, lost its last handle (its tensor was disposed):
 * nothing will store it now, so it and the uncomputed assignments only it led to are waited for
 * and protected no more (computed as a protected reader of the stored value, an earlier one was
 * stored afterwards with no handle). Returns the stored values to free once what reads them is
 * computed: {@link freeAbandoned} frees them.
 */
export function abandonAssignment(node: Node): Node[] {
  const { abandoned, stored } = abandonedBy(node);
  for (const n of abandoned) {
    stopWaiting(n);
    unprotectReader(n);
    replaces.delete(n);
  }
  return stored;
}

/** Frees the stored values an abandoned assignment replaced (see {@link abandonAssignment}). */
export function freeAbandoned(stored: readonly Node[], backend: Backend): void {
  const readerOf = waitingReaders(backend.name);
  for (const old of stored) {
    awaitingSuccessor.delete(old);
    if (handlesOn(old, backend.name) !== 0) keptByHandle.add(old); // its last handle frees it
    else freeOld(old, backend, readerOf);
  }
}

/** Whether `node` is an assigned value waited for and not computed yet. */
export function awaitsStoring(node: Node): boolean {
  return waiting.has(node) && !isStored(node);
}

/** Whether `node` was replaced while a handle kept it (freeIfReplaced frees it). */
export function replacedWhileHeld(node: Node): boolean {
  return keptByHandle.has(node);
}

/**
 * Frees the values `node` replaces, and what those replace in turn; one that a waiting variable
 * still reads is freed when that variable is stored instead (as a running computation holds what
 * it reads). Computing that variable now, to free the value now, stored the next step's update
 * early: two optimizers on one weight, or a gradient accumulated over a step, lost the weight a
 * lazy loss of this step still read ("overwritten by assign()").
 */
function freeReplaced(
  node: Node,
  backend: Backend,
  waitingReaderOf: (old: Node) => Node | undefined,
): void {
  const stack = replaces.get(node) ?? [];
  replaces.delete(node);
  while (stack.length > 0) {
    const old = stack.pop()!;
    awaitingSuccessor.delete(old);
    // a variable replaced before it was computed that a handle still holds (a view taken
    // between two assigns) stays waited for, with what it replaces: storing it frees that
    // (walked through, the value it reads was freed under it: "overwritten by assign()")
    if (!isStored(old) && handlesOn(old, backend.name) !== 0) continue;
    const further = replaces.get(old);
    if (further !== undefined) {
      replaces.delete(old);
      stack.push(...further);
    }
    // a variable replaced before it was ever computed is waited for and protected no more:
    // else it kept what it read, the value before it, which nothing stored would ever free
    // (`e.assign(e.mul(0.9)); e.assign(0)` in a loop kept one buffer per step), and a later
    // realization pulled it in as a reader of a value it could no longer compute
    if (!isStored(old)) {
      stopWaiting(old);
      unprotectReader(old);
    }
    // a handle still on the old node (a view of it, say) keeps it until collection; one on
    // another device does not (a node of constants only is shared by both, each storing its
    // own value: the cpu's outlived its last cpu handle while a webgpu tensor lived)
    if (handlesOn(old, backend.name) !== 0) {
      keptByHandle.add(old);
      continue;
    }
    freeOld(old, backend, waitingReaderOf);
  }
}

/** Replaced values kept by a handle when their successor was stored (see freeIfReplaced). */
const keptByHandle = new WeakSet<Node>();

/** Frees a replaced value, or leaves it to a waiting variable that reads it to free once stored. */
function freeOld(
  old: Node,
  backend: Backend,
  waitingReaderOf: (old: Node) => Node | undefined,
): void {
  const reader = isStored(old) ? waitingReaderOf(old) : undefined;
  if (reader !== undefined) {
    const later = replaces.get(reader);
    if (later === undefined) replaces.set(reader, [old]);
    else later.push(old);
    return;
  }
  freeValue(old, backend, "overwritten by assign()");
}

/**
 * Frees `node` as its successor's storing would have, if it was replaced while a hold kept it
 * (a realization waiting on another: realization.ts's realizeOn) and no handle is left.
 */
export function freeIfReplaced(node: Node, backend: Backend): void {
  if (!keptByHandle.has(node) || handlesOn(node, backend.name) !== 0) return;
  keptByHandle.delete(node);
  freeOld(node, backend, waitingReaders(backend.name));
}

/**
 * A function telling a waiting variable on `device` whose graph reads a given stored value, if
 * any: the stored values each waiting variable reads are found once, on first use (a walk of
 * every waiting variable for every value freed made a step quadratic in the parameters: 200
 * parameters, 1.5 s a step).
 */
function waitingReaders(device: DeviceName): (old: Node) => Node | undefined {
  let readersOf: Map<Node, Node[]> | null = null;
  const index = () => {
    const found = new Map<Node, Node[]>();
    for (const [ref, on] of waitingRefs) {
      const node = ref.deref();
      if (node === undefined || isStored(node)) {
        waitingRefs.delete(ref); // collected, or stored on another path
        continue;
      }
      if (on !== device || !waiting.has(node)) continue;
      for (const m of topoSort([node], (n) => n !== node && isStored(n))) {
        if (m === node || !isStored(m)) continue;
        const list = found.get(m);
        if (list === undefined) found.set(m, [node]);
        else list.push(node);
      }
    }
    return found;
  };
  // (one that stopped waiting since, replaced before it was computed, keeps nothing)
  return (old) => (readersOf ??= index()).get(old)?.find((n) => waiting.has(n) && !isStored(n));
}

/**
 * `nodes`, the waiting variables their graph reaches (walked down to stored values), and the
 * protected values (gradients) that read a value one of those frees once stored: they are
 * computed together, before it is freed. (A waiting variable that reads such a value keeps it
 * until it is stored itself: see freeReplaced.)
 */
export function withWaitingVariables(nodes: readonly Node[], device: DeviceName): Node[] {
  if (waitingCount === 0) return [...nodes];
  const all = new Set(nodes);
  // not below a checkpoint (runtime/checkpoint.ts): the realization that made it computed the
  // waiting variables below it, and none can start waiting there (a leaf that starts requiring
  // grad on a node built upon, or assigned, is a fresh node); walked through, a value updated
  // step by step through grad() had its whole history walked at every read
  const isCheckpoint = (n: Node) => checkpointBuffer(n, device) !== undefined;
  const below = topoSort(nodes, (n) => isStored(n) || isCheckpoint(n));
  for (const n of below) if (waiting.has(n) && !isStored(n)) all.add(n);
  // what storing them frees: the values they replace, and what those replace in turn
  const freed = new Set<Node>();
  const stack = [...all].flatMap((n) => replaces.get(n) ?? []);
  while (stack.length > 0) {
    const old = stack.pop()!;
    if (freed.has(old)) continue;
    freed.add(old);
    stack.push(...(replaces.get(old) ?? []));
  }
  // stored now, or computed here and freed as soon as stored (a step's update that the next
  // step replaced before anything was read: the gradient reading it was lost)
  // (or being computed by a run in flight, stored before this one is: webgpu, where an assigned
  // value was still running, lost the gradient reading the value it replaced)
  const stored = new Set(
    [...freed].filter((n) => isStored(n) || all.has(n) || isInFlight(n, device)),
  );
  if (stored.size === 0) return [...all];
  // Read through a value computed here, or through a waiting variable (not freed), a freed
  // value is not read: that value's new storage is, or the variable keeps the freed value.
  // (Walked through, a gradient of the next step, reading this step's update, was stored
  // early; and waiting variables are not walked here: they keep what they read.)
  const settled = (n: Node) => isStored(n) || all.has(n) || (waiting.has(n) && !freed.has(n));
  for (const r of readersOf(stored, device, isWaiting, settled)) all.add(r);
  return [...all];
}

/**
 * `node` could not be computed when a realization that frees what it reads pulled it in: it is
 * no longer waited for (each later realization would try it again), and reading it reports why.
 */
export function stopWaiting(node: Node): void {
  if (waiting.delete(node)) waitingCount--;
  const ref = waitingRefOf.get(node);
  if (ref !== undefined) {
    waitingRefs.delete(ref);
    waitingRefOf.delete(node);
  }
}

/** Bookkeeping once `nodes` are stored on `backend`. */
export function afterStored(nodes: readonly Node[], backend: Backend): void {
  for (const n of nodes) {
    if (waiting.delete(n)) waitingCount--;
    const waitingRef = waitingRefOf.get(n);
    if (waitingRef !== undefined) {
      waitingRefs.delete(waitingRef);
      waitingRefOf.delete(n);
    }
    const ref = readerRefs.get(n);
    if (ref !== undefined) forget(ref, n);
  }
  const readerOf = waitingReaders(backend.name);
  for (const n of nodes) {
    freeReplaced(n, backend, readerOf);
    if (n.op === "detach") settleStoredDetach(n); // no gradient flows through it
  }
}

/** The number of protected readers (for tests: cleared gradients must not pile up). */
export function protectedReaderCount(): number {
  return readers.size;
}

/** Whether any reader is protected at all (most programs: none); a dispose asks first. */
export function hasReaders(): boolean {
  return readers.size > 0;
}

/**
 * The protected readers on `device` that read one of `stored` (dead entries are dropped on the
 * way). Only those: a reader that cannot be computed any more (a cleared gradient whose input
 * was overwritten since) must not take the others down with it, nor may computing one that
 * needs nothing freed here run an assignment early under a lazy result that reads the old value.
 * Readers `skip` holds for are not candidates; `storedAfter` tells the values stored by the time
 * the readers are computed (what reads through one reads its storage).
 */
export function readersOf(
  stored: ReadonlySet<Node>,
  device: DeviceName,
  skip: (n: Node) => boolean = () => false,
  storedAfter: (n: Node) => boolean = isStored,
): Node[] {
  if (readers.size === 0) return [];
  const candidates: Node[] = [];
  for (const [ref, on] of readers) {
    const node = ref.deref();
    if (node === undefined || isStored(node)) forget(ref, node);
    else if (on === device && !skip(node)) candidates.push(node);
  }
  if (candidates.length === 0) return [];
  // one walk for all, sources first: a node reads `stored` if it is one, or is computed from one
  // other than a reader (computed and stored itself, it is what later readers load: an update
  // of the next step reading this step's is not computed now, which would free this step's
  // value under a lazy loss that reads it)
  const isReader = new Set(candidates);
  const reads = new Set<Node>();
  for (const n of topoSort(candidates, (n) => stored.has(n) || storedAfter(n))) {
    const readsStored = n.srcs.some((s) => reads.has(s) && !isReader.has(s));
    if (stored.has(n) || (!storedAfter(n) && readsStored)) reads.add(n);
  }
  return candidates.filter((n) => reads.has(n));
}
