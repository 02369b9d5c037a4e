// The WGSL backend's printer: a program as a WebGPU compute shader. A thin sibling of the
// JavaScript printer: linearize.ts placed and named every value, decompose (targets.ts)
// rewrote what WGSL lacks (floor division, NaN-propagating max and min, pow of any base,
// sign of NaN, tanh near 0); this file only spells constants, operators, declarations, loops
// and the shader around them.
//
// - typed storage bindings: `out` (read_write) at binding 0 (`out0`, `out1`, ... at 0, 1, ...
//   when a kernel writes several outputs), `in0`, `in1`, ... (read) after;
// - launch mode `grid`: one invocation per output element, 64 per workgroup; more than 65535
//   workgroups become a 2-D grid (see `dispatchGrid`), so the flat index is
//   `id.x + id.y * (nwg.x * 64)`, and each output variable is derived from it;
// - launch mode `workgroup`: one workgroup of `lanes` invocations per output element, indexed
//   by the workgroup id (uniform, so the early return keeps the barriers in uniform control
//   flow); split reductions combine their lanes through workgroup memory in a tree;
// - float literals always carry a `.` or an exponent (`1.0`, `1e-7`); the most negative i32 is
//   a bitcast; infinities and NaN have no literal, and a constant expression may not produce
//   them either (the WGSL spec makes that a shader-creation error, which Chrome's Tint
//   enforces while naga lets it pass), so they are bitcasts of private u32 variables, whose
//   reads are runtime values;
// - indices are i32: the compiler refuses a kernel whose index ranges leave i32 (compile.ts);
// - WGSL has no f64: a float64 kernel cannot be printed and throws.

import { CStylePrinter, shortestF32 } from "./printer.ts";
import { type Expr, outputName, type ReduceArg, type ScalarType } from "./kernel.ts";
import { combineStep, WGSL_TARGET } from "./targets.ts";
import type { LoopStmt, Program } from "./linearize.ts";
import { INT32_MIN } from "../src/ir/dtype.ts";

/** Invocations per workgroup in launch mode `grid`. */
export const WORKGROUP_SIZE = 64;

/** Workgroups per grid dimension the printer plans for (WebGPU's guaranteed minimum limit). */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * The workgroup grid `[x, y]` for `groups` workgroups: one row of up to 65535, and as many rows
 * as needed. The printed shader and the runtime's dispatch both use this, so they agree on how
 * the flat index is formed.
 */
export function workgroupGrid(groups: number): [number, number] {
  if (groups <= MAX_WORKGROUPS_PER_DIMENSION) return [groups, 1];
  return [MAX_WORKGROUPS_PER_DIMENSION, Math.ceil(groups / MAX_WORKGROUPS_PER_DIMENSION)];
}

/** The workgroup grid covering `total` output elements in launch mode `grid`. */
export function dispatchGrid(total: number): [number, number] {
  return workgroupGrid(Math.ceil(total / WORKGROUP_SIZE));
}

/** The private variables holding the bits of the f32 values WGSL cannot spell as constants. */
const SPECIAL_F32_BITS = {
  inf_bits: "0x7f800000u",
  neg_inf_bits: "0xff800000u",
  nan_bits: "0x7fc00000u",
  // a zero multiplied or divided by: the shader compiler folds `x * 0.0` to 0 (llvmpipe gave
  // 0 for Infinity * 0 and NaN * 0, and +0 for 1 * -0), and a private variable's constant
  // value too: these are set in the kernel from the grid's z index, 0 at run time (see frame)
  zero_bits: "0x00000000u",
  neg_zero_bits: "0x80000000u",
} as const;
type SpecialF32 = keyof typeof SPECIAL_F32_BITS;
/** The specials set at run time (from an index the compiler cannot know is 0). */
const RUNTIME_ZEROS: readonly SpecialF32[] = ["zero_bits", "neg_zero_bits"];

/** The variable holding `f`'s bits if `f` is an infinity or NaN. */
function specialF32(f: number): SpecialF32 | undefined {
  if (Number.isNaN(f)) return "nan_bits";
  if (f === Infinity) return "inf_bits";
  if (f === -Infinity) return "neg_inf_bits";
  return undefined;
}

/** A finite f32 literal: the shortest decimal that reads back as the same f32. */
function f32Literal(value: number): string {
  const f = Math.fround(value);
  if (Object.is(f, -0)) return "-0.0";
  const shortest = shortestF32(f);
  // plain decimals down to 1e-4 (0.001 reads better than 1e-3), exponents below
  const text = shortest !== 0 && Math.abs(shortest) < 1e-4
    ? shortest.toExponential()
    : String(shortest);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

/** The WGSL name of a scalar type (f64 has none). */
function wgslType(type: ScalarType): string {
  if (type === "f64") throw float64Error();
  return type === "index" ? "i32" : type;
}

/** The Error for a float64 kernel on WebGPU (`name`: the kernel's name, if known). */
export function float64Error(name?: string): Error {
  const what = name === undefined
    ? "a float64 kernel"
    : `kernel ${name} computes in float64, which`;
  return new Error(
    `webgpu: ${what} cannot run on WebGPU (WGSL has no 64-bit floats); ` +
      `use float32 tensors on "webgpu", or the "cpu" device for float64`,
  );
}

/** Prints programs as WGSL compute shaders. */
export class WgslPrinter extends CStylePrinter {
  // windows unrolled: 1.6x on LocalResponseNorm (llvmpipe). The JavaScript printer keeps its
  // loops: there unrolling gained 1.4x but the cpu device runs Wasm, and the JS form is the
  // readable one.
  protected override readonly unrollMaxTrips = 8;
  /** The special f32 values the program being printed uses. */
  #specials = new Set<SpecialF32>();

  override print(program: Program): string {
    this.#specials.clear();
    return super.print(program);
  }

  protected literal(value: number, type: ScalarType): string {
    switch (type) {
      case "bool":
        return value ? "true" : "false";
      case "i32":
      case "index":
        return value === INT32_MIN ? "bitcast<i32>(0x80000000u)" : String(value | 0);
      case "f32": {
        const special = specialF32(Math.fround(value));
        if (special === undefined) return f32Literal(value);
        this.#specials.add(special);
        return `bitcast<f32>(${special})`;
      }
      case "f64":
        throw float64Error();
    }
  }

  /**
   * A sum starts from the run-time zero: the driver folded `0.0 + x` in an unrolled sum, so a sum
   * of -0 values gave -0 where it gives +0 on the cpu (and IEEE's +0 + -0 is +0).
   */
  protected override identity(value: number, type: ScalarType): string {
    if (type !== "f32" || !Object.is(value, 0)) return super.identity(value, type);
    this.#specials.add("zero_bits");
    return "bitcast<f32>(zero_bits)";
  }

  /** `text`, or a float zero constant `src` spelled from a private variable (see zero_bits). */
  #unfolded(src: Expr, text: string): string {
    if (src.type !== "f32" || !src.isConst(0)) return text;
    const special = Object.is(src.value, -0) ? "neg_zero_bits" : "zero_bits";
    this.#specials.add(special);
    return `bitcast<f32>(${special})`;
  }

  protected operation(e: Expr, [a, b, c]: readonly string[]): string {
    const one = e.type === "f32" ? "1.0" : "1";
    switch (e.op) {
      case "load":
        return `in${e.arg}[${a}]`;
      case "select":
        return `select(${c}, ${b}, ${a})`;
      case "cast":
        // an integer is never -0, but llvmpipe folds `f32(i32(x))` into a truncation that keeps
        // x's sign (-0.5 gave -0): adding a zero it cannot see gives +0 for a zero at run time
        if (e.type === "f32" && e.srcs[0].type !== "f32" && e.srcs[0].type !== "bool") {
          this.#specials.add("zero_bits");
          return `(f32(${a}) + bitcast<f32>(zero_bits))`;
        }
        return `${wgslType(e.type)}(${a})`;
      case "neg":
        return `-${a}`;
      case "not":
        return `!${a}`;
      case "isnan":
        // by its bits: a driver may fold `a != a` to false (Mesa's lavapipe does)
        return `(bitcast<u32>(${a}) & 0x7fffffffu) > 0x7f800000u`;
      case "exp":
      case "log":
      case "sqrt":
      case "abs":
      case "tanh":
      case "trunc":
        return `${e.op}(${a})`;
      case "rsqrt":
        return `inverseSqrt(${a})`;
      case "recip":
        return `${one} / ${a}`;
      case "add":
        // x + -c reads as x - c (not for the most negative i32, whose negation overflows)
        if (e.srcs[1].isConst() && e.srcs[1].value < 0 && e.srcs[1].value > INT32_MIN) {
          return `${a} - ${this.literal(-e.srcs[1].value, e.type)}`;
        }
        // a zero added is spelled from a private variable, as one multiplied by: the driver
        // folded `x + 0.0` to x, and -0 + 0 gave -0
        return `${this.#unfolded(e.srcs[0], a)} + ${this.#unfolded(e.srcs[1], b)}`;
      case "sub":
        return `${this.#unfolded(e.srcs[0], a)} - ${this.#unfolded(e.srcs[1], b)}`;
      case "mul":
        if (e.srcs[1].isConst(-1)) return `-${a}`;
        return `${this.#unfolded(e.srcs[0], a)} * ${this.#unfolded(e.srcs[1], b)}`;
      case "div":
        return `${this.#unfolded(e.srcs[0], a)} / ${this.#unfolded(e.srcs[1], b)}`;
      case "tdiv":
        return `${a} / ${b}`;
      case "tmod":
        return `${a} % ${b}`;
      case "ppow":
        return `pow(${a}, ${b})`;
      case "fmax":
      case "fmin":
        return `${e.op.slice(1)}(${a}, ${b})`;
      case "max":
      case "min":
        // integers only: float max and min were decomposed (NaN must propagate)
        return `${e.op}(${a}, ${b})`;
      case "lt":
        return `${a} < ${b}`;
      case "le":
        return `${a} <= ${b}`;
      case "eq":
        return `${a} == ${b}`;
      case "and":
        return `${a} && ${b}`;
      default:
        throw new Error(`WgslPrinter: no spelling for op ${e.op}`);
    }
  }

  protected declare(name: string, type: ScalarType, text: string, mutable: boolean): string {
    return `${mutable ? "var" : "let"} ${name}: ${wgslType(type)} = ${text};`;
  }

  protected loopHeader(loop: LoopStmt, v: string, lo: string, hi: string): string {
    if (loop.role !== "lanes") return `for (var ${v}: i32 = ${lo}; ${v} < ${hi}; ${v}++) {`;
    const start = loop.lo.isConst(0) ? "i32(lane)" : `${lo} + i32(lane)`;
    return `for (var ${v}: i32 = ${start}; ${v} < ${hi}; ${v} += ${this.program.lanes}) {`;
  }

  /** Tree combination of the lanes' accumulators in workgroup memory; every lane gets it. */
  protected override combine(reduce: Expr): string[] {
    const acc = this.ref(reduce);
    const shared = sharedArray(reduce.type);
    const op = (reduce.arg as ReduceArg).op === "sum" ? "add" : "max";
    const { step: combine, left, right } = combineStep(op, reduce.type, WGSL_TARGET);
    const step = this.inline(
      combine,
      new Map([[left, `${shared}[lane]`], [right, `${shared}[lane + s]`]]),
    );
    return [
      `${shared}[lane] = ${acc};`,
      "workgroupBarrier();",
      `for (var s: u32 = ${this.program.lanes / 2}u; s > 0u; s = s >> 1u) {`,
      "  if (lane < s) {",
      `    ${shared}[lane] = ${step};`,
      "  }",
      "  workgroupBarrier();",
      "}",
      `${acc} = ${shared}[0];`,
      "workgroupBarrier();",
    ];
  }

  protected store(output: string, index: string, value: string): string {
    const line = `${output}[${index}] = ${value};`;
    return this.program.mode === "workgroup" ? `if (lane == 0u) { ${line} }` : line;
  }

  protected frame(program: Program, body: string[]): string {
    const { kernel } = program;
    const lines: string[] = kernel.comment.split("\n").map((l) => `// ${l}`);
    const outputs = kernel.outputs.length;
    kernel.outputs.forEach((output, k) => {
      const name = outputName(k, outputs);
      lines.push(
        `@group(0) @binding(${k}) var<storage, read_write> ${name}: array<${
          wgslType(output.type)
        }>;`,
      );
    });
    kernel.inputs.forEach((input, i) => {
      const binding = outputs + i;
      lines.push(
        `@group(0) @binding(${binding}) var<storage, read> in${i}: array<${wgslType(input.type)}>;`,
      );
    });
    for (const [name, bits] of Object.entries(SPECIAL_F32_BITS)) {
      if (this.#specials.has(name as SpecialF32)) {
        lines.push(`var<private> ${name}: u32 = ${bits};`);
      }
    }
    const total = kernel.outShape.reduce((n, d) => n * d, 1);
    const workgroup = program.mode === "workgroup";
    if (workgroup) {
      for (const type of sharedTypes(program)) {
        lines.push(
          `var<workgroup> ${sharedArray(type)}: array<${wgslType(type)}, ${program.lanes}>;`,
        );
      }
    }
    lines.push("");
    const size = workgroup ? program.lanes : WORKGROUP_SIZE;
    const twoD = workgroupGrid(workgroup ? total : Math.ceil(total / WORKGROUP_SIZE))[1] > 1;
    const params = workgroup
      ? ["@builtin(workgroup_id) wid: vec3<u32>", "@builtin(local_invocation_index) lane: u32"]
      : ["@builtin(global_invocation_id) id: vec3<u32>"];
    if (twoD) params.push("@builtin(num_workgroups) nwg: vec3<u32>");
    lines.push(`@compute @workgroup_size(${size})`);
    lines.push(`fn ${kernel.name}(${params.join(", ")}) {`);
    if (workgroup) {
      lines.push(twoD ? "  let gid: u32 = wid.x + wid.y * nwg.x;" : "  let gid: u32 = wid.x;");
    } else {
      lines.push(
        twoD
          ? `  let gid: u32 = id.x + id.y * (nwg.x * ${WORKGROUP_SIZE}u);`
          : "  let gid: u32 = id.x;",
      );
    }
    lines.push(`  if (gid >= ${total}u) { return; }`);
    const z = workgroup ? "wid.z" : "id.z"; // 0: every launch is one workgroup deep
    for (const special of RUNTIME_ZEROS) {
      if (this.#specials.has(special)) {
        lines.push(`  ${special} = ${SPECIAL_F32_BITS[special]} | ${z};`);
      }
    }
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
    // joined, not spread into push: a body of 100,000 lines overflowed the stack
    return [lines.join("\n"), ...body.length === 0 ? [] : [body.join("\n")], "}", ""].join("\n");
  }
}

/** The workgroup array that combines accumulators of `type`. */
function sharedArray(type: ScalarType): string {
  return `partial_${type === "index" ? "i32" : type}`;
}

/** The types of the reductions a workgroup-mode program combines across lanes. */
function sharedTypes(program: Program): ScalarType[] {
  const types = new Set<ScalarType>();
  for (const s of program.body) if (s.kind === "combine") types.add(s.reduce.type);
  return [...types];
}

/** The WGSL source of a program (launch mode `grid` or `workgroup`). */
export function printWgsl(program: Program): string {
  return new WgslPrinter().print(program);
}
