// The LocalResponseNorm golden cases (tests/fixtures/lrn_golden.json: float64 y and dx, cross-
// checked with PyTorch), loaded once for the bench tests that judge the reference and the
// baseline loop against them.

/** One golden case, as the fixture's `case_fields` describe it. */
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

/** Every golden case of the fixture. */
export const goldenCases: GoldenCase[] = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/lrn_golden.json", import.meta.url)),
).cases;
