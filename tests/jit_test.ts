// jit(fn): traced once per signature (counted by fn's own calls), replayed on new data with
// the results of eager evaluation (float64 reference, the library's own gradients), forward
// functions and training steps (backward(), grad()), captured constants, results that own
// their storage, both devices, and every bad input: non-tensors, promises, reading values,
// disposed captures, mixed devices.

import {
  cpu,
  exportCompiled,
  grad,
  jit,
  kernels,
  manualSeed,
  memory,
  nn,
  optim,
  rand,
  randn,
  setFusion,
  type Tensor,
  tensor,
  tidy,
  webgpu,
  zeros,
} from "../mod.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { traceEntryOf } from "../src/jit.ts";
import { storedAnywhere, wasReleased } from "../src/runtime/realize.ts";
import { nodeOf } from "../src/tensor.ts";
import { assert, assertEquals, assertRejects, assertStrictEquals, assertThrows } from "./assert.ts";
import { assertClose, reference, testDevices, webgpuAvailable } from "./helpers.ts";
import { importExported } from "./export_helpers.ts";

Deno.test("jit: traces once per signature (shape, dtype, device, requiresGrad)", async () => {
  let traced = 0;
  const f = jit((x) => {
    traced++;
    return x.square().sum(1);
  });
  for (let i = 0; i < 3; i++) {
    const x = randn(4, 5);
    assertClose(await (await f(x)).data(), reference(x.square().sum(1)), { rtol: 1e-6 });
  }
  assertEquals([traced, f.traceCount], [1, 1], "same signature: traced once");
  await f(randn(2, 5));
  assertEquals(traced, 2, "a new shape traces again");
  await f(randn([4, 5], { dtype: "float64" }));
  assertEquals(traced, 3, "a new dtype traces again");
  await f(randn([4, 5], { requiresGrad: true }));
  assertEquals(traced, 4, "requiresGrad is part of the signature");
  await f(randn(4, 5));
  await f(randn(2, 5));
  assertEquals(traced, 4, "known signatures are not traced again");
  if (webgpuAvailable) {
    await f(randn(4, 5).to("webgpu"));
    assertEquals(traced, 5, "the device is part of the signature");
  }
});

Deno.test("jit: a later call skips scheduling: no new kernels are planned", async () => {
  const f = jit((x, y) => x.mul(y).exp(), { inputNames: ["x", "y"] });
  const a = randn(3, 3);
  const b = randn(3, 3);
  const first = await f(a, b);
  const before = kernels(first).length; // a result is data: nothing to plan
  assertEquals(before, 0);
  const out = await f(b, a);
  assertClose(await out.data(), reference(b.mul(a).exp()), { rtol: 1e-6 });
  assertEquals(f.traceCount, 1);
});

for (const device of testDevices) {
  Deno.test(`jit: a training step (backward inside fn) matches eager autodiff, ${device}`, async () => {
    const lrn = new nn.LocalResponseNorm(3, 0.5, 0.75, 1);
    const w = randn([1, 6, 1, 1]).to(device); // captured
    const step = jit((x, dy) => {
      const y = lrn.forward(x).mul(w);
      y.backward(dy);
      return { y, dx: x.grad! };
    }, { inputNames: ["x", "dy"] });
    for (let i = 0; i < 2; i++) {
      const x = randn([2, 6, 3, 4], { requiresGrad: true }).to(device);
      const dy = randn(2, 6, 3, 4).to(device);
      const { y, dx } = await step(x, dy);
      assertEquals(x.grad, null, "the caller's tensor is not touched");
      const xe = tensor(await x.data(), { shape: x.shape, device, requiresGrad: true });
      const ye = lrn.forward(xe).mul(w);
      ye.backward(dy);
      assertClose(await y.data(), await ye.data(), { rtol: 1e-5, atol: 1e-6 });
      assertClose(await dx.data(), await xe.grad!.data(), { rtol: 1e-5, atol: 1e-6 });
      assertEquals([y.requiresGrad, dx.requiresGrad], [false, false]);
    }
    assertEquals(step.traceCount, 1);
  });
}

Deno.test("jit: grad() inside fn; the gradient of a sum of squares is 2x", async () => {
  const f = jit((x) => grad((v) => v.square().sum())(x)[0]);
  const x = tensor([1, -2, 3.5]);
  assertEquals(Array.from(await (await f(x)).data()), [2, -4, 7]);
  assertEquals(Array.from(await (await f(tensor([0.5, 0, -1]))).data()), [1, 0, -2]);
  assertEquals(f.traceCount, 1);
});

Deno.test("jit: results come back as fn returned them, each a handle of its own", async () => {
  const w = tensor([10, 20]);
  const f = jit((a, b) => ({ a, sum: a.add(b), w, twice: a.add(b) }), { inputNames: ["a", "b"] });
  const a = tensor([1, 2]);
  const r = await f(a, tensor([3, 4]));
  assertEquals(Object.keys(r), ["a", "sum", "w", "twice"]);
  // an argument, a capture and two equal results were the same objects: disposing one
  // disposed the other (eager code gives separate handles)
  assert(r.a !== a && r.w !== w && r.sum !== r.twice);
  r.sum.dispose();
  a.dispose();
  w.dispose();
  assertEquals(Array.from(await r.twice.data()), [4, 6]);
  assertEquals(Array.from(await r.a.data()), [1, 2]);
  assertEquals(Array.from(await r.w.data()), [10, 20]);
  const g = jit((x) => [x.neg(), x.exp()]);
  const [n, e] = await g(tensor([0, 1]));
  assertEquals(Array.from(await n.data()), [-0, -1]);
  assertClose(await e.data(), [1, Math.E], { rtol: 1e-6 });
});

Deno.test("jit: lazy arguments are computed first; data created inside fn is a constant", async () => {
  let traced = 0;
  const f = jit((x) => {
    traced++;
    return x.add(tensor([100, 200, 300]));
  });
  const lazy = tensor([1, 2, 3]).mul(2); // not realized
  assertEquals(Array.from(await (await f(lazy)).data()), [102, 204, 306]);
  assertEquals(Array.from(await (await f(tensor([0, 0, 1]))).data()), [100, 200, 301]);
  assertEquals(traced, 1);
});

Deno.test("jit: results own their storage; intermediates go back to the pool", async () => {
  const f = jit((x) => x.exp().sum(1, true).log().add(x));
  const x = randn(8, 16);
  (await f(x)).dispose(); // first call: traced, compiled
  const live = cpuBackend.liveBuffers();
  const y = await f(x);
  assertEquals(cpuBackend.liveBuffers(), live + 1, "one buffer: the result");
  assertClose(await y.data(), reference(x.exp().sum(1, true).log().add(x)), { rtol: 1e-5 });
  y.dispose();
  assertEquals(cpuBackend.liveBuffers(), live, "dispose() frees it");
});

Deno.test("jit: bad functions and bad calls give clear Errors; the library stays usable", async () => {
  const x = tensor([1, 2, 3]);
  assertThrows(() => jit(3 as never), Error, "jit: fn must be a function, got 3");
  assertThrows(
    () => jit((v) => v, { inputNames: ["a-b"] }),
    Error,
    'jit: options.inputNames must be JavaScript identifiers (they name variables of exports), got "a-b"',
  );
  assertThrows(() => jit((v) => v, { inputNames: ["a", "a"] }), Error, "must be distinct");
  // the names jit checked are the ones it keeps: written into `inputNames` afterwards, code went
  // into an export's run() (helper-161)
  const named = jit((v) => v.mul(2), { inputNames: ["v"] });
  assert(Object.isFrozen(named.inputNames), "inputNames frozen");
  assertThrows(() => ((named.inputNames as string[])[0] = "v) {} function z("), TypeError);
  assertEquals(named.inputNames, ["v"]);
  await assertRejects(
    () => jit((v) => v)(3 as never),
    Error,
    "jit: argument 0 must be a Tensor, got 3",
  );
  await assertRejects(
    () => jit(() => 3 as never)(x),
    Error,
    "jit: fn must return a Tensor, an array of Tensors or an object of Tensors, got 3",
  );
  await assertRejects(() => jit(() => [] as never)(x), Error, "(at least one)");
  await assertRejects(
    () => jit((v) => [v, "no"] as never)(x),
    Error,
    'jit: fn\'s result y1 must be a Tensor, got "no"',
  );
  // a hole in the result (map() skipped it, then a bare TypeError destructured it)
  await assertRejects(
    // deno-lint-ignore no-sparse-arrays
    () => jit((v) => [v, , v] as never)(x),
    Error,
    "jit: fn's result y1 must be a Tensor, got undefined",
  );
  await assertRejects(
    () => jit((v) => Promise.resolve(v) as never)(x),
    Error,
    "fn must return its results synchronously (not a Promise)",
  );
  for (const read of [(v: Tensor) => v.dataSync(), (v: Tensor) => v.mul(2).data()]) {
    await assertRejects(
      () =>
        jit((v) => {
          read(v);
          return v;
        })(x),
      Error,
      "jit: fn read the value of its argument x (or of a tensor computed from it) while being traced",
    );
  }
  // realize() of an argument inside fn waits for nothing: asked for a copy to wait for after the
  // trace, the stand-in rejected, and nobody caught it (an unhandled rejection ended the program)
  const realizing = await jit((v) => {
    v.realize();
    return v.exp();
  })(x) as Tensor;
  assertEquals(realizing.shape, x.shape);
  // and the error fn itself meets says why (it said data was being copied from another device)
  let inner = "";
  await assertRejects(() =>
    jit((v) => {
      try {
        v.dataSync();
      } catch (e) {
        inner = (e as Error).message;
      }
      return v.exp();
    })(x)
  );
  assertEquals(
    inner,
    "dataSync: a value, not one fn computes from its arguments while jit traces it (build the " +
      "results with tensor ops, and read them after the call), got a read while tracing",
  );
  await assertRejects(
    () => jit((a, b) => a.add(b), { inputNames: ["a", "b"] })(x),
    Error,
    "jit: the function takes 2 arguments (a, b), got 1",
  );
  if (webgpuAvailable) {
    await assertRejects(
      () => jit((a, b) => a.add(b))(x, x.to("webgpu")),
      Error,
      "jit: every argument must be on one device, got cpu, webgpu",
    );
  }
  const disposed = tensor([1, 2]);
  disposed.dispose();
  await assertRejects(
    () => jit((v) => v.mul(2))(disposed),
    Error,
    "jit: argument x must not be disposed, got a disposed tensor",
  );
  assertEquals(Array.from(await x.add(1).data()), [2, 3, 4], "still usable");
});

Deno.test("jit: a captured tensor disposed after tracing is an Error naming it", async () => {
  const w = tensor([1, 2, 3]);
  const f = jit((x) => x.mul(w));
  assertEquals(Array.from(await (await f(tensor([1, 1, 1]))).data()), [1, 2, 3]);
  w.dispose();
  await assertRejects(
    () => f(tensor([1, 1, 1])),
    Error,
    "jit: the tensors fn captured must stay alive while the compiled function is used (or be passed as arguments), got a float32[3] tensor captured by fn, disposed",
  );
  // so is a computed capture: dispose() is final
  const base = tensor([2, 4, 6]);
  const half = base.div(2);
  await half.realize();
  const g = jit((x) => x.add(half));
  assertEquals(Array.from(await (await g(tensor([0, 0, 1]))).data()), [1, 2, 4]);
  half.dispose();
  await assertRejects(() => g(tensor([0, 0, 1])), Error, "captured by fn");
  // and a captured leaf that backward() inside fn reaches (README's training step): the check
  // of arguments against differentiated captures read it first, with the Tensor's own Error
  const p = tensor([1, 2], { requiresGrad: true });
  const step = jit((x: Tensor) => {
    const loss = x.mul(p).sum();
    loss.backward();
    return [loss, p.grad!];
  });
  const [loss, dp] = await step(tensor([3, 4]));
  assertEquals([await loss.item(), ...await dp.data()], [11, 3, 4]);
  p.dispose();
  await assertRejects(
    () => step(tensor([3, 4])),
    Error,
    "jit: the tensors fn captured must stay alive while the compiled function is used (or be passed as arguments), got a float32[2] tensor captured by fn, disposed",
  );
});

Deno.test({
  name: "jit: runs on webgpu with the cpu's results",
  ignore: !webgpuAvailable || !(await webgpu.available()),
  fn: async () => {
    const f = jit((x) => x.exp().sum(1, true).log());
    const x = randn(5, 300);
    const cpu = await (await f(x)).data();
    const gpu = await (await f(x.to("webgpu"))).data();
    assertClose(gpu, cpu, { rtol: 1e-5 });
    assert(f.traceCount === 2);
  },
});

Deno.test("jit: a captured tensor given a new value by assign (an optimizer step) is read anew", async () => {
  const ones = () => tensor([1, 1, 1]);
  const values = async (result: Promise<Tensor>) => Array.from(await (await result).data());
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const f = jit((x) => x.mul(w));
  assertEquals(await values(f(ones())), [1, 2, 3]);
  w.assign(tensor([10, 20, 30])); // still pending: the old value was used, silently
  assertEquals(await values(f(ones())), [10, 20, 30]);
  w.assign(tensor([4, 5, 6]));
  await w.realize(); // stored, the old value freed: an Error said w was disposed
  assertEquals(await values(f(ones())), [4, 5, 6]);
  // a plain leaf (no grad) too
  const shift = tensor([5]);
  const g = jit((x) => x.add(shift));
  assertEquals(await values(g(ones())), [6, 6, 6]);
  shift.assign(-1);
  assertEquals(await values(g(ones())), [0, 0, 0]);
  // a training loop: traced while an update was pending, then stepped between calls
  const p = tensor([1, 1, 1], { requiresGrad: true });
  const opt = new optim.SGD([p], { lr: 0.5 });
  const loss = jit((x) => x.mul(p).sum());
  for (let step = 1; step <= 3; step++) {
    p.grad = tensor([1, 2, 3]);
    opt.step(); // p = 1 - 0.5 * step * [1, 2, 3]
    assertEquals(await (await loss(ones())).item(), 3 - 0.5 * step * 6, `step ${step}`);
  }
  assertEquals(f.traceCount + g.traceCount + loss.traceCount, 3, "no new traces");
  // and disposal is still final
  w.dispose();
  await assertRejects(() => f(ones()), Error, "captured by fn, disposed");
});

Deno.test("jit: a call holds its arguments; disposing one before it settles frees it after", async () => {
  for (const device of testDevices) {
    const f = jit((v: Tensor) => v.mul(2).add(1));
    await f(tensor([0], { device })); // traced
    const before = memory()[device];
    for (const lazy of [false, true]) {
      const source = tensor(lazy ? [0.5, 1, 1.5] : [1, 2, 3], { device });
      const x = lazy ? source.mul(2) : source;
      const node = nodeOf(x);
      const pending = f(x);
      x.dispose(); // as `const p = x.data(); x.dispose()` may
      const y = await pending;
      assertEquals(Array.from(await y.data()), [3, 5, 7], `${device}, lazy ${lazy}`);
      y.dispose();
      source.dispose();
      // and x's storage went back once the call no longer needed it
      const stored = storedAnywhere(node);
      assert(stored === undefined || wasReleased(stored), `${device}, lazy ${lazy}: x's storage`);
      // nothing is left over (fewer: tensors earlier tests dropped may be collected meanwhile)
      const live = memory()[device].liveTensors;
      assert(live <= before.liveTensors, `${device}, lazy ${lazy}: ${live} live tensors`);
    }
  }
});

Deno.test("jit: backward() in a trace leaves the leaves' gradients as they were, in tidy or not", async () => {
  for (const inScope of [false, true]) {
    const w = tensor([1, 2, 3], { requiresGrad: true });
    w.mul(tensor([10, 20, 30])).sum().backward(); // a real gradient from before: [10, 20, 30]
    const before = w.grad!;
    const f = jit((x: Tensor) => {
      x.mul(w).sum().backward();
      return w.grad!; // d sum(x * w) / dw = x: the call's own (the one from before was baked in)
    });
    const x = tensor([1, 1, 1]);
    let call: Promise<Tensor> | null = null;
    if (inScope) tidy(() => void (call = f(x))); // the trace runs in the scope
    else call = f(x);
    const first = await call!;
    assertEquals(Array.from(await first.data()), [1, 1, 1], `scope ${inScope}`);
    // the trace set w.grad to graph over its stand-ins only while it ran
    assertStrictEquals(w.grad, before);
    assert(!before.isDisposed);
    assertEquals(Array.from(await w.grad!.data()), [10, 20, 30]);
    const second = await f(tensor([2, 2, 2]));
    assertEquals(Array.from(await second.data()), [2, 2, 2], `scope ${inScope}`);
  }
});

Deno.test("jit: zeroGrad() in a trace clears the gradient for the trace only", async () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  w.mul(tensor([10, 20, 30])).sum().backward();
  const before = w.grad!;
  const f = jit((x: Tensor) => {
    w.zeroGrad(); // the step's own gradient, not added to the one from before
    x.mul(w).sum().backward();
    return w.grad!;
  });
  const first = await f(tensor([1, 1, 1]));
  assertEquals(Array.from(await first.data()), [1, 1, 1]);
  assertStrictEquals(w.grad, before);
  assertEquals(Array.from(await w.grad!.data()), [10, 20, 30]);
  assertEquals(Array.from(await (await f(tensor([2, 3, 4]))).data()), [2, 3, 4]);
});

Deno.test("jit: assign inside a traced function is an Error; the tensor keeps its value", async () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const opt = new optim.SGD([w], { lr: 0.1 });
  const step = jit((x: Tensor) => {
    const loss = x.mul(w).sum();
    loss.backward();
    opt.step(); // assigns w: it would leave w on the trace's stand-ins for good
    return loss;
  });
  await assertRejects(
    () => step(tensor([1, 1, 1])),
    Error,
    "SGD.step: no step inside a function jit traces",
  );
  const update = jit((x: Tensor) => w.assign(w.sub(x)));
  await assertRejects(
    () => update(tensor([1, 1, 1])),
    Error,
    "assign: a tensor not assigned inside a function jit traces",
  );
  assertEquals(Array.from(await w.data()), [1, 2, 3]);
  assertEquals(w.grad, null);
  // the supported form: the traced loss and its gradient, the step outside
  const lossAndGrad = jit((x: Tensor) => {
    const loss = x.mul(w).sum();
    loss.backward();
    return { loss, grad: w.grad! };
  });
  const { grad } = await lossAndGrad(tensor([1, 1, 1]));
  w.grad = grad;
  opt.step();
  assertEquals(Array.from(await w.data()), [0.9, 1.9, 2.9].map(Math.fround));
});

Deno.test("jit: options.inputNames that is not an array is an Error naming it", () => {
  // a number or an object was spread before the check: "is not iterable" from inside
  for (const inputNames of [5, {}, "ab"]) {
    assertThrows(
      () => jit((x) => x, { inputNames: inputNames as never }),
      Error,
      "jit: options.inputNames must be an array of strings",
    );
  }
});

Deno.test("jit: reading an argument without awaiting it inside fn fails the call", async () => {
  // the read touched the stand-in only after fn returned: the call succeeded and the read
  // rejected later, unhandled
  let pending: Promise<unknown> | undefined;
  const f = jit((x) => {
    pending = x.data();
    return x.exp();
  });
  await assertRejects(() => f(tensor([1, 2, 3])), Error, "jit: fn read the value of its argument");
  assert(pending !== undefined);
  // the library still works: the same function traced again without the read
  const g = jit((x) => x.exp());
  assertClose(await (await g(tensor([0]))).data(), [1]);
});

Deno.test("jit: an argument assigned between calls frees the value it replaced", async () => {
  // the call realized its arguments without the bookkeeping of what was stored: each step's
  // old parameter stayed, reachable from the assignment chain (1 MB a step here, for good)
  for (const device of testDevices) {
    const w = tensor(new Float32Array(1 << 16).fill(1), { device, requiresGrad: true });
    const x = tensor(new Float32Array(1 << 16).fill(2), { device });
    const opt = new optim.SGD([w], { lr: 0.01 });
    const step = jit((w, x) => {
      const loss = w.mul(x).square().mean();
      loss.backward();
      return { loss, g: w.grad! };
    });
    const live: number[] = [];
    let previous: Tensor | null = null;
    for (let i = 1; i <= 25; i++) {
      // the call computes the last step's update of w (it is the argument)
      const { loss, g } = await step(w, x);
      previous?.dispose(); // the last gradient, once nothing pending reads it
      await loss.item();
      w.grad = g;
      opt.step();
      opt.zeroGrad();
      loss.dispose();
      previous = g;
      if (i === 5 || i === 25) live.push(memory()[device].liveBuffers);
    }
    previous?.dispose();
    // no growth (fewer is fine: earlier tests' dropped tensors may be collected meanwhile)
    assert(live[1] <= live[0], `${device}: live buffers after 5 and 25 steps: ${live}`);
    // each step: w -= 0.01 * 8 w (the gradient of mean((2 w)^2) is 8 w / n, n = 2^16)
    assertClose((await w.data()).slice(0, 1), [Math.pow(1 - 0.01 * 8 / (1 << 16), 25)], {
      rtol: 1e-5,
      msg: device,
    });
    w.dispose();
    x.dispose();
  }
});

Deno.test("jit: a call holds its arguments: one disposed while the call is in flight is returned", async () => {
  // the result of an argument was made from the tensor, not from its node taken at the call:
  // disposed meanwhile, the call rejected
  const f = jit((x) => [x.mul(2), x]);
  const a = tensor([1, 2, 3]);
  const call = f(a);
  a.dispose();
  const [twice, same] = await call;
  assertEquals(Array.from(await twice.data()), [2, 4, 6]);
  assertEquals(Array.from(await same.data()), [1, 2, 3]);
});

Deno.test("jit: a result equal to an argument requiring grad is cut off from autodiff", async () => {
  // it was the argument's own node, so a gradient flowed through it: x.grad [2, 4, 6]
  for (const device of testDevices) {
    const x = tensor([1, 2, 3], { requiresGrad: true, device });
    const [same, twice] = await jit((a) => [a, a.mul(2)])(x) as Tensor[];
    assertEquals(same.requiresGrad, false);
    same.mul(x).sum().backward();
    assertEquals(Array.from(await x.grad!.data()), [1, 2, 3], device);
    x.dispose();
    assertEquals(Array.from(await same.data()), [1, 2, 3], `${device}: a copy of its own`);
    assertEquals(Array.from(await twice.data()), [2, 4, 6]);
  }
});

Deno.test("jit: a traced backward pass starts from no gradient, whatever the leaf had", async () => {
  // the gradient w had when fn was traced was baked into the plan: every call added it
  for (const device of testDevices) {
    const w = tensor([1, 2], { device, requiresGrad: true });
    w.mul(3).sum().backward(); // w.grad [3, 3] before the first call
    const step = jit((x) => {
      x.mul(w).sum().backward();
      return w.grad!;
    });
    const x = tensor([7, 8], { device });
    assertEquals(await (await step(x) as Tensor).toArray(), [7, 8], device);
    assertEquals(await w.grad!.toArray(), [3, 3], `${device}: the leaf keeps its own`);
    w.zeroGrad();
    assertEquals(await (await step(x) as Tensor).toArray(), [7, 8], device);
  }
});

Deno.test("jit: a captured leaf frozen or unfrozen since the trace is traced again", async () => {
  // the plan kept the gradients it was traced with: a weight frozen after the first call went
  // on getting its gradient, and one unfrozen got none (as eager code: [0, 0], then [5, 6])
  for (const device of testDevices) {
    const w = tensor([1, 2], { device, requiresGrad: true });
    const step = jit((x) => {
      x.mul(w).sum().backward();
      return w.grad ?? x.mul(0);
    });
    const x = tensor([5, 6], { device, requiresGrad: true });
    assertEquals(await (await step(x) as Tensor).toArray(), [5, 6], device);
    w.requiresGrad = false;
    assertEquals(await (await step(x) as Tensor).toArray(), [0, 0], `${device}: frozen`);
    w.requiresGrad = true;
    assertEquals(await (await step(x) as Tensor).toArray(), [5, 6], `${device}: unfrozen`);
    assertEquals(step.traceCount, 2, `${device}: unfrozen again, the first trace serves`);
    assertEquals(await (await step(x) as Tensor).toArray(), [5, 6], device);
    assertEquals(step.traceCount, 2, `${device}: the same setting replays`);
  }
});

Deno.test("jit: a captured leaf frozen and unfrozen in turn keeps a trace for each", async () => {
  // one trace per signature: a step freezing either of two weights in turn (as a GAN's
  // training does) traced at every call
  const w = tensor([1, 2], { requiresGrad: true });
  const v = tensor([3, 4], { requiresGrad: true });
  const step = jit((x) => {
    x.mul(w).mul(v).sum().backward();
    return [w.grad ?? x.mul(0), v.grad ?? x.mul(0)];
  });
  const x = tensor([5, 6]);
  for (let call = 0; call < 6; call++) {
    const trainW = call % 2 === 0;
    w.requiresGrad = trainW;
    v.requiresGrad = !trainW;
    const [gw, gv] = await step(x) as Tensor[];
    // d/dw sum(x w v) = x v, d/dv = x w, for the one that requires grad
    assertEquals(await gw.toArray(), trainW ? [15, 24] : [0, 0], `call ${call}`);
    assertEquals(await gv.toArray(), trainW ? [0, 0] : [5, 12], `call ${call}`);
  }
  assertEquals(step.traceCount, 2);
});

Deno.test("jit: tidy around a first call, and inside fn, leave the function usable", async () => {
  // the trace's constants belonged to the caller's tidy, which disposed them; a tidy inside
  // fn computed its result at the close and read the stand-in
  for (const device of testDevices) {
    const f = jit((x) => x.add(tensor([1, 2, 3], { device })));
    let first: Promise<unknown> | null = null;
    tidy(() => void (first = f(tensor([10, 20, 30], { device })))); // the trace runs in the scope
    assertEquals(await (await first! as Tensor).toArray(), [11, 22, 33], device);
    assertEquals(await (await f(tensor([0, 0, 0], { device })) as Tensor).toArray(), [1, 2, 3]);
    const g = jit((x) => tidy(() => x.add(tensor([1, 2, 3], { device }))));
    assertEquals(await (await g(tensor([1, 1, 1], { device })) as Tensor).toArray(), [2, 3, 4]);
    assertEquals(await (await g(tensor([5, 5, 5], { device })) as Tensor).toArray(), [6, 7, 8]);
  }
});

Deno.test("jit: a loop of calls that drops its results lets them be collected", async () => {
  // calls never yielded to the garbage collector: 1,023 dropped 4 MB results ran the cpu's
  // memory out; now they are collected as a loop of realize() calls' are
  const f = jit((x) => x.mul(2));
  const x = tensor(new Float32Array(1 << 18)); // 1 MB
  let most = 0;
  for (let i = 0; i < 600; i++) {
    await f(x);
    most = Math.max(most, memory().cpu.liveBuffers);
  }
  assert(most < 300, `at most ${most} live buffers over 600 dropped results`);
});

Deno.test("jit: captured values as they are at the call, aliases and calls in flight alike", async () => {
  for (const device of testDevices) {
    // w0 was w's node (a no-op view): after w.assign the plan's one buffer took w's new value
    const w = tensor([1, 2], { device });
    const w0 = w.reshape(w.shape);
    const f = jit((x) => x.mul(w).add(w0));
    const x = tensor([1, 1], { device });
    assertEquals(await (await f(x) as Tensor).toArray(), [2, 4], device);
    w.assign(w.add(10));
    assertEquals(await (await f(x) as Tensor).toArray(), [12, 14], `${device}: traced again`);
    assertEquals(await w0.toArray(), [1, 2]);
    // a capture assigned while a call is in flight: that call reads the value at the call
    const v = tensor([1, 2, 3], { device, requiresGrad: true });
    const g = jit((a) => a.mul(v));
    const ones = tensor([1, 1, 1], { device });
    await g(ones);
    const before = g(ones);
    v.assign(v.add(1));
    const after = g(ones);
    assertEquals(await (await before as Tensor).toArray(), [1, 2, 3], device);
    assertEquals(await (await after as Tensor).toArray(), [2, 3, 4], device);
  }
});

Deno.test("jit: captured lazy values, views of grad leaves and non-leaf results", async () => {
  for (const device of testDevices) {
    // h = w.mul(2), lazy when traced: it was computed inline over w's node, from w's new value
    const w = tensor([1, 2], { device });
    const h = w.mul(2);
    const f = jit((x) => x.mul(w).add(h));
    const x = tensor([1, 1], { device });
    assertEquals(await (await f(x) as Tensor).toArray(), [3, 6], device);
    w.assign(tensor([10, 20], { device }));
    assertEquals(await (await f(x) as Tensor).toArray(), [12, 24], `${device}: h as it was`);
    // w0 is w's node when w requires grad (a non-leaf view): it was no holder of the value
    const v = tensor([1, 2], { device, requiresGrad: true });
    const v0 = v.reshape(v.shape);
    const g = jit((a) => a.mul(v).add(v0));
    await g(x);
    v.assign(v.add(10));
    assertEquals(await (await g(x) as Tensor).toArray(), [12, 14], `${device}: v0 as it was`);
    // a result equal to a non-leaf requiring grad passed gradients to its leaf
    const p = tensor([1, 2, 3], { device, requiresGrad: true });
    const [same] = await jit((a) => [a])(p.mul(2)) as Tensor[];
    same.mul(p).sum().backward();
    assertEquals(await p.grad!.toArray(), [2, 4, 6], device);
  }
});

Deno.test("jit: a grad set by hand inside fn lasts the trace only", async () => {
  // the setter was not journaled: a later traced backward dropped it, and w.grad was left as
  // graph over the stand-in after the call
  const w = tensor([1, 1], { requiresGrad: true });
  const f = jit((x) => {
    w.grad = x.mul(3);
    x.mul(w).sum().backward();
    return w.grad!;
  });
  assertEquals(await (await f(tensor([1, 1])) as Tensor).toArray(), [4, 4]);
  assertEquals(w.grad, null);
});

Deno.test("jit: fn's own values are never frozen as captures, and views made in fn never retrace", async () => {
  for (const device of testDevices) {
    // h = w.mul(2) made outside: fn's own w.mul(2) is h's node (hash-consing), and was taken
    // for a captured value, frozen at w's value when traced
    const w = tensor([1, 2], { device });
    const h = w.mul(2);
    const f = jit((x) => x.add(w.mul(2)));
    const zero = tensor([0, 0], { device });
    assertEquals(await (await f(zero) as Tensor).toArray(), [2, 4], device);
    w.assign(tensor([10, 20], { device }));
    assertEquals(await (await f(zero) as Tensor).toArray(), [20, 40], `${device}: w as it is`);
    h.dispose(); // lazy, over w's old value
    // the same with the caller's w.mul(2) computed before the trace: fn's own, a leaf on that
    // stored node, was bound as stored for good
    const u = tensor([1, 2], { device });
    await u.mul(2).toArray();
    const fu = jit((a) => a.add(u.mul(2)));
    assertEquals(await (await fu(zero) as Tensor).toArray(), [2, 4], device);
    u.assign(tensor([10, 20], { device }));
    assertEquals(await (await fu(zero) as Tensor).toArray(), [20, 40], `${device}: u as it is`);
    // a view of a grad leaf made inside fn held its node and diverged from it after every
    // step: a trace a call
    const v = tensor([1, 2, 3, 4], { device, requiresGrad: true });
    const opt = new optim.SGD([v], { lr: 0.1 });
    const step = jit((x) => {
      x.mul(v.reshape([4])).sum().backward();
      return { g: v.grad! };
    });
    const x = tensor([1, 1, 1, 1], { device });
    for (let i = 0; i < 5; i++) {
      const { g } = await step(x) as { g: Tensor; };
      v.grad = g;
      opt.step();
      opt.zeroGrad();
    }
    assertEquals(step.traceCount, 1, device);
    assertClose(await v.data(), [0.5, 1.5, 2.5, 3.5], { msg: device });
  }
});

Deno.test("jit: fn's own value equal to a captured lazy value follows its sources", async () => {
  for (const device of testDevices) {
    // h = w.mul(2) made outside and read by fn, and fn's own w.mul(2): one node (hash-consing),
    // bound to h's value at every call, so fn's w.mul(2) kept w's traced value after w.assign
    const w = tensor([1, 2], { device, requiresGrad: true });
    const h = w.mul(2);
    const f = jit((x) => ({ own: x.add(w.mul(2)), captured: x.add(h) }));
    const zero = tensor([0, 0], { device });
    const first = await f(zero) as { own: Tensor; captured: Tensor; };
    assertEquals(await first.own.toArray(), [2, 4], device);
    w.assign(tensor([10, 20], { device }));
    const second = await f(zero) as { own: Tensor; captured: Tensor; };
    assertEquals(await second.own.toArray(), [20, 40], `${device}: w as it is`);
    assertEquals(await second.captured.toArray(), [2, 4], `${device}: h as it was`);
    w.assign(tensor([5, 6], { device }));
    const third = await f(zero) as { own: Tensor; captured: Tensor; };
    assertEquals(await third.own.toArray(), [10, 12], device);
    assertEquals(await third.captured.toArray(), [2, 4], device);
    assertEquals(f.traceCount, 2, `${device}: traced again once, when w first moved`);
    // h itself assigned: fn's own w.mul(2) took h's new value
    const v = tensor([1, 2], { device });
    const hv = v.mul(2);
    const fv = jit((x) => ({ own: x.add(v.mul(2)), captured: x.add(hv) }));
    await fv(zero);
    hv.assign(tensor([100, 100], { device }));
    const afterAssign = await fv(zero) as { own: Tensor; captured: Tensor; };
    assertEquals(await afterAssign.own.toArray(), [2, 4], `${device}: v.mul(2) as it is`);
    assertEquals(await afterAssign.captured.toArray(), [100, 100], `${device}: hv as assigned`);
    // h disposed: fn's own w.mul(2) is computed (it was an Error: a capture disposed)
    const u = tensor([1, 2], { device });
    const k = u.mul(3);
    const g = jit((x) => x.add(u.mul(3)).add(k.mul(0)));
    assertEquals(await (await g(zero) as Tensor).toArray(), [3, 6], device);
    const ownOnly = jit((x) => x.add(u.mul(3)));
    assertEquals(await (await ownOnly(zero) as Tensor).toArray(), [3, 6], device);
    k.dispose();
    assertEquals(await (await ownOnly(zero) as Tensor).toArray(), [3, 6], `${device}: k gone`);
    await assertRejects(() => g(zero), Error, "disposed");
  }
});

Deno.test("jit: a trace ends by giving back gradients disposed before it, unchecked", async () => {
  // giving back went through the grad setter, whose checks (1fc9eed) refused a disposed
  // gradient: the call failed, and leaves after it kept their traced gradients
  const w1 = tensor([1, 2, 3], { requiresGrad: true });
  const w2 = tensor([4, 5, 6], { requiresGrad: true });
  w2.mul(2).sum().backward();
  w1.mul(2).sum().backward();
  w1.grad!.dispose();
  const f = jit((x) => {
    const loss = x.mul(w1).add(x.mul(w2)).sum();
    loss.backward();
    return loss;
  });
  assertEquals(await (await f(tensor([1, 1, 1])) as Tensor).item(), 21);
  assert(w1.grad!.isDisposed, "w1's own gradient, as it was");
  assertEquals(await w2.grad!.toArray(), [2, 2, 2], "w2's own gradient, as it was");
});

Deno.test("jit: a trace made under other fusion or cpu kernel settings is made again", async () => {
  const f = jit((x: Tensor) => x.exp().add(1).mul(x).sum());
  const x = tensor([0.5, -1, 2, 0]);
  const spec = [{ shape: [4], dtype: "float32", device: "cpu", requiresGrad: false }] as const;
  const steps = () => traceEntryOf(f)!(spec).plan.steps;
  const want = [0.5, -1, 2, 0].reduce((s, v) => s + (Math.exp(v) + 1) * v, 0);
  const before = { kernels: cpu.kernels, threads: cpu.threads };
  try {
    setFusion(false);
    assertClose([await (await f(x)).item()], [want], { rtol: 1e-6 });
    const unfused = steps().length;
    assert(unfused > 1, `one kernel per op: ${unfused} steps`);
    setFusion(true);
    // it kept the unfused plan: 4 kernels where a fresh jit runs 1
    assertClose([await (await f(x)).item()], [want], { rtol: 1e-6 });
    assertEquals(steps().length, 1);
    cpu.kernels = "js";
    await f(x);
    assertEquals(steps().map((s) => s.executable.target), ["js"]);
    cpu.kernels = "auto";
    await f(x);
    if (cpuBackend.planKey === "wasm") {
      assertEquals(steps().map((s) => s.executable.target), ["wasm"]);
    }
    assertEquals(f.traceCount, 3); // the fused Wasm trace is cached from before "js"
  } finally {
    setFusion(true);
    cpu.kernels = before.kernels;
    cpu.threads = before.threads;
  }
});

Deno.test("jit: one leaf passed twice is one stand-in: its gradients add up as in eager code", async () => {
  // each argument had a stand-in of its own: backward() gave each only its own share, and
  // f(x, x) returned x instead of 2x with no error
  const f = (a: Tensor, b: Tensor) => {
    a.mul(b).sum().backward();
    return [a.grad!, b.grad!];
  };
  const compiled = jit(f);
  const x = tensor([1, 2, 3], { requiresGrad: true });
  const y = tensor([5, 7, 11], { requiresGrad: true });
  for (let round = 0; round < 2; round++) {
    // d/dx sum(x * x) = 2x, through either argument; f(x, y) is a trace of its own
    const [ga, gb] = await compiled(x, x);
    assertEquals(Array.from(await ga.data()), [2, 4, 6]);
    assertEquals(Array.from(await gb.data()), [2, 4, 6]);
    const [gx, gy] = await compiled(x, y);
    assertEquals(Array.from(await gx.data()), [5, 7, 11]);
    assertEquals(Array.from(await gy.data()), [1, 2, 3]);
  }
  assertEquals(compiled.traceCount, 2);
  assertEquals(x.grad, null, "the caller's leaves keep their gradients");
  // without requiresGrad, arguments alias freely: one trace serves both calls
  const g = jit((a: Tensor, b: Tensor) => a.mul(b));
  const c = tensor([1, 2, 3]);
  assertEquals(Array.from(await (await g(c, c)).data()), [1, 4, 9]);
  assertEquals(Array.from(await (await g(c, tensor([1, 1, 1]))).data()), [1, 2, 3]);
  assertEquals(g.traceCount, 1);
});

Deno.test("jit: an argument also captured by a fn that takes gradients is an Error", async () => {
  // the argument's stand-in and the captured leaf were two variables: w's gradient came back
  // as one use's share (x instead of 2x), silently
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const other = tensor([4, 5, 6], { requiresGrad: true });
  const step = jit((a: Tensor) => {
    a.mul(w).sum().backward();
    return w.grad!;
  });
  await assertRejects(
    () => step(w),
    Error,
    "jit: argument x must not also be a tensor fn uses without receiving it, when backward()",
  );
  // the library stays usable: another argument is fine (d/dw sum(a * w) = a)
  assertEquals(Array.from(await (await step(other)).data()), [4, 5, 6]);
  // a fn that takes no gradient may receive what it captures, even one that clears its
  // gradient (zeroGrad changes a gradient, but splits none)
  const scaled = jit((a: Tensor) => a.mul(w));
  assertEquals(Array.from(await (await scaled(w)).data()), [1, 4, 9]);
  const clearing = jit((a: Tensor) => {
    w.zeroGrad();
    return a.mul(w);
  });
  assertEquals(Array.from(await (await clearing(w)).data()), [1, 4, 9]);
  // and so may one whose backward() reaches only one of the two: here the captured w, while
  // the argument stays off the gradient's path (eager code gives w.grad = u as well)
  const u = tensor([7, 8, 9]);
  const offPath = jit((a: Tensor) => {
    u.mul(w).sum().backward();
    return [w.grad!, a.mul(2)];
  });
  const [dw, twice] = await offPath(w);
  assertEquals(Array.from(await dw.data()), [7, 8, 9]);
  assertEquals(Array.from(await twice.data()), [2, 4, 6]);
});

Deno.test("jit: random data fn makes is drawn once per signature, whatever traces it again", async () => {
  // every trace ran fn again and drew again: a trace made under other settings, or for an
  // export, computed with another mask than the calls before it
  const before = { kernels: cpu.kernels, fusion: true };
  try {
    const stream = () => rand([3]).data().then((d) => Array.from(d));
    manualSeed(7);
    const fromSeed = await stream();
    manualSeed(7);
    const want = rand([4]).add(randn([4]));
    const wantValues = Array.from(await want.data());
    const afterDraws = await stream();
    manualSeed(7);
    const f = jit((x: Tensor) => x.mul(rand([4])).add(randn([4])));
    const ones = tensor([1, 1, 1, 1]);
    const first = Array.from(await (await f(ones)).data());
    // the first trace draws as eager code does: manualSeed(7), then rand, then randn
    assertEquals(first, wantValues);
    assertEquals(await stream(), afterDraws);
    // a call replays the plan (no draws), and so does every trace made again: under other
    // settings, and for each export target
    manualSeed(7);
    await f(ones);
    setFusion(false);
    const unfused = Array.from(await (await f(ones)).data());
    setFusion(true);
    cpu.kernels = "js";
    const onJs = Array.from(await (await f(ones)).data());
    assertEquals(f.traceCount, 3);
    assertClose(unfused, first, { rtol: 1e-6 });
    assertClose(onJs, first, { rtol: 1e-6 });
    for (const target of ["js", "wasm"] as const) {
      const { files } = await exportCompiled(f, [{ shape: [4] }], { target });
      const text = files.find((file) => file.path === "model.js")!.contents as string;
      const module = await import(`data:text/javascript;base64,${btoa(text)}`);
      const exported = Array.from(module.run(Float32Array.from([1, 1, 1, 1]))[0] as Float32Array);
      assertClose(exported, first, { rtol: 1e-6, msg: target });
    }
    // and none of them moved the global stream
    assertEquals(await stream(), fromSeed);
  } finally {
    setFusion(before.fusion);
    cpu.kernels = before.kernels;
  }
});

Deno.test("jit: fn reading a captured tensor's value is refused, not frozen into the plan", async () => {
  // `x.mul(v.dataSync()[0])` and `w.sum().to(...)` read the captured value once, at the trace:
  // after `assign` every call still computed with the first value
  for (const device of testDevices) {
    const w = tensor([1, 2], { device });
    const other = device === "cpu" ? "webgpu" : "cpu";
    const reads: (readonly [string, (t: Tensor) => unknown])[] = [
      ["data", (t) => t.data()],
      ["toArray", (t) => t.toArray()],
      ["item", (t) => t.sum().item()],
      ["data", (t) => t.mul(2).add(1).data()], // computed from the captured value
      ...(device === "cpu" ? [["dataSync", (t: Tensor) => t.dataSync()] as const] : []),
      ...(webgpuAvailable ? [["to", (t: Tensor) => t.sum().to(other)] as const] : []),
    ];
    for (const [name, read] of reads) {
      const f = jit((x) => {
        read(w);
        return x.mul(2);
      });
      await assertRejects(
        () => f(tensor([1], { device })),
        Error,
        `${name}: no read of a captured tensor while jit traces fn (its value read now would ` +
          "be a constant of every call",
      );
    }
    // a captured leaf given a number by assign is a variable of constants (detach(const)): its
    // value was read, baked in, and w.assign(5) ignored by every call
    if (device === "cpu") {
      const v = tensor([1]);
      v.assign(3);
      await assertRejects(
        () => jit((x) => x.mul(v.dataSync()[0]))(tensor([2])),
        Error,
        "dataSync: no read of a captured tensor while jit traces fn",
      );
    }
    // reads that take nothing captured: the same at every call, allowed (a tensor fn makes,
    // constants, and to() the device a tensor is on, which reads nothing)
    const own = jit((x) => {
      const three = tensor([3], { device });
      const scale = device === "cpu" ? three.dataSync()[0] : 3;
      return x.mul(scale).add(w.to(x.device).sum());
    });
    assertEquals(Array.from(await (await own(tensor([1, 2], { device })) as Tensor).data()), [
      6,
      9,
    ]);
    // the value as graph follows w, and w is readable after the trace
    const g = jit((x) => x.mul(2).add(w.sum()));
    assertEquals(Array.from(await (await g(tensor([1, 2], { device })) as Tensor).data()), [5, 7]);
    w.assign(tensor([100, 200], { device }));
    assertEquals(Array.from(await (await g(tensor([1, 2], { device })) as Tensor).data()), [
      302,
      304,
    ]);
    assertEquals(Array.from(await (await own(tensor([1, 2], { device })) as Tensor).data()), [
      303,
      306,
    ]);
    assertEquals(Array.from(await w.data()), [100, 200]);
    // an export embeds captured values as they are whatever fn does: its trace may read them
    if (device === "cpu") {
      const exported = await exportCompiled(
        jit((x) => x.mul(w.sum().dataSync()[0])),
        [{ shape: [2] }],
        { target: "js" },
      );
      const module = await importExported(exported.files);
      assertEquals(Array.from(module.run(Float32Array.of(1, 2))[0] as Float32Array), [300, 600]);
    }
  }
});

Deno.test("jit: a signature in use keeps its random numbers however many others come and go", async () => {
  // the caches of traces and of draws dropped their oldest entry: a signature called at every
  // step was traced again after 64 others and drew new numbers after 1,024 others
  manualSeed(7);
  const f = jit((x) => x.add(randn([1]).expand(x.shape)));
  const first = (await (await f(zeros(1)) as Tensor).data())[0];
  for (let n = 2; n <= 1100; n++) {
    (await f(zeros(n)) as Tensor).dispose();
    if (n % 100 !== 0 && n !== 1100) continue;
    const again = await f(zeros(1)) as Tensor;
    assertEquals((await again.data())[0], first, `after ${n - 1} other signatures`);
    again.dispose();
  }
});

Deno.test("jit: a tensor built from an argument and kept past the trace says so when read", async () => {
  // dataSync() said it depended on "data still being copied from another device", and data()
  // that fn read it "while being traced", though no trace ran
  let kept: Tensor | undefined;
  const f = jit((x) => {
    kept = x.exp();
    return x.mul(2);
  });
  assertEquals(Array.from(await (await f(tensor([1, 2])) as Tensor).data()), [2, 4]);
  assertThrows(
    () => kept!.dataSync(),
    Error,
    "dataSync: a tensor with a value (this one was built from a jit argument while fn was " +
      "traced and kept past the trace",
  );
  await assertRejects(
    () => kept!.data(),
    Error,
    "jit: a tensor built from fn's argument x while fn was traced, and kept past the trace",
  );
});

Deno.test("jit: a loop cycling through 200 signatures traces each once", async () => {
  // 64 signatures were kept: a batch size cycling through 65 values retraced at every call
  const f = jit((x) => x.mul(2).add(1));
  for (let round = 0; round < 2; round++) {
    for (let n = 1; n <= 200; n++) (await f(zeros(n)) as Tensor).dispose();
  }
  assertEquals(f.traceCount, 200);
});

Deno.test("jit: fn disposing its argument is a named Error, and no storage is miscounted (helper-131)", async () => {
  // a stand-in has no storage: disposing one reached the allocator (a TypeError reading 'size'
  // on the cpu, 'released' on webgpu) and memory() counted storage never allocated, negative
  // for good
  for (const device of testDevices) {
    using x = tensor([1, 2], { device });
    const f = jit((a) => {
      const b = a.add(1);
      a.dispose();
      return b;
    });
    await assertRejects(
      () => f(x),
      Error,
      "dispose: a tensor fn made, not one of its arguments, while jit traces fn",
    );
    // a view fn makes of its argument is fn's to dispose (it shares the stand-in's node: it
    // was refused as the argument, helper-132)
    const h = jit((a) => {
      using view = a.reshape(a.shape);
      return view.mul(2);
    });
    using doubled = await h(x);
    assertEquals(Array.from(await doubled.data()), [2, 4], device);
    // a stand-in kept past its trace may be disposed: it gives nothing back
    let kept: Tensor | null = null;
    const g = jit((a) => {
      kept = a;
      return a.add(1);
    });
    using y = await g(x);
    assertEquals(Array.from(await y.data()), [2, 3], device);
    // (counted around the dispose alone, with no await: other tests' garbage collected
    // meanwhile moves the device's counts)
    const before = memory()[device];
    kept!.dispose();
    assertEquals(memory()[device], before, `${device}: nothing given back`);
  }
});

Deno.test("jit: a captured tensor returned as it is follows its assign and its dispose (helper-140)", async () => {
  // read by no op, it was not among the captures: every call returned its value at the trace,
  // after w.assign() and after w.dispose()
  for (const device of testDevices) {
    const w = tensor([1, 2], { device });
    const f = jit((x) => ({ y: x.add(1), w }));
    const x = tensor([0, 0], { device });
    assertEquals(Array.from(await (await f(x)).w.data()), [1, 2], device);
    w.assign(tensor([5, 6], { device }));
    assertEquals(Array.from(await (await f(x)).w.data()), [5, 6], device);
    const g = jit((x) => [x.mul(2), w]); // in an array too
    assertEquals(Array.from(await (await g(x))[1].data()), [5, 6], device);
    w.dispose();
    await assertRejects(() => f(x), Error, "jit: the tensors fn captured must stay alive");
    await assertRejects(() => g(x), Error, "jit: the tensors fn captured must stay alive");
  }
});
