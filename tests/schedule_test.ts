// Fusion (codegen/schedule.ts): kernel counts for the patterns fusion must handle, each rule
// (RECOMPUTE_BUDGET, and the target's buffer limit MAX_KERNEL_BUFFERS) on both sides of its
// threshold with correct values, unfused mode, and the plan / compiled-kernel caches of the
// runtime.

import {
  cpu,
  type DeviceName,
  kernels,
  nn,
  realize,
  setFusion,
  type Tensor,
  tensor,
} from "../mod.ts";
import * as ir from "../src/ir/node.ts";
import {
  groupUnitAxes,
  MAX_KERNEL_OUTPUTS,
  RECOMPUTE_BUDGET,
  scheduleKernels,
  scheduleStats,
  SHARED_VALUE_COST,
} from "../codegen/schedule.ts";
import { JS_TARGET, WGSL_TARGET } from "../codegen/targets.ts";
import { exprsInOrder, kernelRoots } from "../codegen/kernel.ts";
import { planCacheStats } from "../src/runtime/realize.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  assertClose,
  onBackend,
  reference,
  testBackends,
  webgpuAvailable,
  withCpuKernels,
} from "./helpers.ts";
import { nodeOf } from "../src/tensor.ts";

/** A [rows, cols] float32 tensor with distinct, deterministic values. */
function input(rows: number, cols: number, seed = 1, device: DeviceName = "cpu"): Tensor {
  const data = Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37 + seed) * 3);
  return tensor(data, { shape: [rows, cols], device });
}

/** WebGPU's buffer limit per kernel, which the scheduler splits kernels to meet. */
const MAX_KERNEL_BUFFERS = WGSL_TARGET.maxBuffers;

/** Realizes `t` and compares it with the float64 reference of its graph. */
async function assertValue(t: Tensor, rtol = 1e-5): Promise<void> {
  assertClose(await t.data(), reference(t), { rtol, atol: 1e-6 });
}

/** How many buffers each kernel binds (outputs included). */
function buffersPerKernel(t: Tensor): number[] {
  return kernels(t).map((k) => k.inputs.length + k.outputs.length);
}

Deno.test("the rules are the documented constants", () => {
  assertEquals(MAX_KERNEL_BUFFERS, 8);
  assertEquals(RECOMPUTE_BUDGET, 48);
});

Deno.test("elementwise chain after a movement op is one kernel", async () => {
  const x = input(4, 6);
  const y = x.transpose().exp().mul(2).add(1).sqrt();
  assertEquals(kernels(y).length, 1);
  await assertValue(y);
  const z = x.pad([[1, 1], [0, 2]], 0.5).reshape(6, 8).permute(1, 0).neg().relu().affine(3, 1);
  assertEquals(kernels(z).length, 1);
  await assertValue(z);
});

Deno.test("x.square().sum(1) is one kernel", async () => {
  const x = input(5, 7);
  const y = x.square().sum(1);
  const ks = kernels(y);
  assertEquals(ks.length, 1);
  assertEquals(ks[0].name, "k_square_sum");
  await assertValue(y);
});

Deno.test("a reduction followed by elementwise ops is one kernel", async () => {
  const x = input(5, 7);
  const y = x.sum(1).sqrt().mul(2).add(x.max(1));
  assertEquals(kernels(y).length, 1);
  await assertValue(y);
  const mean = x.abs().mean(0, true).log();
  assertEquals(kernels(mean).length, 1);
  await assertValue(mean);
});

Deno.test("two inputs at broadcast indices fuse into one kernel", async () => {
  const y = input(4, 1).add(input(1, 5, 2)).mul(input(4, 5, 3));
  assertEquals(kernels(y).length, 1);
  await assertValue(y);
});

Deno.test("RECOMPUTE_BUDGET: softmax's row max over a long row is materialized", async () => {
  const x = input(4, 100);
  const y = x.sub(x.max(1, true)).exp();
  const ks = kernels(y);
  assertEquals(ks.length, 2);
  // the first kernel stores the [4,1] max, the second reads it
  assertEquals(ks[0].outputs[0].shape, [4, 1]);
  assertStringIncludes(ks[0].name, "max");
  assertEquals(ks[1].inputs.length, 2);
  await assertValue(y);
  // the full softmax stores the max and the sum and still computes the right value
  const x2 = input(4, 100, 2); // fresh: y above is realized, and would be loaded
  const e = x2.sub(x2.max(1, true)).exp();
  const softmax = e.div(e.sum(1, true));
  // e is read by the sum and the division: with the max stored it is cheap, so it is
  // recomputed in both (3 kernels: max, sum, division)
  const names = kernels(softmax).map((k) => k.name);
  assertEquals(names.length, 3, names.join());
  assertEquals(names.filter((n) => /_(max|sum)$/.test(n)).length, 2, names.join());
  await assertValue(softmax);
  const rows = await softmax.sum(1).data();
  assertClose(rows, [1, 1, 1, 1], { rtol: 1e-5 });
});

Deno.test("RECOMPUTE_BUDGET: a max over a short row is cheap to recompute and stays fused", async () => {
  // each max element costs 1 + 2 loads and is recomputed once more per row: far below budget
  const x = input(4, 2);
  const y = x.sub(x.max(1, true)).exp();
  assertEquals(kernels(y).length, 1);
  await assertValue(y);
});

Deno.test("RECOMPUTE_BUDGET: cheap elementwise values read through a window stay fused", async () => {
  const x = input(3, 12);
  const y = x.square().add(1).pad([[0, 0], [2, 2]]).unfoldDim(1, 5).sum(-1);
  assertEquals(kernels(y).length, 1);
  await assertValue(y);
});

Deno.test("MAX_KERNEL_BUFFERS: on webgpu a sum of 10 distinct inputs is split and still right", async () => {
  const device: DeviceName = webgpuAvailable ? "webgpu" : "cpu";
  const inputs = Array.from({ length: 10 }, (_, i) => input(3, 4, i + 1, "webgpu"));
  const sumOf = (n: number) => inputs.slice(0, n).reduce((acc, t) => acc.add(t));
  // plan everything before realizing anything: a realized prefix of the chain would be loaded
  const total = sumOf(10);
  // the split takes the largest subexpression that fits one kernel: 7 inputs, then the rest
  assertEquals(buffersPerKernel(total), [8, 5]);
  for (const n of buffersPerKernel(total)) assert(n <= MAX_KERNEL_BUFFERS, `${n} buffers`);
  // 7 inputs + 1 output is exactly at the limit: one kernel; 8 inputs need a split
  assertEquals(buffersPerKernel(sumOf(7)), [8]);
  assertEquals(kernels(sumOf(8)).length, 2);
  for (const n of buffersPerKernel(sumOf(8))) assert(n <= MAX_KERNEL_BUFFERS, `${n} buffers`);
  // a chain of 300: six new inputs per kernel after the first's seven (the set of buffers each
  // node reads stops growing past the limit, which made a 2,000-input chain 15x faster to
  // schedule and must leave the choice as it was)
  const long = Array.from({ length: 300 }, (_, i) => input(1, 3, i + 1, "webgpu"))
    .reduce((acc, t) => acc.add(t));
  const longCounts = buffersPerKernel(long);
  assertEquals(longCounts.length, Math.ceil(299 / 6));
  for (const n of longCounts) assert(n <= MAX_KERNEL_BUFFERS, `${n} buffers`);
  // the cpu's limit is far above: one kernel
  const onCpu = Array.from({ length: 10 }, (_, i) => input(3, 4, i + 1));
  const cpuTotal = onCpu.reduce((acc, t) => acc.add(t));
  assertEquals(kernels(cpuTotal).length, 1);
  await assertValue(cpuTotal);
  if (device === "webgpu") assertClose(await total.data(), reference(cpuTotal), { rtol: 1e-6 });
});

Deno.test("MAX_KERNEL_BUFFERS: on webgpu a buffer read along many paths is bound once", async () => {
  // the region is cut in one walk from its sources up; on webgpu each node weighs the set of
  // buffers it reads (a split after each count of the whole region took 8.5 s on a chain of
  // 8,000 inputs): a count per path would see 7 inputs read 4 times as 28 buffers and split
  const inputs = Array.from({ length: 7 }, (_, i) => input(3, 4, i + 1, "webgpu"));
  const total = inputs.reduce((acc, t) => acc.add(t));
  const shifted = inputs.reduce((acc, t) =>
    acc.mul(t.pad([[1, 0], [0, 0]]).shrink([[0, 3], null]))
  );
  const y = total.mul(total.exp()).add(shifted).sub(inputs[6]);
  assertEquals(buffersPerKernel(y), [8]);
  // one more input reaches the limit: the part that reads the most of them that fits is cut
  const z = y.add(input(3, 4, 9, "webgpu"));
  const counts = buffersPerKernel(z);
  assert(counts.length === 2 && counts.every((n) => n <= MAX_KERNEL_BUFFERS), `${counts}`);
  if (webgpuAvailable) {
    const onCpu = inputs.map((_, i) => input(3, 4, i + 1));
    const cpuTotal = onCpu.reduce((acc, t) => acc.add(t));
    const cpuShifted = onCpu.reduce((acc, t) =>
      acc.mul(t.pad([[1, 0], [0, 0]]).shrink([[0, 3], null]))
    );
    const want = cpuTotal.mul(cpuTotal.exp()).add(cpuShifted).sub(onCpu[6]).add(input(3, 4, 9));
    assertClose(await z.data(), reference(want), { rtol: 1e-5 });
  }
  // and where the value down a chain of equal weights is read elsewhere too, cutting it serves
  // both readers: 3 kernels (cutting only at the first source that shares the weight made 4)
  const build = (device: DeviceName) => {
    const x = Array.from({ length: 14 }, (_, i) => input(6, 6, i + 30, device));
    const t17 = x[10].add(x[7]).add(x[11]).add(x[0].transpose().mul(x[1]).add(x[6]));
    const t19 = t17.pad([[1, 0], [0, 0]]).shrink([[0, 6], null]).add(x[0]);
    const t24 = x[2].sub(t19.add(x[12].add(x[13])).add(x[9]).add(x[3])).exp();
    return t24.transpose().mul(t17).add(x[4]).add(x[8]).add(x[9]);
  };
  const shared = build("webgpu");
  const sharedCounts = buffersPerKernel(shared);
  assertEquals(sharedCounts.length, 3, `${sharedCounts}`);
  for (const n of sharedCounts) assert(n <= MAX_KERNEL_BUFFERS, `${n} buffers`);
  if (webgpuAvailable) assertClose(await shared.data(), reference(build("cpu")), { rtol: 1e-5 });
});

Deno.test("MAX_KERNEL_BUFFERS: on cpu a kernel binds at most 998 buffers, JS and Wasm alike", async () => {
  // one parameter per buffer: a sum of 998 tensors was a Wasm CompileError (1,001 parameters),
  // of 66,000 a JavaScript SyntaxError; and splitting by exact sets of buffers per node was
  // quadratic on such a chain (it ran out of memory), and so was counting again after each cut
  // (100,000 buffers: 12 s to schedule, now 4.4 s)
  assertEquals(JS_TARGET.maxBuffers, 998);
  const before = cpu.kernels;
  try {
    for (const kind of ["wasm", "js"] as const) {
      cpu.kernels = kind;
      for (const n of [997, 998, 2500]) {
        const inputs = Array.from({ length: n }, (_, i) => tensor([i, 1, -i / 4]));
        const total = inputs.reduce((acc, t) => acc.add(t));
        const counts = buffersPerKernel(total);
        assertEquals(counts.length, Math.ceil((n - 1) / 996), `${kind} ${n}: ${counts}`);
        for (const c of counts) assert(c <= 998, `${kind} ${n}: ${c} buffers`);
        // exact in float32: every partial sum is an integer or a quarter below 2^24
        assertEquals(Array.from(await total.data()), [n * (n - 1) / 2, n, -n * (n - 1) / 8]);
      }
      // views between the additions: a cut goes through them to the sum they show (the
      // region is cut in one walk from its sources up, each node cutting its dearest source)
      const viewed = Array.from({ length: 2500 }, (_, i) => tensor([i, 1, -i / 4]))
        .reduce((acc, t) => acc.add(t).reshape([3, 1]).permute([1, 0]).reshape([3]));
      const viewedCounts = buffersPerKernel(viewed);
      assertEquals(viewedCounts.length, 3, `${kind} views: ${viewedCounts}`);
      for (const c of viewedCounts) assert(c <= 998, `${kind} views: ${c} buffers`);
      assertEquals(Array.from(await viewed.data()), [2500 * 2499 / 2, 2500, -2500 * 2499 / 8]);
      // one buffer read 2,500 times is one buffer: no split
      const x = tensor([1, 2, 3]);
      let repeated = x;
      for (let i = 1; i < 2500; i++) repeated = repeated.add(x);
      assertEquals(buffersPerKernel(repeated), [2], kind);
      assertEquals(Array.from(await repeated.data()), [2500, 5000, 7500], kind);
    }
  } finally {
    cpu.kernels = before;
  }
});

Deno.test("MAX_KERNEL_BUFFERS: a balanced tree of 16 inputs with reductions is split", async () => {
  const inputs = Array.from({ length: 16 }, (_, i) => input(2, 5, i + 20, "webgpu"));
  let level = inputs.map((t, i) => (i % 2 === 0 ? t.exp() : t.sum(1, true)));
  while (level.length > 1) {
    const next: Tensor[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(level[i].mul(level[i + 1]));
    level = next;
  }
  const counts = buffersPerKernel(level[0]);
  assert(counts.length > 1, "split");
  for (const n of counts) assert(n <= MAX_KERNEL_BUFFERS, `${n} buffers`);
  if (webgpuAvailable) {
    // the same tree on cpu is the reference
    let cpu = inputs.map((_t, i) => {
      const c = input(2, 5, i + 20);
      return i % 2 === 0 ? c.exp() : c.sum(1, true);
    });
    while (cpu.length > 1) {
      const next: Tensor[] = [];
      for (let i = 0; i < cpu.length; i += 2) next.push(cpu[i].mul(cpu[i + 1]));
      cpu = next;
    }
    assertClose(await level[0].data(), reference(cpu[0]), { rtol: 1e-4 });
  }
});

Deno.test("MAX_KERNEL_OPS and MAX_KERNEL_BUFFERS: a long chain over 7 buffers is cut before building", async () => {
  // cut for its ops first, the chain read an 8th buffer where it was cut, and each such kernel
  // was found only while building, rebuilding every kernel before it (4,000 additions on
  // webgpu took 14 s, quadratic)
  const xs = Array.from({ length: 7 }, (_, i) => nodeOf(input(1, 4, i)));
  let acc = xs[0];
  for (let i = 1; i < 1500; i++) acc = ir.binary("add", acc, xs[i % 7]);
  const before = scheduleStats.splitsWhileBuilding;
  const kernels = scheduleKernels([acc], {
    fusion: true,
    isRealized: () => false,
    target: WGSL_TARGET,
  });
  assertEquals(scheduleStats.splitsWhileBuilding - before, 0);
  for (const k of kernels) assert(k.inputs.length + 1 <= MAX_KERNEL_BUFFERS, `${k.inputs.length}`);
  // and the values, on webgpu against the cpu
  if (webgpuAvailable) {
    const data = Array.from({ length: 7 }, (_, i) => [i, -i, 0.5 * i, 1]);
    const sum = (device: DeviceName) => {
      const ts = data.map((d) => tensor(d, { device }));
      let t = ts[0];
      for (let i = 1; i < 1500; i++) t = t.add(ts[i % 7]);
      return t;
    };
    assertClose(await sum("webgpu").data(), await sum("cpu").data(), { rtol: 1e-6 });
  }
});

Deno.test("MAX_KERNEL_VALUES: a kernel computes at most its target's values, cut before building", () => {
  const target = { ...JS_TARGET, maxKernelValues: 64 };
  const x = nodeOf(input(1, 4));
  const c = nodeOf(input(1, 4, 2));
  let t = x;
  for (let i = 0; i < 300; i++) t = ir.binary(i % 2 === 0 ? "mul" : "sub", t, c);
  const before = scheduleStats.splitsWhileBuilding;
  const kernels = scheduleKernels([t], { fusion: true, isRealized: () => false, target });
  assertEquals(scheduleStats.splitsWhileBuilding - before, 0, "found before building");
  assert(kernels.length >= 300 / 64, `${kernels.length} kernels`);
  for (const k of kernels) {
    const values = exprsInOrder(kernelRoots(k.kernel)).length;
    assert(values <= 64, `${values} values`);
  }
  // and without the limit, one kernel
  assertEquals(
    scheduleKernels([t], { fusion: true, isRealized: () => false, target: JS_TARGET }).length,
    1,
  );
});

Deno.test("unfused mode: one kernel per op, same values", async () => {
  const x = input(3, 4);
  const y = x.exp().neg().sum(1); // exp, neg, sum, reshape
  try {
    setFusion(false);
    const ks = kernels(y);
    assertEquals(ks.map((k) => k.name), ["k_exp", "k_neg", "k_sum", "k_reshape"]);
    await assertValue(y);
  } finally {
    setFusion(true);
  }
  // the same graph on a fresh input (y's node is realized now), fused: one kernel, equal values
  const z = input(3, 4).exp().neg().sum(1);
  assertEquals(kernels(z).length, 1);
  assertClose(await z.data(), await y.data(), { rtol: 1e-6 });
});

Deno.test("outputs realized together share work and each is computed", async () => {
  const x = input(4, 5);
  const s = x.exp().sum(1);
  const m = x.exp().max(1);
  const ks = kernels(s, m);
  // MULTI_OUTPUT: one kernel writes both (one pass over x, exp computed once)
  assertEquals(ks.length, 1);
  assertEquals(ks[0].outputs.map((o) => o.shape), [[4], [4]]);
  await realize(s, m);
  await assertValue(s);
  await assertValue(m);
});

Deno.test("MULTI_OUTPUT: a value read elementwise is used, not loaded; each output is right", () =>
  withCpuKernels("js", async () => {
    const x = input(3, 37);
    const e = x.exp();
    const s = e.mul(x); // reads e at its own index
    const ks = kernels(e, s);
    assertEquals(ks.length, 1);
    assertEquals(ks[0].outputs.length, 2);
    assertEquals(ks[0].inputs.length, 1, "x only: e is not loaded");
    assertEquals(ks[0].source.match(/Math\.exp/g)?.length ?? 0, 1, "exp computed once");
    await realize(e, s);
    await assertValue(e);
    await assertValue(s);
  }));

Deno.test("MULTI_OUTPUT: no merge where one reads the other through a window or a kernel", async () => {
  const x = input(4, 6);
  const e = x.exp();
  // reads e at its neighbours (a window over axis 1): it must load e's buffer
  const w = e.pad([[0, 0], [1, 1]]).unfoldDim(1, 3).sum(2).add(x);
  assertEquals(kernels(e, w).length, 2, "a window of e");
  await realize(e, w);
  await assertValue(e);
  await assertValue(w);
  // reads e through the row max, a kernel of its own (RECOMPUTE_BUDGET: a long row)
  const x2 = input(4, 400, 2);
  const e2 = x2.exp();
  const b = x2.sub(e2.max(1, true));
  assertEquals(kernels(e2, b).map((k) => k.outputs.length), [1, 1, 1]);
  await realize(e2, b);
  await assertValue(e2);
  await assertValue(b);
  // values of different shapes never share a kernel (a fresh x: e above is realized)
  const x3 = input(4, 6, 3);
  assertEquals(kernels(x3.exp(), x3.sum(1)).length, 2, "two shapes");
});

Deno.test("MULTI_OUTPUT: a merge stays within the target's buffer limit and its target", async () => {
  const xs = Array.from({ length: 7 }, (_, i) => nodeOf(input(2, 3, i + 1)));
  const sum = (nodes: typeof xs) => nodes.reduce((a, n) => ir.binary("add", a, n));
  const a = sum(xs.slice(0, 4));
  const b = sum([xs[0], ...xs.slice(4)]);
  const schedule = (target: typeof JS_TARGET) =>
    scheduleKernels([a, b], { fusion: true, isRealized: () => false, target })
      .map((k) => k.outputs.length);
  // merged, it would bind 7 inputs and 2 outputs: 9 > 8 on webgpu
  assertEquals(schedule(WGSL_TARGET), [1, 1]);
  assertEquals(schedule(JS_TARGET), [2]);
  // on cpu a float32 kernel runs as Wasm and an int32 one as JavaScript: they stay apart
  const x = input(3, 8);
  const kinds = (ks: ReturnType<typeof kernels>) =>
    ks.map((k) => `${k.target}:${k.outputs.length}`);
  if (cpu.simd) {
    assertEquals(kinds(kernels(x.exp(), x.mul(1000).cast("int32"))).sort(), ["js:1", "wasm:1"]);
  }
  await withCpuKernels(
    "js",
    () => assertEquals(kinds(kernels(x.exp(), x.mul(1000).cast("int32"))), ["js:2"]),
  );
  if (!cpu.simd) return;
  // a part that would run as Wasm joins a JavaScript kernel only as a trifle beside a
  // reduction (LocalResponseNorm's division after its stored pow): a Wasm reduction, or a
  // float32 chain, beside an int32 cast stays Wasm (run as one-lane JavaScript they were 2-14x
  // slower)
  const wide = input(4, 4096);
  const total = wide.sum(1);
  const named = (ks: ReturnType<typeof kernels>) => ks.map((k) => `${k.target}:${k.name}`);
  assert(named(kernels(total.mul(2), total.mul(1000).cast("int32"))).includes("wasm:k_sum"));
  let chain = wide;
  for (let i = 0; i < 10; i++) chain = chain.mul(1.5).add(0.25);
  let ints = wide.mul(1000).cast("int32");
  for (let i = 0; i < 20; i++) ints = ints.add(1).mul(3);
  assertEquals(kinds(kernels(chain, ints)).sort(), ["js:1", "wasm:1"]);
  // nor beside a reduction of a few terms, no work to hide a trifle behind (an int32 sum over
  // an axis of 1: the joined kernel was 1.3-1.45x slower than the two)
  const column = input(4096, 1);
  const trifle = column.mul(2).add(1).reshape([4096]);
  const short = column.cast("int32").sum(1).mul(3);
  assertEquals(kinds(kernels(trifle, short)).sort(), ["js:1", "wasm:1"]);
});

Deno.test("MULTI_OUTPUT: a kernel writes at most MAX_KERNEL_OUTPUTS values", async () => {
  assertEquals(MAX_KERNEL_OUTPUTS, 4);
  const x = input(3, 5, 4);
  const values = [x.exp(), x.tanh(), x.neg(), x.square(), x.abs(), x.sigmoid()];
  assertEquals(kernels(...values).map((k) => k.outputs.length), [4, 2]);
  await realize(...values);
  for (const v of values) await assertValue(v);
});

Deno.test("SHARED_VALUE: a dear value two kernels compute is stored once, unless it costs a kernel", () => {
  assertEquals(SHARED_VALUE_COST, 16);
  const xs = Array.from({ length: 7 }, (_, i) => nodeOf(input(2, 3, i + 1)));
  // n: six loads, five adds, exp and log (21 op-units); k1 reads it with one more input, k2
  // with a window of k1 (so k1 and k2 never merge)
  const n = ir.unary(
    "log",
    ir.unary("exp", xs.slice(0, 6).reduce((a, b) => ir.binary("add", a, b))),
  );
  const k1 = ir.binary("add", n, xs[6]);
  const window = ir.reduce("sum", ir.unfoldDim(ir.pad(k1, [[0, 0], [1, 1]], 0), 1, 3, 1), [2]);
  const k2 = ir.binary("add", ir.binary("mul", n, xs[1]), ir.reshape(window, [2, 3]));
  const schedule = (target: typeof JS_TARGET) =>
    scheduleKernels([k1, k2], { fusion: true, isRealized: () => false, target })
      .map((k) => ({
        outputs: k.outputs.length,
        storesN: k.outputs.includes(n),
        inputs: k.inputs.length,
      }));
  // stored by k1's kernel (an output of its own), loaded by k2's
  assertEquals(schedule(JS_TARGET), [
    { outputs: 2, storesN: true, inputs: 7 },
    { outputs: 1, storesN: false, inputs: 3 },
  ]);
  // on webgpu n and k1 in one kernel would bind 9 buffers: n would be a third kernel, so both
  // compute it as before
  assertEquals(schedule(WGSL_TARGET), [
    { outputs: 1, storesN: false, inputs: 7 },
    { outputs: 1, storesN: false, inputs: 7 },
  ]);
});

Deno.test("MULTI_OUTPUT: values on every backend, threads and vector tails included", async (t) => {
  for (const backend of testBackends) {
    await t.step(backend.name, () =>
      onBackend(backend, async () => {
        const build = (x: Tensor) => {
          const e = x.tanh();
          const s = e.mul(x).add(1);
          const w = x.pad([[0, 0], [2, 2]]).unfoldDim(1, 5).square().sum(2).add(e);
          return [e, s, w];
        };
        const expected = build(input(5, 37, 3)).map(reference);
        const values = build(input(5, 37, 3, backend.device));
        const ks = kernels(...values);
        assertEquals(ks.length, 1, backend.name);
        assertEquals(ks[0].outputs.length, 3, backend.name);
        await realize(...values);
        for (let i = 0; i < values.length; i++) {
          assertClose(await values[i].data(), expected[i], { rtol: 2e-5, atol: 1e-6 });
        }
      }));
  }
});

Deno.test("groupUnitAxes: a length-1 axis is grouped with the next longer axis, or the last", () => {
  assertEquals(groupUnitAxes([]), []);
  assertEquals(groupUnitAxes([1]), [[0, 1]]);
  assertEquals(groupUnitAxes([1, 1, 1]), [[0, 3]]);
  assertEquals(groupUnitAxes([5]), [[0, 1]]);
  assertEquals(groupUnitAxes([2, 3]), [[0, 1], [1, 2]]);
  assertEquals(groupUnitAxes([1, 2, 1, 3, 1]), [[0, 2], [2, 5]]);
  assertEquals(groupUnitAxes([4, 1, 1, 5]), [[0, 1], [1, 4]]);
  assertEquals(groupUnitAxes([0, 1, 2]), [[0, 1], [1, 3]]);
});

Deno.test("MERGE_OUTPUT_AXES: length-1 axes, hundreds of them, on every backend", async (t) => {
  // rank 603: (1, 4, 1 x 600, 3), as a broadcast reduction and as a window over the 4
  const shape = [1, 4, ...new Array(600).fill(1), 3];
  const build = (x: Tensor) => {
    const e = x.exp().sum(1, true).mul(x);
    return [e, x.pad(shape.map((_, i) => i === 1 ? [1, 1] : [0, 0])).unfoldDim(1, 3).sum(-1)];
  };
  // a length-1 leading axis beside a padded window (its grouping does not lower cleanly: the
  // kernel keeps one loop per axis, with the same values)
  const lrnInput = (device: DeviceName) =>
    tensor(Array.from({ length: 3 }, (_, i) => i - 1.5), { shape: [1, 3, 1], device });
  const lrn = new nn.LocalResponseNorm(3, 0.5, 0.75, 1);
  const data = Array.from({ length: 12 }, (_, i) => Math.cos(i * 0.7) * 2);
  const expected = build(tensor(data, { shape })).map(reference);
  const lrnExpected = reference(lrn.forward(lrnInput("cpu")));
  for (const backend of testBackends) {
    await t.step(backend.name, () =>
      onBackend(backend, async () => {
        const values = build(tensor(data, { shape, device: backend.device }));
        for (let i = 0; i < values.length; i++) {
          assertEquals(values[i].shape, shape);
          assertClose(await values[i].data(), expected[i], { rtol: 1e-5, atol: 1e-6 });
        }
        const y = lrn.forward(lrnInput(backend.device));
        assertClose(await y.data(), lrnExpected, { rtol: 1e-5, atol: 1e-7 });
      }));
  }
  // an elementwise kernel of (1, 4, 1..., 3) loops over its 12 values as one axis
  const y = tensor(data, { shape }).exp().mul(2);
  const { source } = await withCpuKernels("js", () => kernels(y)[0]);
  assertEquals(source.match(/for \(/g)?.length, 1, source);
});

Deno.test("a realized node is loaded, not recomputed", () =>
  withCpuKernels("js", async () => {
    const x = input(4, 5);
    const e = x.exp().mul(3);
    await e.data();
    const y = e.add(1);
    const ks = kernels(y);
    assertEquals(ks.length, 1);
    // one input: the realized e (x is not read again)
    assertEquals(ks[0].inputs.length, 1);
    assertStringIncludes(
      ks[0].source,
      "// lucid kernel: out float32[4,5] from in0: float32[4,5]\n",
    );
    assert(!ks[0].source.includes("Math.exp"));
    await assertValue(y);
  }));

Deno.test("scheduleKernels writes every buffer before reading it", () => {
  const x = input(4, 100);
  const e = x.sub(x.max(1, true)).exp();
  const y = e.div(e.sum(1, true));
  const scheduled = scheduleKernels([nodeOf(y)], {
    fusion: true,
    isRealized: () => false,
    target: JS_TARGET,
  });
  const written = new Set<unknown>();
  for (const s of scheduled) {
    for (const n of s.inputs) assert(n.op === "buffer" || written.has(n), "read before written");
    for (const n of s.outputs) written.add(n);
  }
  assertEquals(scheduled[scheduled.length - 1].outputs, [nodeOf(y)]);
});

Deno.test("plan cache: the same structure with new data reuses the plan and the kernels", async () => {
  const build = (seed: number) =>
    input(3, 7, seed).exp().sum(1).mul(input(3, 1, seed + 1).squeeze());
  const first = build(101);
  await first.data(); // builds (or finds) the plan and compiles
  const before = planCacheStats();
  const compiled = cpuBackend.compiledCount();
  const second = build(202);
  const values = await second.data();
  const after = planCacheStats();
  assertEquals(after.hits, before.hits + 1);
  assertEquals(after.misses, before.misses);
  assertEquals(after.size, before.size);
  assertEquals(cpuBackend.compiledCount(), compiled);
  assertClose(values, reference(second));
  // the two calls computed different values from different data
  assert(Array.from(values).some((v, i) => v !== (first.dataSync()[i])));
  // a different shape is a different structure: a new plan
  const third = input(4, 7, 5).exp().sum(1).mul(input(4, 1, 6).squeeze());
  await third.data();
  assertEquals(planCacheStats().misses, after.misses + 1);
  assertEquals(planCacheStats().size, after.size + 1);
});

Deno.test("plan cache: kernels() plans once and the next realization reuses it", async () => {
  const y = input(2, 9, 7).tanh().max(0);
  kernels(y);
  const before = planCacheStats();
  await y.data();
  assertEquals(planCacheStats().hits, before.hits + 1);
  assertEquals(planCacheStats().misses, before.misses);
});

Deno.test("LONG_REDUCTION: axes the value is broadcast along are not cut, on every backend", async () => {
  // a sum over a broadcast axis is the value times the count (README): cut into chunks on
  // webgpu, its chunks' sums were added in float32 (3 over 16,777,217 elements gave 50334376,
  // 682 ulps from the mean's 3; helper-165). Views that keep the broadcast (permute, reshape
  // adding axes, shrink, elementwise ops) keep it; a pad along the axis does not
  const ulp = (v: number) => Math.max(2 ** -149, 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23));
  const n = 16_777_217;
  for (const backend of testBackends) {
    await onBackend(backend, async () => {
      const device = backend.device;
      const three = tensor([3], { device });
      const rows = tensor([3, 5], { device }).reshape([2, 1]);
      const rampValues = Array.from({ length: 300 }, (_, i) => (i % 7) - 2);
      const rampSum = rampValues.reduce((a, b) => a + b, 0);
      const ramp = tensor(rampValues, { device });
      const cases: [string, () => Tensor, number[]][] = [
        ["sum", () => three.expand([n]).sum(), [3 * n]],
        ["mean", () => three.expand([n]).mean(), [3]],
        ["max", () => three.neg().expand([n]).max(), [-3]],
        ["rows", () => rows.expand([2, 1e8]).sum(1), [3e8, 5e8]],
        ["permuted", () => rows.expand([2, 70_000]).permute([1, 0]).sum(0), [210_000, 350_000]],
        ["through ops", () => rows.expand([2, n]).mul(2).add(1).sum(1), [7 * n, 11 * n]],
        ["shrunk", () => rows.expand([2, 1e8]).slice(1, 5, 1e8 - 5).sum(1), [3e8 - 30, 5e8 - 50]],
        ["reshaped", () => three.expand([n]).reshape([1, n, 1]).sum([1]), [3 * n]],
        // broadcast along one reduced axis, not the other (300 values, summed 1,000 times)
        ["mixed", () => ramp.reshape([1, 300]).expand([1000, 300]).sum(), [1000 * rampSum]],
        // along a padded axis the values differ: cut as before, within the chunks' rounding
        ["padded", () => three.expand([100_000]).pad([[0, 7]]).sum(), [300_000]],
      ];
      for (const [what, make, want] of cases) {
        using got = make();
        const values = Array.from(await got.data());
        for (let i = 0; i < want.length; i++) {
          const off = Math.abs(values[i] - want[i]) / ulp(want[i]);
          assert(off <= 2, `${backend.name} ${what}[${i}]: ${values[i]}, want ${want[i]}`);
        }
      }
      for (const t of [three, rows, ramp]) t.dispose();
    });
  }
});

Deno.test({
  name: "LONG_REDUCTION: a split equal to a value realized before is computed, not loaded",
  ignore: !webgpuAvailable,
  fn: async () => {
    // the first sum realizes sum(reshape(a, [1024, 1024]), 1) and its total; the mean of a is
    // split into the very same two stages (hash-consing finds them realized), which the plan
    // must compute itself: it loads only what the mean's own graph holds (it crashed)
    const a = tensor(new Float32Array(1 << 20).fill(0.25), { device: "webgpu" });
    assertClose([await a.reshape(1024, 1024).sum(1).sum().item()], [262144], { rtol: 1e-6 });
    assertClose([await a.mean().item()], [0.25], { rtol: 1e-6 });
    // and the same plan on other data, where nothing equal was realized
    const b = tensor(new Float32Array(1 << 20).fill(0.5), { device: "webgpu" });
    assertClose([await b.mean().item()], [0.5], { rtol: 1e-6 });
    // requested together with the split: a stage (before or after it in the outputs) is written
    // once, before the kernels that read it; the split's last value likewise (they crashed)
    const data = Float32Array.from({ length: 1 << 20 }, (_, i) => (i % 7) - 3);
    const c = tensor(data, { device: "webgpu" });
    const onCpu = tensor(data);
    // (and how many values its kernels write: each once; the last also stores a stage)
    const pairs: [(t: typeof c) => (typeof c)[], number][] = [
      [(t) => [t.reshape(1024, 1024).sum(1, true), t.sum()], 2],
      [(t) => [t.sum(), t.reshape(1024, 1024).sum(1, true)], 2],
      [(t) => [t.max(), t.reshape(1024, 1024).max(1, true).reshape(1024).max(0, true)], 3],
    ];
    for (const [pair, written] of pairs) {
      const got = pair(c);
      await realize(...got);
      const want = pair(onCpu);
      for (let i = 0; i < got.length; i++) {
        assertClose(await got[i].data(), await want[i].data(), { rtol: 1e-6 });
      }
      const fresh = pair(tensor(data, { device: "webgpu" }));
      assertEquals(kernels(...fresh).flatMap((k) => k.outputs).length, written);
    }
  },
});

Deno.test("MAX_INPUT_STORED: max's gradient compares stored bits, whichever cpu target recomputes", async () => {
  // a float32 v where Wasm's exp and JavaScript's differ in the last bit
  const candidates = Array.from({ length: 256 }, (_, i) => Math.fround(0.1 + i * 0.0123));
  const wasmExp = await tensor(candidates).exp().data();
  const v = candidates.find((c, i) => wasmExp[i] !== Math.fround(Math.exp(c)));
  if (v === undefined) return; // (the cpu runs JavaScript kernels only: nothing to tell apart)
  // the max of exp(x) is one kernel (Wasm), the gradient another (JavaScript: a general pow)
  const x = tensor([v, v - 0.5], { requiresGrad: true });
  x.exp().max().add(x.pow(tensor([2, 2])).sum()).backward();
  const dx = Array.from(await x.grad!.data());
  assertClose(dx, [Math.exp(v) + 2 * v, 2 * (v - 0.5)], { rtol: 1e-6 });
});

Deno.test("MAX_INPUT_STORED: a view of stored values is read through, not copied", async () => {
  for (const view of [(a: Tensor) => a.transpose(0, 1), (a: Tensor) => a.reshape(6, 2, 10)]) {
    const a = input(6, 20, 5);
    a.requiresGrad = true;
    const loss = view(a).max(-1).sum();
    loss.backward();
    const ks = kernels(loss, a.grad!);
    // max, the count of maxima, the gradient, the loss: no kernel copying the view
    assertEquals(ks.length, 4, ks.map((k) => k.name).join(" "));
    assert(!ks.some((k) => /permute|reshape/.test(k.name)), ks.map((k) => k.name).join(" "));
    assertClose(await a.grad!.data(), reference(a.grad!), { rtol: 1e-6 });
  }
});

Deno.test({
  name: "LONG_REDUCTION: a stage keeps at most 2^22 values where the chunk length allows",
  ignore: !webgpuAvailable,
  fn: async () => {
    // a row sum of 140,000 rows of 65,537 stored 140,000 x 257 values (143 MB, past WebGPU's
    // binding limit) for 0.56 MB of output: planned only (running it takes half a minute)
    const rows = tensor(new Float32Array(140_000), { shape: [140_000, 1], device: "webgpu" });
    const cols = tensor(new Float32Array(65_537), { shape: [1, 65_537], device: "webgpu" });
    const planned = kernels(rows.mul(cols).sum(1));
    assertEquals(planned.length, 2, planned.map((k) => k.name).join());
    const stage = planned[0].outputs[0];
    assertEquals(stage.role, "intermediate");
    const stored = stage.shape.reduce((a, b) => a * b, 1);
    assert(stored <= 2 ** 22, `stage of ${stored} values`);
    // LRN's gradient with a window longer than 65,536 (larger than the channels) was refused
    const lrnX = tensor(new Float32Array(200).fill(0.5), { shape: [1, 100, 2], device: "webgpu" });
    lrnX.requiresGrad = true;
    const lrnKernels = kernels(...(() => {
      const y = new nn.LocalResponseNorm(65_537, 1e-4, 0.75, 2).forward(lrnX);
      y.sum().backward();
      return [y, lrnX.grad!];
    })());
    for (const k of lrnKernels) {
      for (const b of [...k.inputs, ...k.outputs]) {
        assert(b.shape.reduce((p, q) => p * q, 1) <= 2 ** 22, `${k.name}: [${b.shape}]`);
      }
    }
    // and a smaller one runs, against the cpu
    const small = (device: DeviceName) =>
      tensor(Float32Array.from({ length: 300 }, (_, i) => (i % 7) - 3), { shape: [300, 1], device })
        .mul(tensor(Float32Array.from({ length: 70_000 }, (_, i) => (i % 5) / 4), {
          shape: [1, 70_000],
          device,
        })).sum(1);
    assertClose(await small("webgpu").data(), await small("cpu").data(), { rtol: 1e-5 });
  },
});

Deno.test("MAX_KERNEL_BUFFERS: a value too wide for one kernel, read through many views, is stored once", () => {
  // a cut used to update only the views it went through: the other views of the value kept its
  // old count, so every later step passed the limit again and cut once more (51 kernels where
  // 2 do); and a product of a view was cut in place of the value the views share
  const n = 4;
  const slices = 200;
  const leaves = (count: number, length: number, seed: number) =>
    Array.from(
      { length: count },
      (_, i) => Array.from({ length }, (_, j) => ((i * seed + j * 3) % 11) - 5),
    );
  const aData = leaves(500, slices * n, 7);
  const bData = leaves(500, n, 5);
  for (const scaled of [false, true]) {
    // made anew: computed a second time, the sums' 500 steps would be stored every 64 (rule
    // CHECKPOINT), cutting kernels of their own
    const a = aData.map((d) => tensor(d)).reduce((acc, t) => acc.add(t));
    const b = bData.map((d) => tensor(d)).reduce((acc, t) => acc.add(t));
    let total = a.shrink([[0, n]]);
    for (let k = 1; k < slices; k++) {
      const slice = a.shrink([[k * n, (k + 1) * n]]);
      total = (scaled ? slice.mul(0.5) : slice).add(total);
    }
    total = total.add(b);
    const counts = buffersPerKernel(total);
    assertEquals(counts.length, 2, `scaled ${scaled}: ${counts}`);
    for (const c of counts) assert(c <= 998, `${c} buffers`);
    const want = Array.from({ length: n }, (_, j) => {
      let sum = 0;
      for (const d of aData) {
        for (let k = 0; k < slices; k++) sum += (scaled && k > 0 ? 0.5 : 1) * d[k * n + j];
      }
      for (const d of bData) sum += d[j];
      return sum;
    });
    assertEquals(Array.from(total.dataSync()), want);
  }
});

Deno.test("MULTI_OUTPUT: kernels of other shapes reading a shared input are no merge candidates", () => {
  // every reader of the shared input was a candidate, rejected one by one in a scan of them
  // all: planning n outputs of different shapes reading one 0-D input took time cubic in n
  // (4,000: 121 s; Adam's first step over 1,600 parameters, which read the step's scalars: 9 s)
  const lr = nodeOf(tensor(0.5));
  const outputs = Array.from(
    { length: 300 },
    (_, i) =>
      ir.binary("mul", nodeOf(input(1, i + 1)), ir.expand(ir.reshape(lr, [1, 1]), [1, i + 1])),
  );
  const before = scheduleStats.mergeCandidates;
  const kernels = scheduleKernels(outputs, {
    fusion: true,
    isRealized: () => false,
    target: JS_TARGET,
  });
  assertEquals(kernels.length, 300);
  assertEquals(scheduleStats.mergeCandidates - before, 0);
});

Deno.test("MULTI_OUTPUT: kernels whose buffers together pass the limit are no merge candidates", () => {
  // 300 same-shape outputs each reading its own 5 buffers and 2 shared ones, on webgpu's 8
  // buffers: any two together need 14. Each was built merged with every later reader of the
  // shared buffers, only to be refused (Adam's first step over 400 parameters on webgpu: 80,000
  // merged kernels built, 12 of its 14 s)
  const shared = [input(4, 4, 0), input(4, 4, 1)].map(nodeOf);
  const outputs = Array.from({ length: 300 }, (_, i) => {
    const own = Array.from({ length: 5 }, (_, k) => nodeOf(input(4, 4, 2 + 5 * i + k)));
    return [...shared, ...own].reduce((sum, n) => ir.binary("add", sum, n));
  });
  const before = scheduleStats.mergeCandidates;
  const kernels = scheduleKernels(outputs, {
    fusion: true,
    isRealized: () => false,
    target: WGSL_TARGET,
  });
  assert(kernels.length >= 300, `${kernels.length} kernels`); // none merged
  assertEquals(scheduleStats.mergeCandidates - before, 0);
  // on a target with room for them, they still merge (at most 4 outputs a kernel)
  const roomy = scheduleKernels(outputs, {
    fusion: true,
    isRealized: () => false,
    target: JS_TARGET,
  });
  assert(roomy.length < 300, `${roomy.length} kernels`);
});
