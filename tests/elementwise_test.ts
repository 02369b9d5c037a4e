// The generated elementwise methods (src/elementwise.ts): every unary op of the IR table is a
// Tensor method building that op, every binary method builds its IR op (gt with swapped
// operands), and a method's errors name the method, not the IR op.

import { tensor } from "../mod.ts";
import { nodeOf, Tensor } from "../src/tensor.ts";
import { BINARY_METHODS } from "../src/elementwise.ts";
import { BINARY_OPS, UNARY_OPS } from "../src/ir/ops.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { reference, withCpuKernels } from "./helpers.ts";

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

Deno.test("elementwise: a number beyond int32 is refused with an int32 tensor, not wrapped", async () => {
  const x = tensor([1, -7, 2147483647], { dtype: "int32" });
  // wrapped to int32, 3e9 was -1294967296 and 2^32 + 1 was 1: 1 < 3e9 said false, 1 == 2^32 + 1 true
  for (
    const [name, f] of [
      ["lt", () => x.lt(3e9)],
      ["eq", () => x.eq(2 ** 32 + 1)],
      ["maximum", () => x.maximum(3e9)],
      ["add", () => x.add(2 ** 40)],
      ["sub", () => x.sub(-(2 ** 31) - 1)],
    ] as const
  ) {
    assertThrows(
      f,
      Error,
      `${name}: other must be within int32 [-2147483648, 2147483647] for an int32 tensor`,
    );
  }
  // the ends of the range, and whole numbers given to float tensors, are fine
  assertEquals(Array.from(await x.maximum(-(2 ** 31)).data()), [1, -7, 2147483647]);
  assertEquals(Array.from(await x.lt(2 ** 31 - 1).data()), [1, 1, 0]);
  assertEquals(Array.from(await tensor([1]).lt(3e9).data()), [1]);
  assertEquals(Array.from(await x.add(1).data()), [2, -6, -2147483648], "int32 math still wraps");
});

Deno.test("elementwise: a -0 operand of an int32 tensor is 0, in kernels and the reference alike", async () => {
  // int32 [-1, 2] / -0 gave [-Infinity, Infinity] from the kernels and [Infinity, -Infinity]
  // from the reference evaluator, which kept the constant's -0 (integers have no -0)
  for (const kernels of ["js", "auto"] as const) {
    await withCpuKernels(kernels, async () => {
      const x = tensor([-1, 2], { dtype: "int32" });
      for (const y of [x.div(-0), x.mul(-0).cast("float32").recip()]) {
        const want = Array.from(reference(y));
        assertEquals(Array.from(await y.data()), want, kernels);
      }
      assertEquals(Array.from(await x.div(-0).data()), [-Infinity, Infinity], kernels);
      assertEquals(Array.from(await x.mul(-0).cast("float32").recip().data()), [
        Infinity,
        Infinity,
      ]);
    });
  }
});
