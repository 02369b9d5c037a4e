// The kernel IR: what one generated kernel computes, independent of the target it is compiled
// for. A kernel has an output shape with one loop variable per axis and one scalar expression
// for the element at that index. Expressions are hash-consed DAGs over loop variables,
// constants, loads from input buffers and ALU ops; a `reduce` expression owns a loop variable,
// an accumulator and the expression that combines the accumulator with the body (reductions
// nest, and several may sit side by side). Every integer expression carries a value range, so
// the rewrite rules can fold predicates and index arithmetic.
//
// Index arithmetic has its own scalar type, `index`: exact integers (targets print it as i32
// where every range fits, JavaScript as plain numbers, exact to 2^53), never wrapping. `i32`
// is int32 tensor data, which wraps. The two never mix.
//
// The builder applies the rules of the tables below as each expression is made (tinygrad's
// PatternMatcher in spirit): constant folding, algebraic identities exact in IEEE arithmetic,
// constant-exponent pow, select hoisting, range folding of comparisons and of div/mod, and,
// for reductions, turning a validity predicate affine in the loop variable into loop bounds.

import type { Shape } from "../src/ir/node.ts";
import { type DType, INT32_MAX, INT32_MIN } from "../src/ir/dtype.ts";
import { BINARY_REFERENCE, UNARY_REFERENCE } from "../src/ir/reference.ts";
import { topoSort } from "../src/ir/graph.ts";

/** The scalar type of an expression: float data, int32 data, bool, or an exact index. */
export type ScalarType = "f32" | "f64" | "i32" | "bool" | "index";

/** The scalar type that holds elements of `dtype`. */
export function scalarTypeOf(dtype: DType): ScalarType {
  return dtype === "float32" ? "f32" : dtype === "float64" ? "f64" : "i32";
}

/**
 * Unary ALU ops. `trunc` rounds toward zero; `isnan` (bool) tests a float's bits, which a driver
 * cannot fold away as it may fold `x != x`; the rest are named as in the IR. Targets lacking
 * one get it rewritten by `decompose` (targets.ts).
 */
export type KUnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "rsqrt"
  | "recip"
  | "abs"
  | "sigmoid"
  | "tanh"
  | "sign"
  | "trunc"
  | "isnan"
  | "not";

/**
 * Binary ALU ops. `max min pow` have JavaScript's semantics (NaN propagates; `pow` defined for
 * every base); `fmax fmin` may return either operand when one is NaN and `ppow` is `pow` for
 * positive bases, which is what some targets have natively. `idiv imod` are floor division
 * and remainder, `tdiv tmod` truncating ones. `lt le eq` give bool; `and` takes bools.
 */
export type KBinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "ppow"
  | "max"
  | "min"
  | "fmax"
  | "fmin"
  | "lt"
  | "le"
  | "eq"
  | "and"
  | "idiv"
  | "imod"
  | "tdiv"
  | "tmod";

/** Every expression op: sources, selection, reduction, casts and ALU ops. */
export type ExprOp =
  | "const"
  | "var"
  | "acc"
  | "load"
  | "select"
  | "reduce"
  | "cast"
  | KUnaryOp
  | KBinaryOp;

/** A loop variable: output axis or reduction. */
export interface VarArg {
  /** The variable's name in generated code (`o0`, `r3`). */
  readonly name: string;
  /** It ranges over `[0, extent)`. */
  readonly extent: number;
}

/** How a reduction combines values. */
export type ReduceOp = "sum" | "max";

/**
 * What a `reduce` expression does: for `v` in `[lo, hi)` (its sources 1 and 2) it sets `acc`
 * to its source 0, the combine expression `acc (op) body` (body: source 3), starting from the
 * identity.
 */
export interface ReduceArg {
  /** How values combine. */
  readonly op: ReduceOp;
  /** The loop variable the reduction owns. */
  readonly v: Expr;
  /** The accumulator: an `acc` leaf read by the combine expression. */
  readonly acc: Expr;
}

/** One hash-consed scalar expression. Make them with an {@link ExprBuilder}. */
export class Expr {
  /** Made only by {@link ExprBuilder}, which hash-conses. */
  constructor(
    /** The operation. */
    readonly op: ExprOp,
    /** Operands. */
    readonly srcs: readonly Expr[],
    /** A constant's value, a load's slot, a variable's VarArg, a reduction's ReduceArg. */
    readonly arg: unknown,
    /** Scalar type of the value. */
    readonly type: ScalarType,
    /** Unique within its builder; an expression's sources have smaller ids. */
    readonly id: number,
    /** Smallest value (integers and bools; -Infinity for floats). */
    readonly min: number,
    /** Largest value (integers and bools; Infinity for floats). */
    readonly max: number,
  ) {
    // facts about the whole DAG below, kept bottom-up: asked once per term of every index
    // comparison, a walk of the DAG each time made long chains of views compile in
    // quadratic time (6,000 pad/permute steps: 20 s)
    let innermost = op === "var" ? id : -1;
    let divMod = op === "idiv" || op === "imod";
    for (const s of srcs) {
      if (s.innermostVar > innermost) innermost = s.innermostVar;
      divMod ||= s.hasDivMod;
    }
    this.innermostVar = innermost;
    this.hasDivMod = divMod;
  }

  /** The id of the innermost (last made) loop variable this mentions, -1 for none. */
  readonly innermostVar: number;
  /** Whether an integer division or modulo is among this and what it is computed from. */
  readonly hasDivMod: boolean;
  /** This index as linear terms, once worked out (see `termsOf`); undefined before. */
  terms: ReadonlyMap<Expr, number> | null | undefined = undefined;

  /** The value of a `const`. */
  get value(): number {
    return this.arg as number;
  }

  /** Whether this is a constant (optionally equal to `v`, with -0 equal to 0 and NaN to NaN). */
  isConst(v?: number): boolean {
    return this.op === "const" && (v === undefined || this.arg === v || Object.is(this.arg, v));
  }
}

/** The body of a `reduce` expression (what each iteration combines into the accumulator). */
export function reduceBody(e: Expr): Expr {
  return e.srcs[3];
}

/** One kernel, before it is compiled for a target. */
export interface Kernel {
  /** A readable name saying what the kernel computes (its ops), not where it sits in a plan. */
  readonly name: string;
  /** The kernel's header: what it computes, in words and in IR ops. */
  readonly comment: string;
  /** Shape of the outputs (one loop nest writes them all). */
  readonly outShape: Shape;
  /** One variable per output axis, outermost first. */
  readonly outVars: readonly Expr[];
  /** What the kernel writes, each into a buffer of its own (most kernels write one). */
  readonly outputs: readonly KernelOutput[];
  /** The row-major position of the element at `outVars` in every output buffer. */
  readonly outIndex: Expr;
  /** Input buffers in slot order: element type and shape. */
  readonly inputs: readonly KernelInput[];
  /** The builder that made the expressions (rewrites of the kernel continue with it). */
  readonly builder: ExprBuilder;
}

/** One output of a kernel. */
export interface KernelOutput {
  /** Element type of its buffer. */
  readonly type: ScalarType;
  /** The element at the index given by the kernel's `outVars`. */
  readonly value: Expr;
}

/** The roots of a kernel's expressions: every output's value, then the output index. */
export function kernelRoots(kernel: Kernel): Expr[] {
  return [...kernel.outputs.map((o) => o.value), kernel.outIndex];
}

/**
 * The name of output `k` of a kernel that writes `count`, in every backend's source and in
 * exports: `out` when there is one, else `out0`, `out1`, ...
 */
export function outputName(k: number, count: number): string {
  return count === 1 ? "out" : `out${k}`;
}

/** One input buffer of a kernel. */
export interface KernelInput {
  /** Element type. */
  readonly type: ScalarType;
  /** Shape of the tensor the buffer holds (row-major). */
  readonly shape: Shape;
  /** Number of elements. */
  readonly numel: number;
}

/** The largest magnitude an index may reach: JavaScript numbers are exact integers up to it. */
export const MAX_EXACT_INDEX = Number.MAX_SAFE_INTEGER;

/** The identity element of a reduction. */
export function reduceIdentity(op: ReduceOp, type: ScalarType): number {
  return op === "sum" ? 0 : type === "i32" ? INT32_MIN : -Infinity;
}

/** Whether values of `type` are integers (bools included). */
export const isIntType = (t: ScalarType): boolean => t === "i32" || t === "bool" || t === "index";

/** Whether `e` is int32 data whose range may leave int32 (so the result must wrap). */
export function mayWrap(e: Expr): boolean {
  return e.type === "i32" && (e.min <= INT32_MIN || e.max >= INT32_MAX);
}

/** Whether floor and truncating division of `a` by `b` agree: `a >= 0` and `b > 0`. */
export function truncIsFloor(a: Expr, b: Expr): boolean {
  return a.min >= 0 && b.min > 0;
}

// Constant folding: the float64 meaning of each ALU op, taken from the reference evaluator
// where the IR has the op; integer results are wrapped or checked by `constant`.
const FOLD_UNARY: Record<KUnaryOp, (x: number) => number> = {
  neg: UNARY_REFERENCE.neg,
  exp: UNARY_REFERENCE.exp,
  log: UNARY_REFERENCE.log,
  sqrt: UNARY_REFERENCE.sqrt,
  rsqrt: UNARY_REFERENCE.rsqrt,
  recip: UNARY_REFERENCE.recip,
  abs: UNARY_REFERENCE.abs,
  sigmoid: UNARY_REFERENCE.sigmoid,
  tanh: UNARY_REFERENCE.tanh,
  sign: UNARY_REFERENCE.sign,
  trunc: Math.trunc,
  isnan: (x) => (Number.isNaN(x) ? 1 : 0),
  not: (x) => (x ? 0 : 1),
};
const FOLD_BINARY: Record<KBinaryOp, (a: number, b: number) => number> = {
  add: BINARY_REFERENCE.add,
  sub: BINARY_REFERENCE.sub,
  mul: BINARY_REFERENCE.mul,
  div: BINARY_REFERENCE.div,
  pow: BINARY_REFERENCE.pow,
  ppow: BINARY_REFERENCE.pow,
  max: BINARY_REFERENCE.maximum,
  min: BINARY_REFERENCE.minimum,
  fmax: BINARY_REFERENCE.maximum,
  fmin: BINARY_REFERENCE.minimum,
  lt: BINARY_REFERENCE.cmplt,
  le: (a, b) => (a <= b ? 1 : 0),
  eq: BINARY_REFERENCE.cmpeq,
  and: (a, b) => (a && b ? 1 : 0),
  idiv: (a, b) => Math.floor(a / b),
  imod: (a, b) => a - Math.floor(a / b) * b,
  tdiv: (a, b) => Math.trunc(a / b),
  tmod: (a, b) => a - Math.trunc(a / b) * b,
};

/**
 * Constant exponents of `pow` rewritten as sqrt / reciprocal forms (compile-time
 * specialization). Each entry builds `x ** e` from cheaper, at least as accurate, operations.
 */
const POW_FORMS: ReadonlyMap<number, (b: ExprBuilder, x: Expr) => Expr> = new Map<
  number,
  (b: ExprBuilder, x: Expr) => Expr
>([
  [1, (_b, x) => x], // x ** 1 = x
  [2, (b, x) => b.mul(x, x)], // x ** 2 = x * x
  [3, (b, x) => b.mul(b.mul(x, x), x)], // x ** 3 = x * x * x
  [0.5, (b, x) => b.unary("sqrt", x)], // x ** 0.5 = sqrt(x)
  [0.25, (b, x) => b.unary("sqrt", b.unary("sqrt", x))], // x ** 0.25 = sqrt(sqrt(x))
  [0.75, (b, x) => b.mul(b.unary("sqrt", x), b.unary("sqrt", b.unary("sqrt", x)))], // x**0.5 * x**0.25
  [-0.5, (b, x) => b.unary("rsqrt", x)], // x ** -0.5 = 1 / sqrt(x)
  [-0.25, (b, x) => b.unary("recip", b.unary("sqrt", b.unary("sqrt", x)))], // x ** -0.25 = 1 / sqrt(sqrt(x)): shares sqrt(sqrt(x)) with x ** 0.75 (LRN's backward has both)
  [-0.75, (b, x) => b.mul(b.unary("rsqrt", x), b.unary("sqrt", b.unary("rsqrt", x)))], // x**-0.5 * x**-0.25: no overflow of x**1.5
  [-1, (b, x) => b.unary("recip", x)], // x ** -1 = 1 / x
  [-2, (b, x) => b.mul(b.unary("recip", x), b.unary("recip", x))], // (1 / x) ** 2: x * x would overflow where x ** -2 is still a float (1 / 1.9e19 ** 2 is 2.8e-39)
  [-3, (b, x) => b.mul(b.mul(b.unary("recip", x), b.unary("recip", x)), b.unary("recip", x))], // (1 / x) ** 3: x ** -2's gradient
  [1.5, (b, x) => b.mul(x, b.unary("sqrt", x))], // x * sqrt(x)
  [-1.5, (b, x) => b.mul(b.unary("rsqrt", x), b.unary("recip", x))], // x ** -0.5 / x: x ** -0.5's gradient
]);

/**
 * `x ** exponent` in the cheaper form of POW_FORMS, or null for an exponent it lacks. Applied
 * by `decompose` (targets.ts), after the rules had every pow of a kernel to combine.
 */
export function powForm(b: ExprBuilder, x: Expr, exponent: number): Expr | null {
  return POW_FORMS.get(exponent)?.(b, x) ?? null;
}

/** Whether `x ** exponent` has a POW_FORMS spelling (no general pow needed). */
export function hasPowForm(exponent: number): boolean {
  return POW_FORMS.has(exponent);
}

/** Factors of a product flattened (at most this many; a longer product is left as it is). */
const MAX_PRODUCT_FACTORS = 16;

/** A pow by a constant among the factors of a product, or a division by one (`a / b ** c`). */
interface PowFactor {
  readonly base: Expr;
  /** The exponent as a factor: negated for a division. */
  readonly exponent: number;
  /** Whether it is a division by the pow (which costs a division besides the pow). */
  readonly division: boolean;
  /** The factor: the pow, or the division (`a / b ** c`) that is one value of its own. */
  readonly expr: Expr;
  /** Whether it is an earlier output (ExprBuilder.opaque): it is reused, never merged. */
  readonly opaque: boolean;
  /** The operand of the product it is a factor of: 0 for `x`, 1 for `y`. */
  readonly side: 0 | 1;
}

/** Whether `e` is a pow by a constant other than 0. */
const isConstPow = (e: Expr) => e.op === "pow" && e.srcs[1].isConst() && e.srcs[1].value !== 0;

/** What an op of a POW_FORMS spelling costs: the divide unit's ops dearest, the rest 1. */
const FORM_OP_COST: Partial<Record<ExprOp, number>> = { sqrt: 4, rsqrt: 4, recip: 4, div: 4 };
/** A pow without a POW_FORMS spelling: exp and log, or a library call. */
const GENERAL_POW_COST = 40;
const formCosts = new Map<number, number>();

/** The cost of `x ** exponent` as it will be spelled (see FORM_OP_COST). */
function powCost(exponent: number): number {
  let cost = formCosts.get(exponent);
  if (cost === undefined) {
    const b = new ExprBuilder();
    const x = b.load(0, b.int(0), "f32");
    const form = powForm(b, x, exponent);
    const opCost = (e: Expr) => (e === x || e.srcs.length === 0 ? 0 : FORM_OP_COST[e.op] ?? 1);
    cost = form === null
      ? GENERAL_POW_COST
      : exprsInOrder([form]).reduce((sum, e) => sum + opCost(e), 0);
    formCosts.set(exponent, cost);
  }
  return cost;
}

/** The cost of a pow factor: its pow, and the division when it divides. */
function factorCost(f: PowFactor): number {
  return f.division ? powCost(-f.exponent) + FORM_OP_COST.div! : powCost(f.exponent);
}

/**
 * `x * y` with two of its pow factors of one base merged: `b ** c1 * b ** c2 = b ** (c1 + c2)`
 * for constant exponents of one sign and a base never negative nor -0 (NaN, +0 and +Infinity
 * included: both sides agree there, as they would not for exponents of both signs, where
 * 0 ** 1 * 0 ** -1 is NaN and 0 ** 0 is 1), and for exponents of both signs over a base above
 * 0 (`abovePositive`: `d ** 2 * d ** -3` is `d ** -1`, which stays in range where the product
 * of the two may not). A division by a pow counts as a factor of the
 * negated exponent. LocalResponseNorm's backward multiplies `g / d ** 0.75` by `d ** -0.25`,
 * which becomes `g * d ** -1`, spelled `g * (1 / d)`.
 *
 * Rules, so that merging never makes a kernel worse:
 * - of the pairs that may merge, the one saving the most (by FORM_OP_COST: the merged pow's
 *   spelling against the two it replaces) merges first; LocalResponseNorm's middle term
 *   `(g / d ** 0.75) * (x / d ** 0.75) * d ** -0.25` (y inlined by MULTI_OUTPUT) becomes
 *   `g * d ** -1 * (x / d ** 0.75)`, whose last factor is y itself, not `g * x * d ** -1.5 *
 *   d ** -0.25`, which spells five square roots;
 * - the product keeps its shape: the first pow becomes the merged one, the second becomes 1,
 *   every other factor and division stays where it was (float32 products are not
 *   reassociated: `(x * d) * (y * z)` must not become `((x * d) * y) * z`, which overflows
 *   where the original does not);
 * - the merged exponent is finite in the kernel's type (float32 for float32 kernels);
 * - a merge moves a power only into a product it bounds: one of the two is all of its operand
 *   (`x` or `y`, negated or times constants at most) and the other has at most one factor
 *   beside it (constants aside), or the two are all of one operand; then the merged pow times
 *   that factor is the whole product. `(g / d ** 0.5) * (x / d ** 0.5)` merged into
 *   `(g * (1 / d)) * x` gave Infinity at g = 1e20, d = 1e-20, where each quotient and the
 *   result are in range, and so did `P * ((g * P) * t)` as `(1 / d) * (g * t)` and
 *   `((x * d ** 0.5) * (y * z)) * d ** 0.5` as `(x * d) * (y * z)`;
 * - exponents of one sign merge up to a power of 1: `(g / d) * (x / d)` merged into
 *   `g * (1 / d) ** 2 * x` overflowed at d = 1e-20 (and gave NaN);
 * - it has a POW_FORMS spelling, unless neither exponent had one (a kernel must not trade
 *   sqrt forms for a general pow, which Wasm does not have).
 * Factors are told apart by their place in a walk of the product (left before right, a
 * division's power before its numerator), not by identity: one pow may be two factors.
 */
function combinePowers(b: ExprBuilder, x: Expr, y: Expr): Expr | null {
  const found: PowFactor[] = [];
  let visited = 0;
  // the factors of each operand that are not constants (a constant's magnitude is known:
  // LocalResponseNorm's `-0.75 * d ** -1.75` is one factor), pows and divisions included
  const factors = [0, 0];
  const collect = (e: Expr, side: 0 | 1): boolean => {
    if (++visited > MAX_PRODUCT_FACTORS) return false;
    const opaque = b.opaque.has(e);
    if (e.op === "div" && isConstPow(e.srcs[1])) {
      const [base, exponent] = e.srcs[1].srcs;
      factors[side]++;
      found.push({ base, exponent: -exponent.value, division: true, expr: e, opaque, side });
      return opaque || collect(e.srcs[0], side);
    }
    if (opaque) {
      factors[side]++;
      return true;
    }
    if (e.op === "mul") return collect(e.srcs[0], side) && collect(e.srcs[1], side);
    if (e.op === "neg") return collect(e.srcs[0], side);
    if (!e.isConst()) factors[side]++;
    if (isConstPow(e)) {
      const [base, exponent] = e.srcs;
      found.push({ base, exponent: exponent.value, division: false, expr: e, opaque, side });
    }
    return true;
  };
  if (!collect(x, 0) || !collect(y, 1)) return null;
  // whether merging p and q moves a power only into products whose value it already had a
  // bound on: within one operand, when the two are all of it; across the two, when one is all
  // of its operand and the other has at most one factor beside it (then the merged pow times
  // that factor is the whole product)
  const inRange = (p: PowFactor, q: PowFactor) => {
    if (p.side === q.side) return factors[p.side] === 2;
    const [besideP, besideQ] = [factors[p.side] - 1, factors[q.side] - 1];
    return Math.min(besideP, besideQ) === 0 && Math.max(besideP, besideQ) <= 1;
  };
  const inType = (v: number) => (x.type === "f32" ? Math.fround(v) : v);
  let best: { i: number; j: number; sum: number; saves: number; } | null = null;
  for (let i = 0; i < found.length; i++) {
    const p = found[i];
    if (p.opaque || !neverNegative(p.base)) continue;
    for (let j = i + 1; j < found.length; j++) {
      const q = found[j];
      if (q.opaque || q.base !== p.base) continue;
      const sum = p.exponent + q.exponent;
      // opposite signs only over a base above 0: at 0, d ** 2 * d ** -3 is NaN, d ** -1 is not
      if (Math.sign(p.exponent) !== Math.sign(q.exponent) && !abovePositive(p.base)) continue;
      // two factors that each have a factor beside them stay apart: merged, a power leaves the
      // factor it was paired with (`(g / d ** 0.5) * (x / d ** 0.5)` as `(g * (1 / d)) * x`,
      // `(g * d ** 2) * (x * d ** -3)` as `(g * d ** -1) * x`: g / d is 1e40 where each
      // product and the result are in float32); and one sign merges up to a power of 1:
      // further, the merged pow leaves float32 where the factors do not (`(1 / d) ** 2`)
      if (!inRange(p, q)) continue;
      if (Math.sign(p.exponent) === Math.sign(q.exponent) && Math.abs(sum) > 1) continue;
      if (!Number.isFinite(inType(sum)) || inType(sum) !== sum) continue;
      if (!hasPowForm(sum) && (hasPowForm(p.exponent) || hasPowForm(q.exponent))) continue;
      const saves = factorCost(p) + factorCost(q) - powCost(sum);
      if (best === null || saves > best.saves) best = { i, j, sum, saves };
    }
  }
  if (best === null) return pairWithOutput(b, x, y, found);
  const { i, j, sum } = best;
  const merged = b.binary("pow", found[i].base, b.constant(sum, x.type));
  const one = b.constant(1, x.type);
  // the product again, walked as `collect` walked it: factor i is now the merged pow, factor j
  // is 1 (folded away), the others are as they were
  let site = 0;
  const rebuild = (e: Expr): Expr => {
    if (b.opaque.has(e)) {
      if (e.op === "div" && isConstPow(e.srcs[1])) site++;
      return e;
    }
    if (e.op === "mul") {
      const left = rebuild(e.srcs[0]);
      return b.mul(left, rebuild(e.srcs[1]));
    }
    if (e.op === "neg") return b.unary("neg", rebuild(e.srcs[0]));
    if (e.op === "div" && isConstPow(e.srcs[1])) {
      const k = site++;
      const numerator = rebuild(e.srcs[0]);
      if (k === i) return b.mul(numerator, merged);
      return k === j ? numerator : b.binary("div", numerator, e.srcs[1]);
    }
    if (!isConstPow(e)) return e;
    const k = site++;
    return k === i ? merged : k === j ? one : e;
  };
  return b.mul(rebuild(x), rebuild(y));
}

/**
 * `x * y` with a pow factor moved next to an earlier output that divides by a pow of the same
 * base and the opposite sign, at least as large: LocalResponseNorm's middle term
 * `-((g / d ** 3) * y) * (3 * d ** 2)`, with `g / d ** 3` and y outputs of the kernel, becomes
 * `-(((g / d ** 3) * d ** 2) * y) * 3`. The product of the two outputs, about g x d ** -6,
 * left float32's range (1e-50 for x near 3e4, alpha 1, beta 3: the gradient lost its
 * cross-channel term and changed sign) where the gradient itself, g x d ** -4, is in it;
 * paired, every partial product lies between values the kernel computes anyway. Else null.
 */
function pairWithOutput(
  b: ExprBuilder,
  x: Expr,
  y: Expr,
  found: readonly PowFactor[],
): Expr | null {
  const output = found.find((f) => f.opaque && f.division && neverNegative(f.base));
  const pow = output && found.find((f) =>
    !f.opaque && !f.division && f.base === output.base &&
    Math.sign(f.exponent) === -Math.sign(output.exponent) &&
    Math.abs(f.exponent) <= Math.abs(output.exponent)
  );
  if (output === undefined || pow === undefined) return null;
  // already the pair itself: nothing to move
  if ((x === output.expr && y === pow.expr) || (x === pow.expr && y === output.expr)) return null;
  const one = b.constant(1, x.type);
  // one factor from here on, as the output is: the products built from it must not pair again
  const paired = b.mul(output.expr, pow.expr);
  b.opaque.add(paired);
  // one occurrence of each moves (an expression may be two factors: y * y * d ** 2 is
  // (y * d ** 2) * y, where replacing by identity made it (y * d ** 2) * (y * d ** 2))
  let outputLeft = true;
  let powLeft = true;
  const rebuild = (e: Expr): Expr => {
    if (e === output.expr && outputLeft) {
      outputLeft = false;
      return paired;
    }
    if (e === pow.expr && powLeft) {
      powLeft = false;
      return one;
    }
    if (b.opaque.has(e)) return e;
    if (e.op === "mul") {
      const left = rebuild(e.srcs[0]);
      return b.mul(left, rebuild(e.srcs[1]));
    }
    if (e.op === "neg") return b.unary("neg", rebuild(e.srcs[0]));
    if (e.op === "div" && isConstPow(e.srcs[1])) {
      return b.binary("div", rebuild(e.srcs[0]), e.srcs[1]);
    }
    return e;
  };
  return b.mul(rebuild(x), rebuild(y));
}

/** Recursion depth of `neverNegative` (deeper count as possibly negative; at most 2^8 visits). */
const SIGN_DEPTH = 8;

/**
 * Whether the float `e` is never negative and never -0 (NaN and +Infinity may be): constants,
 * squares, sums and products of such values, and exp, abs, sqrt and sums over them.
 */
function neverNegative(e: Expr, depth = SIGN_DEPTH): boolean {
  if (depth === 0 || isIntType(e.type)) return false;
  const below = (s: Expr) => neverNegative(s, depth - 1);
  switch (e.op) {
    case "const":
      return e.value >= 0 && !Object.is(e.value, -0);
    case "exp":
    case "abs":
      return true;
    case "mul":
      return e.srcs[0] === e.srcs[1] || (below(e.srcs[0]) && below(e.srcs[1]));
    case "add":
    case "div":
      return below(e.srcs[0]) && below(e.srcs[1]);
    case "sqrt":
    case "recip":
      return below(e.srcs[0]);
    case "select":
      return below(e.srcs[1]) && below(e.srcs[2]);
    case "reduce":
      return (e.arg as ReduceArg).op === "sum" && below(reduceBody(e));
    default:
      return false;
  }
}

/**
 * Whether the float `e` is above 0 wherever it is not NaN (+Infinity may be): a positive
 * constant plus a value never negative, as LocalResponseNorm's `k + alpha * S` with k > 0
 * (rounding keeps such a sum at k or above), and square roots of such sums.
 */
function abovePositive(e: Expr, depth = SIGN_DEPTH): boolean {
  if (depth === 0 || isIntType(e.type)) return false;
  switch (e.op) {
    case "const":
      return e.value > 0;
    case "add": {
      const [a, c] = e.srcs;
      return (abovePositive(a, depth - 1) && neverNegative(c, depth - 1)) ||
        (neverNegative(a, depth - 1) && abovePositive(c, depth - 1));
    }
    case "sqrt":
      return abovePositive(e.srcs[0], depth - 1);
    default:
      return false;
  }
}

/**
 * The float ops whose fold gives the bits a kernel computes: the exact ones and IEEE's correctly
 * rounded ones (for float32, a double result rounded once to float32 is the float32 result).
 * exp, log, tanh, sigmoid, rsqrt and pow are each backend's own routine (float64's sigmoid a
 * decomposition, a pow by a constant steps of POW_FORMS, WGSL's pow the driver's): folded in
 * float64 such a constant differed in the last bit from the same value computed beside it (a pad
 * region's exp(0.5411) against a loaded 0.5411's; pow(3.25, 3.5) on webgpu, sigmoid and x ** 3 in
 * float64). Integer and boolean ops all fold (int32 wraps as kernels do).
 */
const FLOAT_FOLDS = new Set<KUnaryOp | KBinaryOp>([
  ...(["neg", "sqrt", "recip", "abs", "sign", "trunc", "isnan", "not"] as const),
  ...(["add", "sub", "mul", "div", "max", "min", "fmax", "fmin", "lt", "le", "eq", "and"] as const),
]);

/** Whether `op` on constants of `type` folds to what a kernel would compute. */
function folds(op: KUnaryOp | KBinaryOp, type: ScalarType): boolean {
  return (type !== "f32" && type !== "f64") || FLOAT_FOLDS.has(op);
}

/** A rewrite rule of a unary op: a simpler equal expression, or null when it does not apply. */
type UnaryRule = (b: ExprBuilder, op: KUnaryOp, x: Expr) => Expr | null;

/**
 * Rule SELECT_HOIST_DEPTH: an op is moved into a select, and on into the selects inside that
 * one, at most this deep. Each op of a chain of pads moved through every pad below it: a
 * thousand pad-and-scale steps made half a million selects (2.3 s to compile, 5.2 s for two
 * thousand); programs that are not such chains stay well below the limit.
 */
const SELECT_HOIST_DEPTH = 8;

/** The unary rules, tried in order; the first that applies wins. */
const UNARY_RULES: readonly UnaryRule[] = [
  // fold: op(constant) is a constant
  (b, op, x) =>
    x.isConst() && folds(op, x.type)
      ? b.constant(FOLD_UNARY[op](x.value), op === "isnan" || op === "not" ? "bool" : x.type)
      : null,
  // hoist select: op(p ? a : c) = p ? op(a) : op(c), with op(c) folded
  (b, op, x) =>
    x.op === "select" && x.srcs[2].isConst() && folds(op, x.type)
      ? b.hoisting(() => b.select(x.srcs[0], b.unary(op, x.srcs[1]), b.unary(op, x.srcs[2])))
      : null,
  // double negation cancels
  (_b, op, x) => ((op === "neg" || op === "not") && x.op === op ? x.srcs[0] : null),
  // |x| = x for integers known non-negative
  (_b, op, x) => (op === "abs" && isIntType(x.type) && x.min >= 0 ? x : null),
];

/** A rewrite rule of a binary op (`int`: the operands are integers, so the ring laws hold). */
type BinaryRule = (b: ExprBuilder, op: KBinaryOp, x: Expr, y: Expr, int: boolean) => Expr | null;

const isComparison = (op: KBinaryOp) => op === "lt" || op === "le" || op === "eq";

/** The binary rules, tried in order; the first that applies wins. */
const BINARY_RULES: readonly BinaryRule[] = [
  // fold: op(constant, constant) is a constant (integer products wrap as int32 does)
  (b, op, x, y) => {
    if (!x.isConst() || !y.isConst() || !folds(op, x.type)) return null;
    const type = isComparison(op) || op === "and" ? "bool" : x.type;
    if (type === "i32" && op === "mul") return b.constant(Math.imul(x.value, y.value), type);
    return b.constant(FOLD_BINARY[op](x.value, y.value), type);
  },
  // hoist select: op(p ? a : c, q) = p ? op(a, q) : op(c, q) when q is a constant or a select
  // on the same p; the constant side folds
  (b, op, x, y) => {
    if (!folds(op, x.type)) return null;
    const selX = x.op === "select" && x.srcs[2].isConst();
    const selY = y.op === "select" && y.srcs[2].isConst();
    if (selX && (y.isConst() || (selY && y.srcs[0] === x.srcs[0]))) {
      const [yv, yc] = selY ? [y.srcs[1], y.srcs[2]] : [y, y];
      return b.hoisting(() =>
        b.select(x.srcs[0], b.binary(op, x.srcs[1], yv), b.binary(op, x.srcs[2], yc))
      );
    }
    if (selY && x.isConst()) {
      return b.hoisting(() =>
        b.select(y.srcs[0], b.binary(op, x, y.srcs[1]), b.binary(op, x, y.srcs[2]))
      );
    }
    return null;
  },
  // x + (-0) = -0 + x = x, exactly; x + 0 = x on integers (for floats -0 + 0 is +0)
  (_b, op, x, y, int) => {
    if (op !== "add") return null;
    const zero = (c: Expr) => c.isConst(0) && (int || Object.is(c.value, -0));
    return zero(x) ? y : zero(y) ? x : null;
  },
  // (x + c1) + c2 = x + (c1 + c2) on integers
  (b, op, x, y, int) =>
    op === "add" && int && y.isConst() && x.op === "add" && x.srcs[1].isConst()
      ? b.add(x.srcs[0], b.constant(x.srcs[1].value + y.value, x.type))
      : null,
  // c + x = x + c on integers: constants to the right
  (b, op, x, y, int) => (op === "add" && int && x.isConst() ? b.add(y, x) : null),
  // x - 0 = x, exactly (-0 - 0 is -0); not x - (-0), which is x + 0 (+0 for x = -0)
  (_b, op, x, y) => (op === "sub" && y.isConst(0) && !Object.is(y.value, -0) ? x : null),
  // x - x = 0 on integers (not floats: Infinity - Infinity is NaN)
  (b, op, x, y, int) => (op === "sub" && int && x === y ? b.constant(0, x.type) : null),
  // x - c = x + (-c) on integers, so constants collect
  (b, op, x, y, int) =>
    op === "sub" && int && y.isConst() ? b.add(x, b.constant(-y.value, x.type)) : null,
  // 1 * x = x * 1 = x
  (_b, op, x, y) => (op === "mul" ? (x.isConst(1) ? y : y.isConst(1) ? x : null) : null),
  // x * 0 = 0 on integers (not floats: NaN * 0 is NaN)
  (b, op, x, y, int) =>
    op === "mul" && int && (x.isConst(0) || y.isConst(0)) ? b.constant(0, x.type) : null,
  // c * x = x * c on integers: constants to the right
  (b, op, x, y, int) => (op === "mul" && int && x.isConst() ? b.mul(y, x) : null),
  // x / 1 = x
  (_b, op, x, y) => (op === "div" && y.isConst(1) ? x : null),
  // b ** c1 * b ** c2 = b ** (c1 + c2), looked for among the factors of both operands (pow by
  // a constant stays a pow until `decompose` gives it its POW_FORMS spelling, so this sees it)
  (b, op, x, y, int) => (op === "mul" && !int ? combinePowers(b, x, y) : null),
  // comparisons decided by the operands' ranges, then by the range of their collected
  // difference (so `(o + 2 - r) + r - 2 < 96` is seen as `o < 96`)
  (b, op, x, y) => {
    if (op !== "lt" && op !== "le") return null;
    const strict = op === "lt";
    const decide = (lo: number, hi: number) =>
      (strict ? hi < 0 : hi <= 0) ? 1 : (strict ? lo >= 0 : lo > 0) ? 0 : null;
    let known = decide(x.min - y.max, x.max - y.min);
    if (known === null && x.type === "index") {
      const diff = b.canonicalIndex(b.sub(x, y));
      known = decide(diff.min, diff.max);
    }
    return known === null ? null : b.constant(known, "bool");
  },
  // true && x = x, false && x = false, x && x = x
  (_b, op, x, y) => {
    if (op !== "and") return null;
    if (x.isConst()) return x.value ? y : x;
    if (y.isConst()) return y.value ? x : y;
    return x === y ? x : null;
  },
  // floor division and remainder of indices: multiples of n pass through (see foldDivMod)
  (b, op, x, y) => (op === "idiv" || op === "imod" ? b.foldDivMod(op, x, y) : null),
];

/** Makes hash-consed expressions, applying the rewrite rules as it goes. One per kernel. */
export class ExprBuilder {
  /**
   * Values the product rules take as one factor, never looking inside: the earlier outputs of
   * a kernel with several (MULTI_OUTPUT), which later outputs use as they are. Merging powers
   * across one would spell it anew instead of reusing it.
   */
  readonly opaque: Set<Expr> = new Set();
  private readonly table = new Map<string, Expr>();
  private nextId = 0;
  private nextVar = 0;
  /** Select hoists under way, one inside the other (see SELECT_HOIST_DEPTH). */
  private hoists = 0;

  /** How many expressions it has made (those of its kernel, and some folded away). */
  get size(): number {
    return this.nextId;
  }

  /**
   * `hoist()`, a select hoist, unless SELECT_HOIST_DEPTH of them are under way already (then
   * null: the op stays outside the select).
   */
  hoisting(hoist: () => Expr): Expr | null {
    if (this.hoists >= SELECT_HOIST_DEPTH) return null;
    this.hoists++;
    try {
      return hoist();
    } finally {
      this.hoists--;
    }
  }

  private intern(
    op: ExprOp,
    srcs: readonly Expr[],
    arg: unknown,
    type: ScalarType,
    min: number,
    max: number,
  ): Expr {
    const argKey = typeof arg === "number"
      ? (Object.is(arg, -0) ? "-0" : String(arg))
      : op === "reduce"
      ? `${(arg as ReduceArg).op}:${(arg as ReduceArg).v.id}`
      : op === "acc"
      ? `${(arg as Expr).id}`
      : JSON.stringify(arg);
    const key = `${op}|${type}|${argKey}|${srcs.map((s) => s.id).join(",")}`;
    let e = this.table.get(key);
    if (e === undefined) {
      if (type === "index" && (Math.max(-min, max) > MAX_EXACT_INDEX)) {
        throw new RangeError(
          `kernel index arithmetic reaches ${Math.max(-min, max)}, beyond 2^53 - 1 where ` +
            `numbers stop being exact: the tensor is too large to index`,
        );
      }
      e = new Expr(op, srcs, arg, type, this.nextId++, min, max);
      this.table.set(key, e);
    }
    return e;
  }

  /**
   * A constant of `type`: int32 data wraps, float32 data rounds (so a fold rounds each op as the
   * kernel would: `(c < d) + 0.1 + 0.2` folded in float64 and rounded once gave 1.2999999523
   * where float32 gives 1.3000000715), indices must be exact integers.
   */
  constant(value: number, type: ScalarType): Expr {
    if (type === "i32") value = value | 0;
    if (type === "f32") value = Math.fround(value);
    if (type === "bool") value = value ? 1 : 0;
    if (type === "index") {
      if (!Number.isSafeInteger(value)) {
        throw new RangeError(`kernel index constant ${value} is not an exact integer`);
      }
      value = value + 0; // -0 and 0 are one index
    }
    const range = isIntType(type) || Number.isFinite(value) ? value : NaN;
    return this.intern(
      "const",
      [],
      value,
      type,
      Number.isNaN(range) ? -Infinity : range,
      Number.isNaN(range) ? Infinity : range,
    );
  }

  /** An index constant. */
  int(value: number): Expr {
    return this.constant(value, "index");
  }

  /** A fresh loop variable ranging over `[0, extent)`; `prefix` starts its name. */
  variable(prefix: string, extent: number): Expr {
    return this.intern(
      "var",
      [],
      { name: `${prefix}${this.nextVar++}`, extent },
      "index",
      0,
      Math.max(0, extent - 1),
    );
  }

  /** Element `index` of input buffer `slot`, of element type `type`. */
  load(slot: number, index: Expr, type: ScalarType): Expr {
    return this.intern(
      "load",
      [this.canonicalIndex(index)],
      slot,
      type,
      isIntType(type) ? INT32_MIN : -Infinity,
      isIntType(type) ? INT32_MAX : Infinity,
    );
  }

  /**
   * An index as a sum of terms ordered by their innermost variable (outer loops first): the
   * partial sums over outer variables are then loop-invariant and get hoisted, leaving one add
   * per inner loop variable.
   */
  canonicalIndex(index: Expr): Expr {
    const terms = linearTerms(index);
    if (terms === null || (terms.size < 2 && !index.hasDivMod)) return index;
    const ordered = [...terms].sort((a, b) => a[0].innermostVar - b[0].innermostVar);
    return ordered.reduce(
      (acc, [term, coef]) => this.add(acc, this.mul(term, this.int(coef))),
      this.int(0),
    );
  }

  /** `x` converted to `type` (floats to i32 truncate; indices and bools to data). */
  cast(x: Expr, type: ScalarType): Expr {
    if (x.type === type) return x;
    if (x.isConst()) return this.constant(type === "i32" ? Math.trunc(x.value) : x.value, type);
    const fromInt = x.type === "bool" || x.type === "index";
    const exact = type === "i32" && fromInt && x.min >= INT32_MIN && x.max <= INT32_MAX;
    return this.intern(
      "cast",
      [x],
      null,
      type,
      exact ? x.min : type === "i32" ? INT32_MIN : -Infinity,
      exact ? x.max : type === "i32" ? INT32_MAX : Infinity,
    );
  }

  /** A unary op, after the rewrite rules. */
  unary(op: KUnaryOp, x: Expr): Expr {
    for (const rule of UNARY_RULES) {
      const e = rule(this, op, x);
      if (e !== null) return e;
    }
    const [min, max] = unaryRange(op, x);
    return this.intern(op, [x], null, op === "not" || op === "isnan" ? "bool" : x.type, min, max);
  }

  // shorthands of binary(): index arithmetic and predicates are written with these
  /** `a + b`. */
  add = (a: Expr, b: Expr): Expr => this.binary("add", a, b);
  /** `a - b`. */
  sub = (a: Expr, b: Expr): Expr => this.binary("sub", a, b);
  /** `a * b`. */
  mul = (a: Expr, b: Expr): Expr => this.binary("mul", a, b);
  /** `a < b`. */
  lt = (a: Expr, b: Expr): Expr => this.binary("lt", a, b);
  /** `a <= b`. */
  le = (a: Expr, b: Expr): Expr => this.binary("le", a, b);
  /** `a && b`. */
  and = (a: Expr, b: Expr): Expr => this.binary("and", a, b);

  /** A binary op, after the rewrite rules. */
  binary(op: KBinaryOp, a: Expr, b: Expr): Expr {
    const int = a.type === "i32" || a.type === "index";
    for (const rule of BINARY_RULES) {
      const e = rule(this, op, a, b, int);
      if (e !== null) return e;
    }
    const type: ScalarType = isComparison(op) || op === "and" ? "bool" : a.type;
    const [min, max] = rangeOf(op, a, b, type);
    return this.intern(op, [a, b], null, type, min, max);
  }

  /** `p ? a : b`. */
  select(p: Expr, a: Expr, b: Expr): Expr {
    if (p.isConst()) return p.value ? a : b; // a known predicate picks its side
    if (a === b) return a; // both sides equal
    if (a.op === "select" && a.srcs[0] === p) a = a.srcs[1]; // p ? (p ? x : y) : b = p ? x : b
    return this.intern(
      "select",
      [p, a, b],
      null,
      a.type,
      Math.min(a.min, b.min),
      Math.max(a.max, b.max),
    );
  }

  /**
   * Combines `body` with `op` for `v` from 0 to its extent. Rules:
   * - when the body is `p ? x : identity` and p's conjuncts are bounds affine in v
   *   (coefficient +-1), those conjuncts become the loop bounds: a padded window then loops
   *   over its valid part with no test inside;
   * - a reduction over nothing is the identity;
   * - a body that does not depend on v (a reduction over a broadcast axis) is not looped:
   *   a max is the body itself, a sum the body times the trip count.
   */
  reduce(op: ReduceOp, v: Expr, body: Expr): Expr {
    const identity = reduceIdentity(op, body.type);
    const id = this.constant(identity, body.type);
    let lo = this.int(0);
    let hi = this.int((v.arg as VarArg).extent);
    if (body.op === "select" && body.srcs[2].isConst(identity)) {
      const kept: Expr[] = [];
      for (const c of conjuncts(body.srcs[0])) {
        const bound = this.boundFrom(c, v);
        if (bound === null) kept.push(c);
        else if (bound.side === "lo") lo = this.binary("max", lo, bound.value);
        else hi = this.binary("min", hi, bound.value);
      }
      const pred = kept.reduce((acc, c) => this.and(acc, c), this.constant(1, "bool"));
      body = this.select(pred, body.srcs[1], body.srcs[2]);
    }
    if (body.isConst(identity)) return id;
    const nonEmpty = this.lt(lo, hi);
    if (nonEmpty.isConst(0)) return id;
    if (!mentions(body, v)) {
      if (op === "max") return this.select(nonEmpty, body, id);
      const trips = this.cast(this.binary("max", this.sub(hi, lo), this.int(0)), body.type);
      return this.select(nonEmpty, this.mul(body, trips), id);
    }
    const acc = this.intern("acc", [], v, body.type, -Infinity, Infinity);
    const [min, max] = body.type === "i32" ? [INT32_MIN, INT32_MAX] : [-Infinity, Infinity];
    const combine = this.intern(
      op === "sum" ? "add" : "max",
      [acc, body],
      null,
      body.type,
      min,
      max,
    );
    return this.intern(
      "reduce",
      [combine, lo, hi, body],
      { op, v, acc } satisfies ReduceArg,
      body.type,
      min,
      max,
    );
  }

  /**
   * `e` with new sources and no rewrite rules (for passes that rebuild a DAG, such as
   * `decompose`): the rules already ran when `e` was made.
   */
  remake(e: Expr, srcs: readonly Expr[], arg: unknown = e.arg): Expr {
    if (srcs.every((s, i) => s === e.srcs[i]) && arg === e.arg) return e;
    return this.intern(e.op, srcs, arg, e.type, e.min, e.max);
  }

  /** An accumulator leaf for the reduction owning `v` (for passes rebuilding a reduction). */
  accumulator(v: Expr, type: ScalarType): Expr {
    return this.intern("acc", [], v, type, -Infinity, Infinity);
  }

  /**
   * `x / n` and `x % n` (floor) where x is a sum of index terms: terms whose coefficient is a
   * multiple of n pass through the division whole, and if the rest lies in [0, n) it is the
   * remainder. This makes a reshape that splits or merges axes cost no division at all.
   */
  foldDivMod(op: "idiv" | "imod", x: Expr, nExpr: Expr): Expr | null {
    if (!nExpr.isConst() || x.type !== "index") return null;
    const n = nExpr.value;
    if (n <= 0) return null;
    if (n === 1) return op === "idiv" ? x : this.int(0);
    if (x.min >= 0 && x.max < n) return op === "idiv" ? this.int(0) : x;
    const terms = linearTerms(x);
    if (terms === null) return null;
    // constants split like any term: c = k*floor(c/k) + (c mod k)
    let constant = 0;
    for (const [term, coef] of terms) {
      if (term.isConst()) {
        constant += term.value * coef;
        terms.delete(term);
      }
    }
    // x = k*T + small with 0 <= small < k: for k = n the division is T and the remainder small;
    // for a k dividing n it is T / (n/k) and k * (T % (n/k)) + small (a reshape merging axes
    // that a later split divides again). k = n first, then the largest coefficient dividing n.
    const ks = [n, ...[...terms.values()].filter((c) => c > 1 && c < n && n % c === 0)];
    for (const k of [...new Set(ks)].sort((p, q) => (p === n ? -1 : q === n ? 1 : q - p))) {
      let big = this.int(Math.floor(constant / k));
      let small = this.int(constant - Math.floor(constant / k) * k);
      for (const [term, coef] of terms) {
        if (coef % k === 0) big = this.add(big, this.mul(term, this.int(coef / k)));
        else small = this.add(small, this.mul(term, this.int(coef)));
      }
      if (small.min < 0 || small.max >= k) continue;
      if (k === n) return op === "idiv" ? big : small;
      const m = this.int(n / k);
      return op === "idiv"
        ? this.binary("idiv", big, m)
        : this.add(this.mul(this.binary("imod", big, m), this.int(k)), small);
    }
    // otherwise multiples of n still pass through whole: (n*B + s) / n = B + s / n
    let whole = this.int(Math.floor(constant / n));
    let rest = this.int(constant - Math.floor(constant / n) * n);
    let moved = constant !== 0 && Math.floor(constant / n) !== 0;
    for (const [term, coef] of terms) {
      if (coef % n === 0) {
        whole = this.add(whole, this.mul(term, this.int(coef / n)));
        moved = true;
      } else rest = this.add(rest, this.mul(term, this.int(coef)));
    }
    if (!moved) return null;
    const inner = this.binary(op, rest, nExpr); // folds no further: nothing left to move
    return op === "idiv" ? this.add(whole, inner) : inner;
  }

  /** `c` (lt or le) as a bound on `v`, if it is affine in v with coefficient +-1. */
  private boundFrom(c: Expr, v: Expr): { side: "lo" | "hi"; value: Expr; } | null {
    if (c.op !== "lt" && c.op !== "le") return null;
    // a < b  <=>  a - b < 0; write a - b = k*v + rest
    const diff = linearTerms(this.sub(c.srcs[0], c.srcs[1]));
    if (diff === null) return null;
    let k = 0;
    let rest = this.int(0);
    let negRest = this.int(0);
    for (const [term, coef] of diff) {
      if (term === v) k += coef;
      else if (mentions(term, v)) return null;
      else {
        rest = this.add(rest, this.mul(term, this.int(coef)));
        negRest = this.add(negRest, this.mul(term, this.int(-coef)));
      }
    }
    const strict = c.op === "lt";
    // k = 1:  v + rest < 0  =>  v < -rest (hi = -rest);  v + rest <= 0  =>  hi = -rest + 1
    if (k === 1) return { side: "hi", value: this.add(negRest, this.int(strict ? 0 : 1)) };
    // k = -1: rest - v < 0  =>  v > rest (lo = rest + 1);  rest - v <= 0  =>  lo = rest
    if (k === -1) return { side: "lo", value: this.add(rest, this.int(strict ? 1 : 0)) };
    return null;
  }
}

/**
 * The expressions of a DAG, every one after its sources (a reduction after its bounds and its
 * combine expression; an accumulator and a loop variable wherever first met). Iterative, so
 * any depth works.
 */
export function exprsInOrder(roots: readonly Expr[]): Expr[] {
  return topoSort([...roots].reverse()); // reversed: the first root's expressions come first
}

/**
 * Whether `e` is computed from the loop variable `v`: by the innermost variable below `e`
 * alone, except when that one is newer than `v` (then the DAG is walked).
 */
export function mentions(e: Expr, v: Expr): boolean {
  if (e.innermostVar < v.id) return false;
  if (e.innermostVar === v.id) return true;
  return someInDag(e, (x) => x === v);
}

/** Whether `pred` holds for any expression of the DAG below `e` (iterative). */
export function someInDag(e: Expr, pred: (x: Expr) => boolean): boolean {
  const seen = new Set<Expr>();
  const stack = [e];
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (pred(x)) return true;
    for (const s of x.srcs) {
      if (!seen.has(s)) {
        seen.add(s);
        stack.push(s);
      }
    }
  }
  return false;
}

/** The conjuncts of a predicate (`a && b && c` gives [a, b, c]). */
function conjuncts(p: Expr): Expr[] {
  const out: Expr[] = [];
  const stack = [p];
  while (stack.length > 0) {
    const c = stack.pop()!;
    if (c.op === "and") stack.push(c.srcs[1], c.srcs[0]);
    else out.push(c);
  }
  return out;
}

/**
 * An index expression as a sum of (term, coefficient) pairs; constants are terms that are
 * constants. Null for expressions that are not indices.
 */
function linearTerms(e: Expr): Map<Expr, number> | null {
  const terms = termsOf(e);
  return terms === null ? null : new Map(terms);
}

/**
 * linearTerms of `e`, kept with it: a merge below descends into the index a reshape split,
 * which is itself a sum of the chain's earlier steps; worked out anew each time, a chain of
 * reshapes and permutes compiled in quadratic time (4,000 steps: 3.6 s). (A field, not a
 * WeakMap: an entry per fresh key cost about a microsecond.)
 */
function termsOf(e: Expr): ReadonlyMap<Expr, number> | null {
  if (e.terms === undefined) e.terms = e.type === "index" ? collectTerms(e) : null;
  return e.terms;
}

/** linearTerms worked out (see termsOf, which keeps them). */
function collectTerms(e: Expr): Map<Expr, number> {
  const terms = new Map<Expr, number>();
  const addTerms = (root: Expr, coef: number) => {
    const stack: [Expr, number][] = [[root, coef]];
    while (stack.length > 0) {
      const [x, c] = stack.pop()!;
      if (x.op === "add") stack.push([x.srcs[0], c], [x.srcs[1], c]);
      else if (x.op === "sub") stack.push([x.srcs[0], c], [x.srcs[1], -c]);
      else if (x.op === "neg") stack.push([x.srcs[0], -c]);
      else if (x.op === "mul" && x.srcs[1].isConst()) stack.push([x.srcs[0], c * x.srcs[1].value]);
      else terms.set(x, (terms.get(x) ?? 0) + c);
    }
  };
  addTerms(e, 1);
  // (x idiv n) * n*c + (x imod n) * c = x * c: a reshape that merges axes recombines the index
  // it split, so the division and the remainder cancel (floor division, n > 0). Also
  // (x idiv a*b) * b*c + ((x idiv a) imod b) * c = (x idiv a) * c, as x idiv a*b is
  // (x idiv a) idiv b; merging three or more axes peels them off one at a time this way.
  const divisor = (e: Expr) => (e.srcs[1].isConst() ? e.srcs[1].value : 0);
  for (let merged = true; merged;) {
    merged = false;
    for (const [q, qc] of terms) {
      if (q.op !== "idiv" || divisor(q) <= 0) continue;
      for (const [r, rc] of terms) {
        if (r.op !== "imod" || divisor(r) <= 0) continue;
        const b = divisor(r);
        const y = r.srcs[0];
        const same = y === q.srcs[0] && b === divisor(q);
        const nested = y.op === "idiv" && y.srcs[0] === q.srcs[0] && divisor(y) > 0 &&
          divisor(y) * b === divisor(q);
        if ((!same && !nested) || qc !== rc * b) continue;
        terms.delete(q);
        terms.delete(r);
        // y's own terms, merged already (kept: see termsOf)
        for (const [t, c] of termsOf(y)!) terms.set(t, (terms.get(t) ?? 0) + c * rc);
        merged = true;
        break;
      }
      if (merged) break;
    }
  }
  for (const [t, c] of terms) if (c === 0) terms.delete(t);
  return terms;
}

/** The value range of a unary op on `x`: exact for indices and bools, wrapped for int32. */
function unaryRange(op: KUnaryOp, x: Expr): [number, number] {
  if (op === "not" || op === "isnan") return [0, 1];
  if (!isIntType(x.type)) return [-Infinity, Infinity];
  const magnitude = Math.max(Math.abs(x.min), Math.abs(x.max));
  const exact: [number, number] = op === "neg"
    ? [-x.max, -x.min]
    : op === "abs"
    ? [x.min >= 0 ? x.min : 0, magnitude]
    : op === "sign"
    ? [Math.sign(x.min), Math.sign(x.max)]
    : [INT32_MIN, INT32_MAX];
  return x.type === "index" ? exact : wrapRange(exact[0], exact[1]);
}

/** An int32 data range: itself if it fits int32, else the full range (the value wrapped). */
function wrapRange(lo: number, hi: number): [number, number] {
  return Number.isFinite(lo) && Number.isFinite(hi) && lo >= INT32_MIN && hi <= INT32_MAX
    ? [lo, hi]
    : [INT32_MIN, INT32_MAX];
}

/** `[-m, m]` for the largest magnitude m of `e`'s range. */
function symmetric(e: Expr): [number, number] {
  const m = Math.max(Math.abs(e.min), Math.abs(e.max));
  return [-m, m];
}

/** The value range of `op(a, b)` of `type`: exact for indices, wrapped for int32 data. */
function rangeOf(op: KBinaryOp, a: Expr, b: Expr, type: ScalarType): [number, number] {
  if (type === "bool") return [0, 1];
  if (type !== "i32" && type !== "index") return [-Infinity, Infinity];
  const exact = ((): [number, number] => {
    switch (op) {
      case "add":
        return [a.min + b.min, a.max + b.max];
      case "sub":
        return [a.min - b.max, a.max - b.min];
      case "mul": {
        const p = [a.min * b.min, a.min * b.max, a.max * b.min, a.max * b.max];
        return [Math.min(...p), Math.max(...p)];
      }
      case "max":
        return [Math.max(a.min, b.min), Math.max(a.max, b.max)];
      case "min":
        return [Math.min(a.min, b.min), Math.min(a.max, b.max)];
      case "idiv":
      case "tdiv":
        if (b.isConst() && b.value > 0 && (op === "idiv" || a.min >= 0)) {
          return [Math.floor(a.min / b.value), Math.floor(a.max / b.value)];
        }
        return symmetric(a);
      case "imod":
        return b.isConst() && b.value > 0 ? [0, b.value - 1] : symmetric(b);
      case "tmod":
        return b.isConst() && b.value > 0 && a.min >= 0 ? [0, b.value - 1] : symmetric(b);
      default:
        return [INT32_MIN, INT32_MAX];
    }
  })();
  return type === "index" ? exact : wrapRange(exact[0], exact[1]);
}
