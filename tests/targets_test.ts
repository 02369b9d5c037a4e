// Targets and decompose (codegen/targets.ts): each rewrite of what a target lacks, checked
// against JavaScript's own semantics (Math.pow, Math.max, Math.sign, Math.floor, Math.tanh) on
// special values. The WGSL decompositions run twice: printed as JavaScript (so the rewrite
// itself is checked everywhere) and compiled to WGSL on the webgpu device when there is one.

import {
  type Expr,
  ExprBuilder,
  exprsInOrder,
  type Kernel,
  type ScalarType,
} from "../codegen/kernel.ts";
import { decompose, JS_TARGET, WGSL_TARGET } from "../codegen/targets.ts";
import { linearize } from "../codegen/linearize.ts";
import { printJs } from "../codegen/js.ts";
import { compile } from "../codegen/compile.ts";
import { webgpuBackend } from "../src/runtime/webgpu.ts";
import { assert, assertEquals } from "./assert.ts";
import { handKernel, webgpuAvailable } from "./helpers.ts";

/** out[o] = f(in0[o], in1[o]) over n elements of `type`. */
function binaryKernel(
  n: number,
  type: ScalarType,
  f: (b: ExprBuilder, x: Expr, y: Expr) => Expr,
): Kernel {
  const b = new ExprBuilder();
  const o = b.variable("o", n);
  return handKernel(b, {
    name: "k_case",
    outShape: [n],
    outType: type,
    outVars: [o],
    value: f(b, b.load(0, o, type), b.load(1, o, type)),
    outIndex: o,
    inputs: [{ type, shape: [n] }, { type, shape: [n] }],
  });
}

type Data = Float32Array | Int32Array;

/** Runs `kernel` decomposed for WGSL but printed as JavaScript (the rewrite, on any machine). */
function runDecomposedAsJs(kernel: Kernel, a: Data, b: Data): number[] {
  const program = linearize(decompose(kernel, WGSL_TARGET), "loops");
  const fn = new Function(`${printJs(program)}\nreturn ${kernel.name};`)();
  const out = kernel.outputs[0].type === "i32"
    ? new Int32Array(a.length)
    : new Float32Array(a.length);
  fn(out, a, b);
  return Array.from(out);
}

/** Runs `kernel` compiled to WGSL on the webgpu device. */
async function runOnGpu(kernel: Kernel, a: Data, b: Data): Promise<number[]> {
  const backend = webgpuBackend();
  const dtype = kernel.outputs[0].type === "i32" ? "int32" : "float32";
  const inputs = [backend.upload(a, dtype), backend.upload(b, dtype)];
  const output = backend.allocate(dtype, a.length);
  try {
    await backend.run([{ executable: compile(kernel, WGSL_TARGET), outputs: [output], inputs }]);
    return Array.from(await backend.read(output));
  } finally {
    for (const buffer of [output, ...inputs]) backend.release(buffer);
  }
}

/**
 * Asserts `got` equals `want` elementwise: exactly where `want` is NaN, infinite or zero (-0
 * differs from 0), else within `ulps` float32 ulps.
 */
function assertSame(
  got: number[],
  want: number[],
  what: string,
  cases: string[],
  ulps = 0,
): void {
  got.forEach((g, i) => {
    const w = want[i];
    const exact = !Number.isFinite(w) || w === 0 || ulps === 0;
    // a GPU may flush float32 subnormals (below 2^-126) to zero
    const flushed = ulps > 0 && Math.abs(w) < 2 ** -126 && g === 0;
    const ok = exact ? Object.is(g, w) : flushed || Math.abs(g - w) <= ulps * 1.2e-7 * Math.abs(w);
    assert(ok, `${what}: ${cases[i]} gave ${Object.is(g, -0) ? "-0" : g}, expected ${w}`);
  });
}

/** Checks one decomposed op on every (a, b) pair against `truth`, on cpu and webgpu. */
async function checkOp(
  what: string,
  pairs: [number, number][],
  type: ScalarType,
  f: (b: ExprBuilder, x: Expr, y: Expr) => Expr,
  truth: (a: number, b: number) => number,
  round: (v: number) => number,
  gpuUlps = 0,
): Promise<void> {
  const kernel = binaryKernel(pairs.length, type, f);
  const make = (values: number[]) =>
    type === "i32" ? Int32Array.from(values) : Float32Array.from(values);
  const a = make(pairs.map((p) => p[0]));
  const b = make(pairs.map((p) => p[1]));
  const want = pairs.map(([x, y]) => round(truth(round(x), round(y))));
  const spell = (v: number) => (Object.is(v, -0) ? "-0" : String(v));
  const cases = pairs.map(([x, y]) => `(${spell(x)}, ${spell(y)})`);
  assertSame(runDecomposedAsJs(kernel, a, b), want, `${what} decomposed`, cases);
  if (webgpuAvailable) {
    assertSame(await runOnGpu(kernel, a, b), want, `${what} on webgpu`, cases, gpuUlps);
  }
}

const specials = [0, -0, 1, -1, 2.5, -2.5, 3, -3, 0.5, -0.5, Infinity, -Infinity, NaN, 1e-20];

Deno.test("decompose: pow follows Math.pow for every base and exponent, WGSL has pow only for x > 0", async () => {
  const pairs: [number, number][] = [];
  for (const x of specials) {
    for (const y of [0, -0, 1, 2, 3, -1, -2, 0.5, -0.5, 2.5, Infinity, -Infinity, NaN]) {
      pairs.push([x, y]);
    }
  }
  // special results exactly; others within WGSL's pow accuracy: it is exp2(y * log2(x)), whose
  // error grows with |y * log2(x)| (llvmpipe: 9 ulp for 1e-20 ** 1)
  await checkOp(
    "pow",
    pairs,
    "f32",
    (b, x, y) => b.binary("pow", x, y),
    Math.pow,
    Math.fround,
    128,
  );
  // the rewrite leaves no general pow behind, only pow of a positive base
  const ops = new Set(
    exprsInOrder([
      decompose(binaryKernel(1, "f32", (b, x, y) => b.binary("pow", x, y)), WGSL_TARGET)
        .outputs[0].value,
    ]).map((e) => e.op),
  );
  assert(!ops.has("pow") && ops.has("ppow"));
});

Deno.test("decompose: max and min propagate NaN and order -0 below 0", async () => {
  const pairs: [number, number][] = [];
  for (const x of specials) for (const y of specials) pairs.push([x, y]);
  const finiteOrNan = (v: number) => Math.fround(v);
  await checkOp("max", pairs, "f32", (b, x, y) => b.binary("max", x, y), Math.max, finiteOrNan);
  await checkOp("min", pairs, "f32", (b, x, y) => b.binary("min", x, y), Math.min, finiteOrNan);
  // integers have no NaN: WGSL's own max stays
  const ints: [number, number][] = [[-5, 3], [7, 7], [-2147483648, 2147483647], [0, -1]];
  await checkOp("int max", ints, "i32", (b, x, y) => b.binary("max", x, y), Math.max, (v) => v | 0);
});

Deno.test("decompose: max, min and pow of x and -x give NaN for a NaN x (x + -x folds to 0)", async () => {
  // the NaN was made as x + y, which llvmpipe folds to 0 when y is -x: maximum(NaN, -NaN) gave 0
  // on webgpu (helper-164)
  const pairs: [number, number][] = specials.map((x) => [x, 0]);
  const round = (v: number) => Math.fround(v);
  for (const op of ["max", "min", "pow"] as const) {
    const math = op === "max" ? Math.max : op === "min" ? Math.min : Math.pow;
    await checkOp(
      `${op}(x, -x)`,
      pairs,
      "f32",
      (b, x) => b.binary(op, x, b.unary("neg", x)),
      (x) => math(x, -x),
      round,
      op === "pow" ? 128 : 0,
    );
  }
});

Deno.test("decompose: floor division and remainder of negative int32 values, without %", async () => {
  const pairs: [number, number][] = [];
  for (const x of [-7, -6, -1, 0, 1, 5, 6, 7, -2147483647, 2147483647]) {
    for (const y of [3, -3, 1, -1, 7, 2147483647]) pairs.push([x, y]);
  }
  await checkOp(
    "idiv",
    pairs,
    "i32",
    (b, x, y) => b.binary("idiv", x, y),
    (x, y) => Math.floor(x / y),
    (v) => v | 0,
  );
  await checkOp(
    "imod",
    pairs,
    "i32",
    (b, x, y) => b.binary("imod", x, y),
    (x, y) => x - Math.floor(x / y) * y,
    (v) => v | 0,
  );
  const text =
    compile(binaryKernel(1, "i32", (b, x, y) => b.binary("imod", x, y)), WGSL_TARGET).text;
  assert(!text.includes("%"), text);
});

Deno.test("decompose: sign keeps NaN and -0; tanh keeps its relative accuracy near 0", async () => {
  const pairs = specials.map((x): [number, number] => [x, 0]);
  await checkOp("sign", pairs, "f32", (b, x) => b.unary("sign", x), Math.sign, Math.fround);
  const small: [number, number][] = [
    1e-30,
    -1e-6,
    1e-4,
    0.0035,
    -0.05,
    0.1249,
    0.125,
    -0.3,
    5,
    NaN,
    -0,
  ].map((x) => [x, 0]);
  const kernel = binaryKernel(small.length, "f32", (b, x) => b.unary("tanh", x));
  const xs = Float32Array.from(small.map((p) => p[0]));
  const zeros = new Float32Array(small.length);
  const results = [runDecomposedAsJs(kernel, xs, zeros)];
  if (webgpuAvailable) results.push(await runOnGpu(kernel, xs, zeros));
  for (const got of results) {
    got.forEach((g, i) => {
      const want = Math.tanh(xs[i]);
      if (Number.isNaN(want)) assert(Number.isNaN(g), `tanh(NaN) gave ${g}`);
      else {assert(
          Math.abs(g - want) <= 4e-7 * Math.abs(want),
          `tanh(${xs[i]}) = ${g}, want ${want}`,
        );}
    });
  }
});

Deno.test("decompose: JavaScript has every op; only range rewrites apply to it", () => {
  const kernel = binaryKernel(4, "f32", (b, x, y) => b.binary("pow", b.binary("max", x, y), y));
  const ops = (k: Kernel) => new Set(exprsInOrder([k.outputs[0].value]).map((e) => e.op));
  assertEquals([...ops(decompose(kernel, JS_TARGET))].sort(), [...ops(kernel)].sort());
  // floor division of a non-negative index by a positive constant is truncating division
  const b = new ExprBuilder();
  const o = b.variable("o", 12);
  const split = handKernel(b, {
    name: "k_split",
    outShape: [12],
    outType: "f32",
    outVars: [o],
    value: b.load(0, b.binary("idiv", o, b.int(5)), "f32"),
    outIndex: o,
    inputs: [{ type: "f32", shape: [3] }],
  });
  const decomposed = ops(decompose(split, JS_TARGET));
  assert(decomposed.has("tdiv") && !decomposed.has("idiv"));
});
