// exp and log of the Wasm backend (codegen/wasm_math.ts) against Math.exp and Math.log, and tanh
// and sigmoid built on exp against float64, over the whole float32 range: every 2^12-th bit pattern (about a million inputs, both signs,
// subnormals, infinities and NaN), through the library on the cpu device with Wasm kernels,
// vector lanes and scalar tail alike. The bounds asserted are the ones README states.

import { cpu, tensor } from "../mod.ts";
import { assert } from "./assert.ts";
import { withCpuKernels } from "./helpers.ts";

/** Float32 values spread over every binade: each 4096th bit pattern, and the specials. */
function float32Range(): Float32Array {
  const bits = new Uint32Array(2 ** 20 + 8);
  for (let i = 0; i < 2 ** 20; i++) bits[i] = i * 4096 + (i % 4096);
  const values = new Float32Array(bits.buffer);
  values.set([0, -0, Infinity, -Infinity, NaN, 1, -1, 2 ** -149], 2 ** 20);
  return values;
}

/** Distance in float32 ulps between `a` and `b` (both finite, or equal). */
function ulps(a: number, b: number): number {
  if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) return 0;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return Infinity;
  const view = new DataView(new ArrayBuffer(8));
  const ordered = (x: number) => {
    view.setFloat32(0, x);
    const i = view.getInt32(0);
    return i < 0 ? -(i & 0x7fffffff) : i;
  };
  return Math.abs(ordered(a) - ordered(b));
}

/** sigmoid in float64, in the form that neither overflows nor cancels. */
function sigmoid64(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x < 0 ? e / (1 + e) : 1 / (1 + e);
}

/** Float64 references of the ops built on the Wasm exp and log. */
const REFERENCES = { exp: Math.exp, log: Math.log, tanh: Math.tanh, sigmoid: sigmoid64 };

/** The largest ulp error of `op` over the range, and where. */
async function worst(op: keyof typeof REFERENCES): Promise<{ error: number; at: number; }> {
  const x = float32Range();
  const got = await tensor(x)[op]().data();
  let error = 0;
  let at = NaN;
  for (let i = 0; i < x.length; i++) {
    const want = Math.fround(REFERENCES[op](x[i]));
    const e = ulps(got[i], want);
    if (e > error) [error, at] = [e, x[i]];
  }
  return { error, at };
}

Deno.test({
  name: "wasm exp and log: within 1 float32 ulp of Math over the whole range",
  ignore: !cpu.simd,
  fn: () =>
    withCpuKernels("wasm", async () => {
      for (const op of ["exp", "log"] as const) {
        const { error, at } = await worst(op);
        assert(error <= 1, `${op}: ${error} ulps at ${at}`);
      }
    }),
});

Deno.test({
  name: "wasm tanh and sigmoid: within a few float32 ulps of float64 over the whole range",
  ignore: !cpu.simd,
  fn: () =>
    withCpuKernels("wasm", async () => {
      // the bounds of an exhaustive sweep of all 2^32 inputs (README); sigmoid below -88.7 used
      // to overflow e^-x and give 0 where the result is a subnormal
      for (const [op, bound] of [["tanh", 4], ["sigmoid", 3]] as const) {
        const { error, at } = await worst(op);
        assert(error <= bound, `${op}: ${error} ulps at ${at}`);
      }
    }),
});
