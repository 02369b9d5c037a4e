// IR nodes: immutable and hash-consed, so structurally equal nodes are the same object and a
// node (or its key) can key every cache of what is compiled from it. The constructors below
// hold the shape and dtype rule of each op; they assume validated arguments (the Tensor layer
// validates user input and words the errors) and only guard their own invariants.
// Ideas from tinygrad's UOp (hash-consed graph nodes) and jax's abstract evaluation rules.

import { type DType, floatOf, promote } from "./dtype.ts";
import { topoSort } from "./graph.ts";
import { HASH_SEED, mix, mixArg, mixNumber, mixText, sameArg, sameShape } from "./hash.ts";
import {
  BINARY_OPS,
  type BinaryOp,
  isBinary,
  isUnary,
  type Op,
  type ReduceOp,
  UNARY_OPS,
  type UnaryOp,
} from "./ops.ts";

/** What a `buffer` node points at: realized storage, identified by a unique id. */
export interface BufferRef {
  /** Unique per storage; part of the node key. */
  readonly id: number;
}

/** Arguments of `pad`: per-axis `[before, after]` (non-negative) and the fill value. */
export interface PadArg {
  readonly pads: readonly (readonly [number, number])[];
  readonly value: number;
}

/** Arguments of `unfoldDim`: `out[.., l, .., s] = in[.., l*step + s, ..]`, window axis last. */
export interface UnfoldArg {
  readonly dim: number;
  readonly size: number;
  readonly step: number;
}

/** Arguments of `unfoldTranspose`, the adjoint view of `unfoldDim` (see `unfoldTranspose`). */
export interface UnfoldTransposeArg {
  readonly dim: number;
  readonly length: number;
  readonly step: number;
}

/** A shape: non-negative integer axis lengths. */
export type Shape = readonly number[];

let nextId = 1;

// The hash-consing table: a structural hash -> the nodes of that hash, held weakly (one almost
// always). Numbers key it because a string key built per node and hashed by Map was half the
// cost of making a node (measured: ~0.45 of ~1.2 us a node, a FinalizationRegistry entry per
// node another 0.15). A collected node's entry is dropped by its finalizer. (Sweeping the whole
// table instead was cheaper per node, but deref() holds its target to the end of the task, so
// every live node a sweep walked outlived the next young-generation collection, and with it the
// storage of its value.)
const table = new Map<number, WeakRef<Node> | WeakRef<Node>[]>();
const collected = new FinalizationRegistry<number>(dropDead);

/** A hash of each op and dtype name, computed once. */
const nameHashes = new Map<string, number>();
function nameHash(hash: number, name: string): number {
  let h = nameHashes.get(name);
  if (h === undefined) nameHashes.set(name, h = mixText(HASH_SEED, name));
  return mix(hash, h);
}

/** One immutable, hash-consed IR node. Create nodes with the functions of this module. */
export class Node {
  /** Unique, increasing; a node's sources always have smaller ids. */
  readonly id: number;
  private constructor(
    readonly op: Op,
    readonly srcs: readonly Node[],
    readonly arg: unknown,
    readonly shape: Shape,
    readonly dtype: DType,
    /**
     * The hash of op, dtype, shape and arg (not the sources): a graph's structural hash mixes
     * these (plans are cached by structure). A detach node's tag is left out, as in `structure`.
     */
    readonly structureHash: number,
    /** The hash of the structure and the sources: the key of the hash-consing table. */
    private readonly hash: number,
  ) {
    this.id = nextId++;
  }

  #structure: string | undefined;

  /**
   * Tensor handles counted on this node: src/ownership.ts's bookkeeping, not part of the
   * structure. A field, because a WeakMap entry per tensor was 8% of a small eager call.
   */
  handles = 0;
  /**
   * Of `handles`, those of webgpu tensors: a node of constants only (a sum's gradient) is one
   * node on every device, each device storing its own value, freed when that device's last
   * handle goes.
   */
  webgpuHandles = 0;

  /**
   * The walk of runtime/realize.ts's `structureOf` that placed this node last, and its place in
   * that walk's order (-1 while its sources are walked). Bookkeeping, like `handles`: a Map of
   * places per realization was a tenth of a small cached call.
   */
  walk = 0;
  /** See `walk`. */
  place = -1;
  /** The last walk of ir/graph.ts's topoSort that reached this node (bookkeeping). */
  seen = 0;

  /**
   * Whether a realization has computed this node (as a kernel's value, stored or not):
   * runtime/checkpoint.ts's rule CHECKPOINT keeps a deep value computed a second time.
   * Bookkeeping, like `handles`.
   */
  computed = false;

  /**
   * Whether a node was ever made with this one as a source: a leaf that starts requiring grad
   * on a node graphs were built from gets a fresh one (src/tensor.ts). Bookkeeping, like
   * `handles`.
   */
  used = false;

  /**
   * Op, dtype, shape and arg without the sources: a line of a graph's structural key (plans are
   * cached by structure). A detach node's tag only makes a fresh autodiff variable unique, so it
   * is left out.
   */
  get structure(): string {
    return this.#structure ??= `${this.op} ${this.dtype}[${this.shape}] ${
      this.op === "detach" ? "" : argKey(this.arg)
    }`;
  }

  /** Number of elements. */
  get numel(): number {
    return numelOf(this.shape);
  }

  /** The node for (op, srcs, arg, shape, dtype): an existing equal node or a new one. */
  static make(op: Op, srcs: readonly Node[], arg: unknown, shape: Shape, dtype: DType): Node {
    // indexed loops here and below: shapes come both frozen and not, and a for-of over arrays
    // of several kinds ran as the generic iterator (measured: a tenth of a small eager call)
    let size = 1;
    let integral = true;
    let negativeZero = false;
    for (let i = 0; i < shape.length; i++) {
      size *= shape[i];
      integral &&= Number.isSafeInteger(shape[i]);
      negativeZero ||= Object.is(shape[i], -0);
    }
    // an axis of -0 is 0 (`expand([-0, 3])` kept [-0, 3], unequal to [0, 3] under Object.is)
    if (negativeZero) shape = shape.map((d) => d + 0);
    if (!Number.isSafeInteger(size) || !integral) {
      // an axis past 2^53 - 1 is refused even where another axis is 0 (0 elements in all)
      const count = integral ? `${size} elements` : "an axis";
      throw new RangeError(
        `${op}: the result of shape [${shape.join(", ")}] would have ${count} ` +
          `beyond 2^53 - 1, the largest count JavaScript numbers hold exactly`,
      );
    }
    const shapeHash = hashOfKind(op, shape, dtype);
    const withArg = mixArg(shapeHash, arg);
    const hash = mixSources(withArg, srcs);
    const found = table.get(hash);
    if (found !== undefined) {
      if (!Array.isArray(found)) {
        const node = found.deref();
        if (node !== undefined && node.#equals(op, srcs, arg, shape, dtype)) return node;
      } else {
        for (let i = 0; i < found.length; i++) {
          const node = found[i].deref();
          if (node !== undefined && node.#equals(op, srcs, arg, shape, dtype)) return node;
        }
      }
    }
    const node = new Node(
      op,
      Object.freeze(srcs.slice()),
      freezeDeep(arg),
      Object.isFrozen(shape) ? shape : Object.freeze(shape.slice()),
      dtype,
      op === "detach" ? shapeHash : withArg,
      hash,
    );
    for (let i = 0; i < srcs.length; i++) srcs[i].used = true;
    const ref = new WeakRef(node);
    if (found === undefined) table.set(hash, ref);
    else if (Array.isArray(found)) found.push(ref);
    else table.set(hash, [found, ref]);
    collected.register(node, hash);
    return node;
  }

  #equals(op: Op, srcs: readonly Node[], arg: unknown, shape: Shape, dtype: DType): boolean {
    if (this.op !== op || this.dtype !== dtype || !sameShape(this.shape, shape)) return false;
    if (this.srcs.length !== srcs.length || !sameArg(this.arg, arg)) return false;
    for (let i = 0; i < srcs.length; i++) if (this.srcs[i] !== srcs[i]) return false;
    return true;
  }

  /** Removes this node from the hash-consing table (see {@link unshare}). */
  static forget(node: Node): void {
    const found = table.get(node.hash);
    if (found === undefined) return;
    const live = (Array.isArray(found) ? found : [found]).filter((r) => r.deref() !== node);
    if (live.length === 0) table.delete(node.hash);
    else table.set(node.hash, live.length === 1 ? live[0] : live);
  }
}

/** The hash of op, shape and dtype. */
function hashOfKind(op: Op, shape: Shape, dtype: DType): number {
  let hash = nameHash(nameHash(HASH_SEED, op), dtype);
  for (let i = 0; i < shape.length; i++) hash = mixNumber(hash, shape[i]);
  return mix(hash, shape.length);
}

function mixSources(hash: number, srcs: readonly Node[]): number {
  for (let i = 0; i < srcs.length; i++) hash = mix(hash, srcs[i].id);
  return hash;
}

/** The key of the hash-consing table for a node of these parts (exported for tests). */
export function consHash(
  op: Op,
  srcs: readonly Node[],
  arg: unknown,
  shape: Shape,
  dtype: DType,
): number {
  return mixSources(mixArg(hashOfKind(op, shape, dtype), arg), srcs);
}

/** Drops the entries of `hash` whose nodes were collected (a node's finalizer). */
function dropDead(hash: number): void {
  const found = table.get(hash);
  if (found === undefined) return;
  if (!Array.isArray(found)) {
    if (found.deref() === undefined) table.delete(hash);
    return;
  }
  const live = found.filter((r) => r.deref() !== undefined);
  if (live.length === 0) table.delete(hash);
  else table.set(hash, live.length === 1 ? live[0] : live);
}

/**
 * The hash-consing table: its hashes, and the entries that share a hash with another (live
 * nodes, and dead ones not swept yet).
 */
export function hashConsStats(): { hashes: number; sharedEntries: number; } {
  let sharedEntries = 0;
  for (const found of table.values()) if (Array.isArray(found)) sharedEntries += found.length;
  return { hashes: table.size, sharedEntries };
}

/** How many nodes have been made so far (ids are consecutive): a measure of graph growth. */
export function nodesMade(): number {
  return nextId - 1;
}

const settledNodes = new WeakSet<Node>();
const NO_SOURCES: readonly Node[] = Object.freeze([]);

/**
 * Drops `node`'s sources: its value is stored and will never be computed again, so the graph
 * behind it can be garbage collected. Afterwards the node is a source like a buffer (graph
 * walks stop at it); its op, key and shape stay. The Tensor layer decides when this is safe
 * (see src/history.ts).
 */
export function settle(node: Node): void {
  if (node.srcs.length === 0) return;
  (node as { srcs: readonly Node[]; }).srcs = NO_SOURCES;
  settledNodes.add(node);
}

/** Whether `node` was settled: a computed node whose sources were dropped. */
export function isSettled(node: Node): boolean {
  return settledNodes.has(node);
}

/**
 * The graphs of `roots` with each node that `replace` maps replaced by its image and every node
 * above a replaced one made anew over the new sources (equal structure still shares nodes). A
 * node for which `stopAt` holds ends the walk: its sources are not visited, and it stays as it
 * is unless `replace` maps it.
 */
export function replaceNodes(
  roots: readonly Node[],
  replace: (n: Node) => Node | undefined,
  stopAt: (n: Node) => boolean = () => false,
): Node[] {
  const done = new Map<Node, Node>();
  for (const n of topoSort(roots, stopAt)) {
    const image = replace(n) ?? (stopAt(n) ? n : undefined);
    if (image !== undefined) {
      done.set(n, image);
      continue;
    }
    const srcs = n.srcs.map((s) => done.get(s)!);
    const same = srcs.every((s, i) => s === n.srcs[i]);
    done.set(n, same ? n : Node.make(n.op, srcs, n.arg, n.shape, n.dtype));
  }
  return roots.map((r) => done.get(r)!);
}

/**
 * Stops handing out `node` for equal structure: a settled node whose value was freed cannot be
 * recomputed, so an equal computation made later must get a fresh node.
 */
export function unshare(node: Node): void {
  Node.forget(node);
}

/**
 * A text that tells args apart: numbers by their exact spelling (-0, NaN and infinities
 * included, which JSON would write as 0 or null), strings quoted, buffers by id, arrays and
 * objects recursively. Written by hand because JSON.stringify with a replacer was a tenth of a
 * small eager call.
 */
function argKey(arg: unknown): string {
  switch (typeof arg) {
    case "number":
      return Object.is(arg, -0) ? "-0" : String(arg);
    case "string":
      return JSON.stringify(arg);
    case "undefined":
      return "";
    case "object": {
      if (arg === null) return "null";
      if ("id" in arg) return `#${(arg as BufferRef).id}`;
      if (Array.isArray(arg)) {
        let text = "[";
        for (let i = 0; i < arg.length; i++) text += (i === 0 ? "" : ",") + argKey(arg[i]);
        return text + "]";
      }
      let text = "{";
      for (const [k, v] of Object.entries(arg)) {
        text += `${text === "{" ? "" : ","}${k}:${v === undefined ? "u" : argKey(v)}`;
      }
      return text + "}";
    }
    default:
      return String(arg);
  }
}

function freezeDeep<T>(value: T): T {
  if (value === null || typeof value !== "object" || "id" in value) return value;
  const parts: readonly unknown[] = Array.isArray(value) ? value : Object.values(value);
  for (let i = 0; i < parts.length; i++) freezeDeep(parts[i]);
  return Object.freeze(value);
}

/** The number of elements of a shape. */
export function numelOf(shape: Shape): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i];
  return n;
}

/** Row-major strides of a contiguous array of `shape`. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Throws an internal error saying `message()` unless `cond` (the text is built only then). */
function check(cond: boolean, message: () => string): void {
  if (!cond) throw new Error(`internal IR error: ${message()}`);
}

// ---- sources -----------------------------------------------------------------------------

/** A realized buffer of `shape` and `dtype`. */
export function buffer(ref: BufferRef, shape: Shape, dtype: DType): Node {
  return Node.make("buffer", [], ref, shape, dtype);
}

/** The scalar `value` broadcast to `shape` (an int32 -0 is 0: integers have no -0). */
export function constant(value: number, shape: Shape, dtype: DType): Node {
  // (kernels hold an int32 -0 as 0 while the reference evaluator kept -0: int32 x / -0 had
  // infinities of opposite signs in the two)
  return Node.make("const", [], dtype === "int32" && value === 0 ? 0 : value, shape, dtype);
}

// ---- elementwise -------------------------------------------------------------------------

/** A unary elementwise op; float-only ops promote int32 to float32. */
export function unary(op: UnaryOp, x: Node): Node {
  check(isUnary(op), () => `unknown unary op ${op}`);
  const dtype = UNARY_OPS[op].float ? floatOf(x.dtype) : x.dtype;
  return Node.make(op, [castTo(x, dtype)], null, x.shape, dtype);
}

/** A binary elementwise op on operands of equal shape, computed in their promoted dtype. */
export function binary(op: BinaryOp, a: Node, b: Node): Node {
  check(isBinary(op), () => `unknown binary op ${op}`);
  check(sameShape(a.shape, b.shape), () => `${op} of shapes [${a.shape}] and [${b.shape}]`);
  const common = promote(a.dtype, b.dtype);
  const dtype = BINARY_OPS[op].float ? floatOf(common) : common;
  return Node.make(op, [castTo(a, dtype), castTo(b, dtype)], null, a.shape, dtype);
}

/** `x * scale + shift` with scalar constants (promotes int32 to float32). */
export function affine(x: Node, scale: number, shift: number): Node {
  const dtype = floatOf(x.dtype);
  return Node.make("affine", [castTo(x, dtype)], [scale, shift], x.shape, dtype);
}

/** `x` converted to `dtype` (the node itself when it already has it). */
export function castTo(x: Node, dtype: DType): Node {
  return x.dtype === dtype ? x : Node.make("cast", [x], null, x.shape, dtype);
}

let nextVariable = 1;

/**
 * `x` with gradients stopped: evaluates to x, differentiates to nothing (x itself when it is a
 * plain detach already). With `fresh`, a node equal to no other (its arg is a unique tag): an
 * autodiff variable, whose identity hash-consing must not share, and which detaching again
 * wraps rather than returns. The tag is not part of a plan's structure.
 */
export function detach(x: Node, fresh = false): Node {
  if (!fresh && x.op === "detach" && x.arg === null) return x;
  return Node.make("detach", [x], fresh ? nextVariable++ : null, x.shape, x.dtype);
}

// ---- reductions --------------------------------------------------------------------------

/** Reduces `axes` with `op`; the reduced axes keep length 1 (reshape to drop them). */
export function reduce(op: ReduceOp, x: Node, axes: readonly number[]): Node {
  const sorted = axes.length === 1 ? [axes[0]] : [...new Set(axes)].sort((p, q) => p - q);
  check(
    sorted.every((a) => a >= 0 && a < x.shape.length),
    () => `reduce axes ${axes} of rank ${x.shape.length}`,
  );
  if (sorted.length === 0) return x;
  const shape = x.shape.map((d, i) => (sorted.includes(i) ? 1 : d));
  return Node.make(op, [x], sorted, shape, x.dtype);
}

// ---- movement ----------------------------------------------------------------------------

/** The same elements in a new shape of equal size. */
export function reshape(x: Node, shape: Shape): Node {
  check(numelOf(shape) === x.numel, () => `reshape [${x.shape}] to [${shape}]`);
  if (sameShape(shape, x.shape)) return x;
  return Node.make("reshape", [x], null, shape, x.dtype);
}

/** Axes reordered: output axis i is input axis `perm[i]`. */
export function permute(x: Node, perm: readonly number[]): Node {
  check(
    perm.length === x.shape.length && new Set(perm).size === perm.length,
    () => `permute ${perm}`,
  );
  if (perm.every((p, i) => p === i)) return x;
  return Node.make("permute", [x], perm, perm.map((p) => x.shape[p]), x.dtype);
}

/** Axes of length 1 repeated to `shape` (same rank). */
export function expand(x: Node, shape: Shape): Node {
  check(expandable(x.shape, shape), () => `expand [${x.shape}] to [${shape}]`);
  if (sameShape(shape, x.shape)) return x;
  return Node.make("expand", [x], null, shape, x.dtype);
}

function expandable(from: Shape, to: Shape): boolean {
  if (from.length !== to.length) return false;
  for (let i = 0; i < from.length; i++) if (from[i] !== to[i] && from[i] !== 1) return false;
  return true;
}

/** Each axis extended by `[before, after]` elements of `value` (non-negative amounts). */
export function pad(x: Node, pads: readonly (readonly [number, number])[], value = 0): Node {
  check(
    pads.length === x.shape.length && pads.every(([b, a]) => b >= 0 && a >= 0),
    () => `pad ${pads}`,
  );
  if (pads.every(([b, a]) => b === 0 && a === 0)) return x;
  const shape = x.shape.map((d, i) => d + pads[i][0] + pads[i][1]);
  return Node.make("pad", [x], { pads: pads.map(([b, a]) => [b, a]), value }, shape, x.dtype);
}

/** Each axis cut to `[start, end)`. */
export function shrink(x: Node, ranges: readonly (readonly [number, number])[]): Node {
  check(
    ranges.length === x.shape.length &&
      ranges.every(([s, e], i) => 0 <= s && s <= e && e <= x.shape[i]),
    () => `shrink ${ranges} of [${x.shape}]`,
  );
  if (ranges.every(([s, e], i) => s === 0 && e === x.shape[i])) return x;
  return Node.make(
    "shrink",
    [x],
    ranges.map(([s, e]) => [s, e]),
    ranges.map(([s, e]) => e - s),
    x.dtype,
  );
}

/**
 * Sliding windows along `dim`: that axis becomes `L = floor((n - size) / step) + 1` and a new
 * last axis of length `size` is added; `out[.., l, .., s] = in[.., l*step + s, ..]`.
 */
export function unfoldDim(x: Node, dim: number, size: number, step: number): Node {
  const n = x.shape[dim];
  check(
    size >= 1 && step >= 1 && size <= n,
    () => `unfoldDim size ${size} step ${step} of length ${n}`,
  );
  const shape = [...x.shape];
  shape[dim] = Math.floor((n - size) / step) + 1;
  shape.push(size);
  return Node.make("unfoldDim", [x], { dim, size, step }, shape, x.dtype);
}

/**
 * The adjoint view of `unfoldDim`: from windows `g` of shape `[.., L, .., size]` it gives
 * `[.., length, .., size]` with `out[.., i, .., s] = g[.., (i - s) / step, .., s]` where that
 * is a whole window index in `[0, L)`, else 0. Summing its last axis is the gradient of
 * `unfoldDim`: a gather (masked reduction), never a scatter.
 */
export function unfoldTranspose(g: Node, dim: number, length: number, step: number): Node {
  const shape = [...g.shape];
  shape[dim] = length;
  return Node.make("unfoldTranspose", [g], { dim, length, step }, shape, g.dtype);
}
