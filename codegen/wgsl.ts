// The WGSL printer: a kernel as a WebGPU compute shader, one invocation per output element.
// It is a thin sibling of the JavaScript printer: the shared printer (printer.ts) places and
// names every expression; this file only spells constants, operators, declarations, loops and
// the shader around them. With `outputLoops = false` every output variable lives at depth 0 and
// is derived from the invocation index by division and remainder in the frame.
//
// WGSL specifics handled here:
// - typed storage bindings: `out` (read_write) at binding 0, `in0`, `in1`, ... (read) after it;
// - 64 invocations per workgroup; more than 65535 workgroups become a 2-D grid (see
//   `dispatchGrid`), so the flat index is `id.x + id.y * (nwg.x * 64)`;
// - float literals always carry a `.` or an exponent (`1.0`, `1e-7`); infinities, NaN and the
//   most negative i32 are written as bitcasts, which have no literal spelling;
// - integer `/` truncates toward zero, so floor division and remainder of operands that may be
//   negative call helpers (which avoid `%`, see HELPERS); i32 arithmetic wraps natively;
// - `pow` follows JavaScript for negative and zero bases and for `x ** 0`;
// - f32 `max`, `min` (also max-reductions and relu) and `sign` propagate NaN as JavaScript does
//   (WGSL's max and min return the other operand, llvmpipe's sign(NaN) is 0);
// - `tanh` near 0 (and of NaN) is a polynomial: WGSL only promises the accuracy of
//   sinh(x) / cosh(x), and llvmpipe's builtin cancels there (relative error 1e-2 at x = 1e-6,
//   tanh(x) >= x at 0.0035) and returns -1 for NaN;
// - WGSL has no f64: a float64 kernel cannot be printed and throws.

import { CStylePrinter } from "./printer.ts";
import type { Expr, Kernel, ReduceArg, ScalarType } from "./kernel.ts";

/** Invocations per workgroup (1-D). */
export const WORKGROUP_SIZE = 64;

/** Workgroups per grid dimension the printer plans for (WebGPU's guaranteed minimum limit). */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * The workgroup grid `[x, y]` that covers `total` output elements: one row of up to 65535
 * workgroups, and as many rows as needed. The printed shader and the runtime's dispatch both
 * use this, so they agree on how the flat index is formed.
 */
export function dispatchGrid(total: number): [number, number] {
  const groups = Math.ceil(total / WORKGROUP_SIZE);
  if (groups <= MAX_WORKGROUPS_PER_DIMENSION) return [groups, 1];
  return [MAX_WORKGROUPS_PER_DIMENSION, Math.ceil(groups / MAX_WORKGROUPS_PER_DIMENSION)];
}

const INT_MIN = -2147483648;
const F32_MAX = 3.4028234663852886e38;

/** A finite f32 literal: the shortest decimal that reads back as the same f32. */
function f32Literal(value: number): string {
  const f = Math.fround(value);
  if (Number.isNaN(f)) return "bitcast<f32>(0x7fc00000u)";
  if (f === Infinity) return "bitcast<f32>(0x7f800000u)";
  if (f === -Infinity) return "bitcast<f32>(0xff800000u)";
  if (Object.is(f, -0)) return "-0.0";
  let text = String(f);
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f && Math.abs(candidate) <= F32_MAX) {
      // plain decimals down to 1e-4 (0.001 reads better than 1e-3), exponents below
      text = candidate !== 0 && Math.abs(candidate) < 1e-4
        ? candidate.toExponential()
        : String(candidate);
      break;
    }
  }
  return /[.e]/.test(text) ? text : `${text}.0`;
}

/** The WGSL name of a scalar type (f64 has none). */
function wgslType(type: ScalarType): string {
  if (type === "f64") throw float64Error();
  return type;
}

function float64Error(name?: string): Error {
  const what = name === undefined
    ? "a float64 kernel"
    : `kernel ${name} computes in float64, which`;
  return new Error(
    `webgpu: ${what} cannot run on WebGPU (WGSL has no 64-bit floats); ` +
      `use float32 tensors on "webgpu", or the "cpu" device for float64`,
  );
}

/** Whether any expression of `kernel` (or its output or an input) is f64. */
function usesFloat64(kernel: Kernel): boolean {
  if (kernel.outType === "f64" || kernel.inputs.some((i) => i.type === "f64")) return true;
  const seen = new Set<Expr>();
  const walk = (e: Expr): boolean => {
    if (seen.has(e)) return false;
    seen.add(e);
    return e.type === "f64" || e.srcs.some(walk);
  };
  return walk(kernel.value) || walk(kernel.outIndex);
}

/** Helper functions a kernel may call; printed above the entry point when used. */
const HELPERS = {
  // The remainders are a - q * b rather than WGSL's `%`: llvmpipe (through naga's SPIR-V)
  // computes i32 `%` of a negative operand as if unsigned.
  floor_div: [
    "// floor(a / b) for integers (WGSL's `/` truncates toward zero)",
    "fn floor_div(a: i32, b: i32) -> i32 {",
    "  let q: i32 = a / b;",
    "  let r: i32 = a - q * b;",
    "  return select(q, q - 1, r != 0 && (r < 0) != (b < 0));",
    "}",
  ],
  floor_mod: [
    "// a - b * floor(a / b) for integers: the remainder takes the sign of b",
    "fn floor_mod(a: i32, b: i32) -> i32 {",
    "  let r: i32 = a - (a / b) * b;",
    "  return select(r, r + b, r != 0 && (r < 0) != (b < 0));",
    "}",
  ],
  pow_f32: [
    "// x ** y as in JavaScript: x ** 0 = 1, a zero base gives 0 or Infinity (WGSL's pow is",
    "// undefined there), and a negative base (or -0) with an odd integer y keeps its sign",
    "fn pow_f32(x: f32, y: f32) -> f32 {",
    "  if (y == 0.0) {",
    "    return 1.0;",
    "  }",
    "  var p: f32 = pow(abs(x), y);",
    "  if (x == 0.0) {",
    "    p = select(0.0, bitcast<f32>(0x7f800000u), y < 0.0);",
    "  }",
    "  if (x < 0.0 || (x == 0.0 && bitcast<u32>(x) != 0u)) {",
    "    if (y != trunc(y)) {",
    "      return select(bitcast<f32>(0x7fc00000u), p, x == 0.0);",
    "    }",
    "    return select(p, -p, trunc(y * 0.5) != y * 0.5);",
    "  }",
    "  return p;",
    "}",
  ],
  // NaN is recognized by its bits: a driver may fold `a != a` to false (Mesa's lavapipe does)
  max_f32: [
    "// max(a, b) as in JavaScript: NaN propagates (WGSL's max returns the other operand)",
    "fn max_f32(a: f32, b: f32) -> f32 {",
    "  let a_nan: bool = (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u;",
    "  let b_nan: bool = (bitcast<u32>(b) & 0x7fffffffu) > 0x7f800000u;",
    "  return select(max(a, b), a + b, a_nan || b_nan);",
    "}",
  ],
  min_f32: [
    "// min(a, b) as in JavaScript: NaN propagates (WGSL's min returns the other operand)",
    "fn min_f32(a: f32, b: f32) -> f32 {",
    "  let a_nan: bool = (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u;",
    "  let b_nan: bool = (bitcast<u32>(b) & 0x7fffffffu) > 0x7f800000u;",
    "  return select(min(a, b), a + b, a_nan || b_nan);",
    "}",
  ],
  sign_f32: [
    "// sign(x) with sign(NaN) = NaN, as in JavaScript",
    "fn sign_f32(x: f32) -> f32 {",
    "  return select(sign(x), x, (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u);",
    "}",
  ],
  tanh_f32: [
    "// tanh(x) with full relative accuracy near 0, where the builtin may compute",
    "// (e^x - e^-x) / (e^x + e^-x) and cancel: Taylor to x^7 (error < x^9 / 45) for |x| < 0.125;",
    "// NaN fails the comparison and takes the polynomial too (llvmpipe's tanh(NaN) is -1)",
    "fn tanh_f32(x: f32) -> f32 {",
    "  let x2: f32 = x * x;",
    "  let p: f32 = x * (1.0 + x2 * (-0.33333334 + x2 * (0.13333334 + x2 * -0.05396825)));",
    "  return select(p, tanh(x), abs(x) >= 0.125);",
    "}",
  ],
} as const;

type HelperName = keyof typeof HELPERS;

/** Prints kernels as WGSL compute shaders (one invocation per output element). */
export class WgslPrinter extends CStylePrinter {
  protected readonly outputLoops = false;
  private helpers = new Set<HelperName>();

  /** The WGSL source of `kernel`; throws for float64 kernels. */
  override print(kernel: Kernel): string {
    if (usesFloat64(kernel)) throw float64Error(kernel.name);
    this.helpers = new Set();
    return super.print(kernel);
  }

  protected literal(value: number, type: ScalarType): string {
    switch (type) {
      case "bool":
        return value ? "true" : "false";
      case "i32":
        return value === INT_MIN ? "bitcast<i32>(0x80000000u)" : String(value | 0);
      case "f32":
        return f32Literal(value);
      case "f64":
        throw float64Error();
    }
  }

  private call(helper: HelperName, args: string): string {
    this.helpers.add(helper);
    return `${helper}(${args})`;
  }

  protected operation(e: Expr, [a, b, c]: readonly string[]): string {
    const float = e.type === "f32";
    const one = float ? "1.0" : "1";
    switch (e.op) {
      case "load":
        return `in${e.arg}[${a}]`;
      case "select":
        return `select(${c}, ${b}, ${a})`;
      case "cast":
        return `${wgslType(e.type)}(${a})`;
      case "neg":
        return `-${a}`;
      case "not":
        return `!${a}`;
      case "exp":
      case "log":
      case "sqrt":
      case "abs":
        return `${e.op}(${a})`;
      case "sign":
        return float ? this.call("sign_f32", a) : `sign(${a})`;
      case "tanh":
        return this.call("tanh_f32", a);
      case "rsqrt":
        return `inverseSqrt(${a})`;
      case "recip":
        return `${one} / ${a}`;
      case "sigmoid":
        return `1.0 / (1.0 + exp(-${a}))`;
      case "add":
        // x + -c reads as x - c (not for the most negative i32, whose negation overflows)
        if (e.srcs[1].isConst() && e.srcs[1].value < 0 && e.srcs[1].value > -2147483648) {
          return `${a} - ${this.literal(-e.srcs[1].value, e.type)}`;
        }
        return `${a} + ${b}`;
      case "sub":
        return `${a} - ${b}`;
      case "mul":
        if (e.srcs[1].isConst(-1)) return `-${a}`;
        return `${a} * ${b}`;
      case "div":
        return `${a} / ${b}`;
      case "pow":
        return float
          ? this.call("pow_f32", `${a}, ${b}`)
          : `i32(${this.call("pow_f32", `f32(${a}), f32(${b})`)})`;
      case "max":
      case "min":
        return float ? this.call(`${e.op}_f32`, `${a}, ${b}`) : `${e.op}(${a}, ${b})`;
      case "lt":
        return `${a} < ${b}`;
      case "le":
        return `${a} <= ${b}`;
      case "eq":
        return `${a} == ${b}`;
      case "and":
        return `${a} && ${b}`;
      case "idiv":
        return this.nonNegative(e) ? `${a} / ${b}` : this.call("floor_div", `${a}, ${b}`);
      case "imod":
        return this.nonNegative(e) ? `${a} % ${b}` : this.call("floor_mod", `${a}, ${b}`);
      default:
        throw new Error(`WgslPrinter: no spelling for op ${e.op}`);
    }
  }

  /** Whether truncating and floor division agree: a >= 0 and b > 0 on their ranges. */
  private nonNegative(e: Expr): boolean {
    return e.srcs[0].min >= 0 && e.srcs[1].min > 0;
  }

  protected declare(name: string, type: ScalarType, text: string, mutable: boolean): string {
    return `${mutable ? "var" : "let"} ${name}: ${wgslType(type)} = ${text};`;
  }

  protected loopHeader(v: string, lo: string, hi: string): string {
    return `for (var ${v}: i32 = ${lo}; ${v} < ${hi}; ${v}++) {`;
  }

  protected accumulate(op: ReduceArg["op"], acc: string, value: string, type: ScalarType): string {
    if (op !== "max") return `${acc} = ${acc} + ${value};`;
    return type === "f32"
      ? `${acc} = ${this.call("max_f32", `${acc}, ${value}`)};`
      : `${acc} = max(${acc}, ${value});`;
  }

  protected store(index: string, value: string): string {
    return `out[${index}] = ${value};`;
  }

  protected frame(kernel: Kernel, body: string[]): string {
    const lines: string[] = kernel.comment.split("\n").map((l) => `// ${l}`);
    lines.push(
      `@group(0) @binding(0) var<storage, read_write> out: array<${wgslType(kernel.outType)}>;`,
    );
    kernel.inputs.forEach((input, i) => {
      lines.push(
        `@group(0) @binding(${i + 1}) var<storage, read> in${i}: array<${wgslType(input.type)}>;`,
      );
    });
    lines.push("");
    for (const name of Object.keys(HELPERS) as HelperName[]) {
      if (this.helpers.has(name)) lines.push(...HELPERS[name], "");
    }
    const total = kernel.outShape.reduce((n, d) => n * d, 1);
    const twoD = dispatchGrid(total)[1] > 1;
    const params = twoD
      ? "@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>"
      : "@builtin(global_invocation_id) id: vec3<u32>";
    lines.push(`@compute @workgroup_size(${WORKGROUP_SIZE})`);
    lines.push(`fn ${kernel.name}(${params}) {`);
    lines.push(
      twoD
        ? `  let gid: u32 = id.x + id.y * (nwg.x * ${WORKGROUP_SIZE}u);`
        : "  let gid: u32 = id.x;",
    );
    lines.push(`  if (gid >= ${total}u) { return; }`);
    // the output index of this invocation, one variable per axis (row-major)
    let stride = total;
    kernel.outVars.forEach((v, axis) => {
      const extent = kernel.outShape[axis];
      stride = extent === 0 ? 0 : stride / extent;
      const quotient = stride === 1 ? "gid" : `gid / ${stride}u`;
      const value = extent === 1
        ? "0"
        : axis === 0
        ? `i32(${quotient})`
        : stride === 1
        ? `i32(gid % ${extent}u)`
        : `i32((${quotient}) % ${extent}u)`;
      lines.push(`  let ${this.ref(v)}: i32 = ${value};`);
    });
    lines.push(...body, "}", "");
    return lines.join("\n");
  }
}

/** The WGSL source of `kernel` (throws for float64 kernels, which WebGPU cannot run). */
export function printWgsl(kernel: Kernel): string {
  return new WgslPrinter().print(kernel);
}
