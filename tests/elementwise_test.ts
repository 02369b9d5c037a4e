// The generated elementwise methods (src/elementwise.ts): every unary op of the IR table is a
// Tensor method building that op, every binary method builds its IR op (gt with swapped
// operands), and a method's errors name the method, not the IR op.

import { tensor } from "../mod.ts";
import { nodeOf, Tensor } from "../src/tensor.ts";
import { BINARY_METHODS } from "../src/elementwise.ts";
import { BINARY_OPS, UNARY_OPS } from "../src/ir/ops.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

Deno.test("elementwise: one method per unary op of the IR table, building that op", () => {
  const x = tensor([0.5, 2]);
  for (const op of Object.keys(UNARY_OPS)) {
    const method = (x as unknown as Record<string, () => Tensor>)[op];
    assertEquals(typeof method, "function", `Tensor.${op}`);
    const y = method.call(x);
    assert(y instanceof Tensor);
    assertEquals(nodeOf(y).op, op);
    assertEquals(nodeOf(y).srcs[0], nodeOf(x));
  }
});

Deno.test("elementwise: every binary method builds its IR op; gt swaps its operands", () => {
  const a = tensor([1, 5]);
  const b = tensor([3, 2]);
  const used = new Set<string>();
  for (const [name, { op, swap }] of Object.entries(BINARY_METHODS)) {
    used.add(op);
    const y = (a as unknown as Record<string, (o: Tensor) => Tensor>)[name].call(a, b);
    assertEquals(nodeOf(y).op, op, name);
    assertEquals(nodeOf(y).srcs, swap ? [nodeOf(b), nodeOf(a)] : [nodeOf(a), nodeOf(b)], name);
  }
  // every IR binary op is reachable from some method
  assertEquals([...used].sort(), Object.keys(BINARY_OPS).sort());
});

Deno.test("elementwise: errors name the public method", () => {
  const a = tensor([1, 2]);
  assertThrows(() => a.gt("x" as unknown as number), Error, "gt: other must be a Tensor");
  assertThrows(() => a.add(tensor([1, 2, 3])), Error, "add: shapes [2] and [3] must broadcast");
});

Deno.test("elementwise: a gt b is 1 exactly where b < a", async () => {
  const a = tensor([1, 5, 3]);
  assertEquals(Array.from(await a.gt(tensor([3, 2, 3])).data()), [0, 1, 0]);
  assertEquals(Array.from(await a.lt(3).data()), [1, 0, 0]);
});

Deno.test("elementwise: affine and cast are installed too, and check their arguments", async () => {
  const x = tensor([1.5, -2]);
  assertEquals(Array.from(await x.affine(2, 1).data()), [4, -3]);
  assertEquals(Array.from(await x.cast("int32").data()), [1, -2]);
  assertThrows(
    () => x.affine("2" as unknown as number, 1),
    Error,
    "affine: scale must be a number",
  );
  assertThrows(() => x.cast("int8" as "int32"), Error, 'cast: dtype must be one of "float32"');
  x.dispose();
  assertThrows(() => x.affine(1, 0), Error, "affine: the tensor was disposed");
  assertThrows(() => x.cast("float64"), Error, "cast: the tensor was disposed");
});
