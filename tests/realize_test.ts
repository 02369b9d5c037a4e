// realize(): nodes computed once however they are asked for (together, twice at the same time,
// or after a part was realized), and copies between devices waited for.

import { kernels, randn, realize, tensor, webgpu } from "../mod.ts";
import { assertEquals, assertThrows } from "./assert.ts";
import { assertClose, reference, webgpuAvailable } from "./helpers.ts";

Deno.test("realize: two outputs sharing a subexpression run in one schedule", async () => {
  const x = randn(4, 6);
  const shared = x.exp().sum(1, true); // materialized once, read by both outputs
  const a = x.div(shared);
  const b = shared.log();
  // kernels have one output each: the shared sum, then each output reading it
  const names = kernels(a, b).map((k) => k.name);
  assertEquals(names, ["k_exp_sum", "k_log", "k_div"]);
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
