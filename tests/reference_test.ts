// The float64 reference evaluator (src/ir/reference.ts), the oracle of every other test,
// checked against hand-worked values for each op: if it were wrong, the rest would agree with
// a wrong answer.

import * as ir from "../src/ir/node.ts";
import type { Node } from "../src/ir/node.ts";
import type { DType } from "../src/ir/dtype.ts";
import { evaluateReference } from "../src/ir/reference.ts";
import { assert, assertEquals } from "./assert.ts";

let nextRef = 2_000_000;
const data = new Map<number, number[]>();

/** A buffer node holding `values` (row-major) for the evaluator to read. */
function buf(values: number[], shape: number[], dtype: DType = "float64"): Node {
  const ref = { id: nextRef++ };
  data.set(ref.id, values);
  return ir.buffer(ref, shape, dtype);
}

const evaluate = (n: Node) =>
  Array.from(evaluateReference(n, (b) => data.get((b.arg as { id: number; }).id)!));

Deno.test("reference: unary and binary ops from their definitions", () => {
  const x = buf([-2, -0.5, 0, 4], [4]);
  assertEquals(evaluate(ir.unary("neg", x)), [2, 0.5, -0, -4]);
  assertEquals(evaluate(ir.unary("abs", x)), [2, 0.5, 0, 4]);
  assertEquals(evaluate(ir.unary("square", x)), [4, 0.25, 0, 16]);
  assertEquals(evaluate(ir.unary("relu", x)), [0, 0, 0, 4]);
  assertEquals(evaluate(ir.unary("sign", x)), [-1, -1, 0, 1]);
  assertEquals(evaluate(ir.unary("recip", x)), [-0.5, -2, Infinity, 0.25]);
  assertEquals(evaluate(ir.unary("sqrt", buf([4, 9], [2]))), [2, 3]);
  assertEquals(evaluate(ir.unary("rsqrt", buf([4, 0.25], [2]))), [0.5, 2]);
  assertEquals(evaluate(ir.unary("exp", buf([0, 1], [2]))), [1, Math.E]);
  assertEquals(evaluate(ir.unary("log", buf([1, Math.E], [2]))), [0, 1]);
  assertEquals(evaluate(ir.unary("sigmoid", buf([0], [1]))), [0.5]);
  assertEquals(evaluate(ir.unary("tanh", buf([0], [1]))), [0]);
  const a = buf([1, 2, 3], [3]);
  const b = buf([3, 2, 1], [3]);
  assertEquals(evaluate(ir.binary("add", a, b)), [4, 4, 4]);
  assertEquals(evaluate(ir.binary("sub", a, b)), [-2, 0, 2]);
  assertEquals(evaluate(ir.binary("mul", a, b)), [3, 4, 3]);
  assertEquals(evaluate(ir.binary("div", a, b)), [1 / 3, 1, 3]);
  assertEquals(evaluate(ir.binary("pow", a, b)), [1, 4, 3]);
  assertEquals(evaluate(ir.binary("maximum", a, b)), [3, 2, 3]);
  assertEquals(evaluate(ir.binary("minimum", a, b)), [1, 2, 1]);
  assertEquals(evaluate(ir.binary("cmplt", a, b)), [1, 0, 0]);
  assertEquals(evaluate(ir.binary("cmpeq", a, b)), [0, 1, 0]);
  assertEquals(evaluate(ir.affine(a, 2, -1)), [1, 3, 5]);
  assertEquals(evaluate(ir.constant(7, [2, 2], "float64")), [7, 7, 7, 7]);
  // NaN: relu and sign propagate it, comparisons are false
  const nan = buf([NaN], [1]);
  assert(Number.isNaN(evaluate(ir.unary("relu", nan))[0]));
  assert(Number.isNaN(evaluate(ir.unary("sign", nan))[0]));
  assertEquals(evaluate(ir.binary("cmpeq", nan, nan)), [0]);
});

Deno.test("reference: int32 wraps after every op; casts truncate", () => {
  const i = buf([2147483647, -2147483648, 65536], [3], "int32");
  assertEquals(evaluate(ir.binary("add", i, ir.constant(1, [3], "int32"))), [
    -2147483648,
    -2147483647,
    65537,
  ]);
  assertEquals(evaluate(ir.binary("mul", i, i)), [1, 0, 0]);
  assertEquals(evaluate(ir.unary("square", i)), [1, 0, 0]);
  assertEquals(evaluate(ir.unary("neg", i)), [-2147483647, -2147483648, -65536]);
  assertEquals(evaluate(ir.reduce("sum", i, [0])), [(2147483647 - 2147483648 + 65536) | 0]);
  assertEquals(evaluate(ir.reduce("sum", buf([2147483647, 1], [2], "int32"), [0])), [-2147483648]);
  assertEquals(evaluate(ir.castTo(buf([1.9, -1.9, 3e9], [3]), "int32")), [1, -1, 3e9 | 0]);
  // an int32 pad value truncates like every other int32 value
  assertEquals(evaluate(ir.pad(buf([5], [1], "int32"), [[1, 0]], -7.5)), [-7, 5]);
});

Deno.test("reference: reductions over one axis, several, all; max starts at -Infinity", () => {
  const x = buf([1, 2, 3, 4, 5, 6], [2, 3]);
  assertEquals(evaluate(ir.reduce("sum", x, [0])), [5, 7, 9]);
  assertEquals(evaluate(ir.reduce("sum", x, [1])), [6, 15]);
  assertEquals(evaluate(ir.reduce("sum", x, [0, 1])), [21]);
  assertEquals(evaluate(ir.reduce("max", x, [1])), [3, 6]);
  assertEquals(ir.reduce("max", x, [1]).shape, [2, 1]);
  assertEquals(evaluate(ir.reduce("max", buf([-5, -3], [2]), [0])), [-3]);
  assert(Number.isNaN(evaluate(ir.reduce("max", buf([1, NaN, 2], [3]), [0]))[0]));
  assertEquals(evaluate(ir.reduce("sum", buf([], [0, 2]), [0])), [0, 0]);
  const cube = buf(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
  assertEquals(evaluate(ir.reduce("sum", cube, [0, 2])), [
    0 + 1 + 2 + 3 + 12 + 13 + 14 + 15,
    4 + 5 + 6 + 7 + 16 + 17 + 18 + 19,
    8 + 9 + 10 + 11 + 20 + 21 + 22 + 23,
  ]);
});

Deno.test("reference: movement ops are index functions", () => {
  const x = buf([0, 1, 2, 3, 4, 5], [2, 3]);
  assertEquals(evaluate(ir.reshape(x, [3, 2])), [0, 1, 2, 3, 4, 5]);
  assertEquals(evaluate(ir.permute(x, [1, 0])), [0, 3, 1, 4, 2, 5]);
  const col = buf([1, 2], [2, 1]);
  assertEquals(evaluate(ir.expand(col, [2, 3])), [1, 1, 1, 2, 2, 2]);
  assertEquals(evaluate(ir.pad(x, [[1, 0], [0, 1]], 9)), [9, 9, 9, 9, 0, 1, 2, 9, 3, 4, 5, 9]);
  assertEquals(evaluate(ir.shrink(x, [[1, 2], [1, 3]])), [4, 5]);
  const line = buf([0, 1, 2, 3, 4, 5, 6], [7]);
  assertEquals(evaluate(ir.unfoldDim(line, 0, 3, 2)), [0, 1, 2, 2, 3, 4, 4, 5, 6]);
  assertEquals(evaluate(ir.unfoldDim(line, 0, 2, 1)).length, 12);
  assertEquals(evaluate(ir.unfoldDim(x, 0, 2, 1)), [0, 3, 1, 4, 2, 5]); // windows along dim 0
  // unfoldTranspose is the adjoint of unfoldDim: <unfold(a), g> = <a, unfoldTranspose(g) summed>
  const g = buf([1, 10, 100, 1000, 10000, 100000], [3, 2]); // windows of line[0..5) size 2 step 2
  const back = ir.reduce("sum", ir.unfoldTranspose(g, 0, 6, 2), [1]);
  assertEquals(evaluate(back), [1, 10, 100, 1000, 10000, 100000]);
  const overlap = buf([1, 2, 3, 4, 5, 6], [3, 2]); // size 2 step 1 windows of a length-4 axis
  assertEquals(evaluate(ir.reduce("sum", ir.unfoldTranspose(overlap, 0, 4, 1), [1])), [
    1,
    2 + 3,
    4 + 5,
    6,
  ]);
});
