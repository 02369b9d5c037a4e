// The cpu device: storage reused under fresh handles, intermediates returned to the memory,
// dispose and `using`, and what happens to a disposed input or a released buffer.

import { cpu, kernels, randn, type Tensor, tensor, webgpu } from "../mod.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import {
  assert,
  assertEquals,
  assertNotStrictEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "./assert.ts";
import {
  assertClose,
  lrnInChild,
  onBackend,
  reference,
  testBackends,
  unhandledRejectionsOf,
} from "./helpers.ts";

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

Deno.test("cpu: long float32 sums are accurate on every cpu backend", async () => {
  // a float32 accumulator running over a million elements drifts by about 1%: on Wasm, 0.1
  // summed 2^20 times gave 105891.8 (float64: 104857.6), and the mean of 2^21 of them 0.0983
  const n = 1 << 20;
  const tenth = Math.fround(0.1);
  const cases: [string, (x: Tensor) => Tensor, number][] = [
    ["sum()", (x) => x.sum(), n],
    ["mean(1) of 2 rows", (x) => x.reshape(2, n / 2).mean(1), 1], // scalar accumulators
    ["sum(1) of 8 rows", (x) => x.reshape(8, n / 8).sum(1), n / 8], // rows in lanes
    ["sum(0) of 4 columns", (x) => x.reshape(n / 4, 4).sum(0), n / 4], // columns in lanes
    ["sum(0) of 6 columns", (x) => x.reshape(n / 8, 8).slice(1, 1, 7).sum(0), n / 8], // a tail
  ];
  for (const backend of testBackends.filter((b) => b.device === "cpu")) {
    await onBackend(backend, async () => {
      using x = tensor(new Float32Array(n).fill(tenth)); // fresh: nothing computed yet
      for (const [name, f, terms] of cases) {
        const values = await f(x).data();
        const expected = new Array(values.length).fill(terms * tenth);
        assertClose(values, expected, { rtol: 1e-6, msg: `${backend.name} ${name}` });
      }
    });
  }
});

Deno.test("cpu: sign keeps -0 and max of -0 and 0 is 0, in the kernels and the reference", async () => {
  // the reference gave sign(-0) = 0 and max(-0, 0) = -0: tests compared within a tolerance, so
  // only an exact comparison of zeros' signs could see it
  const show = (values: ArrayLike<number>) =>
    Array.from(values, (v) => (Object.is(v, -0) ? "-0" : String(v)));
  for (const backend of testBackends.filter((b) => b.device === "cpu")) {
    await onBackend(backend, async () => {
      const s = tensor([-0, 0, NaN, 2, -3]).sign();
      assertEquals(show(reference(s)), ["-0", "0", "NaN", "1", "-1"]);
      assertEquals(show(await s.data()), show(reference(s)), backend.name);
      const m = tensor([[-0, 0], [0, -0], [-0, -0]]).max(1);
      assertEquals(show(reference(m)), ["0", "0", "-0"]);
      assertEquals(show(await m.data()), show(reference(m)), backend.name);
    });
  }
});

Deno.test("cpu: a copy from another device that fails rejects only for whoever reads it", async () => {
  // the copy's promise had no handler: a failed copy nobody read (the moved tensor dropped or
  // disposed) ended the process with "Uncaught (in promise)"
  const unhandled = await unhandledRejectionsOf(async () => {
    const dropped = cpuBackend.uploadLater(Promise.reject(new Error("copy failed")), "float32", 3);
    cpuBackend.release(dropped);
    const read = cpuBackend.uploadLater(Promise.reject(new Error("copy failed")), "float32", 3);
    await assertRejects(() => cpuBackend.read(read), Error, "copy failed");
    cpuBackend.release(read);
  });
  assertEquals(unhandled, []);
});

Deno.test("cpu: a runtime without SharedArrayBuffer runs Wasm kernels on an unshared memory", async () => {
  // a browser page that is not cross-origin isolated has no SharedArrayBuffer global at all:
  // every realization threw a ReferenceError from `instanceof SharedArrayBuffer`
  const got = await lrnInChild([2, 6, 20, 20], [], "delete globalThis.SharedArrayBuffer;");
  if (got.simd) assertEquals(got.targets, ["wasm"]);
});

Deno.test("cpu: the settings refuse bad values with an Error saying what they got", () => {
  const before = { kernels: cpu.kernels, threads: cpu.threads };
  // a BigInt made the message itself throw (JSON.stringify), a symbol printed as undefined
  const kernelsBad: [unknown, string][] = [
    [2n, "2n"],
    [Symbol("k"), "Symbol(k)"],
    ["gpu", '"gpu"'],
    [null, "null"],
  ];
  for (const [value, shown] of kernelsBad) {
    assertThrows(
      () => cpu.kernels = value as never,
      Error,
      `cpu.kernels: must be "auto", "wasm" or "js", got ${shown}`,
    );
  }
  for (const [value, shown] of [[0, "0"], [1.5, "1.5"], [65, "65"], ["2", '"2"'], [3n, "3n"]]) {
    assertThrows(
      () => cpu.threads = value as never,
      Error,
      `cpu.threads: must be an integer from 1 to 64, got ${shown}`,
    );
  }
  assertEquals([cpu.kernels, cpu.threads], [before.kernels, before.threads], "unchanged");
});

Deno.test("cpu and webgpu settings refuse by name what they do not have (helper-131)", () => {
  // `cpu.thread = 1` was stored beside the real setting and changed nothing; `delete
  // cpu.kernels` removed the setting; defineProperty made cpu.threads read 99 while the pool
  // kept its threads; `cpu.simd = false` was V8's bare TypeError
  const loose = cpu as unknown as Record<string, unknown>;
  const threads = cpu.threads;
  assertThrows(
    () => (loose.thread = 1),
    Error,
    "cpu.thread: a setting that can be set (cpu's settings are kernels, threads; simd is " +
      "read-only), got 1",
  );
  assertThrows(() => (loose.simd = false), Error, "cpu.simd: a setting that can be set");
  assertThrows(() => delete loose.kernels, Error, "cpu.kernels: a setting to keep, not delete");
  assertThrows(
    () => Object.defineProperty(cpu, "threads", { value: 99 }),
    Error,
    "cpu.threads: set by assignment, not defined",
  );
  assertEquals(Object.keys(cpu), ["simd", "kernels", "threads"]);
  assertEquals(cpu.threads, threads);
  assertThrows(
    () => ((webgpu as unknown as Record<string, unknown>).powerPreference = "low-power"),
    Error,
    "webgpu.powerPreference: a setting that can be set (webgpu has nothing to set",
  );
  // it can be frozen, spread and printed as before; a Proxy cannot be cloned (README)
  assert(Object.isFrozen(Object.freeze(cpu)) && Object.isSealed(Object.seal(webgpu)));
  assertEquals(Object.keys({ ...cpu }), ["simd", "kernels", "threads"]);
  assertEquals(JSON.parse(JSON.stringify(cpu)).threads, threads);
  // the settings themselves still take
  const kernels = cpu.kernels;
  cpu.kernels = "js";
  assertEquals(cpu.kernels, "js");
  cpu.kernels = kernels;
});
