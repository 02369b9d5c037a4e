// optim.SGD (src/optim/sgd.ts) against the update rule computed by hand in float64: plain,
// momentum, Nesterov, weight decay; parameters from module.parameters(); zeroGrad; a changing
// learning rate reusing the compiled plan; the graph of a parameter not growing; bad options.

import { manualSeed, nn, ones, optim, randn, type Tensor, tensor, zeros } from "../../mod.ts";
import { planCacheStats } from "../../src/runtime/realize.ts";
import { topoSort } from "../../src/ir/graph.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { assertClose, testDevices } from "../helpers.ts";
import { nodeOf } from "../../src/tensor.ts";

/** The loss whose gradient is known: sum(c * w^2) has gradient 2 c w. */
const lossOf = (w: Tensor, c: Tensor) => w.square().mul(c).sum();

/** One SGD run in float64 by the rule of src/optim/sgd.ts. */
function reference(
  w0: number[],
  c: number[],
  steps: number,
  lr: number,
  momentum = 0,
  weightDecay = 0,
  nesterov = false,
): number[] {
  const w = [...w0];
  const buf = w.map(() => 0);
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < w.length; i++) {
      let d = 2 * c[i] * w[i] + weightDecay * w[i];
      if (momentum !== 0) {
        buf[i] = momentum * buf[i] + d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      w[i] -= lr * d;
    }
  }
  return w;
}

Deno.test("SGD: plain, momentum, Nesterov and weight decay match the rule in float64", async () => {
  const w0 = [1, -2, 0.5, 3];
  const c = [1, 0.5, 2, 0.25];
  const cases: [string, optim.SGDOptions][] = [
    ["plain", { lr: 0.1 }],
    ["momentum", { lr: 0.05, momentum: 0.9 }],
    ["nesterov", { lr: 0.05, momentum: 0.8, nesterov: true }],
    ["weight decay", { lr: 0.1, momentum: 0.5, weightDecay: 0.01 }],
  ];
  for (const device of testDevices) {
    for (const [name, options] of cases) {
      const w = tensor(w0, { device, requiresGrad: true });
      const cw = tensor(c, { device });
      const opt = new optim.SGD([w], options);
      for (let s = 0; s < 6; s++) {
        lossOf(w, cw).backward();
        opt.step();
        opt.zeroGrad();
        assert(w.grad === null);
      }
      const want = reference(
        w0,
        c,
        6,
        options.lr,
        options.momentum,
        options.weightDecay,
        options.nesterov,
      );
      assertClose(await w.data(), want, { rtol: 1e-5, atol: 1e-6, msg: `${device} ${name}` });
    }
  }
});

Deno.test("SGD: over module.parameters(); parameters without a gradient are left alone", async () => {
  class Affine extends nn.Module {
    scale = tensor([2, 2], { requiresGrad: true });
    bias = tensor([1, 1], { requiresGrad: true });
    frozen = tensor([5, 5]); // state, not a parameter
    forward(x: Tensor): Tensor {
      return x.mul(this.scale).add(this.bias);
    }
  }
  const m = new Affine();
  const opt = new optim.SGD(m.parameters(), { lr: 0.5 });
  assertEquals(opt.params.length, 2);
  const x = tensor([1, 3]);
  m.forward(x).sum().backward(); // d/dscale = x, d/dbias = 1
  m.bias.grad = null;
  opt.step();
  assertEquals(Array.from(await m.scale.data()), [2 - 0.5, 2 - 1.5]);
  assertEquals(Array.from(await m.bias.data()), [1, 1]);
  assertEquals(Array.from(await m.frozen.data()), [5, 5]);
});

Deno.test("SGD: a step's graph does not grow, and a new learning rate reuses the plan", async () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const c = tensor([1, 1, 1]);
  const opt = new optim.SGD([w], { lr: 0.1, momentum: 0.9 });
  let misses = 0;
  for (let s = 0; s < 8; s++) {
    if (s === 4) opt.lr = 0.05;
    if (s === 3) misses = planCacheStats().misses;
    lossOf(w, c).backward();
    opt.step();
    opt.zeroGrad();
    await w.realize();
    assertEquals(topoSort([nodeOf(w)]).length, 1, "w is a stored value with no history");
  }
  assertEquals(planCacheStats().misses, misses, "steps 4 to 8 reuse the plans of step 3");
  const lrs = [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05];
  const want = [1, 2, 3].map((v) => {
    let x = v, b = 0;
    for (const lr of lrs) {
      b = 0.9 * b + 2 * x;
      x -= lr * b;
    }
    return x;
  });
  assertClose(await w.data(), want, { rtol: 1e-5, atol: 1e-6 });
});

Deno.test("SGD: bad parameters and options name SGD, the expectation and the value", () => {
  const w = tensor([1], { requiresGrad: true });
  assertThrows(() => new optim.SGD(3 as unknown as Tensor[], { lr: 1 }), Error, "SGD: params");
  assertThrows(() => new optim.SGD([w], { lr: -1 }), Error, "SGD: lr must be a finite number");
  assertThrows(() => new optim.SGD([w], { lr: 1, momentum: 2 }), Error, "momentum must be");
  assertThrows(() => new optim.SGD([w], { lr: 1, nesterov: true }), Error, "nesterov needs");
  assertThrows(
    () => new optim.SGD([tensor([1])], { lr: 1 }),
    Error,
    "parameter 0 must be a float leaf",
  );
  assertThrows(() => new optim.SGD([w, w], { lr: 1 }), Error, "must not list a tensor twice");
  assertThrows(() => new optim.SGD([w], null as unknown as optim.SGDOptions), Error, "options");
  const opt = new optim.SGD([w], { lr: 1 });
  assertThrows(() => (opt.lr = NaN), Error, "SGD.lr: lr must be a finite number");
});

// README's training loop (momentum SGD, and Adam), reading the loss after each step, on every
// device: the update a step leaves pending reads the values the previous step moved past
Deno.test("optim: README's loop reads its loss after every step, on every device", async () => {
  const losses: Record<string, number[]> = {};
  for (const device of testDevices) {
    for (const kind of ["sgd", "adam"] as const) {
      manualSeed(3);
      const x = randn([2, 8, 3, 3], { device });
      const target = new nn.LocalResponseNorm(3, 0.5, 0.75, 1).forward(x.mul(2).add(0.5));
      const scale = ones([1, 8, 1, 1], { device, requiresGrad: true });
      const bias = zeros([1, 8, 1, 1], { device, requiresGrad: true });
      const lrn = new nn.LocalResponseNorm(3, 0.5, 0.75, 1);
      const opt = kind === "sgd"
        ? new optim.SGD([scale, bias], { lr: 0.5, momentum: 0.9 })
        : new optim.Adam([scale, bias], { lr: 0.05 });
      const seen: number[] = [];
      for (let step = 0; step < 6; step++) {
        const loss = lrn.forward(x.mul(scale).add(bias)).sub(target).square().mean();
        loss.backward();
        opt.step();
        opt.zeroGrad();
        seen.push(await loss.item());
      }
      assert(seen[5] < seen[0], `${device} ${kind}: ${seen}`);
      losses[`${kind} ${device}`] = seen;
    }
  }
  for (const device of testDevices) {
    for (const kind of ["sgd", "adam"]) {
      assertClose(losses[`${kind} ${device}`], losses[`${kind} cpu`], { rtol: 1e-3, msg: kind });
    }
  }
});

Deno.test("optim: gradients accumulated over steps without zeroGrad, the loss read after each", async () => {
  // storing a step's update freed the parameter of the step before, which the accumulated
  // gradient (this step's plus the last's) still read: step 3's loss read threw "overwritten"
  for (const device of testDevices) {
    const w = tensor([1, 2, 3], { requiresGrad: true, device });
    const opt = new optim.SGD([w], { lr: 0.1 });
    let want = [1, 2, 3];
    let sum = [0, 0, 0]; // the accumulated gradient: the sum of 2 w over the steps so far
    for (let step = 0; step < 6; step++) {
      const loss = w.square().sum();
      loss.backward();
      opt.step();
      assertClose([await loss.item()], [want.reduce((a, v) => a + v * v, 0)], {
        rtol: 1e-5,
        msg: `${device} step ${step}`,
      });
      sum = sum.map((g, i) => g + 2 * want[i]);
      want = want.map((v, i) => v - 0.1 * sum[i]);
    }
    assertClose(await w.toArray() as number[], want, { rtol: 1e-5, msg: device });
  }
});
