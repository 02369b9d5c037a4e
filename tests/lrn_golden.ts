// The LocalResponseNorm golden cases (tests/fixtures/lrn_golden.json: inputs x and g, and the
// float64 forward y and gradient dx, cross-checked with PyTorch) and the float32 tolerance its
// README recommends. Shared by the tests of the module, of its exports and of the benchmarks.

/** One golden case: LRN parameters, inputs x and g, expected y and dx (flat, row-major). */
export interface GoldenCase {
  name: string;
  shape: number[];
  size: number;
  alpha: number;
  beta: number;
  k: number;
  x: number[];
  g: number[];
  y: number[];
  dx: number[];
}

/** The golden cases. */
export const goldenCases: readonly GoldenCase[] = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/lrn_golden.json", import.meta.url)),
).cases;

/** The golden README's float32 tolerance: |got - want| <= 1e-4 |want| + 1e-5 max|want|. */
export function assertGolden(got: ArrayLike<number>, want: readonly number[], what: string): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: ${got.length} elements, want ${want.length}`);
  }
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  for (let i = 0; i < want.length; i++) {
    const bound = 1e-4 * Math.abs(want[i]) + 1e-5 * scale;
    if (!(Math.abs(got[i] - want[i]) <= bound)) {
      throw new Error(`${what}: element ${i} is ${got[i]}, want ${want[i]} (bound ${bound})`);
    }
  }
}
