// Who owns a value's storage on the Tensor side. Tensors are handles on IR nodes, and several
// handles can share a node: hash-consing gives `x.exp()` twice the same node, and a no-op view
// (`x.reshape(x.shape)`, `x.detach()` of a detached x) is its input's node. So storage is
// owned per node, counted in handles: dispose() gives up one handle, and the storage is freed
// when the last handle of its node is disposed. A handle that is dropped without dispose()
// keeps its count (nobody can tell), so such storage is freed when the node is garbage
// collected instead (runtime/lifetime.ts), never too early.
//
// It also keeps the stack of tidy() scopes: the tensors created while a scope is open, which
// the scope disposes when it closes (TensorFlow.js's convention, see tidy.ts), except those a
// living tensor still holds (a leaf's gradient).

import { isSettled, type Node, nodesMade, unshare } from "./ir/node.ts";
import type { Backend, DeviceName } from "./runtime/device.ts";
import { isHeld, releaseBuffer, type ReleaseReason } from "./runtime/lifetime.ts";
import { forgetRealized, realizedBuffer } from "./runtime/realize.ts";

// Handles are counted per node and, because a node of constants only is shared by every device
// while each device stores its own value, per device too: disposing a cpu tensor freed nothing
// while an equal webgpu tensor lived, and the last dispose freed only its own device's value.

/** Counts one more handle on `node`, of a tensor (or hold) on `device`. */
export function acquireHandle(node: Node, device: DeviceName): void {
  node.handles++;
  if (device === "webgpu") node.webgpuHandles++;
}

/** Gives up one handle on `node` on `device`; true when it was that device's last one. */
export function releaseHandle(node: Node, device: DeviceName): boolean {
  node.handles = Math.max(0, node.handles - 1);
  if (device === "webgpu") node.webgpuHandles = Math.max(0, node.webgpuHandles - 1);
  return handlesOn(node, device) === 0;
}

/** The handles counted on `node` on `device` (dropped handles included). */
export function handlesOn(node: Node, device: DeviceName): number {
  return device === "webgpu" ? node.webgpuHandles : node.handles - node.webgpuHandles;
}

/** The number of handles counted on `node`, every device's (dropped handles included). */
export function handleCount(node: Node): number {
  return node.handles;
}

/** Of the handles on each node, those of reads, copies and calls in flight (holds), by device. */
const holds: Record<DeviceName, WeakMap<Node, number>> = {
  cpu: new WeakMap(),
  webgpu: new WeakMap(),
};

/**
 * Counts one more handle on `node`, for a read, copy or call in flight on `device`: it ends by
 * itself, and a tidy scope closing meanwhile must treat the value as about to be freed.
 */
export function acquireHold(node: Node, device: DeviceName): void {
  acquireHandle(node, device);
  holds[device].set(node, (holds[device].get(node) ?? 0) + 1);
}

/** Ends one hold on `node` (its handle is given up by the caller, with releaseValue). */
export function endHold(node: Node, device: DeviceName): void {
  const left = (holds[device].get(node) ?? 1) - 1;
  if (left > 0) holds[device].set(node, left);
  else holds[device].delete(node);
}

/** The handles on `node` on `device` that are not holds: tensors', which last until disposed. */
export function lastingHandleCount(node: Node, device: DeviceName): number {
  return handlesOn(node, device) - (holds[device].get(node) ?? 0);
}

/**
 * Frees the storage of `node`'s value, if it has one. A computed node that still has its
 * history forgets the value (graphs built on it recompute it) when the storage goes back, not
 * before: a realization in flight that holds it plans again, after waiting for a run or a copy,
 * and found no value to load (it recomputed it from a graph whose leaf was disposed meanwhile,
 * and failed). Meanwhile it is shared no more: an equal computation made then took the node,
 * value and all, and lost the value when the hold ended (or, built upon, was settled and then
 * had neither value nor history). A buffer or settled node keeps the released buffer, so a
 * graph still reading it gets an Error saying why, and a settled node stops being shared, so an
 * equal computation made later gets a fresh node.
 */
export function freeValue(node: Node, backend: Backend, reason: ReleaseReason): void {
  const buffer = realizedBuffer(node, backend.name);
  if (buffer === undefined) return;
  const forget = node.op !== "buffer" && !isSettled(node);
  if (isSettled(node) || (forget && isHeld(buffer))) unshare(node);
  releaseBuffer(
    buffer,
    backend,
    reason,
    forget ? () => forgetRealized(node, backend.name) : undefined,
  );
}

// ---- tidy scopes ----------------------------------------------------------------------------

/** Something a scope can dispose. */
export interface Owned {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Owned[][] = [];
const kept = new WeakSet<Owned>();
/** Per open scope, what the scopes it enclosed kept (see the scope's close). */
const keptInside = new WeakMap<Owned[], { list: Owned[]; limit: number; }>();

/**
 * For a tensor something else may hold (a gradient, held by leaves' `grad`): per holder, who
 * holds it now, if anyone.
 */
const holders = new WeakMap<Owned, { list: (() => Owned | null)[]; limit: number; }>();

/**
 * Records that `holder()` may hold `t` (a gradient set by hand: `w.grad = w.grad.mul(0.5)`, or
 * `b.grad = a.grad`): a scope keeps `t` while one of its holders does and is not disposed with
 * the scope. Only a gradient `backward()` made was kept so, and a `tidy` disposed a clipped
 * gradient its leaf still held.
 */
export function noteHolder(t: Owned, holder: () => Owned | null): void {
  let entry = holders.get(t);
  if (entry === undefined) holders.set(t, entry = { list: [], limit: MIN_HOLDER_LIMIT });
  entry.list.push(holder);
  if (entry.list.length > entry.limit) {
    // a loop setting one tensor as a grad again and again: those that let go of it are dropped
    // (never one still holding it), amortized over as many calls as are left
    entry.list = entry.list.filter((h) => h() !== null);
    entry.limit = Math.max(MIN_HOLDER_LIMIT, 2 * entry.list.length);
  }
}

/** Holders a tensor keeps before those no longer holding it are dropped. */
const MIN_HOLDER_LIMIT = 64;

/**
 * Records a newly created tensor in the innermost open scope, if any. `holder`, for a tensor
 * that another one holds (a gradient, held by its leaf's `grad`), says who holds it now: a scope
 * keeps it while its holder does and is not disposed with the scope.
 */
export function trackCreated(t: Owned, holder?: () => Owned | null): void {
  if (holder !== undefined) noteHolder(t, holder);
  recording?.push(t);
  if (scopes.length === 0) return;
  const scope = scopes[scopes.length - 1];
  scope.push(t);
  scopeOf.set(t, scope);
}

/** The scope that tracks each tracked tensor (so a tensor is tracked once). */
const scopeOf = new WeakMap<Owned, Owned[]>();

/**
 * Hands a tensor the library has let go of (a gradient cleared by zeroGrad or replaced by a
 * later sum) to the innermost open scope, if any: disposed when the scope closes unless it is
 * returned, kept or held again. Without a scope it is left to garbage collection.
 */
export function trackDropped(t: Owned): void {
  if (scopes.length === 0) return;
  const scope = scopes[scopes.length - 1];
  if (scopeOf.get(t) === scope) return;
  scope.push(t);
  scopeOf.set(t, scope);
}

/** The tensors `recordCreated` is recording, if it is. */
let recording: Owned[] | null = null;

/**
 * Runs `fn` and returns what it returned with the tensors it created (scopes track them as
 * usual; this is not a scope: a gradient that `fn` lets go of goes to the innermost scope).
 */
export function recordCreated<T>(fn: () => T): [T, Owned[]] {
  const outer = recording;
  const made: Owned[] = [];
  recording = made;
  try {
    return [fn(), made];
  } finally {
    recording = outer;
    // (one by one: spreading a step's tensors over many parameters could overflow the stack)
    if (outer !== null) { for (const t of made) outer.push(t); }
  }
}

/** Whether `t` is exempt from every scope (`keep`), or a holder (a leaf's `grad`) holds it now. */
export function keptOrHeld(t: Owned): boolean {
  return kept.has(t) || (holders.get(t)?.list ?? []).some((holderOf) => holderOf() !== null);
}

/** Runs `fn` with no scope tracking what it creates (for tensors the library keeps). */
export function untracked<T>(fn: () => T): T {
  const saved = scopes.splice(0);
  try {
    return fn();
  } finally {
    scopes.push(...saved);
  }
}

/** Exempts `t` from every scope, open or to come. */
export function keepForever(t: Owned): void {
  kept.add(t);
}

/**
 * Opens a scope. The returned function closes it: `prepare` sees the tensors about to be
 * disposed and those of the scope passed to `keep`, then all it tracked is disposed except
 * `survivors` (and the kept).
 */
export function openScope(): (
  survivors: ReadonlySet<Owned>,
  prepare?: (doomed: readonly Owned[], keptHere: readonly Owned[]) => void,
) => void {
  const scope: Owned[] = [];
  scopes.push(scope);
  const depth = scopes.length;
  return (survivors, prepare) => {
    if (scopes.length !== depth || scopes[depth - 1] !== scope) {
      throw new Error("tidy: scopes must close in the order they opened");
    }
    scopes.pop();
    const parent = scopes[scopes.length - 1];
    const unwanted = scope.filter((t) => !kept.has(t) && !survivors.has(t));
    // a held tensor (a gradient) stays while its holder stays: held by a tensor that is not
    // disposed now (nor was before), it survives the scope like a returned one
    const leaving = new Set(unwanted);
    const isHeld = (t: Owned) =>
      (holders.get(t)?.list ?? []).some((holderOf) => {
        const holder = holderOf();
        return holder !== null && !leaving.has(holder);
      });
    const held = new Set(unwanted.filter(isHeld));
    const doomed = unwanted.filter((t) => !held.has(t));
    for (const t of scope) {
      // the enclosing scope owns them now
      if ((survivors.has(t) && !kept.has(t)) || held.has(t)) {
        if (parent === undefined) scopeOf.delete(t);
        else if (scopeOf.get(t) !== parent) {
          parent.push(t);
          scopeOf.set(t, parent);
        }
      }
    }
    // what this scope and the scopes it enclosed kept: a kept value may read a tensor of any
    // scope around the one it was made in, so the enclosing scope sees it too
    const keptHere = [...scope.filter((t) => kept.has(t)), ...(keptInside.get(scope)?.list ?? [])];
    keptInside.delete(scope);
    if (parent !== undefined && keptHere.length > 0) {
      let inherited = keptInside.get(parent);
      if (inherited === undefined) keptInside.set(parent, inherited = { list: [], limit: 64 });
      inherited.list.push(...keptHere);
      // a loop of kept steps inside one long scope: past twice what was alive at the last look,
      // the disposed go (amortized: the list stays about the size of what is alive)
      if (inherited.list.length > inherited.limit) {
        inherited.list = inherited.list.filter((t) => !t.isDisposed);
        inherited.limit = Math.max(64, 2 * inherited.list.length);
      }
    }
    prepare?.(doomed, keptHere);
    for (const t of doomed) t.dispose();
    // the closed scope lets go of its list: a disposed tensor still reachable (a layer's field)
    // kept, through its entry here, every tensor of the scope reachable, gradients and the
    // storage they read included
    for (const t of scope) if (scopeOf.get(t) === scope) scopeOf.delete(t);
    scope.length = 0;
  };
}

// ---- gradients set while a jit trace runs ----------------------------------------------------

/** Something holding a gradient: a leaf tensor's `grad`. */
export interface GradientHolder {
  grad: Owned | null;
}

/**
 * How a trace's end gives a leaf its gradient back: as the `grad` setter does, without its
 * checks (a gradient from before may have been disposed since: the setter's check threw, and
 * the other leaves kept their traced gradients). Set by src/tensor.ts.
 */
let restoreGradient = (leaf: GradientHolder, grad: Owned | null) => {
  leaf.grad = grad;
};

/** Sets how gradients are given back (see `restoreGradient`). */
export function setGradientRestorer(fn: (leaf: GradientHolder, grad: Owned | null) => void): void {
  restoreGradient = fn;
}

/** While `withGradientsRestored` runs: each leaf whose `grad` changed, with its grad before. */
let journal: Map<GradientHolder, Owned | null> | null = null;
/** While `withGradientsRestored` runs: the leaves backward() gave a gradient. */
let differentiated: Set<GradientHolder> | null = null;

/**
 * Runs `fn` (a jit trace), then gives every leaf whose `grad` changed meanwhile (backward(),
 * zeroGrad()) its gradient from before: traced gradients are graph over stand-ins, for the
 * trace's results only.
 */
export function withGradientsRestored<T>(
  fn: () => T,
  reached?: { leaves: GradientHolder[]; },
  refuseCapturedReads = false,
): T {
  const outer = journal;
  const outerReached = differentiated;
  const outerCaptured = capturedBelow;
  capturedBelow = refuseCapturedReads ? nodesMade() + 1 : null;
  const mine = new Map<GradientHolder, Owned | null>();
  const mineReached = new Set<GradientHolder>();
  journal = mine;
  differentiated = mineReached;
  try {
    return fn();
  } finally {
    journal = outer;
    differentiated = outerReached;
    capturedBelow = outerCaptured;
    if (reached !== undefined) reached.leaves = [...mineReached];
    for (const [leaf, before] of mine) restoreGradient(leaf, before);
  }
}

/** Notes, while a trace runs, that backward() gave `leaf` a gradient (see `reached` above). */
export function noteDifferentiated(leaf: GradientHolder): void {
  differentiated?.add(leaf);
}

/**
 * Called before `leaf.grad` changes: true while a trace runs (the change is undone when it
 * ends, and no scope takes the gradient let go of), false otherwise.
 */
export function noteGradientChange(leaf: GradientHolder): boolean {
  if (journal === null) return false;
  if (!journal.has(leaf)) journal.set(leaf, leaf.grad);
  return true;
}

/**
 * Whether `grad` is the gradient `leaf` had before the running jit trace began (a trace's
 * backward pass starts from none: one it inherited would be baked into the plan as a constant).
 */
export function inheritedByTrace(leaf: GradientHolder, grad: Owned | null): boolean {
  return journal !== null && grad !== null && (!journal.has(leaf) || journal.get(leaf) === grad);
}

/**
 * While a jit trace that refuses reads of captured values runs (a call's, not an export's: an
 * export embeds every captured value as it is, whatever fn does): the first node id the trace
 * made. A leaf of storage with a smaller id was made before it, a captured value.
 */
let capturedBelow: number | null = null;

/** The first node id of the running jit trace, if it refuses reads of captured values. */
export function capturedReadsRefusedBelow(): number | null {
  return capturedBelow;
}

/** Whether a jit trace is running (withGradientsRestored's `fn`). */
export function tracing(): boolean {
  return journal !== null;
}

/** The tensors jit traces fn on, in place of its arguments (see src/jit.ts). */
const standIns = new WeakSet<object>();

/** Records `t` as a jit argument's stand-in. */
export function markStandIn(t: object): void {
  standIns.add(t);
}

/** Whether `t` is a jit argument's stand-in itself (not a view of one, which fn made). */
export function isStandIn(t: object): boolean {
  return standIns.has(t);
}
