// The optimizers' base (src/optim/optimizer.ts): a step checks every gradient before it changes
// anything, so a step that throws leaves parameters and state as they were; after a step, a
// gradient is read before the parameters (storing their updates frees the values it reads).

import { memory, optim, type Tensor, tensor, tidy } from "../../mod.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { adamReference, assertClose, testDevices } from "../helpers.ts";
import { nodeOf, setGradOf } from "../../src/tensor.ts";
import { realizedBuffer, wasReleased } from "../../src/runtime/realize.ts";
import { protectedReaderCount } from "../../src/pending.ts";

const makers: [string, (params: Tensor[]) => optim.SGD | optim.Adam][] = [
  ["SGD", (params) => new optim.SGD(params, { lr: 0.1, momentum: 0.9 })],
  ["Adam", (params) => new optim.Adam(params, { lr: 0.1 })],
];

Deno.test("optimizer: a step with a bad gradient throws before any parameter changes", async () => {
  for (const [name, make] of makers) {
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const b = tensor([1, 2, 3], { requiresGrad: true });
    const opt = make([a, b]);
    const bad: [unknown, RegExp][] = [
      [tensor([[1, 1, 1]]), /parameter 1's grad must be float32\[3\] on cpu.*got float32\[1, 3\]/],
      [tensor([10]), /parameter 1's grad must be float32\[3\]/], // broadcastable, still refused
      [5, /parameter 1's grad must be a Tensor or null, got 5/],
    ];
    for (const [grad, message] of bad) {
      a.grad = tensor([2, 4, 6]);
      // the grad setter refuses them now; planted as the library would, the step refuses too
      assertThrows(() => (b as { grad: unknown; }).grad = grad, Error, "grad: must be");
      setGradOf(b, grad as Tensor);
      const error = assertThrows(() => opt.step());
      assertEquals(message.test(String(error)), true, `${name}: ${error}`);
      // before: a was updated (and Adam counted the step), and a retry failed
      assertEquals(Array.from(await a.data()), [1, 2, 3], `${name}: a unchanged`);
    }
    b.grad = tensor([2, 4, 6]);
    opt.step();
    const first = Array.from(await a.data());
    assertEquals(Array.from(await b.data()), first, `${name}: the retry updates both alike`);
    const expected = name === "SGD" ? [0.8, 1.6, 2.4] : [0.9, 1.9, 2.9]; // Adam's first step: lr
    assertClose(first, expected, { rtol: 1e-6, msg: name });
  }
});

Deno.test("optimizer: a grad the program disposed is refused, not skipped", async () => {
  for (const [name, make] of makers) {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3, 4], { requiresGrad: true });
    const opt = make([a, b]);
    a.add(b).sum().backward();
    b.grad!.dispose();
    // the step left b as it was without a word
    assertThrows(
      () => opt.step(),
      Error,
      `${name}.step: parameter 1's grad must be live or null`,
    );
    assertEquals(Array.from(await a.data()), [1, 2]);
    b.grad = null;
    opt.step();
    assertEquals(Array.from(await b.data()), [3, 4]);
    assert((await a.data())[0] < 1, `${name}: a stepped once b's grad was null`);
  }
});

Deno.test("optimizer: after a step, gradients read before or after the parameters", async () => {
  // the gradients read the parameters' old values, which storing the updates frees: they are
  // computed first (reading a gradient after its parameter was an Error, "overwritten")
  for (const device of testDevices) {
    for (const [name, make] of makers) {
      const p = tensor([1, 2, 3], { requiresGrad: true, device });
      const q = tensor([0.5, -1, 2], { requiresGrad: true, device });
      const opt = make([p, q]);
      p.mul(q).square().sum().backward(); // each gradient reads both old values
      opt.step();
      // every gradient before any parameter: q's gradient reads p's old value too
      assertClose(await p.grad!.data(), [0.5, 4, 24], { msg: `${device} ${name}: p.grad` });
      assertClose(await q.grad!.data(), [1, -8, 36], { msg: `${device} ${name}: q.grad` });
      await p.data();
      const r = tensor([1, 2], { requiresGrad: true, device });
      const other = make([r]);
      r.square().sum().backward();
      other.step();
      await r.data();
      assertClose(await r.grad!.data(), [2, 4], { msg: `${device} ${name}: r.grad` });
    }
  }
});

Deno.test("optimizer: zeroGrad frees a gradient the program never saw, and keeps one it did", async () => {
  // reading a parameter after a step computes and stores the gradients that read its old
  // value; zeroGrad then left each to the garbage collector, one buffer more every step
  for (const device of testDevices) {
    const p = tensor(new Float32Array(4096).fill(1), { requiresGrad: true, device });
    const opt = new optim.SGD([p], { lr: 0.001 });
    const start = memory()[device].liveBuffers; // earlier tests' dropped tensors count too
    let most = 0;
    for (let step = 0; step < 40; step++) {
      p.square().sum().backward();
      opt.step();
      await p.data(); // stores the update, and first the gradient that reads the old p
      opt.zeroGrad();
      most = Math.max(most, memory()[device].liveBuffers - start);
    }
    assert(most <= 3, `${device}: up to ${most} more live buffers`);
    assertClose(await p.data(), new Float32Array(4096).fill(0.998 ** 40), { rtol: 1e-5 });
    // one the program holds stays readable after zeroGrad
    p.square().sum().backward();
    const grad = p.grad!;
    p.zeroGrad();
    assertClose(await grad.data(), new Float32Array(4096).fill(2 * 0.998 ** 40), { rtol: 1e-5 });
    assertEquals(p.grad, null);
  }
});

Deno.test("optimizer: a gradient two leaves share stays the library's when one is cleared", async () => {
  // equal gradients are one node: clearing a's gave up b's protection too, and b's gradient,
  // read after b's step, threw "overwritten"
  for (const device of testDevices) {
    const a = tensor([1, 2, 3], { requiresGrad: true, device });
    const b = tensor([10, 20, 30], { requiresGrad: true, device });
    a.add(b).square().sum().backward(); // da = db = 2 (a + b)
    a.zeroGrad();
    const opt = new optim.SGD([b], { lr: 0.1 });
    opt.step();
    assertClose(await b.data(), [7.8, 15.6, 23.4], { rtol: 1e-6, msg: device });
    assertClose(await b.grad!.data(), [22, 44, 66], { msg: device });
  }
});

Deno.test("optimizer: params cannot be replaced (a list past the constructor's checks)", async () => {
  for (const [name, make] of makers) {
    const p = tensor([1], { requiresGrad: true });
    const opt = make([p]);
    // a writable field: `params = [p, p]` stepped p twice, `params = 5` threw a bare TypeError
    assertThrows(() => ((opt as { params: unknown; }).params = [p, p]), TypeError);
    assert(Object.isFrozen(opt.params), `${name}: the list is frozen`);
    assertEquals(opt.params.length, 1);
    p.grad = tensor([1]);
    opt.step();
    // one step from grad 1 at lr 0.1: SGD 1 - 0.1 = 0.9; Adam's first step moves by lr too
    assertClose(await p.data(), [0.9]);
  }
});

Deno.test("optimizer: Deno.inspect shows the class, its settings and its parameters", () => {
  const p = tensor([1, 2], { requiresGrad: true });
  // params became a getter: inspect showed `SGD { stateNames: "momentum buffer" }`
  const flat = (text: string) => text.replace(/\s+/g, " ");
  const sgd = flat(Deno.inspect(new optim.SGD([p], { lr: 0.1, momentum: 0.9 })));
  assertEquals(
    sgd,
    "SGD { lr: 0.1, momentum: 0.9, weightDecay: 0, nesterov: false, params: [ " +
      "Tensor(float32[2], cpu, realized, requiresGrad) ] }",
  );
  const adam = flat(Deno.inspect(new optim.Adam([p], { lr: 0.5 })));
  assert(adam.startsWith("Adam { lr: 0.5, betas: [ 0.9, 0.999 ], eps: 1e-8, weightDecay: 0"), adam);
  // and String() (it printed [object Object])
  assertEquals(
    String(new optim.SGD([p], { lr: 0.1, momentum: 0.9 })),
    "SGD(lr=0.1, momentum=0.9, weightDecay=0, nesterov=false, 1 parameter)",
  );
  assertEquals(
    String(new optim.Adam([p, tensor([1], { requiresGrad: true })])),
    "Adam(lr=0.001, betas=[0.9, 0.999], eps=1e-8, weightDecay=0, 2 parameters)",
  );
});

Deno.test("optimizers: per-step numbers are kept one step longer, never more, and stay right", async () => {
  // Adam's bias corrections (and a scheduled learning rate) are a 0-D tensor per step: one
  // disposed at the next step computed that step's updates in a realization of their own;
  // they are now kept one step longer, so storage holds at most two steps' numbers
  const w = tensor([1, -2, 3], { requiresGrad: true });
  const adam = new optim.Adam([w], { lr: 0.1 });
  const sgd = new optim.SGD([w], { lr: 0.1 });
  const start = memory().cpu.liveTensors;
  const counts: number[] = [];
  // float64 reference of both updates: Adam with its bias corrections, then SGD with a
  // learning rate changing every step
  const want = [1, -2, 3];
  const [m, v] = [[0, 0, 0], [0, 0, 0]];
  for (let t = 1; t <= 30; t++) {
    tidy(() => w.square().sum().backward());
    adam.step();
    adam.zeroGrad();
    for (let i = 0; i < 3; i++) {
      const g = 2 * want[i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      const mHat = m[i] / (1 - 0.9 ** t);
      const vHat = v[i] / (1 - 0.999 ** t);
      want[i] -= 0.1 * mHat / (Math.sqrt(vHat) + 1e-8);
    }
    tidy(() => w.square().sum().backward());
    sgd.lr = 0.01 * t;
    sgd.step();
    sgd.zeroGrad();
    for (let i = 0; i < 3; i++) want[i] -= 0.01 * t * 2 * want[i];
    if (t % 3 === 0) await w.data(); // computed every third step: updates wait in between
    counts.push(memory().cpu.liveTensors - start);
  }
  assertClose(await w.data(), Float64Array.from(want), { rtol: 1e-5, atol: 1e-6 });
  // the moment estimates (2), and two steps' numbers from each optimizer at most (2 + 2)
  assert(Math.max(...counts) <= 6, `live values over the steps: ${counts}`);
  w.dispose();
});

Deno.test("optimizers: the tensors a step makes are disposed with it; a stored twin frees at its dispose", async () => {
  // Adam's update makes g.square() and SGD's with weight decay p.mul(weightDecay). Dropped
  // without dispose, such a tensor lived until garbage collection, and a program's stored tensor
  // that hash-consing made the same node (a gradient statistic) kept its storage past its own
  // dispose (helper-151)
  const cases: [string, (p: Tensor) => optim.SGD | optim.Adam, (p: Tensor) => Tensor, number[]][] =
    [
      // first step: p - lr * m_hat / sqrt(v_hat) = p - lr * sign(g)
      ["Adam", (p) => new optim.Adam([p], { lr: 0.1 }), (p) => p.grad!.square(), [0.9, 1.9, 2.9]],
      // p - lr * (g + 0.5 p) with g = 2p: 0.75 p
      [
        "SGD",
        (p) => new optim.SGD([p], { lr: 0.1, weightDecay: 0.5 }),
        (p) => p.mul(0.5),
        [0.75, 1.5, 2.25],
      ],
    ];
  for (const device of testDevices) {
    for (const [name, make, twinOf, want] of cases) {
      const p = tensor([1, 2, 3], { requiresGrad: true, device });
      const opt = make(p);
      tidy(() => p.square().sum().backward());
      const twin = twinOf(p);
      await twin.data();
      const storage = realizedBuffer(nodeOf(twin), device);
      assert(storage !== undefined, `${device} ${name}: the twin is stored`);
      const start = memory()[device].liveTensors;
      opt.step();
      opt.zeroGrad();
      assertClose(await p.data(), want, { rtol: 1e-6, msg: `${device} ${name}` });
      twin.dispose();
      assertEquals(wasReleased(storage), true, `${device} ${name}: the twin's storage`);
      // the parameter's new value and the optimizer's state; no handle of the step's terms
      const grown = memory()[device].liveTensors - start;
      assert(grown <= (name === "Adam" ? 3 : 1), `${device} ${name}: ${grown} more live values`);
      p.dispose();
    }
  }
});

Deno.test("optimizers: a subclass's update may let go of the gradient and store fresh tensors", async () => {
  // step() ran update inside a tidy scope for a while (helper-155): a gradient update let go of
  // with p.zeroGrad(), which the program kept, was disposed; a stored tensor update made (noise,
  // a fresh number) was disposed at the step's end, which computed the update at once and freed
  // the parameter's old value under the step's lazy loss ("overwritten by assign()")
  class Consuming extends optim.Optimizer {
    constructor(params: Tensor[]) {
      super("Consuming", params, 0.1);
    }
    protected override update(_i: number, p: Tensor, g: Tensor): void {
      p.assign(p.sub(g.mul(this.lrFor(p))));
      p.zeroGrad();
    }
  }
  class Shifted extends optim.Optimizer {
    #t = 0;
    constructor(params: Tensor[]) {
      super("Shifted", params, 0.1);
    }
    protected override update(_i: number, p: Tensor, g: Tensor): void {
      const shift = tensor(new Float32Array(p.numel).fill(0.01 * ++this.#t), { device: p.device });
      p.assign(p.sub(g.mul(this.lrFor(p))).add(shift));
    }
  }
  for (const device of testDevices) {
    const p = tensor([1, 2, 3], { requiresGrad: true, device });
    const consuming = new Consuming([p]);
    tidy(() => p.square().sum().backward());
    const g = p.grad!;
    await g.data();
    consuming.step();
    assertEquals(Array.from(await g.data()), [2, 4, 6], `${device}: the program's gradient`);
    assertClose(await p.data(), [0.8, 1.6, 2.4], { rtol: 1e-6, msg: device });
    g.dispose();

    // loss = mean over rows of tanh(x w)^2, read after each step as README's loop does
    const x = [[1, 2, 3], [0.5, -1, 2]];
    const want = [0.5, -0.25, 0.1];
    const w = tensor(want, { requiresGrad: true, device });
    const xs = tensor(x, { device });
    const shifted = new Shifted([w]);
    for (let t = 1; t <= 5; t++) {
      const loss = xs.mul(w).sum(1).tanh().square().mean();
      loss.backward();
      shifted.step();
      shifted.zeroGrad();
      const s = x.map((row) => row.reduce((a, v, i) => a + v * want[i], 0));
      const wantLoss = s.reduce((a, v) => a + Math.tanh(v) ** 2, 0) / 2;
      assertClose([await loss.item()], [wantLoss], { rtol: 1e-5, msg: `${device} step ${t}` });
      loss.dispose();
      for (let i = 0; i < 3; i++) {
        const grad = s.reduce(
          (a, v, r) => a + Math.tanh(v) * (1 - Math.tanh(v) ** 2) * x[r][i],
          0,
        );
        want[i] += -0.1 * grad + 0.01 * t;
      }
    }
    assertClose(await w.data(), want, { rtol: 1e-5, msg: device });
    for (const t of [p, w, xs]) t.dispose();
  }
});

Deno.test("optimizers: a loop that never reads keeps at most a few steps of updates waiting", async () => {
  // dropping a step's numbers computes the updates still reading them (README: at the latest
  // when the step after next ends); handed the numbers to free later instead, every step's
  // update waited, and the first read computed them all (cpu: 400 steps, 1.6 s)
  for (const device of testDevices) {
    const w = tensor([1, -2, 0.5], { requiresGrad: true, device });
    const opt = new optim.Adam([w], { lr: 0.01 });
    const counts: number[] = [];
    for (let t = 1; t <= 40; t++) {
      tidy(() => w.square().sum().backward());
      opt.step();
      opt.zeroGrad();
      counts.push(protectedReaderCount());
    }
    const want = adamReference([1, -2, 0.5], [1, 1, 1], 40, 0.01, [0.9, 0.999], 1e-8, 0);
    // w, m and v: three waiting values a step, at most three steps (on webgpu the runs that
    // compute them finish only once the loop yields)
    if (device === "cpu") assert(Math.max(...counts) <= 12, `protected readers: ${counts}`);
    assertClose(await w.data(), want, { rtol: 1e-5, atol: 1e-6, msg: device });
    w.dispose();
  }
});
