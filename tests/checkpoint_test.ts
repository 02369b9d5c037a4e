// Rule CHECKPOINT (src/runtime/checkpoint.ts): a deep value computed again is kept on the way,
// so a value built step by step and read only through results is not computed from its first
// step at every read. A checkpoint is a cache only plans see: disposing, freeing before a
// dispose and dropping history behave as without it; it goes with the data it was computed
// from, so a loop that disposes what it makes keeps none, and the checkpoints of a device are
// bounded.

import {
  exportCompiled,
  jit,
  kernels,
  memory,
  optim,
  randn,
  type Tensor,
  tensor,
  tidy,
} from "../mod.ts";
import type { DeviceBuffer } from "../src/runtime/device.ts";
import * as ir from "../src/ir/node.ts";
import { topoSort } from "../src/ir/graph.ts";
import {
  CHECKPOINT_BYTES,
  CHECKPOINT_DEPTH,
  checkpointBuffer,
  checkpointStats,
  chooseCheckpoints,
  isCheckpoint,
} from "../src/runtime/checkpoint.ts";
import { planCacheStats, realizedBuffer, wasReleased } from "../src/runtime/realize.ts";
import { nodeOf } from "../src/tensor.ts";
import { assert, assertEquals } from "./assert.ts";
import { assertClose, testDevices, webgpuAvailable } from "./helpers.ts";

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

Deno.test("CHECKPOINT: a deep graph realized once is one kernel; computed again, every 64th op is kept", async () => {
  const start = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
  const leaf = tensor(start);
  let h = leaf;
  for (let i = 0; i < 200; i++) h = h.mul(1.001).add(0.001); // 400 ops
  assertEquals(kernels(h.sum()).length, 1);
  await h.sum().item();
  const want = iterate(start, 200, (v) => v * 1.001 + 0.001);
  assertClose([await h.max().item()], [Math.max(...want)], { rtol: 5e-5 });
  // the 64th, ..., 384th ops are kept, seen by plans only: not stored for the rest of the
  // library, and with their history
  const kept = topoSort([nodeOf(h)]).filter(isCheckpoint);
  assertEquals(kept.length, 6);
  for (const n of kept) {
    assertEquals([realizedBuffer(n, "cpu"), ir.isSettled(n)], [undefined, false]);
  }
  let node = nodeOf(h);
  let above = 0;
  while (!isCheckpoint(node)) {
    node = node.srcs[0];
    above++;
  }
  assertEquals(above, 400 - 6 * CHECKPOINT_DEPTH);
  const [k] = kernels(h.mean());
  assertEquals(k.inputs.length, 1, "reads the last checkpoint, not the leaf and 400 ops");
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
  for (const n of topoSort([nodeOf(wide)])) if (isCheckpoint(n)) stored.push([...n.shape]);
  assertEquals(stored, [[10]], "h's 64th step only");
  const want = iterate(
    iterate(Float32Array.from({ length: 10 }, (_, i) => i), 70, (v) => v + 1),
    70,
    (v) => v * 0.5 + 1,
  );
  assertClose([await wide.neg().max().item()], [-Math.min(...want)], { rtol: 5e-5 });
});

Deno.test("CHECKPOINT: a loop that disposes what it makes keeps no checkpoint", () => {
  // each step's chain is read twice, so the second read stores a checkpoint; it went only with
  // its node, which a loop of dataSync() never lets the garbage collector take: 2 buffers a step
  for (const style of ["dispose", "tidy"]) {
    const before = memory().cpu.liveBuffers;
    for (let step = 0; step < 20; step++) {
      const body = () => {
        const x = randn([1000]);
        let h = x;
        for (let i = 0; i < 80; i++) h = h.mul(0.999).add(0.001); // 160 computing ops
        const a = h.sum();
        const b = h.max();
        a.dataSync();
        b.dataSync();
        if (style === "dispose") { for (const t of [a, b, h, x]) t.dispose(); }
      };
      if (style === "tidy") tidy(body);
      else body();
    }
    assertEquals(memory().cpu.liveBuffers - before, 0, style);
  }
});

Deno.test("CHECKPOINT: checkpoints go with the data they were computed from", async () => {
  const start = Float32Array.from({ length: 30 }, (_, i) => i / 10);
  for (const device of testDevices) {
    const leaf = tensor(start, { device });
    let w = leaf;
    const kept: Tensor[] = [];
    for (let step = 1; step <= 200; step++) {
      w = w.mul(1.002);
      if (step === 50 || step === 100) kept.push(w);
      await w.sum().item();
    }
    const checkpoints = topoSort([nodeOf(w)]).filter(isCheckpoint);
    assertEquals(checkpoints.length, 3, `${device}: the 64th, 128th and 192nd steps`);
    const buffers = checkpoints.map((n) => checkpointBuffer(n, device)!);
    const between = kept[1].mul(1.002); // the 101st step, on the 64th
    leaf.dispose();
    for (const b of buffers) assert(wasReleased(b), device);
    assertEquals(topoSort([nodeOf(w)]).filter(isCheckpoint), [], device);
    // what needs the leaf reads as it did before the rule: an Error naming the disposed input
    for (const t of [kept[0], between, w]) {
      let message = "";
      try {
        await t.mul(3).sum().item();
      } catch (e) {
        message = (e as Error).message;
      }
      assert(message.includes("disposed"), message);
    }
  }
});

Deno.test("CHECKPOINT: what must be computed before storage is freed does not stop at a checkpoint", () => {
  // a checkpoint dies with its roots: the walks deciding what to compute before a free stopped
  // at it as at a stored value, and a gradient, an assignment or tidy's result built on it was
  // left unreadable (helper-149)
  const n = 50;
  const start = Float32Array.from({ length: n }, (_, i) => 1 + i / n);
  const want = iterate(start, 200, (v) => v * 1.001 + 0.001);
  const chain = (from: Tensor) => {
    let h = from;
    for (let i = 0; i < 200; i++) h = h.mul(1.001).add(0.001);
    h.sum().dataSync();
    h.max().dataSync(); // computed again: checkpoints, from `from`
    return h;
  };
  // a gradient, the batch disposed right after backward()
  const p = tensor(new Float32Array(n).fill(0.5), { requiresGrad: true });
  const x = tensor(start);
  chain(x).mul(p).sum().backward();
  x.dispose();
  assertClose(p.grad!.dataSync(), want, { rtol: 5e-5 });
  // a gradient, the data replaced by assign()
  const q = tensor(new Float32Array(n).fill(0.5), { requiresGrad: true });
  const ema = tensor(start);
  chain(ema).mul(q).sum().backward();
  ema.assign(ema.mul(0.9));
  ema.dataSync();
  assertClose(q.grad!.dataSync(), want, { rtol: 5e-5 });
  // a gradient, the data a parameter an optimizer steps
  const P = tensor(start, { requiresGrad: true });
  const Q = tensor(new Float32Array(n), { requiresGrad: true });
  const opt = new optim.SGD([P], { lr: 0.1 });
  Q.sub(chain(P.detach())).square().sum().mul(-0.5).backward(); // dQ = target - Q = target
  P.square().sum().backward();
  opt.step();
  P.dataSync();
  assertClose(Q.grad!.dataSync(), want, { rtol: 5e-5 });
  // an assignment
  const y = tensor(start);
  const target = tensor(new Float32Array(n));
  target.assign(chain(y).mul(2));
  y.dispose();
  assertClose(target.dataSync(), want.map((v) => 2 * v), { rtol: 5e-5 });
  // tidy's result
  const result = tidy(() => {
    const z = tensor(start);
    let w = z;
    for (let i = 0; i < 200; i++) {
      const next = w.mul(1.001).add(0.001);
      if (w !== z) w.dispose(); // lazy: allowed
      w = next;
    }
    w.sum().dataSync();
    w.max().dataSync();
    return w.mul(2).sum();
  });
  assertClose(result.dataSync(), [2 * want.reduce((a, b) => a + b)], { rtol: 5e-5 });
});

Deno.test("CHECKPOINT: the checkpoints of a device take at most CHECKPOINT_BYTES", () => {
  // roots that stay (a persistent input), a new chain each step read twice: nothing frees them
  // but the garbage collector, which a loop of dataSync() never lets run
  const x = randn([250_000]); // a megabyte
  for (let step = 0; step < 60; step++) {
    let h = x.mul(step);
    for (let i = 0; i < 40; i++) h = h.mul(0.999).add(0.001); // 81 computing ops
    h.sum().dataSync();
    h.max().dataSync();
    assert(checkpointStats("cpu").bytes <= CHECKPOINT_BYTES, `${checkpointStats("cpu").bytes}`);
  }
  assert(checkpointStats("cpu").count >= 16, "the bound was reached");
  x.dispose();
});

Deno.test("CHECKPOINT: a checkpoint's roots are the data below it, not every input of its run", async () => {
  // a batch read beside a parameter updated step by step was a root of the parameter's
  // checkpoints: dropped, it was never freed (helper-150); disposed, it took them along, and
  // every read computed the parameter from its first step again
  const start = Float32Array.from({ length: 16 }, (_, i) => i / 4);
  let w = tensor(start);
  let batchTotal = 0;
  let missesBefore = 0;
  for (let step = 1; step <= 250; step++) {
    w = w.mul(0.999).add(0.001);
    const data = Float32Array.from({ length: 64 }, (_, i) => (i * step) % 7);
    const batch = tensor(data);
    batchTotal = data.reduce((a, b) => a + b) / 64;
    if (step === 200) missesBefore = planCacheStats().misses;
    const got = await w.sum().add(batch.mean()).item();
    batch.dispose();
    if (step % 50 === 0) {
      const want = iterate(start, step, (v) => v * 0.999 + 0.001).reduce((a, b) => a + b);
      assertClose([got], [want + batchTotal], { rtol: 5e-5 });
    }
  }
  assertEquals(planCacheStats().misses - missesBefore, 0);
  const kept = topoSort([nodeOf(w)]).filter(isCheckpoint);
  assert(kept.length > 0);
});

Deno.test("CHECKPOINT: a value larger than CHECKPOINT_BYTES is never chosen", () => {
  // two were kept whatever they weighed: 256 MB values kept 512 MB unasked (helper-152)
  for (const [length, chosen] of [[1000, 1], [CHECKPOINT_BYTES / 4 + 1, 0]]) {
    const storage = { device: "cpu", dtype: "float32", length } as unknown as DeviceBuffer;
    let node = ir.buffer(storage, [length], "float32");
    for (let i = 0; i < 70; i++) node = ir.unary("neg", node);
    const order = topoSort([node]);
    order.forEach((n, i) => {
      n.place = i;
      n.computed = true;
    });
    const isSource = order.map((n) => n.op === "buffer");
    assertEquals(chooseCheckpoints(order, isSource, [node]).length, chosen, `${length}`);
  }
});

Deno.test({
  name: "CHECKPOINT: a realization waiting for a copy holds what the checkpoints it loads need",
  ignore: !webgpuAvailable,
  fn: async () => {
    // exportCompiled realizes its captures directly: waiting for an input still arriving, it held
    // the checkpoint it had planned to load but not the value below it, whose dispose took the
    // checkpoint along, and the plan made after the wait found that value gone (helper-152)
    const start = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
    const root = tensor(start);
    let chain = root;
    for (let step = 0; step < 100; step++) {
      chain = chain.mul(0.999).add(0.001);
      chain.sum().dataSync(); // read through its sum: checkpoints below chain
    }
    const arriving = tensor(new Float32Array(256).fill(2), { device: "webgpu" }).to("cpu");
    const captured = chain.add(arriving);
    const f = jit((x: Tensor) => x.add(captured));
    const exported = exportCompiled(f, [{ shape: [256] }], { target: "js" });
    root.dispose(); // while the export waits for the copy: it holds what it reads
    assert(Object.keys((await exported).files).length > 0);
  },
});

Deno.test("CHECKPOINT: no assigned value waits below a checkpoint an export made", async () => {
  // exportCompiled computed its captures without the waiting variables they reach: an assigned
  // value stayed waiting under the checkpoints of a second export, where no walk looked, and
  // the value it replaced was never freed (helper-153)
  const w = tensor([1, 2, 3]);
  const old = realizedBuffer(nodeOf(w), "cpu")!;
  w.assign(w.add(1));
  let h: Tensor = w;
  for (let i = 0; i < 100; i++) h = h.mul(1.5).add(-0.5);
  for (const c of [h.mul(2), h.mul(3)]) {
    await exportCompiled(jit((x: Tensor) => x.add(c)), [{ shape: [3] }], { target: "js" });
  }
  h.mul(4).dataSync();
  assertEquals(wasReleased(old), true);
  assertEquals(Array.from(w.dataSync()), [2, 3, 4]);
});
