// The kernel IR: what one generated kernel computes, independent of the language it is printed
// in. A kernel has an output shape with one loop variable per axis and one scalar expression for
// the element at that index. Expressions are hash-consed DAGs over loop variables, constants,
// loads from input buffers and ALU ops; a `reduce` expression owns a loop variable and a body
// (reductions nest, and several may sit side by side). Every integer expression carries a
// value range, so the rewrite rules below can fold predicates and index arithmetic.
//
// The builder applies a table of rewrite rules as each expression is made (tinygrad's
// PatternMatcher in spirit): constant folding, algebraic identities, constant-exponent pow,
// select hoisting, range-based folding of comparisons and of div/mod, and, for reductions,
// turning a validity predicate that is affine in the loop variable into tighter loop bounds.

import type { Shape } from "../src/ir/node.ts";
import type { DType } from "../src/ir/dtype.ts";
import { UNARY_REFERENCE } from "../src/ir/reference.ts";

/** The scalar type of an expression. Index arithmetic is `i32`; predicates are `bool`. */
export type ScalarType = "f32" | "f64" | "i32" | "bool";

/** The scalar type that holds elements of `dtype`. */
export function scalarTypeOf(dtype: DType): ScalarType {
  return dtype === "float32" ? "f32" : dtype === "float64" ? "f64" : "i32";
}

/** Unary ALU ops of the kernel IR. */
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
  | "not";

/** Binary ALU ops of the kernel IR (`lt le eq` give bool; `and` takes bools; `idiv imod` floor). */
export type KBinaryOp =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "pow"
  | "max"
  | "min"
  | "lt"
  | "le"
  | "eq"
  | "and"
  | "idiv"
  | "imod";

/** Every expression op: sources, selection, reduction, casts and ALU ops. */
export type ExprOp = "const" | "var" | "load" | "select" | "reduce" | "cast" | KUnaryOp | KBinaryOp;

/** A loop variable: output axis or reduction. */
export interface VarArg {
  /** The variable's name in generated code (`o0`, `r3`). */
  readonly name: string;
  /** It ranges over `[0, extent)`. */
  readonly extent: number;
}

/** What a `reduce` expression does: combine `body` with `op` for `v` in `[lo, hi)`. */
export interface ReduceArg {
  /** How values combine. */
  readonly op: "sum" | "max";
  /** The loop variable the reduction owns. */
  readonly v: Expr;
}

/** One hash-consed scalar expression. Make them with an {@link ExprBuilder}. */
export class Expr {
  /** Made only by {@link ExprBuilder}, which hash-conses. */
  constructor(
    /** The operation. */
    readonly op: ExprOp,
    /** Operands. */
    readonly srcs: readonly Expr[],
    /** Op argument: a constant's value, a load's slot, a variable or a reduction's VarArg/ReduceArg. */
    readonly arg: unknown,
    /** Scalar type of the value. */
    readonly type: ScalarType,
    /** Unique within its builder. */
    readonly id: number,
    /** Smallest value (integers and bools; -Infinity for floats). */
    readonly min: number,
    /** Largest value (integers and bools; Infinity for floats). */
    readonly max: number,
  ) {}

  /** The value of a `const`. */
  get value(): number {
    return this.arg as number;
  }

  /** Whether this is a constant (optionally equal to `v`). */
  isConst(v?: number): boolean {
    return this.op === "const" && (v === undefined || Object.is(this.arg, v) || this.arg === v);
  }
}

/** One generated kernel, before printing. */
export interface Kernel {
  /** A readable name saying what the kernel computes, unique within a schedule. */
  readonly name: string;
  /** The kernel's header: what it computes, in words and in IR ops. */
  readonly comment: string;
  /** Shape of the output. */
  readonly outShape: Shape;
  /** Element type of the output. */
  readonly outType: ScalarType;
  /** One variable per output axis, outermost first. */
  readonly outVars: readonly Expr[];
  /** The output element at the index given by `outVars`. */
  readonly value: Expr;
  /** The row-major position of that element in the output buffer. */
  readonly outIndex: Expr;
  /** Input buffers in slot order: element type and element count. */
  readonly inputs: readonly { readonly type: ScalarType; readonly numel: number; }[];
}

const INT_MIN = -2147483648;

/** The identity element of a reduction. */
export function reduceIdentity(op: "sum" | "max", type: ScalarType): number {
  return op === "sum" ? 0 : type === "i32" ? INT_MIN : -Infinity;
}

const isInt = (t: ScalarType) => t === "i32" || t === "bool";

// Constant folding: the float64 meaning of each ALU op (integer results wrap to 32 bits).
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
  not: (x) => (x ? 0 : 1),
};
const FOLD_BINARY: Record<KBinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  max: Math.max,
  min: Math.min,
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  eq: (a, b) => (a === b ? 1 : 0),
  and: (a, b) => (a && b ? 1 : 0),
  idiv: (a, b) => Math.floor(a / b),
  imod: (a, b) => a - Math.floor(a / b) * b,
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
  [-0.25, (b, x) => b.unary("sqrt", b.unary("rsqrt", x))], // x ** -0.25 = sqrt(1 / sqrt(x))
  [-0.75, (b, x) => b.mul(b.unary("rsqrt", x), b.unary("sqrt", b.unary("rsqrt", x)))], // x**-0.5 * x**-0.25: no overflow of x**1.5
  [-1, (b, x) => b.unary("recip", x)], // x ** -1 = 1 / x
  [-2, (b, x) => b.unary("recip", b.mul(x, x))], // x ** -2 = 1 / (x * x)
]);

/** Makes hash-consed expressions, applying the rewrite rules as it goes. One per kernel. */
export class ExprBuilder {
  private readonly table = new Map<string, Expr>();
  private nextId = 0;
  private nextVar = 0;

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
      : arg instanceof Object && "v" in arg
      ? `${(arg as ReduceArg).op}:${(arg as ReduceArg).v.id}`
      : JSON.stringify(arg);
    const key = `${op}|${type}|${argKey}|${srcs.map((s) => s.id).join(",")}`;
    let e = this.table.get(key);
    if (e === undefined) {
      e = new Expr(op, srcs, arg, type, this.nextId++, min, max);
      this.table.set(key, e);
    }
    return e;
  }

  /** A constant of `type`. */
  constant(value: number, type: ScalarType): Expr {
    if (type === "i32") value = value | 0;
    if (type === "bool") value = value ? 1 : 0;
    const range = isInt(type) || Number.isFinite(value) ? value : NaN;
    return this.intern(
      "const",
      [],
      value,
      type,
      Number.isNaN(range) ? -Infinity : range,
      Number.isNaN(range) ? Infinity : range,
    );
  }

  /** An integer constant. */
  int(value: number): Expr {
    return this.constant(value, "i32");
  }

  /** A fresh loop variable ranging over `[0, extent)`; `prefix` starts its name. */
  variable(prefix: string, extent: number): Expr {
    return this.intern(
      "var",
      [],
      { name: `${prefix}${this.nextVar++}`, extent },
      "i32",
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
      isInt(type) ? INT_MIN : -Infinity,
      isInt(type) ? -INT_MIN : Infinity,
    );
  }

  /**
   * An index as a sum of terms ordered by their innermost variable (outer loops first): the
   * partial sums over outer variables are then loop-invariant and get hoisted, leaving one add
   * per inner loop variable.
   */
  canonicalIndex(index: Expr): Expr {
    const terms = linearTerms(index);
    if (terms === null || (terms.size < 2 && !hasDivMod(index))) return index;
    const depth = (e: Expr): number =>
      e.op === "var" ? e.id : e.srcs.reduce((m, s) => Math.max(m, depth(s)), -1);
    const ordered = [...terms].sort((a, b) => depth(a[0]) - depth(b[0]));
    return ordered.reduce(
      (acc, [term, coef]) => this.add(acc, this.mul(term, this.int(coef))),
      this.int(0),
    );
  }

  /** `x` converted to `type` (floats to i32 truncate). */
  cast(x: Expr, type: ScalarType): Expr {
    if (x.type === type) return x;
    if (x.isConst()) return this.constant(type === "i32" ? Math.trunc(x.value) : x.value, type);
    const int = type === "i32" && x.type === "bool";
    return this.intern("cast", [x], null, type, int ? x.min : -Infinity, int ? x.max : Infinity);
  }

  /** A unary op, after the rewrite rules. */
  unary(op: KUnaryOp, x: Expr): Expr {
    // fold: op(constant) is a constant
    if (x.isConst()) return this.constant(FOLD_UNARY[op](x.value), x.type);
    // hoist select: op(p ? a : c) = p ? op(a) : op(c), with op(c) folded
    if (x.op === "select" && x.srcs[2].isConst()) {
      return this.select(x.srcs[0], this.unary(op, x.srcs[1]), this.unary(op, x.srcs[2]));
    }
    // double negation cancels
    if ((op === "neg" || op === "not") && x.op === op) return x.srcs[0];
    if (x.type === "i32" || x.type === "bool") {
      if (op === "neg") return this.intern(op, [x], null, x.type, -x.max, -x.min);
      if (op === "abs" && x.min >= 0) return x;
      if (op === "not") return this.intern(op, [x], null, "bool", 0, 1);
    }
    return this.intern(
      op,
      [x],
      null,
      x.type,
      isInt(x.type) ? INT_MIN : -Infinity,
      isInt(x.type) ? -INT_MIN : Infinity,
    );
  }

  /** `a + b`. */
  add(a: Expr, b: Expr): Expr {
    return this.binary("add", a, b);
  }
  /** `a - b`. */
  sub(a: Expr, b: Expr): Expr {
    return this.binary("sub", a, b);
  }
  /** `a * b`. */
  mul(a: Expr, b: Expr): Expr {
    return this.binary("mul", a, b);
  }
  /** `a < b`. */
  lt(a: Expr, b: Expr): Expr {
    return this.binary("lt", a, b);
  }
  /** `a <= b`. */
  le(a: Expr, b: Expr): Expr {
    return this.binary("le", a, b);
  }
  /** `a && b`. */
  and(a: Expr, b: Expr): Expr {
    return this.binary("and", a, b);
  }

  /** A binary op, after the rewrite rules. */
  binary(op: KBinaryOp, a: Expr, b: Expr): Expr {
    const int = a.type === "i32";
    const resultType: ScalarType = op === "lt" || op === "le" || op === "eq" || op === "and"
      ? "bool"
      : a.type;
    // fold: op(constant, constant) is a constant
    if (a.isConst() && b.isConst()) {
      const v = FOLD_BINARY[op](a.value, b.value);
      return this.constant(int && op === "mul" ? Math.imul(a.value, b.value) : v, resultType);
    }
    // hoist select: op(p ? a1 : c1, p ? b1 : c2) or with a constant other side
    const selA = a.op === "select" && a.srcs[2].isConst();
    const selB = b.op === "select" && b.srcs[2].isConst();
    if (selA && (b.isConst() || (selB && b.srcs[0] === a.srcs[0]))) {
      const [bv, bc] = selB ? [b.srcs[1], b.srcs[2]] : [b, b];
      return this.select(a.srcs[0], this.binary(op, a.srcs[1], bv), this.binary(op, a.srcs[2], bc));
    }
    if (selB && a.isConst()) {
      return this.select(b.srcs[0], this.binary(op, a, b.srcs[1]), this.binary(op, a, b.srcs[2]));
    }
    switch (op) {
      case "add":
        if (a.isConst(0)) return b; // 0 + x = x
        if (b.isConst(0)) return a; // x + 0 = x
        if (int && b.isConst() && a.op === "add" && a.srcs[1].isConst()) {
          return this.add(a.srcs[0], this.int(a.srcs[1].value + b.value)); // (x + c1) + c2 = x + (c1 + c2)
        }
        if (int && a.isConst()) return this.add(b, a); // constants to the right
        break;
      case "sub":
        if (b.isConst(0)) return a; // x - 0 = x
        if (a === b && int) return this.int(0); // x - x = 0 (integers only: inf - inf is NaN)
        if (int && b.isConst()) return this.add(a, this.int(-b.value)); // x - c = x + (-c)
        break;
      case "mul":
        if (a.isConst(1)) return b; // 1 * x = x
        if (b.isConst(1)) return a; // x * 1 = x
        if (int && (a.isConst(0) || b.isConst(0))) return this.int(0); // integer x * 0 = 0 (floats: NaN * 0)
        if (int && a.isConst()) return this.mul(b, a); // constants to the right
        break;
      case "div":
        if (b.isConst(1)) return a; // x / 1 = x
        // a / b ** c = a * b ** -c (then the pow rule specializes -c)
        if (b.op === "pow" && b.srcs[1].isConst()) {
          return this.mul(
            a,
            this.binary("pow", b.srcs[0], this.constant(-b.srcs[1].value, b.type)),
          );
        }
        break;
      case "pow": {
        // constant exponents become sqrt / reciprocal forms
        const form = b.isConst() ? POW_FORMS.get(b.value) : undefined;
        if (form) return form(this, a);
        break;
      }
      case "lt":
      case "le": {
        // decide on the ranges of a and b, then on the range of a - b with its terms collected
        // (so `(o + 2 - r) + r - 2 < 96` is seen as `o < 96`)
        const strict = op === "lt";
        const decide = (lo: number, hi: number) =>
          (strict ? hi < 0 : hi <= 0) ? 1 : (strict ? lo >= 0 : lo > 0) ? 0 : null;
        let known = decide(a.min - b.max, a.max - b.min);
        if (known === null && int) {
          const diff = this.canonicalIndex(this.sub(a, b));
          known = decide(diff.min, diff.max);
        }
        if (known !== null) return this.constant(known, "bool");
        break;
      }
      case "and":
        if (a.isConst()) return a.value ? b : a; // true && x = x, false && x = false
        if (b.isConst()) return b.value ? a : b;
        if (a === b) return a;
        break;
      case "idiv":
      case "imod": {
        const folded = this.foldDivMod(op, a, b);
        if (folded) return folded;
        break;
      }
    }
    const [min, max] = rangeOf(op, a, b, resultType);
    return this.intern(op, [a, b], null, resultType, min, max);
  }

  /**
   * `x / n` and `x % n` (floor) where x is a sum of terms: terms whose coefficient is a multiple
   * of n pass through the division whole, and if the rest lies in [0, n) it is the remainder.
   * This makes a reshape that splits or merges axes cost no division at all.
   */
  private foldDivMod(op: "idiv" | "imod", x: Expr, nExpr: Expr): Expr | null {
    if (!nExpr.isConst()) return null;
    const n = nExpr.value;
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
    return op === "idiv"
      ? this.add(whole, this.binary("idiv", rest, nExpr))
      : this.binary("imod", rest, nExpr);
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
   * Combines `body` with `op` for `v` from 0 to its extent. When the body is `p ? x : identity`
   * and p's conjuncts are bounds affine in v (coefficient +-1), those conjuncts become the loop
   * bounds instead: a padded window then loops over its valid part with no test inside.
   */
  reduce(op: "sum" | "max", v: Expr, body: Expr): Expr {
    const identity = reduceIdentity(op, body.type);
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
    if (body.isConst(identity)) return this.constant(identity, body.type);
    if (lo.isConst() && hi.isConst() && hi.value <= lo.value) {
      return this.constant(identity, body.type);
    }
    return this.intern(
      "reduce",
      [body, lo, hi],
      { op, v } satisfies ReduceArg,
      body.type,
      isInt(body.type) ? INT_MIN : -Infinity,
      isInt(body.type) ? -INT_MIN : Infinity,
    );
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
      else if (dependsOn(term, v)) return null;
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

/** The conjuncts of a predicate (`a && b && c` gives [a, b, c]). */
function conjuncts(p: Expr): Expr[] {
  return p.op === "and" ? [...conjuncts(p.srcs[0]), ...conjuncts(p.srcs[1])] : [p];
}

/** Whether `e` mentions variable `v`. */
export function dependsOn(e: Expr, v: Expr): boolean {
  if (e === v) return true;
  return e.srcs.some((s) => dependsOn(s, v));
}

/**
 * An integer expression as a sum of (term, coefficient) pairs, constants under the term
 * `int(1)`-free key "const" folded in as a term that is a constant; null if not integer.
 */
function linearTerms(e: Expr): Map<Expr, number> | null {
  if (e.type !== "i32") return null;
  const terms = new Map<Expr, number>();
  const addTerm = (t: Expr, c: number) => terms.set(t, (terms.get(t) ?? 0) + c);
  const walk = (x: Expr, c: number): void => {
    if (x.op === "add") {
      walk(x.srcs[0], c);
      walk(x.srcs[1], c);
    } else if (x.op === "sub") {
      walk(x.srcs[0], c);
      walk(x.srcs[1], -c);
    } else if (x.op === "neg") walk(x.srcs[0], -c);
    else if (x.op === "mul" && x.srcs[1].isConst()) walk(x.srcs[0], c * x.srcs[1].value);
    else addTerm(x, c);
  };
  walk(e, 1);
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
        walk(y, rc);
        merged = true;
        break;
      }
      if (merged) break;
    }
  }
  for (const [t, c] of terms) if (c === 0) terms.delete(t);
  return terms;
}

/** Whether an integer expression mentions a division or remainder (canonicalIndex may fold it). */
function hasDivMod(e: Expr): boolean {
  return e.op === "idiv" || e.op === "imod" || e.srcs.some(hasDivMod);
}

function rangeOf(op: KBinaryOp, a: Expr, b: Expr, type: ScalarType): [number, number] {
  if (type === "bool") return [0, 1];
  if (type !== "i32") return [-Infinity, Infinity];
  const full: [number, number] = [INT_MIN, -INT_MIN];
  const clamp = ([lo, hi]: [number, number]): [number, number] =>
    Number.isFinite(lo) && Number.isFinite(hi) && lo >= INT_MIN && hi <= -INT_MIN ? [lo, hi] : full;
  switch (op) {
    case "add":
      return clamp([a.min + b.min, a.max + b.max]);
    case "sub":
      return clamp([a.min - b.max, a.max - b.min]);
    case "mul": {
      const p = [a.min * b.min, a.min * b.max, a.max * b.min, a.max * b.max];
      return clamp([Math.min(...p), Math.max(...p)]);
    }
    case "max":
      return [Math.max(a.min, b.min), Math.max(a.max, b.max)];
    case "min":
      return [Math.min(a.min, b.min), Math.min(a.max, b.max)];
    case "idiv":
      if (b.isConst() && b.value > 0) {
        return [Math.floor(a.min / b.value), Math.floor(a.max / b.value)];
      }
      return full;
    case "imod":
      if (b.isConst() && b.value > 0) return [0, b.value - 1];
      return full;
    default:
      return full;
  }
}
