// realize(): nodes computed once however they are asked for (together, twice at the same time,
// or after a part was realized), copies between devices waited for, and realized values kept
// per device with constants always inlined (their values are part of the plan key); plans
// cached within a bound of nodes; deep values computed again stored on the way (rule CHECKPOINT).

import { grad, kernels, randn, realize, type Tensor, tensor, webgpu } from "../mod.ts";
import * as ir from "../src/ir/node.ts";
import type { Kernel } from "../codegen/kernel.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import type { DType } from "../src/ir/dtype.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import type { Backend, DeviceBuffer } from "../src/runtime/device.ts";
import {
  CHECKPOINT_DEPTH,
  isCheckpoint,
  PLAN_CACHE_NODES,
  planCacheStats,
  realizeNodes,
} from "../src/runtime/realize.ts";
import { topoSort as topoSortNodes } from "../src/ir/graph.ts";
import { assertClose, reference, testDevices, webgpuAvailable } from "./helpers.ts";
import { createTensor, nodeOf } from "../src/tensor.ts";

Deno.test("realize: two outputs sharing a subexpression run in one schedule", async () => {
  const x = randn(4, 6);
  const shared = x.exp().sum(1, true); // materialized once, read by both outputs
  const a = x.div(shared);
  const b = shared.log();
  // the kernel storing the shared sum also takes its log (MULTI_OUTPUT), then a reads it
  const ks = kernels(a, b);
  assertEquals(ks.map((k) => [k.name, k.outputs.length]), [["k_exp_sum_log", 2], ["k_div", 1]]);
  await realize(a, b);
  assertClose(await a.data(), reference(a), { rtol: 1e-5 });
  assertClose(await b.data(), reference(b), { rtol: 1e-5 });
});

Deno.test("realize: a realized part is loaded, not recomputed", async () => {
  const x = randn(3, 5);
  const s = x.square().sum(1);
  await s.realize();
  const y = s.sqrt();
  const [k] = kernels(y);
  assertEquals(kernels(y).length, 1);
  assertEquals(k.inputs.length, 1);
  assertEquals(k.inputs[0].shape, [3], "reads the realized sums, not x");
  assertClose(await y.data(), reference(y), { rtol: 1e-6 });
});

Deno.test({
  name: "realize: the same webgpu node asked for twice at once is computed once",
  ignore: !webgpuAvailable,
  fn: async () => {
    const x = tensor(Float32Array.from({ length: 1000 }, (_, i) => (i % 7) / 7), {
      device: "webgpu",
    });
    const y = x.exp().sum();
    const before = webgpu.liveBuffers();
    const [a, b] = await Promise.all([y.data(), y.data()]);
    assertEquals(webgpu.liveBuffers() - before, 1, "one output buffer");
    let want = 0;
    for (let i = 0; i < 1000; i++) want += Math.exp((i % 7) / 7);
    assertClose([a[0], b[0]], [want, want], { rtol: 1e-5 });
  },
});

Deno.test({
  name: "realize: a copy from webgpu to cpu is waited for by data(), refused by dataSync()",
  ignore: !webgpuAvailable,
  fn: async () => {
    const onGpu = tensor([1, 2, 3], { device: "webgpu" }).mul(2);
    const back = onGpu.to("cpu");
    assertThrows(() => back.add(1).dataSync(), Error, "dataSync");
    assertEquals(Array.from(await back.add(1).data()), [3, 5, 7]);
    assertEquals(Array.from(back.dataSync()), [2, 4, 6], "ready once the copy arrived");
  },
});

Deno.test("realize: a realized constant keeps its value in the plan key (no stale plan)", async () => {
  // two gradients that are constants (0 and 1), each realized, then used the same way: the
  // graphs have one structure but for the constant's value, which lowering inlines
  const x = tensor(-3, { requiresGrad: true });
  const [none] = grad(() => tensor(11))(x); // d(11)/dx = 0
  await none.data();
  x.backward(); // dx/dx = 1
  await x.grad!.data();
  const y = tensor(2.5);
  assertEquals(await none.add(y).item(), 2.5);
  assertEquals(await x.grad!.add(y).item(), 3.5);
  assertEquals(await x.grad!.mul(y).item(), 2.5);
  assertEquals(await none.mul(y).item(), 0);
  // the family: constants of every value and shape, realized or not, in one structure
  for (const value of [-2, 0.5, 7, 1e9]) {
    const c = createTensor(ir.constant(value, [3], "float32"), "cpu", false, true);
    if (value > 0) await c.realize();
    const z = tensor([1, 2, 3]).mul(c).add(c);
    assertEquals(Array.from(await z.data()), [1, 2, 3].map((v) => Math.fround(v * value + value)));
  }
});

Deno.test({
  name: "realize: a constant realized on one device is computed again on the other",
  ignore: !webgpuAvailable,
  fn: async () => {
    const [onCpu] = grad(() => tensor(4))(tensor([3, 5, 8], { requiresGrad: true }));
    await onCpu.data();
    const [onGpu] = grad(() => tensor(4, { device: "webgpu" }))(
      tensor([3, 5, 8], { device: "webgpu", requiresGrad: true }),
    );
    assertEquals(Array.from(await onGpu.data()), [0, 0, 0]);
    assertEquals(Array.from(await onGpu.add(2).data()), [2, 2, 2]);
    // a computed value of constants only, realized on webgpu first, then on cpu
    const shared = (device: "cpu" | "webgpu") =>
      createTensor(ir.constant(1.5, [2], "float32"), device, false, true).exp().mul(2);
    const gpuValue = await shared("webgpu").data();
    const cpuValue = await shared("cpu").data();
    assertClose(gpuValue, [2 * Math.exp(1.5), 2 * Math.exp(1.5)], { rtol: 1e-6 });
    assertClose(cpuValue, gpuValue, { rtol: 1e-6 });
    assertEquals(shared("cpu").dataSync().length, 2);
  },
});

Deno.test("realize: an allocation failing halfway releases what was allocated before it", () => {
  const x = randn(16, 8);
  const e = x.sub(x.max(1, true)).exp();
  const y = e.div(e.sum(1, true)); // three kernels, three allocations
  assertEquals(kernels(y).length, 3);
  let calls = 0;
  // the cpu backend, but for allocate (its own getters read private state: delegate them)
  const failing: Backend = Object.assign(
    Object.create(cpuBackend, { planKey: { value: cpuBackend.planKey } }),
    {
      allocate(dtype: DType, length: number) {
        if (++calls === 3) throw new Error("out of memory (test)");
        return cpuBackend.allocate(dtype, length);
      },
      release: (b: DeviceBuffer) => cpuBackend.release(b),
      targetFor: (k: Kernel) => cpuBackend.targetFor(k),
    },
  );
  const before = cpuBackend.liveBuffers();
  assertThrows(() => realizeNodes([nodeOf(y)], failing), Error, "out of memory (test)");
  assertEquals(calls, 3);
  assertEquals(cpuBackend.liveBuffers(), before, "the two earlier allocations were released");
  // the library is still usable: the same graph realizes on the real backend
  const sums = Array.from(y.sum(1).dataSync());
  sums.forEach((s) => assertEquals(Math.abs(s - 1) < 1e-5, true));
});

Deno.test("realize: plans are told apart by every part of a structure, args included", async () => {
  // equal except in one arg each, built on fresh inputs so that no value is remembered; a plan
  // served for the wrong structure would give the other's values
  const data = [4, 9, 16, 25, 36, 49];
  const cases: {
    name: string;
    build: (x: ReturnType<typeof tensor>) => ReturnType<typeof tensor>;
    want: number[];
  }[] = [
    {
      name: "pad value 0",
      build: (x) => x.pad([[1, 0], [0, 0]], 0).sqrt().recip(),
      want: [Infinity, Infinity, Infinity, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7],
    },
    {
      name: "pad value -0",
      build: (x) => x.pad([[1, 0], [0, 0]], -0).sqrt().recip(),
      want: [-Infinity, -Infinity, -Infinity, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7],
    },
    {
      name: "pad after",
      build: (x) => x.pad([[0, 1], [0, 0]], 0).sqrt().recip(),
      want: [1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7, Infinity, Infinity, Infinity],
    },
    { name: "sum axis 0", build: (x) => x.sum(0), want: [29, 45, 65] },
    { name: "sum axis 1", build: (x) => x.sum(1), want: [29, 110] },
    { name: "affine", build: (x) => x.affine(2, 1), want: [9, 19, 33, 51, 73, 99] },
    { name: "affine swapped", build: (x) => x.affine(1, 2), want: [6, 11, 18, 27, 38, 51] },
  ];
  for (let round = 0; round < 2; round++) {
    for (const { name, build, want } of cases) {
      using x = tensor(data, { shape: [2, 3] });
      using y = build(x);
      assertEquals(Array.from(await y.data()), want.map(Math.fround), `${name}, round ${round}`);
    }
  }
});

Deno.test("realize: cached plans describe at most PLAN_CACHE_NODES nodes together", async () => {
  // a program making ever deeper graphs kept 1,024 plans of them: 400 MB after 800 reads of
  // `w = w.mul(c)`'s sum (each plan holds its kernels, about two kilobytes a node)
  const start = Float32Array.from({ length: 8 }, (_, i) => i);
  for (let g = 0; g < 40; g++) {
    let h = tensor(start);
    for (let i = 0; i < 500 + g; i++) h = h.add(1);
    assertEquals(await h.sum().item(), 8 * (500 + g) + 28);
    assert(planCacheStats().nodes <= PLAN_CACHE_NODES, `${planCacheStats().nodes} nodes`);
  }
});

Deno.test("realize: plans are told apart by which node each source of a node is", async () => {
  // the plan cache keys a graph by each node's sources' places in the walk (stamped on the
  // nodes): graphs equal but for which input an op reads must not share a plan
  const cases: [string, (a: Tensor, b: Tensor) => Tensor, number[]][] = [
    ["a * b + b", (a, b) => a.mul(b).add(b), [2 * 5 + 5, 3 * 7 + 7]],
    ["a * b + a", (a, b) => a.mul(b).add(a), [2 * 5 + 2, 3 * 7 + 3]],
    ["a * a + b", (a, b) => a.mul(a).add(b), [2 * 2 + 5, 3 * 3 + 7]],
    ["b * a + a", (a, b) => b.mul(a).add(a), [5 * 2 + 2, 7 * 3 + 3]],
    ["(a + b) * (a - b)", (a, b) => a.add(b).mul(a.sub(b)), [7 * -3, 10 * -4]],
    ["(a - b) * (a + b)", (a, b) => a.sub(b).mul(a.add(b)), [-3 * 7, -4 * 10]],
  ];
  for (let round = 0; round < 2; round++) {
    for (const [name, build, want] of cases) {
      using a = tensor([2, 3]);
      using b = tensor([5, 7]);
      using y = build(a, b);
      assertEquals(Array.from(await y.data()), want, `${name}, round ${round}`);
    }
  }
});

/**
 * `step` applied `steps` times to each of `start`, in float64 (a fused JavaScript kernel rounds
 * only what it stores, a Wasm one every op: tolerances cover both).
 */
function iterate(start: ArrayLike<number>, steps: number, step: (v: number) => number): number[] {
  return Array.from(start, (v) => {
    let x = v;
    for (let i = 0; i < steps; i++) x = step(x);
    return x;
  });
}

Deno.test("CHECKPOINT: a value built step by step and read through a result is computed from a stored step", async () => {
  // `w = w.mul(c)` read only through its sum was never stored: every read computed every step
  // from the first, each through a new, deeper plan (2,000 steps: 14 s and 2 GB of plans)
  const start = Float32Array.from({ length: 100 }, (_, i) => (i % 9) + 1);
  for (const device of testDevices) {
    let w = tensor(start, { device });
    let missesBefore = 0;
    for (let step = 1; step <= 300; step++) {
      w = w.mul(1.01);
      if (step === 200) missesBefore = planCacheStats().misses;
      const total = await w.sum().item();
      if (step % 50 === 0) {
        const want = iterate(start, step, (v) => v * 1.01).reduce((a, b) => a + b);
        assertClose([total], [want], { rtol: 5e-5 });
      }
    }
    // at most CHECKPOINT_DEPTH steps are computed, by plans made in the first such stretch
    assertEquals(planCacheStats().misses - missesBefore, 0, device);
    assertClose(await w.data(), iterate(start, 300, (v) => v * 1.01), { rtol: 5e-5 });
  }
});

Deno.test("CHECKPOINT: disposing a stored step a lazy value is built on leaves it computable", async () => {
  // the previous step is disposed once the next one was read through its sum: as a lazy value
  // it was allowed (the next recomputes it from the start); stored unasked, it must stay so
  const start = Float32Array.from({ length: 40 }, (_, i) => i / 8 - 2);
  for (const device of testDevices) {
    const leaf = tensor(start, { device });
    let w = leaf;
    for (let step = 1; step <= 150; step++) {
      const next = w.mul(0.99).add(0.01);
      await next.sum().item();
      if (w !== leaf) w.dispose();
      w = next;
    }
    assertClose(await w.data(), iterate(start, 150, (v) => v * 0.99 + 0.01), {
      rtol: 5e-5,
      atol: 1e-6,
    });
  }
});

Deno.test("CHECKPOINT: a deep graph realized once is one kernel; computed again, every 64th op is stored", async () => {
  const start = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
  const leaf = tensor(start);
  let h = leaf;
  for (let i = 0; i < 200; i++) h = h.mul(1.001).add(0.001); // 400 ops
  assertEquals(kernels(h.sum()).length, 1);
  await h.sum().item();
  const want = iterate(start, 200, (v) => v * 1.001 + 0.001);
  assertClose([await h.max().item()], [Math.max(...want)], { rtol: 5e-5 });
  // the 64th, ..., 384th ops were stored, and each settled (its history is of no use): h is 16
  // ops above the last
  let node = nodeOf(h);
  let above = 0;
  while (!isCheckpoint(node)) {
    node = node.srcs[0];
    above++;
  }
  assertEquals([above, ir.isSettled(node)], [400 - 6 * CHECKPOINT_DEPTH, true]);
  assertEquals(kernels(h.mean()).length, 1);
  assertClose([await h.mean().item()], [want.reduce((a, b) => a + b) / 50], { rtol: 5e-5 });
  assertClose(await h.data(), want, { rtol: 5e-5 });
});

Deno.test("CHECKPOINT: a broadcast is not stored for it, nor a view", async () => {
  let h = tensor(Float32Array.from({ length: 10 }, (_, i) => i));
  for (let i = 0; i < 70; i++) h = h.add(1);
  let wide = h.reshape([10, 1]).expand([10, 5000]);
  for (let i = 0; i < 70; i++) wide = wide.mul(0.5).add(1);
  await wide.sum().item();
  await wide.max().item();
  const stored: number[][] = [];
  for (const n of topoSortNodes([nodeOf(wide)])) if (isCheckpoint(n)) stored.push([...n.shape]);
  assertEquals(stored, [[10]], "h's 64th step only");
  const want = iterate(
    iterate(Float32Array.from({ length: 10 }, (_, i) => i), 70, (v) => v + 1),
    70,
    (v) => v * 0.5 + 1,
  );
  assertClose([await wide.neg().max().item()], [-Math.min(...want)], { rtol: 5e-5 });
});
