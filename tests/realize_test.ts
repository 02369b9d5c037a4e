// realize(): nodes computed once however they are asked for (together, twice at the same time,
// or after a part was realized), copies between devices waited for, and realized values kept
// per device with constants always inlined (their values are part of the plan key); plans
// cached within a bound of nodes.

import { grad, kernels, optim, randn, realize, type Tensor, tensor, tidy, webgpu } from "../mod.ts";
import * as ir from "../src/ir/node.ts";
import type { Kernel } from "../codegen/kernel.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import type { DType } from "../src/ir/dtype.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import type { Backend, DeviceBuffer } from "../src/runtime/device.ts";
import {
  linesHeld,
  PLAN_CACHE_KEEP,
  PLAN_CACHE_NODES,
  planCacheStats,
  realizeAttempts,
  realizeNodes,
} from "../src/runtime/realize.ts";
import { adamReference, assertClose, reference, webgpuAvailable } from "./helpers.ts";
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

Deno.test("realize: cached plans describe at most PLAN_CACHE_NODES nodes, but for the last few", async () => {
  // a program making ever deeper graphs kept 1,024 plans of them: 400 MB after 800 reads of
  // `w = w.mul(c)`'s sum (each plan holds its kernels, about two kilobytes a node); and two large
  // plans used in turn must not drop each other (bounded to 32,768 nodes, two plans of 20,000
  // were built again at every call)
  const start = Float32Array.from({ length: 8 }, (_, i) => i);
  const made = (ops: number) => {
    let h = tensor(start);
    for (let i = 0; i < ops; i++) h = h.add(1);
    return h.sum();
  };
  const largest = 2000 + 39 + 4; // a plan's nodes: the ops, the leaf, the constant and the sum
  for (let g = 0; g < 40; g++) {
    assertEquals(await made(2000 + g).item(), 8 * (2000 + g) + 28);
    const { nodes } = planCacheStats();
    assert(nodes <= PLAN_CACHE_NODES + PLAN_CACHE_KEEP * largest, `${nodes} nodes`);
  }
  assert(planCacheStats().nodes > PLAN_CACHE_NODES - largest, "the bound was reached");
  const before = planCacheStats().misses;
  for (let i = 0; i < 3; i++) {
    assertEquals(await made(2038).item(), 8 * 2038 + 28);
    assertEquals(await made(2039).item(), 8 * 2039 + 28);
  }
  assertEquals(planCacheStats().misses, before, "the last plans are kept");
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

Deno.test({
  name: "realize: realizations waiting for runs in flight try again in order, once each (webgpu)",
  ignore: !webgpuAvailable,
  fn: async () => {
    // an Adam loop that never reads: each step's dispose of old step numbers computes updates,
    // and on webgpu each such realization waits for the run before it. Every settling run woke
    // every waiting realization, all but one waiting again: attempts grew with the square of
    // the steps (100 steps: 4,852 attempts for the read after them, 1.4 s)
    const steps = 60;
    const x0 = [0.5, -1, 2, 0.25];
    const w0 = [1, -2, 0.5, 3];
    const x = tensor(x0, { device: "webgpu" });
    const w = tensor(w0, { device: "webgpu", requiresGrad: true });
    const opt = new optim.Adam([w], { lr: 0.05 });
    const before = realizeAttempts();
    for (let i = 0; i < steps; i++) {
      tidy(() => w.mul(x).square().sum().backward());
      opt.step();
      opt.zeroGrad();
    }
    const got = await w.data();
    const attempts = realizeAttempts() - before;
    // (a few a step: the step numbers' realizations, each waiting once; 1,770 before)
    assert(attempts <= 5 * steps, `${attempts} attempts for ${steps} steps`);
    // float64 Adam on loss = sum((w x)^2) = sum(x^2 w^2)
    const want = adamReference(w0, x0.map((v) => v * v), steps, 0.05, [0.9, 0.999], 1e-8, 0);
    assertClose(got, want, { rtol: 1e-4, atol: 1e-5 });
    // the line is empty once every realization in it has run: a last place kept held what its
    // realization read (after a device loss, a failed read kept a 4 MB batch: helper-163)
    assertEquals(linesHeld(), 0);
    w.dispose();
    x.dispose();
  },
});

/** `work`, or an Error once `ms` have passed (a hang fails the test instead of the suite). */
function withinMs<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

Deno.test({
  name: "realize: a realization waiting in line never waits for one behind it (helper-158)",
  ignore: !webgpuAvailable,
  fn: async () => {
    // the read of x fails (144 MB: past this adapter's binding limit), so w's update is made
    // again apart; that realization found the update still in flight and took a place in
    // line behind realize(w, out), which waited for a copy whose source it is: neither settled,
    // nor did any later realization that waited on webgpu
    const w = tensor([1, 2, 3, 4], { device: "webgpu" });
    w.assign(w.mul(0.5));
    const x = w.reshape([4, 1]).expand([4, 9_000_000]).add(1);
    const out = x.to("cpu").add(1).to("webgpu").sum();
    const both = realize(w, out).then(() => "computed", () => "failed");
    assertEquals(await withinMs(both, 20000, "realize(w, out)"), "failed");
    assertEquals(Array.from(await withinMs(w.data(), 20000, "w.data()")), [0.5, 1, 1.5, 2]);
    const u = tensor([1, 2], { device: "webgpu" }).mul(2);
    const reads = Promise.all([u.data(), u.data()]); // the second waits for the first's run
    assertEquals((await withinMs(reads, 20000, "u.data()")).map((r) => Array.from(r)), [
      [2, 4],
      [2, 4],
    ]);
  },
});

Deno.test({
  name: "realize: a read waiting in line holds what the runs it waited for stored (helper-158)",
  ignore: !webgpuAvailable,
  fn: async () => {
    // z's read waits for w's update in flight and for the realization before it in line (one
    // waiting for a round trip through the cpu); meanwhile the program read y, built on it and
    // disposed it, which the read had been issued before: its retry found y freed
    const n = 4096;
    const a0 = Array.from({ length: n }, (_, i) => (i % 13) - 6);
    const w = tensor(a0.map((v) => v * 0.25), { device: "webgpu" });
    w.assign(w.mul(2));
    const readW = w.data();
    const a = tensor(a0, { device: "webgpu" });
    const y = a.mul(2);
    const readY = y.data();
    const b = tensor(a0.map((v) => v * 0.5), { device: "webgpu" });
    const q = b.mul(3);
    const readQ = q.data();
    const roundTrip = b.add(7).to("cpu").mul(2).to("webgpu");
    const first = realize(q, q.add(roundTrip));
    const z = w.add(y);
    const readZ = z.data();
    await readY;
    y.mul(3);
    y.dispose();
    const got = await withinMs(readZ, 20000, "z.data()");
    assertEquals(Array.from(got), a0.map((v) => v * 2.5));
    await Promise.all([readW, readQ, first]);
    for (const t of [w, a, b, z]) t.dispose();
  },
});
