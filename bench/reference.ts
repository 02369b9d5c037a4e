// The float64 reference every row is checked against before it is timed, written straight from
// the definition (tests/fixtures/lrn_golden.json states the same formulas), and the comparison
// that decides whether a row's output is right.
//
//   W(c) = [c - floor((size-1)/2), c + floor(size/2)] clipped to the channels
//   D_c = k + alpha * sum_{j in W(c)} x_j^2      (alpha not divided by size)
//   y_c = x_c * D_c^-beta
//   dx_j = g_j * D_j^-beta - 2 alpha beta x_j * sum_{c : j in W(c)} g_c x_c D_c^(-beta-1)

/** LocalResponseNorm parameters (Lucid semantics). */
export interface LrnParams {
  readonly size: number;
  readonly alpha: number;
  readonly beta: number;
  readonly k: number;
}

/** y (and dx when `g` is given) in float64, for `x` of `shape` with channels on axis 1. */
export function referenceLrn(
  x: ArrayLike<number>,
  shape: readonly number[],
  p: LrnParams,
  g?: ArrayLike<number>,
): { y: Float64Array; dx?: Float64Array; } {
  const [n, c] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const before = Math.floor((p.size - 1) / 2);
  const after = Math.floor(p.size / 2);
  const y = new Float64Array(x.length);
  const d = new Float64Array(x.length);
  const at = (b: number, ch: number, i: number) => (b * c + ch) * inner + i;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < inner; i++) {
        let s = 0;
        for (let j = Math.max(0, ch - before); j <= Math.min(c - 1, ch + after); j++) {
          const v = x[at(b, j, i)];
          s += v * v;
        }
        const o = at(b, ch, i);
        d[o] = p.k + p.alpha * s;
        y[o] = x[o] * Math.pow(d[o], -p.beta);
      }
    }
  }
  if (g === undefined) return { y };
  const dx = new Float64Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < c; j++) {
      for (let i = 0; i < inner; i++) {
        // the channels whose window holds j: c - before <= j <= c + after
        let s = 0;
        for (let ch = Math.max(0, j - after); ch <= Math.min(c - 1, j + before); ch++) {
          const o = at(b, ch, i);
          s += g[o] * x[o] * Math.pow(d[o], -p.beta - 1);
        }
        const o = at(b, j, i);
        dx[o] = g[o] * Math.pow(d[o], -p.beta) - 2 * p.alpha * p.beta * x[o] * s;
      }
    }
  }
  return { y, dx };
}

/**
 * Tolerance of the check: |got - want| <= RTOL * (|want| + rms(want)). Float32 rows land near
 * 1e-6; the rms term keeps near-zero entries of dx (sums that cancel) from failing on noise.
 */
export const RTOL = 1e-4;

/** The worst error of `got` against `want`, in units of the tolerance scale (pass: <= RTOL). */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let sq = 0;
  for (let i = 0; i < want.length; i++) sq += want[i] * want[i];
  const rms = Math.sqrt(sq / Math.max(1, want.length));
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + rms);
    // NaN is the worst there is: `!(e <= worst)` let the next finite error replace it
    if (Number.isNaN(e)) return NaN;
    if (e > worst) worst = e;
  }
  return worst;
}
