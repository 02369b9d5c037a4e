// gradcheck: the autodiff gradient of a function against float64 central finite differences.
// A non-scalar output is contracted with fixed random weights, L = sum(f(x) * w), so one check
// covers the whole vector-Jacobian product. Inputs are copied to float64 on the cpu device.

import { tensor } from "./creation.ts";
import { privateUniforms } from "./random.ts";
import { grad } from "./grad.ts";
import { isTensor, type Tensor } from "./tensor.ts";
import {
  checkKnownKeys,
  checkOptionsObject,
  dense,
  fail,
  failDisposed,
  isArray,
} from "./validate.ts";

/**
 * The weights of the checked sum: the same every call, from a generator of gradcheck's own (it
 * drew them with randn, so a gradcheck changed every later random number of a seeded run).
 * Values in [0.5, 1.5) with random signs: none near 0, where an element would go unchecked.
 */
function checkWeights(shape: readonly number[]): Tensor {
  const next = privateUniforms(0);
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Float64Array.from({ length: n }, () => (next() < 0.5 ? -1 : 1) * (0.5 + next()));
  return tensor(values, { shape, dtype: "float64" });
}

/** Options of {@link gradcheck}. */
export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** Relative tolerance (default 1e-4). */
  rtol?: number;
}

/** What {@link gradcheck} found. */
export interface GradcheckResult {
  /** Whether every element was within `atol + rtol * |numeric|`. */
  readonly passed: boolean;
  /** The largest |autodiff - numeric| over all inputs' elements. */
  readonly maxError: number;
  /** Where it was: input index and flat element index. */
  readonly worst: {
    readonly input: number;
    readonly index: number;
    readonly analytic: number;
    readonly numeric: number;
  };
}

/**
 * Compares the autodiff gradient of `fn` at `inputs` with float64 central finite differences
 * and reports the largest error. `fn` may return any shape.
 *
 * @example
 * ```ts
 * import { gradcheck, randn } from "@lucid/nn";
 * const result = gradcheck((x) => x.tanh().mul(x), [randn([5], { dtype: "float64" })]);
 * console.log(result.passed); // true
 * ```
 */
export function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  options: GradcheckOptions = {},
): GradcheckResult {
  if (typeof fn !== "function") fail("gradcheck", "fn must be a function", fn);
  // a copy, each element read once (a getter read again after its check gave a number to use),
  // holes as undefined (every() skips them: a hole reached grad(), which named itself)
  const given = inputs;
  if (!isArray(given) || !(inputs = dense(given) as Tensor[]).every((t) => isTensor(t))) {
    fail("gradcheck", "inputs must be an array of Tensors", given);
  }
  inputs.forEach((t, i) => {
    if (t.isDisposed) failDisposed("gradcheck", t); // (it was named by the copy, "to")
    // finite differences evaluate synchronously, in float64: cpu only
    if (t.device !== "cpu") fail("gradcheck", `input ${i} must be on the cpu device`, t.device);
    // as grad() refuses them: an integer input has no derivative to check
    if (t.dtype === "int32") fail("gradcheck", `input ${i} must be float32 or float64`, t.dtype);
  });
  checkOptionsObject("gradcheck", options);
  checkKnownKeys("gradcheck", "options", options, ["eps", "atol", "rtol"]);
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-4 } = options;
  // the step divides: it must be positive (0 gave an error of Infinity)
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    fail("gradcheck", "options.eps must be a positive finite number", eps);
  }
  for (const [name, v] of [["atol", atol], ["rtol", rtol]] as const) {
    if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) {
      fail("gradcheck", `options.${name} must be a non-negative finite number`, v);
    }
  }
  const values = inputs.map((t) => Float64Array.from(t.dataSync()));
  const shapes = inputs.map((t) => t.shape);
  const make = (vals: Float64Array[]) =>
    vals.map((v, i) => tensor(v, { shape: shapes[i], dtype: "float64" }));
  const first = fn(...make(values));
  if (!isTensor(first)) fail("gradcheck", "fn must return a Tensor", first);
  const outShape = first.shape;
  const weights = checkWeights(outShape);
  const loss = (...xs: Tensor[]) => fn(...xs).cast("float64").mul(weights).sum();
  const analytic = grad(loss)(...make(values)).map((g) => g.dataSync());
  const evaluate = (vals: Float64Array[]) => loss(...make(vals)).dataSync()[0];
  let maxError = 0;
  let passed = true;
  let worst = { input: -1, index: -1, analytic: 0, numeric: 0 };
  values.forEach((v, input) => {
    for (let index = 0; index < v.length; index++) {
      const original = v[index];
      v[index] = original + eps;
      const plus = evaluate(values);
      v[index] = original - eps;
      const minus = evaluate(values);
      v[index] = original;
      const numeric = (plus - minus) / (2 * eps);
      const error = Math.abs(analytic[input][index] - numeric);
      if (!(error <= atol + rtol * Math.abs(numeric))) passed = false;
      if (error > maxError || Number.isNaN(error)) {
        maxError = Number.isNaN(error) ? Infinity : error;
        worst = { input, index, analytic: analytic[input][index], numeric };
      }
    }
  });
  return { passed, maxError, worst };
}
