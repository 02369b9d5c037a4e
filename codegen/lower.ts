// Lowering: an IR node evaluated at a symbolic index becomes a kernel expression. This is where
// movement ops stop being nodes: each is an index function that rewrites the index it is read
// at (and may add a validity predicate, for pad and unfoldTranspose), so a chain of views costs
// nothing but index arithmetic. Nodes the schedule materializes, and buffers, become loads.
//
// Rules:
// - elementwise ops lower their sources at the same index;
// - a reduce over axes becomes nested `reduce` expressions, one fresh loop variable per axis,
//   the last (contiguous) axis innermost;
// - reshape goes through the flat index; the builder folds the div/mod away when the axes merge
//   or split cleanly;
// - pad reads `valid ? x[i - before] : value`; any boolean predicate is allowed, so adjoint views
//   such as unfoldTranspose (`0 <= i - s < L*step`, divisible by step) fit the same scheme.

import type { Node, PadArg, UnfoldArg, UnfoldTransposeArg } from "../src/ir/node.ts";
import { stridesOf } from "../src/ir/node.ts";
import type { BinaryOp, UnaryOp } from "../src/ir/ops.ts";
import { Expr, type ExprBuilder, scalarTypeOf } from "./kernel.ts";

/** What lowering needs to know about the kernel being built. */
export interface LowerContext {
  readonly builder: ExprBuilder;
  /** Whether `node` is read from memory (a buffer or a node materialized by another kernel). */
  isLoaded(node: Node): boolean;
  /** The input slot of a loaded node (allocated on first use). */
  slotOf(node: Node): number;
  /**
   * Expressions already lowered, by node and index: the outputs of one kernel share it, so
   * what they both compute (a reduction included, whose loop variables are fresh each time it
   * is lowered) is one expression.
   */
  readonly lowered?: Map<string, Expr>;
}

/** Row-major linear index of `idx` in an array of `shape`, outer terms first (for hoisting). */
export function linearIndex(b: ExprBuilder, idx: readonly Expr[], shape: readonly number[]): Expr {
  const strides = stridesOf(shape);
  let flat = b.int(0);
  for (let i = 0; i < idx.length; i++) {
    if (shape[i] !== 1) flat = b.add(flat, b.mul(idx[i], b.int(strides[i])));
  }
  return flat;
}

/**
 * The source index of a reshape, axis group by axis group: the two shapes are cut where their
 * running products agree, so each group of output axes is flattened and split only into its
 * own source axes. Axes that keep their length map straight through (no div/mod at all), and
 * inserting or dropping length-1 axes is a renaming.
 */
export function reshapeIndex(
  b: ExprBuilder,
  at: readonly Expr[],
  outShape: readonly number[],
  srcShape: readonly number[],
): Expr[] {
  const inner: Expr[] = srcShape.map(() => b.int(0));
  let i = 0; // next output axis
  let j = 0; // next source axis
  while (i < outShape.length || j < srcShape.length) {
    // one group: the fewest axes on each side whose products agree
    const outAxes: number[] = [];
    const srcAxes: number[] = [];
    let outProduct = 1;
    let srcProduct = 1;
    const takeOut = () => (outProduct *= outShape[i], outAxes.push(i++));
    const takeSrc = () => (srcProduct *= srcShape[j], srcAxes.push(j++));
    if (i < outShape.length) takeOut();
    if (j < srcShape.length) takeSrc();
    while (outProduct !== srcProduct) {
      const outLeft = i < outShape.length;
      const srcLeft = j < srcShape.length;
      if (!outLeft && !srcLeft) break; // only with empty axes, where nothing is read
      if (outLeft && (outProduct < srcProduct || !srcLeft)) takeOut();
      else takeSrc();
    }
    if (outAxes.length === 1 && srcAxes.length === 1) {
      // an axis that keeps its length: its index passes through (no wrap: an index outside
      // the axis only occurs in lanes a validity predicate discards)
      inner[srcAxes[0]] = at[outAxes[0]];
      continue;
    }
    const flat = linearIndex(b, outAxes.map((a) => at[a]), outAxes.map((a) => outShape[a]));
    const groupShape = srcAxes.map((a) => srcShape[a]);
    const strides = stridesOf(groupShape);
    srcAxes.forEach((a, k) => {
      inner[a] = groupShape[k] === 1
        ? b.int(0)
        : b.binary("imod", b.binary("idiv", flat, b.int(strides[k])), b.int(groupShape[k]));
    });
  }
  return inner;
}

const UNARY_LOWERING: Record<UnaryOp, (b: ExprBuilder, x: Expr) => Expr> = {
  neg: (b, x) => b.unary("neg", x),
  exp: (b, x) => b.unary("exp", x),
  log: (b, x) => b.unary("log", x),
  sqrt: (b, x) => b.unary("sqrt", x),
  rsqrt: (b, x) => b.unary("rsqrt", x),
  recip: (b, x) => b.unary("recip", x),
  square: (b, x) => b.mul(x, x), // square is a product: the printers need no square op
  abs: (b, x) => b.unary("abs", x),
  relu: (b, x) => b.binary("max", x, b.constant(0, x.type)), // relu(x) = max(x, 0), NaN propagates
  sigmoid: (b, x) => b.unary("sigmoid", x),
  tanh: (b, x) => b.unary("tanh", x),
  sign: (b, x) => b.unary("sign", x),
};

const BINARY_LOWERING: Record<BinaryOp, (b: ExprBuilder, x: Expr, y: Expr) => Expr> = {
  add: (b, x, y) => b.add(x, y),
  sub: (b, x, y) => b.sub(x, y),
  mul: (b, x, y) => b.mul(x, y),
  div: (b, x, y) => b.binary("div", x, y),
  pow: (b, x, y) => b.binary("pow", x, y),
  maximum: (b, x, y) => b.binary("max", x, y),
  minimum: (b, x, y) => b.binary("min", x, y),
  // comparisons give 1 or 0 in the operands' type
  cmplt: (b, x, y) => b.select(b.lt(x, y), b.constant(1, x.type), b.constant(0, x.type)),
  cmpeq: (b, x, y) => b.select(b.binary("eq", x, y), b.constant(1, x.type), b.constant(0, x.type)),
};

/**
 * What lowering one node at one index needs: the values of `requests` (node, index) pairs, and
 * how to make the node's expression from them.
 */
interface Needs {
  readonly requests: readonly (readonly [Node, readonly Expr[]])[];
  readonly finish: (values: readonly Expr[]) => Expr;
}

/** One node at one index: needs nothing more (its expression) or its sources' values. */
function lowerStep(
  node: Node,
  at: readonly Expr[],
  isRoot: boolean,
  ctx: LowerContext,
): Expr | Needs {
  const b = ctx.builder;
  const type = scalarTypeOf(node.dtype);
  const src = node.srcs[0];
  const same = (make: (x: Expr) => Expr, inner: readonly Expr[] = at): Needs => ({
    requests: [[src, inner]],
    finish: ([x]) => make(x),
  });
  // Rule EMPTY_VALUE: a value with no elements is read only in lanes a validity predicate
  // discards or in loops of no iterations (padding an empty tensor, summing over an empty axis),
  // so it lowers to 0 with no index arithmetic (a reshape of empty axes would divide by zero)
  if (!isRoot && node.numel === 0) return b.constant(0, type);
  if (node.op === "buffer" || (!isRoot && ctx.isLoaded(node))) {
    return b.load(ctx.slotOf(node), linearIndex(b, at, node.shape), type);
  }
  switch (node.op) {
    case "const":
      return b.constant(node.arg as number, type);
    case "detach":
      return same((x) => x);
    case "cast":
      return same((x) => b.cast(x, type));
    case "affine": {
      const [scale, shift] = node.arg as [number, number];
      return same((x) => b.add(b.mul(x, b.constant(scale, type)), b.constant(shift, type)));
    }
    case "sum":
    case "max": {
      const op = node.op;
      const axes = node.arg as number[];
      const inner = [...at];
      const vars = axes.map((a) => b.variable("r", src.shape[a]));
      axes.forEach((a, i) => (inner[a] = vars[i]));
      return same((body) => {
        for (let i = vars.length - 1; i >= 0; i--) body = b.reduce(op, vars[i], body);
        return body;
      }, inner);
    }
    case "reshape":
      return same((x) => x, reshapeIndex(b, at, node.shape, src.shape));
    case "permute": {
      const inner = new Array<Expr>(at.length);
      (node.arg as number[]).forEach((p, i) => (inner[p] = at[i]));
      return same((x) => x, inner);
    }
    case "expand":
      return same((x) => x, at.map((e, i) => (src.shape[i] === 1 ? b.int(0) : e)));
    case "shrink": {
      const ranges = node.arg as [number, number][];
      return same((x) => x, at.map((e, i) => b.add(e, b.int(ranges[i][0]))));
    }
    case "pad": {
      const { pads, value } = node.arg as PadArg;
      let valid = b.constant(1, "bool");
      const inner = at.map((e, i) => {
        const shifted = b.add(e, b.int(-pads[i][0]));
        valid = b.and(valid, b.and(b.le(b.int(0), shifted), b.lt(shifted, b.int(src.shape[i]))));
        return shifted;
      });
      // every lane padding (a shrink of the padded rows alone): the source is never read, and
      // its index arithmetic, folded in such a lane, could pass 2^53 and fail the kernel
      if (valid.isConst(0)) return b.constant(value, type);
      return same((x) => b.select(valid, x, b.constant(value, type)), inner);
    }
    case "unfoldDim": {
      const { dim, step } = node.arg as UnfoldArg;
      const inner = at.slice(0, -1);
      // one window: its index is 0, whatever the step (a step of 2^27 in two nested unfolds
      // multiplied to an index constant of 2^54, an Error, for a view of 5 elements)
      inner[dim] = node.shape[dim] === 1
        ? at[at.length - 1]
        : b.add(b.mul(at[dim], b.int(step)), at[at.length - 1]);
      return same((x) => x, inner);
    }
    case "unfoldTranspose": {
      const { dim, step } = node.arg as UnfoldTransposeArg;
      const windows = src.shape[dim];
      const offset = b.sub(at[dim], at[at.length - 1]);
      let valid = b.and(b.le(b.int(0), offset), b.lt(offset, b.int((windows - 1) * step + 1)));
      if (step > 1) {
        valid = b.and(valid, b.binary("eq", b.binary("imod", offset, b.int(step)), b.int(0)));
      }
      const inner = [...at];
      inner[dim] = step > 1 ? b.binary("idiv", offset, b.int(step)) : offset;
      return same((x) => b.select(valid, x, b.constant(0, type)), inner);
    }
    default: {
      if (node.srcs.length === 1) return same((x) => UNARY_LOWERING[node.op as UnaryOp](b, x));
      return {
        requests: [[src, at], [node.srcs[1], at]],
        finish: ([x, y]) => BINARY_LOWERING[node.op as BinaryOp](b, x, y),
      };
    }
  }
}

/**
 * Lowers `root` (computed here, not loaded) at the index `idx`. Iterative (an explicit stack,
 * sources in order, depth first, as a recursion would go), so graphs of any depth lower.
 */
export function lowerKernelValue(root: Node, idx: readonly Expr[], ctx: LowerContext): Expr {
  const memo = ctx.lowered ?? new Map<string, Expr>();
  const keyOf = (node: Node, at: readonly Expr[]) => `${node.id}@${at.map((e) => e.id).join(",")}`;
  interface Frame {
    readonly node: Node;
    readonly at: readonly Expr[];
    readonly key: string;
    needs?: Needs;
  }
  const rootKey = keyOf(root, idx);
  const stack: Frame[] = [{ node: root, at: idx, key: rootKey }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame.needs === undefined) {
      if (memo.has(frame.key)) {
        stack.pop();
        continue;
      }
      const step = lowerStep(frame.node, frame.at, frame.key === rootKey, ctx);
      if (step instanceof Expr) {
        memo.set(frame.key, step);
        stack.pop();
        continue;
      }
      frame.needs = step;
    }
    const keys = frame.needs.requests.map(([n, at]) => keyOf(n, at));
    const missing = keys.findIndex((k) => !memo.has(k));
    if (missing >= 0) {
      const [node, at] = frame.needs.requests[missing];
      stack.push({ node, at, key: keys[missing] });
      continue;
    }
    memo.set(frame.key, frame.needs.finish(keys.map((k) => memo.get(k)!)));
    stack.pop();
  }
  return memo.get(rootKey)!;
}
