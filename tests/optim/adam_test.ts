// optim.Adam (src/optim/adam.ts) against Adam computed by hand in float64 (PyTorch's form, bias
// corrections included), with weight decay; one compiled plan for every step although the bias
// corrections change; state tensors survive tidy(); bad options.

import { optim, type Tensor, tensor, tidy } from "../../mod.ts";
import { planCacheStats } from "../../src/runtime/realize.ts";
import { assertEquals, assertThrows } from "../assert.ts";
import { adamReference as reference, assertClose, testDevices } from "../helpers.ts";

const lossOf = (w: Tensor, c: Tensor) => w.square().mul(c).sum();

Deno.test("Adam: matches the rule in float64, with and without weight decay", async () => {
  const w0 = [1, -2, 0.5, 3];
  const c = [1, 0.5, 2, 0.25];
  for (const device of testDevices) {
    for (const weightDecay of [0, 0.1]) {
      const w = tensor(w0, { device, requiresGrad: true });
      const cw = tensor(c, { device });
      const opt = new optim.Adam([w], { lr: 0.05, betas: [0.8, 0.95], eps: 1e-6, weightDecay });
      for (let s = 0; s < 10; s++) {
        lossOf(w, cw).backward();
        opt.step();
        opt.zeroGrad();
      }
      const want = reference(w0, c, 10, 0.05, [0.8, 0.95], 1e-6, weightDecay);
      assertClose(await w.data(), want, {
        rtol: 1e-4,
        atol: 1e-6,
        msg: `${device} wd ${weightDecay}`,
      });
    }
  }
});

Deno.test("Adam: every step after the first reuses one plan; state outlives tidy()", async () => {
  const w = tensor([0.5, -1.5], { requiresGrad: true });
  const c = tensor([1, 2]);
  const opt = new optim.Adam([w], { lr: 0.1 });
  let misses = 0;
  for (let s = 0; s < 6; s++) {
    if (s === 3) misses = planCacheStats().misses;
    const loss = tidy(() => {
      const l = lossOf(w, c);
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    });
    await loss.item();
    await w.realize();
    loss.dispose();
  }
  assertEquals(planCacheStats().misses, misses);
  const want = reference([0.5, -1.5], [1, 2], 6, 0.1, [0.9, 0.999], 1e-8, 0);
  assertClose(await w.data(), want, { rtol: 1e-5, atol: 1e-6 });
});

Deno.test("Adam: bad options name Adam, the expectation and the value", () => {
  const w = tensor([1], { requiresGrad: true });
  assertThrows(() => new optim.Adam([w], { betas: [1, 0.9] }), Error, "Adam: betas must each");
  assertThrows(
    () => new optim.Adam([w], { betas: [0.9] as unknown as [number, number] }),
    Error,
    "pair",
  );
  assertThrows(() => new optim.Adam([w], { eps: -1 }), Error, "Adam: eps must be");
  assertThrows(() => new optim.Adam([w], { lr: Infinity }), Error, "Adam: lr must be");
});

Deno.test("Adam: gradients accumulated over steps without zeroGrad, the loss read after each", async () => {
  // disposing the last step's bias correction computed that step's updates, which pulled in
  // this step's (they read the old parameter through the accumulated gradient): storing them
  // freed the parameter this step's loss read, "overwritten" at step 1 on cpu
  for (const device of testDevices) {
    const p = tensor([0.1, 0.2, 0.3], { requiresGrad: true, device });
    const opt = new optim.Adam([p], { lr: 0.01 });
    let w = [0.1, 0.2, 0.3], sum = [0, 0, 0], m = [0, 0, 0], v = [0, 0, 0];
    for (let step = 1; step <= 5; step++) {
      const loss = p.square().sum();
      loss.backward();
      opt.step();
      const want = w.reduce((s, x) => s + x * x, 0);
      assertClose([await loss.item()], [want], { rtol: 1e-5, msg: `${device} step ${step}` });
      sum = sum.map((g, i) => g + 2 * w[i]);
      m = m.map((x, i) => 0.9 * x + 0.1 * sum[i]);
      v = v.map((x, i) => 0.999 * x + 0.001 * sum[i] ** 2);
      const bias1 = 1 - 0.9 ** step, bias2 = 1 - 0.999 ** step;
      w = w.map((x, i) => x - 0.01 * (m[i] / bias1) / (Math.sqrt(v[i] / bias2) + 1e-8));
    }
    assertClose(await p.data(), w, { rtol: 1e-5, msg: device });
  }
});
