// pythonFloat against values of Python's repr(float), written down by hand.

import { pythonFloat } from "../../src/nn/format.ts";
import { assertEquals } from "../assert.ts";

Deno.test("pythonFloat matches Python's repr(float)", () => {
  const cases: [number, string][] = [
    [1, "1.0"],
    [2, "2.0"],
    [0, "0.0"],
    [-0, "-0.0"],
    [0.75, "0.75"],
    [1e-4, "0.0001"],
    [1e-5, "1e-05"],
    [1.5e-7, "1.5e-07"],
    [0.00012, "0.00012"],
    [123.456, "123.456"],
    [-2.5, "-2.5"],
    [1e15, "1000000000000000.0"],
    [1e16, "1e+16"],
    [1.2345e20, "1.2345e+20"],
    [1e100, "1e+100"],
    [5e-324, "5e-324"],
    [0.1, "0.1"],
    [1 / 3, "0.3333333333333333"],
    [NaN, "nan"],
    [Infinity, "inf"],
    [-Infinity, "-inf"],
  ];
  for (const [value, want] of cases) assertEquals(pythonFloat(value), want, `repr(${value})`);
});
