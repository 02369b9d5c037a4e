// Targets: what each backend can compute and how it launches, and `decompose`, the pass that
// rewrites what a target lacks into what it has. Semantics live in the kernel IR (max
// propagates NaN, pow is JavaScript's Math.pow, idiv is floor division); a target that lacks
// an op natively gets the op spelled out of ones it has, as rules in the table below (after
// tinygrad's per-renderer rewrite passes), instead of string helpers in its printer.

import {
  type Expr,
  ExprBuilder,
  type ExprOp,
  exprsInOrder,
  hasPowForm,
  type KBinaryOp,
  type Kernel,
  kernelRoots,
  type KUnaryOp,
  powForm,
  type ScalarType,
  truncIsFloor,
} from "./kernel.ts";
import type { LaunchMode } from "./linearize.ts";
import { INT32_MAX } from "../src/ir/dtype.ts";
import { FUNCTION_LIMITS } from "./wasm_module.ts";

/** A compilation target: a language, what it computes natively, and its limits. */
export interface Target {
  /** `js` and `wasm` run on the cpu device, `wgsl` on webgpu. */
  readonly name: "js" | "wgsl" | "wasm";
  /** The ALU ops it has with the kernel IR's semantics; `decompose` rewrites the others. */
  readonly native: ReadonlySet<ExprOp>;
  /** Whether it computes float64. */
  readonly float64: boolean;
  /** Buffers one kernel may bind, output included. */
  readonly maxBuffers: number;
  /** How kernels launch (see linearize.ts); `grid` targets switch long reductions to `workgroup`. */
  readonly launch: LaunchMode;
  /** Lanes per workgroup for split reductions. */
  readonly lanes: number;
  /** Largest index magnitude its integers hold exactly. */
  readonly maxIndex: number;
  /** Loop iterations one invocation may run (Infinity: no limit). */
  readonly maxLoopWork: number;
  /** Elements per output one reduction may cover before the schedule splits it. */
  readonly maxReduceExtent: number;
  /** IR ops one kernel may compute before the schedule splits it (its compile time grows). */
  readonly maxKernelOps: number;
  /** Values (expressions) one kernel may compute before the schedule splits it. */
  readonly maxKernelValues: number;
  /** For `wasm`: whether the memory the module imports is shared (workers can use it). */
  readonly sharedMemory?: boolean;
  /** Ops it has natively but not accurately enough everywhere (their rule refines them). */
  readonly approximate?: ReadonlySet<ExprOp>;
  /**
   * For JavaScript kernels that run beside Wasm ones (JS_BESIDE_WASM_TARGET): ops it has
   * natively but spells by their rule for float32 values, as the Wasm target must, and float32
   * exp and log computed as the Wasm backend computes them. A value one kernel of each
   * computes then has the same bits in both (a comparison or a cast of it would disagree
   * otherwise).
   */
  readonly wasmFloat32?: ReadonlySet<ExprOp>;
}

const ALU_OPS: ReadonlySet<ExprOp> = new Set<ExprOp>([
  "neg",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "recip",
  "abs",
  "sigmoid",
  "tanh",
  "sign",
  "trunc",
  "isnan",
  "not",
  "add",
  "sub",
  "mul",
  "div",
  "pow",
  "ppow",
  "max",
  "min",
  "fmax",
  "fmin",
  "lt",
  "le",
  "eq",
  "and",
  "idiv",
  "imod",
  "tdiv",
  "tmod",
]);
const without = (...ops: ExprOp[]) => new Set([...ALU_OPS].filter((op) => !ops.includes(op)));

/**
 * Buffers one cpu kernel binds: a Wasm kernel takes one parameter per buffer and two for its
 * range, and a Wasm function at most FUNCTION_LIMITS.params (a sum of 998 tensors failed to
 * compile).
 */
const CPU_MAX_BUFFERS = FUNCTION_LIMITS.params - 2;

/**
 * Values one cpu kernel computes (MAX_KERNEL_VALUES): a JavaScript kernel is a function with a
 * constant per value, and V8 could not make the frame of one of about 125,000 (a fused chain
 * of 65,000 `mul(c).sub(c)` threw "Maximum call stack size exceeded" when it ran). Below
 * MAX_WASM_VALUES, so the parts of such chains run as Wasm kernels.
 */
const CPU_MAX_KERNEL_VALUES = 16384;

/**
 * JavaScript: every op natively (Math has them all) but sigmoid, whose decomposition keeps the
 * subnormal results `1 / (1 + Math.exp(-x))` loses in float64 below -709; float64 and exact
 * indices to 2^53.
 */
export const JS_TARGET: Target = {
  name: "js",
  native: without("sigmoid"),
  float64: true,
  // a kernel is a function of one parameter per buffer, called with its buffers spread: a sum
  // of 66,000 tensors was a SyntaxError (too many parameters), of 60,000 a RangeError (the
  // call's arguments passed the stack). The cpu schedules for this target's limits, and a
  // kernel Wasm cannot take falls back here: the Wasm function's limit serves both
  maxBuffers: CPU_MAX_BUFFERS,
  launch: "loops",
  lanes: 1,
  maxIndex: Number.MAX_SAFE_INTEGER,
  maxLoopWork: Infinity,
  maxReduceExtent: Infinity,
  maxKernelOps: Infinity,
  maxKernelValues: CPU_MAX_KERNEL_VALUES,
};

/**
 * JavaScript for the cpu's kernels that Wasm does not compute, beside the Wasm ones: float32
 * exp, log and tanh as Wasm computes them (slower than Math's: an exp and a tanh per element
 * took 75 ms against 26 per million), so that both targets give a value the same bits. Where
 * every kernel is JavaScript (no SIMD, `cpu.kernels = "js"`, the `js` export), JS_TARGET keeps
 * Math's.
 */
export const JS_BESIDE_WASM_TARGET: Target = {
  ...JS_TARGET,
  wasmFloat32: new Set(["tanh", "exp", "log"]),
};

/**
 * WGSL: integer division truncates (and llvmpipe's `%` misreads negative operands), max and
 * min may drop a NaN, pow is undefined for bases <= 0, sign(NaN) may be 0, tanh may cancel
 * near 0; indices are i32; 8 storage buffers per kernel (WebGPU's default limit). Mesa's
 * llvmpipe stops an invocation after about 65,535 loop iterations (counted over all its
 * loops), so kernels stay below that.
 */
export const WGSL_TARGET: Target = {
  name: "wgsl",
  native: without("idiv", "imod", "max", "min", "pow", "sign", "sigmoid", "tanh"),
  approximate: new Set<ExprOp>(["tanh"]),
  float64: false,
  maxBuffers: 8,
  launch: "grid",
  lanes: 64,
  maxIndex: INT32_MAX,
  maxLoopWork: 65535,
  maxReduceExtent: 65536,
  // measured on llvmpipe: a chain of 1000 ops compiles and runs in 0.25 s, 2000 in 0.5 s,
  // 4000 in 1.7 s, 200,000 in more than ten minutes
  maxKernelOps: 1024,
  maxKernelValues: Infinity,
};

/**
 * WebAssembly with SIMD, float32 kernels only (float64 and int32 data stay on JavaScript, whose
 * numbers they match): division truncates (and floor division is decomposed), max and min
 * propagate NaN as Math's do, exp and log are functions of the backend (wasm_math.ts), tanh
 * and sigmoid are decomposed into exp, general pow stays on JavaScript (exp(y log x) in float32
 * would lose digits), and indices are i32.
 */
export const WASM_TARGET: Target = {
  name: "wasm",
  native: without("pow", "ppow", "idiv", "imod", "sign", "sigmoid", "tanh", "isnan"),
  float64: false,
  maxBuffers: CPU_MAX_BUFFERS,
  launch: "loops",
  lanes: 1,
  maxIndex: INT32_MAX,
  maxLoopWork: Infinity,
  maxReduceExtent: Infinity,
  maxKernelOps: Infinity,
  maxKernelValues: CPU_MAX_KERNEL_VALUES,
  sharedMemory: true,
};

/** The Wasm target for a memory that is not shared (no workers: browsers without isolation). */
export const WASM_UNSHARED_TARGET: Target = { ...WASM_TARGET, sharedMemory: false };

/**
 * Values one Wasm kernel may name before decomposition (engines allow 50,000 locals per
 * function); more run as JS. A quick first cut: compile() checks the emitted function itself
 * (rule WASM_FUNCTION_LIMITS), since decomposed ops take several values each.
 */
const MAX_WASM_VALUES = 20000;

/** Ops any target can have rewritten into what WASM_TARGET has (see the tables below). */
const DECOMPOSABLE_FOR_WASM = new Set<ExprOp>([
  "sign",
  "idiv",
  "imod",
  "sigmoid",
  "tanh",
  "isnan",
]);

/**
 * Whether `kernel` can compile for the Wasm target: float32 data only, every op native there
 * or decomposed into native ones, and indices within i32.
 */
export function fitsWasm(kernel: Kernel): boolean {
  if (kernel.outputs.some((o) => o.type !== "f32") || kernel.inputs.some((i) => i.type !== "f32")) {
    return false;
  }
  const exprs = exprsInOrder(kernelRoots(kernel));
  // a local per value (two in a vectorized loop): engines cap a function at 50,000 locals
  if (exprs.length > MAX_WASM_VALUES) return false;
  for (const e of exprs) {
    if (e.type === "f64" || e.type === "i32") return false;
    if (e.type === "index" && Math.max(-e.min, e.max) > INT32_MAX) return false;
    if (!ALU_OPS.has(e.op)) continue; // structure: const, var, acc, load, select, cast, reduce
    if (e.op === "pow" && e.srcs[1].isConst() && hasPowForm(e.srcs[1].value)) continue;
    if (!WASM_TARGET.native.has(e.op) && !DECOMPOSABLE_FOR_WASM.has(e.op)) return false;
  }
  return true;
}

/** How `decompose` builds: target rules for the ops a target lacks, plain ops for the rest. */
export class TargetBuilder {
  constructor(readonly b: ExprBuilder, readonly target: Target) {}

  /** `op(x)`, spelled with what the target has. */
  unary(op: KUnaryOp, x: Expr): Expr {
    // (exp and log stay ops: the printer spells them; tanh takes its rule)
    const native = this.target.native.has(op) &&
      !(op === "tanh" && x.type === "f32" && this.target.wasmFloat32?.has(op));
    const rule = native ? undefined : UNARY_DECOMPOSITIONS[op];
    return rule ? rule(this, x) : this.b.unary(op, x);
  }

  /** `op(x, y)`, spelled with what the target has. */
  binary(op: KBinaryOp, x: Expr, y: Expr): Expr {
    const universal = UNIVERSAL_REWRITES[op]?.(this, x, y);
    if (universal) return universal;
    const rule = this.target.native.has(op) ? undefined : BINARY_DECOMPOSITIONS[op];
    return rule ? rule(this, x, y) : this.b.binary(op, x, y);
  }

  /** A float constant of `x`'s type. */
  c(value: number, like: Expr): Expr {
    return this.b.constant(value, like.type);
  }

  /** `!p`. */
  not(p: Expr): Expr {
    return this.b.unary("not", p);
  }

  /** `p || q`, as `!(!p && !q)`. */
  or(p: Expr, q: Expr): Expr {
    return this.not(this.b.and(this.not(p), this.not(q)));
  }

  /** Whether `x` is NaN. */
  isNan(x: Expr): Expr {
    return this.unary("isnan", x);
  }
}

type UnaryRewrite = (t: TargetBuilder, x: Expr) => Expr;
type BinaryRewrite = (t: TargetBuilder, x: Expr, y: Expr) => Expr;

/** Rewrites applied on every target, where ranges make a cheaper op exact (null: no change). */
const UNIVERSAL_REWRITES: Partial<
  Record<KBinaryOp, (t: TargetBuilder, x: Expr, y: Expr) => Expr | null>
> = {
  // floor division of a >= 0 by b > 0 is truncating division
  idiv: (t, a, b) => (truncIsFloor(a, b) ? t.b.binary("tdiv", a, b) : null),
  // and so is its remainder
  imod: (t, a, b) => (truncIsFloor(a, b) ? t.b.binary("tmod", a, b) : null),
  // pow by a constant exponent: the sqrt / reciprocal forms of kernel.ts's POW_FORMS, here and
  // not when the kernel is built, so that the rules could first merge powers of one base
  pow: (t, x, y) => (y.isConst() ? powForm(t.b, x, y.value) : null),
};

/** Floor quotient and remainder from truncating division (remainder as a - q * b, never `%`). */
function floorDivMod(t: TargetBuilder, a: Expr, b: Expr): { q: Expr; r: Expr; fix: Expr; } {
  const q = t.binary("tdiv", a, b);
  const r = t.binary("sub", a, t.binary("mul", q, b));
  const zero = t.b.constant(0, a.type);
  // the truncated quotient is one too large when the remainder is non-zero and its sign
  // differs from the divisor's
  const fix = t.b.and(
    t.not(t.b.binary("eq", r, zero)),
    t.not(t.b.binary("eq", t.b.lt(r, zero), t.b.lt(b, zero))),
  );
  return { q, r, fix };
}

/** Decompositions of unary ops, used by targets that lack them. */
const UNARY_DECOMPOSITIONS: Partial<Record<KUnaryOp, UnaryRewrite>> = {
  // x is NaN exactly when x != x, where comparisons follow IEEE (Wasm's do)
  isnan: (t, x) => t.not(t.b.binary("eq", x, x)),
  // sign(x) = x > 0 ? 1 : x < 0 ? -1 : x, which keeps NaN and -0
  sign: (t, x) =>
    t.b.select(
      t.b.lt(t.c(0, x), x),
      t.c(1, x),
      t.b.select(t.b.lt(x, t.c(0, x)), t.c(-1, x), x),
    ),
  // tanh with full relative accuracy near 0, where a builtin computing
  // (e^x - e^-x) / (e^x + e^-x) cancels: Taylor to x^7 (error < x^9 / 45) for |x| < 0.125;
  // NaN fails the comparison and takes the polynomial too. Away from 0, the target's tanh if
  // it has one, else (1 - e^-2|x|) / (1 + e^-2|x|) with the sign of x
  tanh: (t, x) => {
    const x2 = t.binary("mul", x, x);
    let p = t.c(-0.05396825, x);
    for (const c of [0.13333334, -0.33333334, 1]) {
      p = t.binary("add", t.binary("mul", x2, p), t.c(c, x));
    }
    const near0 = t.binary("mul", x, p);
    const abs = t.unary("abs", x);
    let far: Expr;
    if (t.target.approximate?.has("tanh")) far = t.b.unary("tanh", x);
    else {
      const e = t.unary("exp", t.binary("mul", abs, t.c(-2, x)));
      const magnitude = t.binary(
        "div",
        t.binary("sub", t.c(1, x), e),
        t.binary("add", t.c(1, x), e),
      );
      far = t.b.select(t.b.lt(x, t.c(0, x)), t.unary("neg", magnitude), magnitude);
    }
    return t.b.select(t.b.le(t.c(0.125, x), abs), far, near0);
  },
  // sigmoid(x) = 1 / (1 + e^-x) for x >= 0, and e^x / (1 + e^x) below, where e^-x would
  // overflow before the result underflows (sigmoid(-90) is 8.2e-40, a float32 subnormal): one
  // exp of -|x| serves both (NaN takes the first form and stays NaN)
  sigmoid: (t, x) => {
    const e = t.unary("exp", t.unary("neg", t.unary("abs", x)));
    const positive = t.unary("recip", t.binary("add", t.c(1, x), e));
    return t.b.select(t.b.lt(x, t.c(0, x)), t.binary("mul", e, positive), positive);
  },
};

/**
 * The NaN among `a` and `b` (one is): `a` if it is NaN, else `b`. Not `a + b`: a driver that
 * reassociates folded `x + -x` to 0, so llvmpipe gave maximum(NaN, -NaN) = 0 (helper-164).
 */
function nanOf(t: TargetBuilder, a: Expr, b: Expr): Expr {
  return t.b.select(t.isNan(a), a, b);
}

/**
 * Math.max / Math.min from a max and min that may return either operand for NaN and for two
 * zeros: NaN if either is (`nanOf`); for two zeros the one of the right sign (a is -0 when
 * 1 / a < 0); else the native op.
 */
function floatExtremum(t: TargetBuilder, op: "max" | "min", a: Expr, b: Expr): Expr {
  if (a.type === "i32" || a.type === "index") return t.b.binary(op, a, b);
  const zero = t.c(0, a);
  const nan = t.or(t.isNan(a), t.isNan(b));
  const zeros = t.b.and(t.b.binary("eq", a, zero), t.b.binary("eq", b, zero));
  const aNegative = t.b.lt(t.unary("recip", a), zero);
  const ofZeros = op === "max" ? t.b.select(aNegative, b, a) : t.b.select(aNegative, a, b);
  const native = t.binary(op === "max" ? "fmax" : "fmin", a, b);
  return t.b.select(nan, nanOf(t, a, b), t.b.select(zeros, ofZeros, native));
}

/** Decompositions of binary ops, used by targets that lack them. */
const BINARY_DECOMPOSITIONS: Partial<Record<KBinaryOp, BinaryRewrite>> = {
  // floor division from truncating division
  idiv: (t, a, b) => {
    const { q, fix } = floorDivMod(t, a, b);
    return t.b.select(fix, t.binary("sub", q, t.b.constant(1, a.type)), q);
  },
  // floor remainder (takes the sign of b)
  imod: (t, a, b) => {
    const { r, fix } = floorDivMod(t, a, b);
    return t.b.select(fix, t.binary("add", r, b), r);
  },
  // Math.max: NaN propagates and 0 is above -0 (integers have neither: their max stays)
  max: (t, a, b) => floatExtremum(t, "max", a, b),
  // Math.min: NaN propagates and -0 is below 0
  min: (t, a, b) => floatExtremum(t, "min", a, b),
  // Math.pow from a pow of positive bases: x ** 0 = 1 (even for NaN); otherwise a NaN operand
  // gives NaN; a zero base gives 0 or Infinity (or -0 / -Infinity for -0 and an odd integer
  // y); a negative base keeps its sign for odd integer y and gives NaN for a non-integer y,
  // unless it is -Infinity
  pow: (t, x, y) => {
    const zero = t.c(0, x);
    const magnitude = t.binary("ppow", t.unary("abs", x), y);
    const isZero = t.b.binary("eq", x, zero);
    const zeroPow = t.b.select(
      t.b.lt(y, zero),
      t.c(Infinity, x),
      t.b.select(t.b.lt(zero, y), zero, t.c(NaN, x)),
    );
    const p = t.b.select(isZero, zeroPow, magnitude);
    const negativeZero = t.b.and(isZero, t.b.lt(t.unary("recip", x), zero));
    const negative = t.or(t.b.lt(x, zero), negativeZero);
    const integer = t.b.binary("eq", y, t.unary("trunc", y));
    const half = t.binary("mul", y, t.c(0.5, y));
    const odd = t.not(t.b.binary("eq", t.unary("trunc", half), half));
    const signed = t.b.select(odd, t.unary("neg", p), p);
    const finite = t.b.lt(t.unary("abs", x), t.c(Infinity, x));
    const nan = t.b.and(t.not(integer), t.b.and(finite, t.not(isZero)));
    const ofNegative = t.b.select(nan, t.c(NaN, x), t.b.select(integer, signed, p));
    // a NaN operand gives NaN whatever the native pow does with it (llvmpipe: 0)
    const ofNumbers = t.b.select(
      t.or(t.isNan(x), t.isNan(y)),
      nanOf(t, x, y),
      t.b.select(negative, ofNegative, p),
    );
    return t.b.select(t.b.binary("eq", y, zero), t.c(1, x), ofNumbers);
  },
};

/**
 * `kernel` with every op `target` lacks rewritten into ops it has (and the universal
 * range-based rewrites applied). Iterative over the DAG; equal results stay shared.
 */
export function decompose(kernel: Kernel, target: Target): Kernel {
  const t = new TargetBuilder(kernel.builder, target);
  const b = kernel.builder;
  const done = new Map<Expr, Expr>();
  for (const e of exprsInOrder([...kernelRoots(kernel), ...kernel.outVars])) {
    const srcs = e.srcs.map((s) => done.get(s)!);
    let out: Expr;
    if (ALU_OPS.has(e.op) && !isCombine(e)) {
      out = srcs.length === 1
        ? t.unary(e.op as KUnaryOp, srcs[0])
        : t.binary(e.op as KBinaryOp, srcs[0], srcs[1]);
    } else if (isCombine(e)) {
      // a reduction's combine step: decomposed like any op, but never folded away
      const op = e.op as KBinaryOp;
      out = target.native.has(op)
        ? b.remake(e, srcs)
        : BINARY_DECOMPOSITIONS[op]!(t, srcs[0], srcs[1]);
    } else {
      out = b.remake(e, srcs);
    }
    done.set(e, out);
  }
  return {
    ...kernel,
    outputs: kernel.outputs.map((o) => ({ ...o, value: done.get(o.value)! })),
    outIndex: done.get(kernel.outIndex)!,
  };
}

/**
 * A reduction's combine step over two values of `type` (two loads standing for them), spelled
 * for `target`: workgroup lanes combine their accumulators with it. The kernel's own combine
 * step cannot serve, since decomposing it reaches into the body (a max over a padded axis
 * hoisted the body's select into the NaN test, which then named the loop variable).
 */
export function combineStep(
  op: "add" | "max",
  type: ScalarType,
  target: Target,
): { step: Expr; left: Expr; right: Expr; } {
  const b = new ExprBuilder();
  const left = b.load(0, b.int(0), type);
  const right = b.load(1, b.int(0), type);
  const step = target.native.has(op)
    ? b.binary(op, left, right)
    : BINARY_DECOMPOSITIONS[op]!(new TargetBuilder(b, target), left, right);
  return { step, left, right };
}

/** Whether `e` is a reduction's combine step (it reads the accumulator directly). */
function isCombine(e: Expr): boolean {
  return (e.op === "add" || e.op === "max") && e.srcs[0]?.op === "acc";
}
