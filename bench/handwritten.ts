// The baseline row: LocalResponseNorm as a straightforward hand-written JavaScript loop on
// float32 typed arrays, with direct window sums and Math.pow, as someone would write it without a
// compiler. Every ratio in bench/baseline.json is a row's median over this row's median in the
// same run, so machine speed and load cancel out.

import type { LrnParams } from "./reference.ts";

/** y = x / (k + alpha * sum of squares over the window)^beta, channels on axis 1. */
export function handwrittenForward(
  x: Float32Array,
  shape: readonly number[],
  p: LrnParams,
): Float32Array {
  const [n, c] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const before = Math.floor((p.size - 1) / 2);
  const after = Math.floor(p.size / 2);
  const y = new Float32Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const lo = Math.max(0, ch - before);
      const hi = Math.min(c - 1, ch + after);
      const row = (b * c + ch) * inner;
      for (let i = 0; i < inner; i++) {
        let s = 0;
        for (let j = lo; j <= hi; j++) {
          const v = x[(b * c + j) * inner + i];
          s += v * v;
        }
        y[row + i] = x[row + i] / Math.pow(p.k + p.alpha * s, p.beta);
      }
    }
  }
  return y;
}

/** y and dx (gradient of sum(y * g)): one pass for y and the per-channel terms, one for dx. */
export function handwrittenForwardBackward(
  x: Float32Array,
  g: Float32Array,
  shape: readonly number[],
  p: LrnParams,
): { y: Float32Array; dx: Float32Array; } {
  const [n, c] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const before = Math.floor((p.size - 1) / 2);
  const after = Math.floor(p.size / 2);
  const y = new Float32Array(x.length);
  const scale = new Float32Array(x.length); // D^-beta
  const term = new Float32Array(x.length); // g * x * D^(-beta-1)
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const lo = Math.max(0, ch - before);
      const hi = Math.min(c - 1, ch + after);
      const row = (b * c + ch) * inner;
      for (let i = 0; i < inner; i++) {
        let s = 0;
        for (let j = lo; j <= hi; j++) {
          const v = x[(b * c + j) * inner + i];
          s += v * v;
        }
        const d = p.k + p.alpha * s;
        const o = row + i;
        scale[o] = Math.pow(d, -p.beta);
        y[o] = x[o] * scale[o];
        term[o] = g[o] * y[o] / d;
      }
    }
  }
  const dx = new Float32Array(x.length);
  const factor = 2 * p.alpha * p.beta;
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < c; j++) {
      const lo = Math.max(0, j - after);
      const hi = Math.min(c - 1, j + before);
      const row = (b * c + j) * inner;
      for (let i = 0; i < inner; i++) {
        let s = 0;
        for (let ch = lo; ch <= hi; ch++) s += term[(b * c + ch) * inner + i];
        const o = row + i;
        dx[o] = g[o] * scale[o] - factor * x[o] * s;
      }
    }
  }
  return { y, dx };
}
