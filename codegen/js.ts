// The JavaScript backend's printer: a kernel as a plain function over typed arrays, compiled
// with `new Function`. Float32 values are float32: each operation that rounds rounds its
// result with `Math.fround` (a sum's accumulator alone stays a double, rounded once when the
// sum is done, as the Wasm backend's long sums; beside Wasm kernels a short float32 sum rounds
// each step, as Wasm's short sums do), so a value recomputed here equals the one a
// kernel stored (the gradient of max compares the two) and one output of a kernel seen by
// another is what was stored. Float64 computes in double precision; int32 data that may leave
// int32 wraps explicitly (`| 0`, `Math.imul`), and index arithmetic is exact (JavaScript
// numbers hold integers exactly up to 2^53). This is also the source that the `js` export
// writes out.

import { CStylePrinter, shortestF32 } from "./printer.ts";
import {
  type Expr,
  kernelRoots,
  mayWrap,
  outputName,
  type ReduceArg,
  reduceBody,
  type ScalarType,
} from "./kernel.ts";
import type { LoopStmt, Program } from "./linearize.ts";
import { INT32_MAX } from "../src/ir/dtype.ts";
import { EXP_POLY, LN2_HI, LN2_LO, LOG_POLY } from "./wasm_math.ts";
import { wideSums } from "./wasm.ts";

/** A float32 constant spelled as the double that is its value. */
const f32 = (value: number) => String(Math.fround(value));

/** `p = c0; p = p * v + c1; ...` in float32, one statement per step. */
function hornerLines(p: string, v: string, coefficients: readonly number[]): string[] {
  return [
    `let ${p} = ${f32(coefficients[0])};`,
    ...coefficients.slice(1).map((c) =>
      `${p} = Math.fround(Math.fround(${p} * ${v}) + ${f32(c)});`
    ),
  ];
}

/**
 * exp and log of float32 values, step for step as the Wasm backend computes them
 * (codegen/wasm_math.ts: the same constants, operations and float32 roundings), so a value a
 * JavaScript kernel and a Wasm kernel both compute has the same bits. Declared inside each
 * kernel that calls them (a kernel's text stays one self-contained function).
 */
const KERNEL_MATH: Record<"exp" | "log" | "max" | "min", readonly string[]> = {
  exp: [
    "// 2^k for the k a float32 exp scales by: -75 ... 64",
    "const exp_scale = new Float64Array(140).map((_, k) => 2 ** (k - 75));",
    "// the NaN Wasm's exp gives here (its min and max set the sign bit), as a constant: through",
    "// Math.max its bits changed once V8 optimized the kernel",
    "const exp_nan = new Float64Array(BigUint64Array.of(0xfff8000000000000n).buffer)[0];",
    "const exp_f32 = (x) => {",
    "  if (x !== x) return exp_nan;",
    "  x = Math.min(Math.max(x, -104), 89);",
    `  const scaled = Math.fround(x * ${f32(Math.LOG2E)});`,
    "  // the nearest integer, ties to even (Wasm's nearest)",
    "  let n = Math.round(scaled);",
    "  if (n - scaled === 0.5 && (n & 1) !== 0) n -= 1;",
    `  const hi = Math.fround(x - Math.fround(n * ${f32(LN2_HI)}));`,
    `  const r = Math.fround(hi - Math.fround(n * ${f32(LN2_LO)}));`,
    ...hornerLines("p", "r", EXP_POLY).map((l) => `  ${l}`),
    "  p = Math.fround(p * r);",
    "  p = Math.fround(p * r);",
    "  p = Math.fround(p + r);",
    "  p = Math.fround(p + 1);",
    "  // times 2^n as two powers of two (NaN takes n = 0 and stays NaN)",
    "  const whole = n | 0;",
    "  const half = whole >> 1;",
    "  return Math.fround(Math.fround(p * exp_scale[half + 75]) * exp_scale[whole - half + 75]);",
    "};",
  ],
  log: [
    "const log_bits = new Uint32Array(1);",
    "const log_float = new Float32Array(log_bits.buffer);",
    "const log_f32 = (x) => {",
    "  // subnormals scaled by 2^23 first",
    `  const tiny = x < ${f32(2 ** -126)};`,
    "  log_float[0] = tiny ? Math.fround(x * 8388608) : x;",
    "  const bits = log_bits[0];",
    "  let e = ((bits >>> 23) & 255) - 127 - (tiny ? 23 : 0);",
    "  log_bits[0] = (bits & 0x007fffff) | 0x3f800000;",
    "  let m = log_float[0];",
    `  if (m > ${f32(Math.SQRT2)}) {`,
    "    m = Math.fround(m * 0.5);",
    "    e += 1;",
    "  }",
    "  const f = Math.fround(m - 1);",
    "  const z = Math.fround(f * f);",
    ...hornerLines("y", "f", LOG_POLY).map((l) => `  ${l}`),
    "  y = Math.fround(y * f);",
    "  y = Math.fround(y * z);",
    `  y = Math.fround(y + Math.fround(e * ${f32(LN2_LO)}));`,
    "  y = Math.fround(y - Math.fround(z * 0.5));",
    `  y = Math.fround(Math.fround(f + y) + Math.fround(e * ${f32(LN2_HI)}));`,
    "  if (x !== x || x < 0) return NaN;",
    "  if (x === 0) return -Infinity;",
    "  return x === Infinity ? Infinity : y;",
    "};",
  ],
  // Math.max and Math.min of a NaN give a NaN whose bits change once V8 optimizes the kernel
  // (fff8... at first, ffff... after about 70 runs): results equal bit for bit, NaNs included,
  // need one NaN whatever the tier
  max: ["const max_float = (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b));"],
  min: ["const min_float = (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b));"],
};

/**
 * Ops whose float32 result must be rounded to float32: the others (negation, abs, sign, trunc,
 * max, min, select, loads) give a float32 value from float32 operands.
 */
const ROUNDING_OPS: ReadonlySet<string> = new Set([
  "add",
  "sub",
  "mul",
  "div",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "recip",
  "tanh",
  "pow",
  "ppow",
  "cast",
]);

/** Whether `reduce` is a max reduction of float values (its NaN made one after it). */
function isFloatMax(reduce: Expr): boolean {
  return (reduce.arg as ReduceArg).op === "max" &&
    (reduce.type === "f32" || reduce.type === "f64") &&
    (reduce.srcs[0].op === "max" || reduce.srcs[0].op === "fmax");
}

/**
 * Prints programs (launch mode `loops`) as JavaScript functions `(out, in0, in1, ...) => void`
 * (`out0, out1, ...` first when a kernel writes several outputs).
 */
export class JsPrinter extends CStylePrinter {
  /** The math functions the kernel being printed calls (KERNEL_MATH). */
  #math = new Set<"exp" | "log" | "max" | "min">();

  /** `wasmMath`: float32 exp and log as the Wasm backend computes them (KERNEL_MATH). */
  constructor(private readonly wasmMath = false) {
    super();
  }

  /** Beside Wasm: the sums Wasm accumulates in float64 (the others round at each step). */
  #wide: ReadonlySet<Expr> = new Set();

  override print(program: Program): string {
    this.#math = new Set();
    this.#wide = this.wasmMath ? wideSums(kernelRoots(program.kernel)) : new Set();
    return super.print(program);
  }

  protected override operation(e: Expr, args: readonly string[]): string {
    if (this.wasmMath && e.type === "f32" && (e.op === "exp" || e.op === "log")) {
      this.#math.add(e.op);
      return `${e.op}_f32(${args[0]})`;
    }
    const text = this.exactOperation(e, args);
    return e.type === "f32" && ROUNDING_OPS.has(e.op) ? `Math.fround(${text})` : text;
  }

  protected override afterReduce(reduce: Expr): string[] {
    const { op } = reduce.arg as ReduceArg;
    const acc = this.ref(reduce);
    if (reduce.type === "f32" && op === "sum") return [`${acc} = Math.fround(${acc});`];
    // one NaN whatever V8's tier, as max_float gives (see update)
    if (isFloatMax(reduce)) return [`${acc} = ${acc} !== ${acc} ? NaN : ${acc};`];
    return [];
  }

  protected literal(value: number, type: ScalarType): string {
    if (type === "bool") return value ? "true" : "false";
    if (Number.isNaN(value)) return "NaN";
    if (value === Infinity) return "Infinity";
    if (value === -Infinity) return "-Infinity";
    if (Object.is(value, -0)) return "-0";
    // a float32 constant is the float32 nearest it, as Wasm's f32.const and WGSL's literals
    // are: spelled `Math.fround(0.1)` where that differs from the double
    if (type !== "f32") return String(value);
    const shortest = shortestF32(Math.fround(value));
    return shortest !== Math.fround(value) ? `Math.fround(${shortest})` : String(shortest);
  }

  /** `e` on its operands in double precision (float32 results are rounded by the caller). */
  private exactOperation(e: Expr, [a, b, c]: readonly string[]): string {
    const wrap = (text: string) => (mayWrap(e) ? `(${text}) | 0` : text);
    switch (e.op) {
      case "load":
        return `in${e.arg}[${a}]`;
      case "select":
        return `${a} ? ${b} : ${c}`;
      case "cast": {
        const from = e.srcs[0].type;
        if (from === "bool") return `${a} ? 1 : 0`;
        if (e.type === "i32") return `${a} | 0`;
        return a; // (to float32 from float64 or int32: rounded by the caller)
      }
      case "neg":
        return wrap(`-${a}`);
      case "exp":
      case "log":
      case "sqrt":
      case "abs":
      case "tanh":
      case "sign":
      case "trunc":
        return wrap(`Math.${e.op}(${a})`);
      case "rsqrt":
        // float32: the root rounded before the division, as Wasm and WGSL compute it
        return e.type === "f32" ? `1 / Math.fround(Math.sqrt(${a}))` : `1 / Math.sqrt(${a})`;
      case "recip":
        return `1 / ${a}`;
      case "not":
        return `!${a}`;
      case "isnan":
        return `Number.isNaN(${a})`;
      case "add":
        if (e.srcs[1].isConst() && e.srcs[1].value < 0) {
          return wrap(`${a} - ${this.literal(-e.srcs[1].value, e.type)}`);
        }
        return wrap(`${a} + ${b}`);
      case "sub":
        return wrap(`${a} - ${b}`);
      case "mul":
        if (e.srcs[1].isConst(-1)) return wrap(`-${a}`);
        return mayWrap(e) ? `Math.imul(${a}, ${b})` : `${a} * ${b}`;
      case "div":
        return `${a} / ${b}`;
      case "pow":
      case "ppow":
        return `Math.pow(${a}, ${b})`;
      case "max":
      case "fmax":
        if (e.type !== "f32" && e.type !== "f64") return `Math.max(${a}, ${b})`; // no NaN
        this.#math.add("max");
        return `max_float(${a}, ${b})`;
      case "min":
      case "fmin":
        if (e.type !== "f32" && e.type !== "f64") return `Math.min(${a}, ${b})`;
        this.#math.add("min");
        return `min_float(${a}, ${b})`;
      case "lt":
        return `${a} < ${b}`;
      case "le":
        return `${a} <= ${b}`;
      case "eq":
        return `${a} === ${b}`;
      case "and":
        return `${a} && ${b}`;
      case "tdiv":
        // `| 0` truncates, but only below 2^31
        return Math.max(-e.min, e.max) <= INT32_MAX
          ? `(${a} / ${b}) | 0`
          : `Math.trunc(${a} / ${b})`;
      case "tmod":
        return `${a} % ${b}`;
      case "idiv":
        return `Math.floor(${a} / ${b})`;
      case "imod":
        return e.srcs[1].min > 0
          ? `((${a} % ${b}) + ${b}) % ${b}`
          : `${a} - Math.floor(${a} / ${b}) * ${b}`;
      default:
        throw new Error(`JsPrinter: no spelling for op ${e.op}`);
    }
  }

  protected declare(name: string, _type: ScalarType, text: string, mutable: boolean): string {
    return `${mutable ? "let" : "const"} ${name} = ${text};`;
  }

  protected loopHeader(_loop: LoopStmt, v: string, lo: string, hi: string): string {
    return `for (let ${v} = ${lo}; ${v} < ${hi}; ${v}++) {`;
  }

  protected override update(reduce: Expr): string {
    const combine = reduce.srcs[0];
    const acc = this.ref(reduce);
    const { op } = reduce.arg as ReduceArg;
    if (op === "sum" && combine.op === "add" && !mayWrap(combine)) {
      // beside Wasm, a float32 sum the Wasm backend keeps in float32 (a short one) is rounded
      // at each step as there, so the two agree on it
      if (this.wasmMath && reduce.type === "f32" && !this.#wide.has(reduce)) {
        return `${acc} = Math.fround(${acc} + ${this.ref(reduceBody(reduce))});`;
      }
      return `${acc} += ${this.ref(reduceBody(reduce))};`;
    }
    if (isFloatMax(reduce) && combine.srcs.length === 2) {
      // plain Math.max on the accumulator (a NaN stays NaN through it), its NaN made one after
      // the loop (afterReduce): max_float's two tests on the accumulator's chain made a float
      // max reduction 5x slower
      return `${acc} = Math.max(${combine.srcs.map((src) => this.ref(src)).join(", ")});`;
    }
    return super.update(reduce);
  }

  protected store(output: string, index: string, value: string): string {
    return `${output}[${index}] = ${value};`;
  }

  protected frame(program: Program, body: string[]): string {
    const { kernel } = program;
    const params = [
      ...kernel.outputs.map((_, k) => outputName(k, kernel.outputs.length)),
      ...kernel.inputs.map((_, i) => `in${i}`),
    ].join(", ");
    const header = kernel.comment.split("\n").map((l) => `// ${l}`).join("\n");
    const math = [...this.#math].sort().flatMap((op) => KERNEL_MATH[op]).map((l) => `  ${l}`);
    const lines = [...math, ...body].join("\n");
    return `${header}\nfunction ${kernel.name}(${params}) {\n${lines}\n}\n`;
  }
}

/** The JavaScript source of a program in launch mode `loops`. */
export function printJs(program: Program, options: { wasmMath?: boolean; } = {}): string {
  return new JsPrinter(options.wasmMath).print(program);
}
