// tidy() and keep(), TensorFlow.js's convention for scoped memory: `tidy(fn)` disposes every
// tensor created while `fn` runs, except the ones it returns (alone, or in arrays, plain objects,
// Maps and Sets, nested) and the ones passed to `keep`. Scopes nest: what an inner tidy returns
// belongs to the enclosing one. Gradients that backward() stores in a leaf's `grad` belong to
// the leaf while it holds them and lives, and an optimizer's state tensors to the optimizer; a
// gradient the library lets go of while a scope is open (zeroGrad, a later sum replacing it, its
// leaf disposed by the scope) is the scope's to dispose (src/ownership.ts).
//
// Tensors are lazy, so a returned (or kept) tensor may not be computed yet and still need the
// storage of a tensor the scope is about to dispose (`tidy(() => lrn.forward(randn(...)))`).
// Such results are computed when the scope closes, before anything is disposed (on webgpu the computation is
// started and holds its inputs until it is done); results that need nothing disposed stay lazy.
//
// fn must be synchronous. A scope is open exactly while fn runs, and nothing marks which tensors
// an async function creates after its first await (other code runs in between), so an async fn
// is refused before it runs; await outside, tidy the synchronous tensor code.

import { ignoreRejection, isAsyncFunction, isPromiseLike } from "./autodiff.ts";
import type { Node } from "./ir/node.ts";
import {
  keepForever,
  keptOrHeld,
  lastingHandleCount,
  openScope,
  type Owned,
  tracing,
} from "./ownership.ts";
import { abandonedBy, awaitsStoring } from "./pending.ts";
import { computeReadersOf } from "./realization.ts";
import { DEVICES } from "./runtime/device.ts";
import { realizedBuffer } from "./runtime/realize.ts";
import { isTensor, nodeOf, type Tensor } from "./tensor.ts";
import { described, fail, failDisposed, isPlainObject } from "./validate.ts";

/**
 * Runs `fn` and disposes every tensor it created, except those it returns (a tensor, or
 * arrays, plain objects, Maps and Sets of them) and those passed to `keep`. Returns what `fn`
 * returned. Nested calls work; `fn` must be synchronous (an async function is refused).
 *
 * @example
 * ```ts
 * import { randn, tidy } from "@lucid/nn";
 * const x = randn(1000);
 * const y = tidy(() => x.mul(2).exp().sum()); // the intermediates are disposed
 * console.log(await y.item());
 * y.dispose();
 * ```
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== "function") fail("tidy", "fn must be a function", fn);
  if (isAsyncFunction(fn)) {
    fail(
      "tidy",
      "fn must be synchronous (await outside tidy, then tidy the tensor code)",
      described("an async function"),
    );
  }
  // inside a jit trace, fn's tensors are graph over stand-ins and constants the plan keeps:
  // nothing to compute or dispose (computing what the result needs read the stand-ins)
  if (tracing()) return fn();
  const close = openScope();
  // what the scope keeps is computed like what it returns, before what it reads is disposed
  // (a kept running average that reads a tensor of the scope was left unreadable), also when
  // fn throws (it was not: a kept tensor became unreadable because the step failed)
  const closeKeeping = (survivors: ReadonlySet<Owned>) =>
    close(
      survivors,
      (doomed, keptHere) => computeWhatNeeds(new Set([...survivors, ...keptHere]), doomed),
    );
  let result: T;
  let survivors: Set<Owned>;
  try {
    result = fn();
    if (isPromiseLike(result)) {
      ignoreRejection(result);
      fail(
        "tidy",
        "fn must be synchronous (await outside tidy, then tidy the tensor code)",
        described("a function returning a Promise"),
      );
    }
    // walking the result may throw too (a getter): the scope closes either way, else it stayed
    // open for good and every scope after it failed to close in order
    survivors = tensorsIn(result);
  } catch (e) {
    closeKeeping(new Set());
    throw e;
  }
  closeKeeping(survivors);
  return result;
}

/**
 * Disposes each tensor of `made` (the library's temporaries, see ownership.ts's recordCreated)
 * whose disposal frees nothing: not kept, not held (a gradient), and not the last handle on a
 * stored value or on an assignment not computed yet. The others are left as they were, to an
 * enclosing scope or to garbage collection: freeing a value now would compute the lazy values
 * the library protects that read it (an optimizer's pending update), early, and that frees what
 * they replace under a lazy loss that still reads it.
 */
export function disposeTemporaries(made: readonly Owned[]): void {
  for (const t of made) {
    if (!isTensor(t) || t.isDisposed || keptOrHeld(t)) continue;
    const node = nodeOf(t);
    if (lastingHandleCount(node, t.device) <= 1) {
      if (realizedBuffer(node, t.device) !== undefined || awaitsStoring(node)) continue;
    }
    t.dispose();
  }
}

/** Computes the `results` (and protected lazy values) whose graphs read a `doomed` tensor's storage. */
function computeWhatNeeds(results: ReadonlySet<Owned>, doomed: readonly Owned[]): void {
  const lazy = [...results].filter((t): t is Tensor => isTensor(t) && !t.isDisposed);
  for (const device of DEVICES) {
    // the values whose storage disposing the doomed frees: every handle on the node is doomed
    // (a view sharing a kept tensor's value, an optimizer's learning rate say, frees nothing)
    const doomedHandles = new Map<Node, number>();
    // assignments not computed yet: disposing the last handle of one frees what it replaced
    // (a result reading that, `s.assign(s.add(x)); return s.mul(2)`, was left lazy and failed)
    const doomedAssignments = new Map<Node, number>();
    for (const t of doomed) {
      if (!isTensor(t) || t.device !== device || t.isDisposed) continue;
      const node = nodeOf(t);
      const handles = realizedBuffer(node, device) !== undefined
        ? doomedHandles
        : awaitsStoring(node)
        ? doomedAssignments
        : null; // no storage to free
      handles?.set(node, (handles.get(node) ?? 0) + 1);
    }
    // (a read, copy or call in flight holds it too, but only until it ends: left lazy, a
    // result failed once the read ended)
    const stored = new Set<Node>();
    for (const [node, count] of doomedHandles) {
      if (lastingHandleCount(node, device) <= count) stored.add(node);
    }
    for (const [node, count] of doomedAssignments) {
      if (lastingHandleCount(node, device) > count) continue;
      for (const old of abandonedBy(node).stored) {
        if (lastingHandleCount(old, device) === 0) stored.add(old);
      }
    }
    if (stored.size > 0) computeReadersOf(stored, device, lazy);
  }
}

/**
 * Exempts `t` from disposal by every tidy() scope (open now or later) and returns it.
 *
 * @example
 * ```ts
 * import { keep, randn, tidy } from "@lucid/nn";
 * let running = randn(4);
 * tidy(() => {
 *   running = keep(running.mul(0.9)); // outlives the scope without being returned
 * });
 * console.log(running.isDisposed); // false
 * ```
 */
export function keep<T extends Tensor>(t: T): T {
  if (!isTensor(t)) fail("keep", "t must be a Tensor", t);
  if (t.isDisposed) failDisposed("keep", t); // it was returned as if kept
  keepForever(t);
  return t;
}

/** The tensors in `value`: itself, or inside arrays, plain objects, Maps and Sets. */
function tensorsIn(value: unknown): Set<Owned> {
  const found = new Set<Owned>();
  const seen = new Set<unknown>();
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    // (pushed one by one: spreading 300,000 numbers overflowed the call stack)
    // arrays by index, Maps and Sets by their built-in iterators: a subclass's own iterator
    // (one yielding indices, or only values) hid results, which were then disposed
    if (isTensor(v)) found.add(v);
    else if (Array.isArray(v)) {
      const length = v.length;
      for (let i = 0; i < length; i++) stack.push(v[i]);
    } else if (isSet(v)) {
      for (const e of builtInIterator(setValues, v)) stack.push(e);
    } else if (isMap(v)) {
      for (const [k, e] of builtInIterator(mapEntries, v)) stack.push(k, e);
    } else if (isPlainObject(v)) {
      // symbol keys too: a result under a symbol was disposed
      for (const key of Reflect.ownKeys(v)) stack.push((v as Record<PropertyKey, unknown>)[key]);
    }
  }
  return found;
}

const setValues = Set.prototype.values as (this: unknown) => Iterator<unknown>;
const mapEntries = Map.prototype.entries as (this: unknown) => Iterator<[unknown, unknown]>;

/** `method` (a built-in iterator maker) on `v`, or an Error where `v` only looks like a Map / Set. */
function builtInIterator<T>(method: (this: unknown) => Iterator<T>, v: object): Iterable<T> {
  let iterator: Iterator<T>;
  try {
    iterator = method.call(v);
  } catch {
    // a Proxy of a Map passes instanceof but has no entries of its own
    return fail("tidy", "fn's result must hold tensors in arrays, plain objects, Maps or Sets", v);
  }
  return { [Symbol.iterator]: () => iterator };
}

const setHas = Set.prototype.has as (this: unknown, v: unknown) => boolean;
const mapHas = Map.prototype.has as (this: unknown, v: unknown) => boolean;

/**
 * Whether `v` is a Set of any realm (an iframe's, a `node:vm` context's: this realm's
 * `instanceof` missed them, and their tensors were disposed), subclasses, tagged ones and ones
 * given another prototype included: by brand (Set's own `has` on it), asked only of what may be
 * one (it has `has` and `add`, or no prototype at all), since a brand check throws for
 * everything else, and two exceptions per record made tidy 20x slower. (Node's `util.types`
 * would answer without throwing, but loading it cost Deno 13-25 ms at the first tidy.) A Set
 * whose prototype was replaced by one without those methods is taken for an object.
 */
function isSet(v: object): boolean {
  if (v instanceof Set) return true;
  return mayBe(v, "add") && hasBrand(setHas, v);
}

/** Whether `v` is a Map of any realm (as `isSet`: it has `has` and `set`, or no prototype). */
function isMap(v: object): boolean {
  if (v instanceof Map) return true;
  return mayBe(v, "set") && hasBrand(mapHas, v);
}

/** Whether `v` may be a Set (`adds` "add") or a Map ("set"): see `isSet`. */
function mayBe(v: object, adds: string): boolean {
  if (Object.getPrototypeOf(v) === null) return true;
  const methods = v as Record<string, unknown>;
  return typeof methods.has === "function" && typeof methods[adds] === "function";
}

/** Whether the built-in `method` (Set's or Map's `has`) accepts `v`: its internal slot. */
function hasBrand(method: (this: unknown, v: unknown) => boolean, v: object): boolean {
  try {
    method.call(v, undefined);
    return true;
  } catch {
    return false;
  }
}
