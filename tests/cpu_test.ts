// The cpu device: storage reused under fresh handles, intermediates returned to the memory,
// dispose and `using`, and what happens to a disposed input or a released buffer.

import { kernels, randn, tensor } from "../mod.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import {
  assert,
  assertEquals,
  assertNotStrictEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "./assert.ts";
import { assertClose, reference } from "./helpers.ts";

Deno.test("cpu: released storage comes back under a new handle; the old one reads no more", () => {
  const a = cpuBackend.allocate("float32", 1234);
  cpuBackend.view(a).fill(7);
  cpuBackend.release(a);
  const b = cpuBackend.allocate("float32", 1234);
  assertNotStrictEquals(b, a, "handles are never reused");
  assertStrictEquals(b.block.offset, a.block.offset, "storage is");
  cpuBackend.view(b).fill(8);
  assertThrows(() => cpuBackend.readSync(a), Error, "released");
  assertEquals(cpuBackend.readSync(b)[1233], 8);
  cpuBackend.release(b);
});

Deno.test("cpu: a multi-kernel plan returns its intermediates to the pool", async () => {
  const x = randn(64, 100);
  const e = x.sub(x.max(1, true)).exp();
  const y = e.div(e.sum(1, true)); // 3 kernels: max and sum are intermediates
  assertEquals(kernels(y).length, 3);
  const before = cpuBackend.liveBuffers();
  const values = await y.data();
  assertEquals(cpuBackend.liveBuffers(), before + 1, "only the output stays allocated");
  assertClose(values, reference(y), { rtol: 1e-5, atol: 1e-7 });
  y.dispose();
  assertEquals(cpuBackend.liveBuffers(), before);
});

Deno.test("cpu: a disposed computed tensor is gone; an equal computation recomputes", async () => {
  const x = tensor([1, 2, 3]);
  const y = x.mul(2);
  assertEquals(Array.from(await y.data()), [2, 4, 6]);
  assert(y.isRealized);
  y.dispose();
  assert(!y.isRealized);
  await assertRejects(() => y.data(), Error, "data: the tensor was disposed");
  y.dispose(); // twice is harmless
  assertEquals(Array.from(await x.mul(2).data()), [2, 4, 6]);
});

Deno.test("cpu: `using` disposes at the end of the scope", async () => {
  const before = cpuBackend.liveBuffers();
  {
    using x = randn(10);
    using y = x.square();
    await y.realize();
    assertEquals(cpuBackend.liveBuffers(), before + 2);
  }
  assertEquals(cpuBackend.liveBuffers(), before);
});

Deno.test("cpu: using a disposed input throws, and the library stays usable", () => {
  const x = tensor([1, 2]);
  x.dispose();
  assertThrows(() => x.add(1), Error, "add: the tensor was disposed");
  assertEquals(Array.from(tensor([3, 4]).add(1).dataSync()), [4, 5]);
});
