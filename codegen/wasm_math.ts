// exp and log for the Wasm backend, which has no such instructions: vector functions
// (f32x4 -> f32x4) a kernel calls, also for its scalar tail (through lane 0). Both follow the
// classic Cephes float routines: range reduction by powers of two, then a minimax polynomial.
// Measured against Math.exp and Math.log over the whole float32 range in tests/wasm_math_test.ts
// (the errors are stated in README).
//
// exp(x): x is clamped to [-104, 89] (beyond, the result is 0 or Infinity anyway; NaN stays
// NaN); n = nearest(x / ln 2); r = x - n ln 2 in two parts (Cody-Waite), |r| <= ln 2 / 2;
// e^r by a degree-7 polynomial; 2^n as two powers of two built from their exponent bits, so
// results below 2^-126 round once, as subnormals.
// log(x): subnormal x is scaled by 2^23 first; x = m 2^e with m in [sqrt(1/2), sqrt(2));
// log(m) = f - f^2/2 + f^3 P(f) with f = m - 1; log(x) = log(m) + e ln 2 (ln 2 in two parts);
// x < 0 and NaN give NaN, 0 gives -Infinity, Infinity gives Infinity.
// The JavaScript backend spells the same steps in float32 (js.ts, KERNEL_MATH), so the cpu's
// two kernel targets compute the same bits.

import { FunctionBuilder } from "./wasm_module.ts";

/** e^r - 1 - r = r^2 P(r): P's coefficients, highest first (Cephes expf). */
export const EXP_POLY: readonly number[] = [
  1.9875691500e-4,
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
];

/** log(1 + f) = f - f^2 / 2 + f^3 Q(f): Q's coefficients, highest first (Cephes logf). */
export const LOG_POLY: readonly number[] = [
  7.0376836292e-2,
  -1.1514610310e-1,
  1.1676998740e-1,
  -1.2420140846e-1,
  1.4249322787e-1,
  -1.6668057665e-1,
  2.0000714765e-1,
  -2.4999993993e-1,
  3.3333331174e-1,
];

/** ln 2 in two parts (Cody-Waite): LN2_HI has few bits, so n * LN2_HI is exact. */
export const LN2_HI = 0.693359375;
export const LN2_LO = -2.12194440e-4;

/** Pushes a splat of the float `value`. */
function splat(fn: FunctionBuilder, value: number): FunctionBuilder {
  return fn.f32(value).op("f32x4.splat");
}

/** Leaves `coefficients` evaluated at local `x` by Horner's rule on the stack. */
function horner(fn: FunctionBuilder, x: number, coefficients: readonly number[]): void {
  splat(fn, coefficients[0]);
  for (const c of coefficients.slice(1)) {
    fn.get(x).op("f32x4.mul");
    splat(fn, c).op("f32x4.add");
  }
}

/** `exp_f32x4(x: v128) -> v128`. */
export function expFunction(): FunctionBuilder {
  const fn = new FunctionBuilder("exp_f32x4", [{ name: "x", type: "v128" }], ["v128"]);
  const x = 0;
  const n = fn.local("v128", "n");
  const r = fn.local("v128", "r");
  const i = fn.local("v128", "i");
  const half = fn.local("v128", "half");
  // x = min(max(x, -104), 89)
  fn.get(x);
  splat(fn, -104).op("f32x4.max");
  splat(fn, 89).op("f32x4.min").set(x);
  // n = nearest(x / ln 2); r = x - n * LN2_HI - n * LN2_LO
  fn.get(x);
  splat(fn, Math.LOG2E).op("f32x4.mul", "f32x4.nearest").set(n);
  fn.get(x).get(n);
  splat(fn, LN2_HI).op("f32x4.mul", "f32x4.sub").get(n);
  splat(fn, LN2_LO).op("f32x4.mul", "f32x4.sub").set(r);
  // e^r = 1 + r + r^2 P(r)
  horner(fn, r, EXP_POLY);
  fn.get(r).op("f32x4.mul").get(r).op("f32x4.mul").get(r).op("f32x4.add");
  splat(fn, 1).op("f32x4.add");
  // times 2^n = 2^(n >> 1) * 2^(n - (n >> 1)), each from its exponent bits
  fn.get(n).op("i32x4.trunc_sat_f32x4_s").set(i);
  fn.get(i).i32(1).op("i32x4.shr_s").set(half);
  fn.get(half).i32(127).op("i32x4.splat", "i32x4.add").i32(23).op("i32x4.shl", "f32x4.mul");
  fn.get(i).get(half).op("i32x4.sub").i32(127).op("i32x4.splat", "i32x4.add").i32(23);
  fn.op("i32x4.shl", "f32x4.mul");
  return fn;
}

/**
 * `log_f32x4(x: v128) -> v128`. It opens as expFunction does (a builder and a named v128 local
 * per intermediate): the builder's way of declaring a function, not logic to share.
 */
export function logFunction(): FunctionBuilder {
  const fn = new FunctionBuilder("log_f32x4", [{ name: "x", type: "v128" }], ["v128"]);
  const x = 0;
  const tiny = fn.local("v128", "tiny");
  const bits = fn.local("v128", "bits");
  const e = fn.local("v128", "e");
  const m = fn.local("v128", "m");
  const big = fn.local("v128", "big");
  const f = fn.local("v128", "f");
  const z = fn.local("v128", "z");
  const y = fn.local("v128", "y");
  const ef = fn.local("v128", "ef");
  // subnormals: scale by 2^23 (and take 23 from the exponent below)
  fn.get(x);
  splat(fn, 2 ** -126).op("f32x4.lt").set(tiny);
  fn.get(x);
  splat(fn, 2 ** 23).op("f32x4.mul").get(x).get(tiny).op("v128.bitselect").set(bits);
  // e = ((bits >> 23) & 255) - 127 (- 23 if scaled)
  fn.get(bits).i32(23).op("i32x4.shr_u").i32(255).op("i32x4.splat", "v128.and");
  fn.i32(127).op("i32x4.splat", "i32x4.sub").get(tiny).i32(23).op("i32x4.splat", "v128.and");
  fn.op("i32x4.sub").set(e);
  // m = mantissa in [1, 2), then in [sqrt(1/2), sqrt(2))
  fn.get(bits).i32(0x007fffff).op("i32x4.splat", "v128.and").i32(0x3f800000);
  fn.op("i32x4.splat", "v128.or").set(m);
  fn.get(m);
  splat(fn, Math.SQRT2).op("f32x4.gt").set(big);
  fn.get(m);
  splat(fn, 0.5).op("f32x4.mul").get(m).get(big).op("v128.bitselect").set(m);
  fn.get(e).get(big).op("i32x4.sub").set(e); // big is -1 where true
  // f = m - 1; z = f^2; y = f^3 Q(f) + e LN2_LO - z / 2; log = f + y + e LN2_HI
  fn.get(m);
  splat(fn, 1).op("f32x4.sub").set(f);
  fn.get(f).get(f).op("f32x4.mul").set(z);
  horner(fn, f, LOG_POLY);
  fn.get(f).op("f32x4.mul").get(z).op("f32x4.mul").set(y);
  fn.get(e).op("f32x4.convert_i32x4_s").set(ef);
  fn.get(y).get(ef);
  splat(fn, LN2_LO).op("f32x4.mul", "f32x4.add").get(z);
  splat(fn, 0.5).op("f32x4.mul", "f32x4.sub").set(y);
  fn.get(f).get(y).op("f32x4.add").get(ef);
  splat(fn, LN2_HI).op("f32x4.mul", "f32x4.add").set(y);
  // specials: NaN and x < 0 give NaN, 0 gives -Infinity, Infinity gives Infinity
  splat(fn, NaN).get(y).get(x).get(x).op("f32x4.ne").get(x);
  splat(fn, 0).op("f32x4.lt", "v128.or", "v128.bitselect").set(y);
  splat(fn, -Infinity).get(y).get(x);
  splat(fn, 0).op("f32x4.eq", "v128.bitselect").set(y);
  splat(fn, Infinity).get(y).get(x);
  splat(fn, Infinity).op("f32x4.eq", "v128.bitselect");
  return fn;
}
