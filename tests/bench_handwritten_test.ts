// bench/handwritten.ts, the baseline row: the float32 loops against the golden cases (every
// size, rank and edge the fixtures hold), at the golden float32 tolerance.

import { assert, assertLess } from "./assert.ts";
import { handwrittenForward, handwrittenForwardBackward } from "../bench/handwritten.ts";
import { relativeError } from "../bench/reference.ts";
import { goldenCases } from "./lrn_golden.ts";

Deno.test("handwritten loops match the golden cases at float32 precision", () => {
  assert(goldenCases.length >= 10);
  for (const c of goldenCases) {
    const x = Float32Array.from(c.x);
    const g = Float32Array.from(c.g);
    const y = handwrittenForward(x, c.shape, c);
    assertLess(relativeError(y, c.y), 1e-5, `${c.name} forward y`);
    const both = handwrittenForwardBackward(x, g, c.shape, c);
    assertLess(relativeError(both.y, c.y), 1e-5, `${c.name} y`);
    assertLess(relativeError(both.dx, c.dx), 1e-5, `${c.name} dx`);
    assert(x.every((v, i) => v === Math.fround(c.x[i])), "input not modified");
  }
});
