// bench/reference.ts, the judge of every benchmark row: the float64 LRN reference against the
// golden cases (y and dx, float64, cross-checked with PyTorch; odd and even sizes, ranks 2-5,
// windows wider than the channels), and the check's power to reject a plausible wrong answer on
// the benchmark data (alpha divided by size, a window shifted by one channel).

import { assert, assertLess } from "./assert.ts";
import { referenceLrn, relativeError, RTOL } from "../bench/reference.ts";
import { caseData, LRN } from "../bench/cases.ts";
import { goldenCases } from "./lrn_golden.ts";

Deno.test("referenceLrn matches every golden case in float64 (y and dx)", () => {
  assert(goldenCases.length >= 10);
  for (const c of goldenCases) {
    const got = referenceLrn(c.x, c.shape, c, c.g);
    assertLess(relativeError(got.y, c.y), 1e-12, `${c.name} y`);
    assertLess(relativeError(got.dx!, c.dx), 1e-12, `${c.name} dx`);
  }
});

Deno.test("relativeError: NaN and a length mismatch are infinitely wrong", () => {
  assert(!(relativeError([1, NaN], [1, 2]) <= RTOL));
  // anywhere: a NaN before a finite error was replaced by it, and the row passed
  assert(!(relativeError([NaN, 2, 3, 4], [1, 2, 3, 4]) <= RTOL));
  assert(!(relativeError([1, NaN, 3, NaN, 5], [1, 2, 3, 4, 5]) <= RTOL));
  assert(!(relativeError([1, 2], [NaN, 2]) <= RTOL), "a NaN expected value too");
  assert(!(relativeError([1], [1, 2]) <= RTOL));
  assert(relativeError([1, 2], [1, 2]) === 0);
});

Deno.test("on the benchmark's data the check rejects alpha / size and a shifted window", () => {
  const shape = [2, 16, 3, 3];
  const { x, g } = caseData(shape);
  const want = referenceLrn(x, shape, LRN, g);
  const float32 = referenceLrn(x, shape, LRN, g);
  assert(relativeError(Float32Array.from(float32.y), want.y) <= RTOL, "float32 rounding passes");
  assert(relativeError(Float32Array.from(float32.dx!), want.dx!) <= RTOL);

  const divided = referenceLrn(x, shape, { ...LRN, alpha: LRN.alpha / LRN.size }, g);
  assert(!(relativeError(divided.y, want.y) <= RTOL), "alpha / size is caught in y");
  assert(!(relativeError(divided.dx!, want.dx!) <= RTOL), "alpha / size is caught in dx");

  // size 6 has the extra channel after c: the window [c-2, c+3] instead of [c-2, c+2]
  const wider = referenceLrn(x, shape, { ...LRN, size: 6 }, g);
  assert(!(relativeError(wider.y, want.y) <= RTOL), "a wider window is caught");
});
