// LocalResponseNorm: the golden cases (forward y and gradient dx, float64 values cross-checked
// with PyTorch), every size against the float64 reference evaluator, shapes, dtypes, the
// printed IR, the kernel counts and every bad input.

import {
  cpu,
  graph,
  kernels,
  manualSeed,
  nn,
  randn,
  realize,
  setFusion,
  type Tensor,
  tensor,
  webgpu,
  zeros,
} from "../../mod.ts";
import type { DeviceName } from "../../mod.ts";
import { assert, assertEquals, assertStrictEquals, assertThrows } from "../assert.ts";
import {
  assertClose,
  onBackend,
  reference,
  testBackends,
  webgpuAvailable,
  withCpuKernels,
} from "../helpers.ts";
import { assertGolden, type GoldenCase, goldenCases } from "../lrn_golden.ts";
import { nodeOf } from "../../src/tensor.ts";

const forms = {
  module: (c: GoldenCase, x: Tensor) =>
    new nn.LocalResponseNorm(c.size, c.alpha, c.beta, c.k).forward(x),
  functional: (c: GoldenCase, x: Tensor) =>
    nn.functional.localResponseNorm(x, c.size, c.alpha, c.beta, c.k),
};

for (const backend of testBackends) {
  const device = backend.device;
  for (const [formName, form] of Object.entries(forms)) {
    Deno.test(`LocalResponseNorm golden cases, ${formName}, ${backend.name}`, (t) =>
      onBackend(backend, async () => {
        for (const c of goldenCases) {
          await t.step(c.name, async () => {
            const x = tensor(Float32Array.from(c.x), {
              shape: c.shape,
              device,
              requiresGrad: true,
            });
            const g = tensor(Float32Array.from(c.g), { shape: c.shape, device });
            const y = form(c, x);
            y.backward(g);
            assertGolden(await y.data(), c.y, `${c.name} y`);
            assertGolden(await x.grad!.data(), c.dx, `${c.name} dx`);
          });
        }
      }));
  }

  Deno.test(`LocalResponseNorm kernel counts, ${backend.name}`, () =>
    onBackend(backend, () => {
      const x = randn([2, 12, 4, 4], { device, requiresGrad: true });
      const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
      const y = lrn.forward(x);
      assertEquals(kernels(y).length, 1);
      y.backward(randn([2, 12, 4, 4]).to(device));
      // MULTI_OUTPUT and SHARED_VALUE: y, the backward's middle term and g / d^0.75 in one
      // kernel (one window sum of x), then dx
      const both = kernels(y, x.grad!);
      assertEquals(both.map((k) => k.outputs.length), [3, 1], "forward + backward kernels");
    }));
}

/** y of LRN on `x` (cpu) compared with the float64 reference of the same graph. */
async function checkAgainstReference(
  x: Tensor,
  size: number,
  alpha: number,
  beta: number,
  k: number,
) {
  const y = nn.functional.localResponseNorm(x, size, alpha, beta, k);
  assertClose(await y.data(), reference(y), {
    rtol: 1e-5,
    atol: 0,
    msg: `size ${size} shape [${x.shape}]`,
  });
}

Deno.test("LocalResponseNorm sizes 1-7, betas with and without fast paths, against the reference", async () => {
  manualSeed(7);
  for (let size = 1; size <= 7; size++) {
    for (const beta of [0.5, 0.75, 1, 2, 0.6]) {
      await checkAgainstReference(randn(2, 9, 3, 4).mul(2), size, 0.3, beta, 1.5);
    }
  }
});

Deno.test("LocalResponseNorm: C smaller than size, 2-D to 5-D inputs", async () => {
  manualSeed(3);
  await checkAgainstReference(randn(3, 2, 5), 7, 0.5, 0.75, 1);
  await checkAgainstReference(randn(4, 6), 3, 0.5, 0.75, 1);
  await checkAgainstReference(randn(2, 5, 7), 4, 0.5, 0.75, 1);
  await checkAgainstReference(randn(2, 5, 3, 3), 5, 0.5, 0.75, 1);
  await checkAgainstReference(randn(1, 6, 2, 3, 2), 6, 0.5, 0.75, 1);
});

Deno.test("LocalResponseNorm: a 2-D input equals the hand-computed formula", async () => {
  // (N, C) = (1, 3), size 2: W(c) = {c, c+1}; y_c = x_c / (k + alpha S_c)^beta
  const x = tensor([[1, 2, 3]]);
  const y = nn.functional.localResponseNorm(x, 2, 0.5, 1, 1);
  const want = [1 / (1 + 0.5 * (1 + 4)), 2 / (1 + 0.5 * (4 + 9)), 3 / (1 + 0.5 * 9)];
  assertClose(await y.data(), want, { rtol: 1e-6 });
});

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`LocalResponseNorm: values from 1e-20 to 1e15 sum as accurately as direct window sums, ${backend.name}`, () =>
    onBackend(backend, async () => {
      // alternating huge and tiny channels: a running window sum would cancel here
      const C = 12;
      const data = new Float32Array(2 * C * 3);
      for (let i = 0; i < data.length; i++) {
        const c = Math.floor(i / 3) % C;
        data[i] = (c % 2 === 0 ? 1e15 : 1e-20) * (1 + (i % 5) / 7);
      }
      const onCpu = tensor(data, { shape: [2, C, 3] });
      const x = tensor(data, { shape: [2, C, 3], device });
      for (const size of [2, 3, 5]) {
        const want = reference(nn.functional.localResponseNorm(onCpu, size, 1e-4, 0.75, 1));
        const y = nn.functional.localResponseNorm(x, size, 1e-4, 0.75, 1);
        assertClose(await y.data(), want, { rtol: 1e-5, atol: 0, msg: `size ${size}` });
      }
    }));
}

Deno.test("LocalResponseNorm: rank 0 and 1 inputs are returned as the same object", () => {
  const lrn = new nn.LocalResponseNorm(3);
  const scalar = tensor(2);
  const vector = tensor([1, 2, 3]);
  assertStrictEquals(lrn.forward(scalar), scalar);
  assertStrictEquals(lrn.forward(vector), vector);
  assertStrictEquals(nn.functional.localResponseNorm(vector, 3), vector);
});

Deno.test("LocalResponseNorm: an empty batch gives an empty result without kernels", async () => {
  const y = new nn.LocalResponseNorm(3).forward(zeros(0, 4, 2));
  assertEquals(y.shape, [0, 4, 2]);
  assertEquals(kernels(y).length, 0);
  assertEquals((await y.data()).length, 0);
});

Deno.test("LocalResponseNorm: zero channels give an empty result, no window error", async () => {
  // PyTorch returns an empty tensor; no window of size channels fits in C = 0 padded channels
  for (const [size, shape] of [[3, [2, 0, 2]], [1, [2, 0]], [4, [1, 0, 3, 3]]] as const) {
    const x = zeros([...shape], { dtype: "float64", requiresGrad: true });
    const y = nn.functional.localResponseNorm(x, size);
    assertEquals(y.shape, [...shape]);
    assertEquals(y.dtype, "float64");
    assertEquals(kernels(y).length, 0);
    assertEquals((await y.data()).length, 0);
    y.sum().backward();
    assertEquals((await x.grad!.data()).length, 0);
  }
  const yi = new nn.LocalResponseNorm(5).forward(zeros([3, 0], { dtype: "int32" }));
  assertEquals([yi.shape, yi.dtype], [[3, 0], "float32"]);
});

Deno.test("LocalResponseNorm: int32 input is promoted to float32; float64 stays float64", async () => {
  const xi = tensor([[1, 2], [3, 4]], { dtype: "int32" });
  const yi = new nn.LocalResponseNorm(2, 0.5, 1, 1).forward(xi);
  assertEquals(yi.dtype, "float32");
  assertClose(await yi.data(), [
    1 / (1 + 0.5 * 5),
    2 / (1 + 0.5 * 4),
    3 / (1 + 0.5 * 25),
    4 / (1 + 0.5 * 16),
  ]);
  const x64 = randn([2, 5, 3], { dtype: "float64" });
  const y64 = new nn.LocalResponseNorm(3, 0.5, 0.75, 1).forward(x64);
  assertEquals(y64.dtype, "float64");
  assertClose(await y64.data(), reference(y64), { rtol: 1e-12, atol: 0 });
});

Deno.test("LocalResponseNorm: NaN and Infinity propagate", async () => {
  const x = tensor([[NaN, 1, 2, Infinity]]);
  const y = await new nn.LocalResponseNorm(1, 0.5, 1, 1).forward(x).data();
  assert(Number.isNaN(y[0]));
  assertClose([y[1], y[2]], [1 / 1.5, 2 / 3]);
  assert(Number.isNaN(y[3]), "inf / inf is NaN");
});

Deno.test("LocalResponseNorm: the printed IR is pad, unfoldDim, square, sum, affine, pow, div", () => {
  const y = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2).forward(randn(2, 8, 3, 3));
  const ops = graph(y).split("\n").map((line) => line.split(" = ")[1].split("(")[0]);
  const compute = ops.filter((op) => !["buffer", "const", "reshape", "expand"].includes(op));
  assertEquals(compute, ["pad", "unfoldDim", "square", "sum", "affine", "pow", "div"]);
});

Deno.test("LocalResponseNorm: the kernel is specialized (constant pow forms, clipped window)", () =>
  withCpuKernels("js", () => {
    const source = (beta: number) =>
      kernels(new nn.LocalResponseNorm(5, 1e-4, beta, 2).forward(randn(2, 8, 3, 3)))[0].source;
    for (const beta of [0.5, 0.75, 1, 2]) {
      assert(!source(beta).includes("Math.pow"), `beta ${beta} uses Math.pow`);
    }
    assert(source(0.6).includes("Math.pow"), "a general beta uses pow");
    assert(source(0.75).includes("Math.sqrt"));
    // the window loop runs over clipped bounds: no validity test inside it
    const inner = source(0.75).split("for (let r")[1].split("{")[1].split("}")[0];
    assert(
      !inner.includes("?") && !inner.includes("<"),
      `validity test inside the window loop:\n${inner}`,
    );
  }));

Deno.test("LocalResponseNorm: forward + backward computes one window sum of x, two square roots, three divisions", () =>
  withCpuKernels("js", () => {
    const x = randn([2, 8, 3, 3], { requiresGrad: true });
    const y = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2).forward(x);
    y.backward(randn(2, 8, 3, 3));
    const [first, dx] = kernels(y, x.grad!);
    const count = (source: string, pattern: RegExp) =>
      source.split("\n").filter((l) => !l.startsWith("//")).join("\n").match(pattern)?.length ??
        0;
    // d = k + alpha * sum(x^2) once; y = x / d^0.75 (sqrt, sqrt, one division); the middle
    // term g * y / d uses y as computed (one more division), not x * d^-1.5 * d^-0.25 anew;
    // g / d^0.75, stored for dx (one more)
    assertEquals(count(first.source, /let acc\d+ = 0;/g), 1, "one window sum");
    assertEquals(count(first.source, /Math\.sqrt/g), 2, "square roots");
    assertEquals(count(first.source, / \/ /g), 3, "divisions");
    // dx loads g / d^0.75 and sums the middle term over its window: no root, no division
    assertEquals(count(dx.source, /Math\.sqrt| \/ /g), 0, "dx: no root or division");
  }));

Deno.test("LocalResponseNorm: fused and unfused give the same values and gradients", async () => {
  manualSeed(11);
  const xData = randn(2, 7, 3, 2);
  const g = randn(2, 7, 3, 2);
  const run = async (fusion: boolean) => {
    setFusion(fusion);
    try {
      const x = tensor(await xData.data(), { shape: [2, 7, 3, 2], requiresGrad: true });
      const y = new nn.LocalResponseNorm(4, 0.5, 0.6, 1.5).forward(x);
      y.backward(g);
      const count = kernels(y, x.grad!).length;
      return { y: await y.data(), dx: await x.grad!.data(), count };
    } finally {
      setFusion(true);
    }
  };
  const fused = await run(true);
  const unfused = await run(false);
  assert(unfused.count > 10, `unfused ran ${unfused.count} kernels`);
  assertClose(fused.y, unfused.y, { rtol: 1e-5 });
  assertClose(fused.dx, unfused.dx, { rtol: 1e-4, atol: 1e-6 });
});

Deno.test("LocalResponseNorm: toString prints a large size as Python's integer", () => {
  assertEquals(
    String(new nn.LocalResponseNorm(1e21)),
    "LocalResponseNorm(size=1000000000000000000000, alpha=0.0001, beta=0.75, k=1.0)",
  );
});

Deno.test("LocalResponseNorm: toString prints Python floats", () => {
  assertEquals(
    String(new nn.LocalResponseNorm(5, 1e-4, 0.75, 2)),
    "LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=2.0)",
  );
  assertEquals(
    String(new nn.LocalResponseNorm(3)),
    "LocalResponseNorm(size=3, alpha=0.0001, beta=0.75, k=1.0)",
  );
  assertEquals(
    String(new nn.LocalResponseNorm(2, 1e-5, 1, 1e16)),
    "LocalResponseNorm(size=2, alpha=1e-05, beta=1.0, k=1e+16)",
  );
  assertEquals(
    Deno.inspect(new nn.LocalResponseNorm(4, 0.5, 0.6, 0)),
    "LocalResponseNorm(size=4, alpha=0.5, beta=0.6, k=0.0)",
  );
});

Deno.test("LocalResponseNorm: no parameters and an empty state dict", () => {
  const lrn = new nn.LocalResponseNorm(5);
  assertEquals([...lrn.parameters()], []);
  assertEquals(lrn.stateDict(), {});
});

Deno.test("LocalResponseNorm: a size far past the channels, forward and backward, both devices", async () => {
  // every window covers all C channels: D = k + alpha * sum x^2 alike for each, so
  // y = x D^-beta and dx = g D^-beta - 2 alpha beta x D^(-beta-1) sum(g x) (hand-worked).
  // A size of 10^8 padded 10^8 channels: the backward pass failed (an unfoldTranspose of
  // 10^16 elements), webgpu took minutes at 70,000, and 10^300 failed in pad.
  const xs = [0.5, -1, 1.5, 2];
  const gs = [1, -2, 0.5, 3];
  const [alpha, beta, k] = [0.25, 0.75, 1];
  const d = k + alpha * xs.reduce((s, v) => s + v * v, 0);
  const gx = xs.reduce((s, v, i) => s + v * gs[i], 0);
  const y = xs.map((v) => v * d ** -beta);
  const dx = xs.map((v, i) => gs[i] * d ** -beta - 2 * alpha * beta * v * d ** (-beta - 1) * gx);
  for (const device of testBackends.map((b) => b.device)) {
    for (const size of [7, 9, 1e8, 2 ** 53, 1e300]) {
      const x = tensor(xs, { shape: [1, 4, 1], device, requiresGrad: true });
      const out = nn.functional.localResponseNorm(x, size, alpha, beta, k);
      out.backward(tensor(gs, { shape: [1, 4, 1], device }));
      const msg = `${device}, size ${size}`;
      assertEquals(kernels(out).length, 1, msg);
      assertClose(await out.data(), y, { rtol: 1e-6, atol: 0, msg });
      assertClose(await x.grad!.data(), dx, { rtol: 1e-5, atol: 1e-7, msg });
    }
  }
});

Deno.test("LocalResponseNorm: float32 gradients with tiny partial products, every backend", async () => {
  // alpha 1, beta 3, x near 3e4: the kernel multiplied g / d^3 by y (two outputs, about
  // g x d^-6 = 1e-50, below float32) before d^2 brought it back: the cross-channel term
  // vanished and dx changed sign. Each case against the float64 evaluation of its own graph.
  const lrn = (device: DeviceName) => {
    const x = tensor([1e4, -2e4, 3e4], { shape: [1, 3, 1], device, requiresGrad: true });
    const y = nn.functional.localResponseNorm(x, 3, 1, 3, 1);
    y.backward(tensor([1, -1, 0.5], { shape: [1, 3, 1], device }));
    return { y, dx: x.grad! };
  };
  const want = lrn("cpu");
  const [wantY, wantDx] = [reference(want.y), reference(want.dx)];
  for (const backend of testBackends) {
    await onBackend(backend, async () => {
      for (const alsoY of [true, false]) {
        const { y, dx } = lrn(backend.device);
        const msg = `${backend.name}, ${alsoY ? "y and dx" : "dx alone"}`;
        if (alsoY) assertClose(await y.data(), wantY, { rtol: 1e-5, atol: 0, msg });
        assertClose(await dx.data(), wantDx, { rtol: 1e-4, atol: 0, msg });
      }
    });
  }
});

Deno.test("LocalResponseNorm: bad input names the argument, the expectation and the value", () => {
  assertThrows(() => new nn.LocalResponseNorm(0), Error, "size must be a positive integer, got 0");
  assertThrows(
    () => new nn.LocalResponseNorm(2.5),
    Error,
    "size must be a positive integer, got 2.5",
  );
  assertThrows(
    () => new nn.LocalResponseNorm("5" as unknown as number),
    Error,
    'size must be a positive integer, got "5"',
  );
  assertThrows(
    () => new nn.LocalResponseNorm(5, NaN),
    Error,
    "alpha must be a finite number, got NaN",
  );
  assertThrows(
    () => new nn.LocalResponseNorm(5, 1e-4, Infinity),
    Error,
    "beta must be a finite number, got Infinity",
  );
  assertThrows(
    () => new nn.LocalResponseNorm(5, 1e-4, 0.75, "2" as unknown as number),
    Error,
    'k must be a finite number, got "2"',
  );
  const lrn = new nn.LocalResponseNorm(5);
  assertThrows(
    () => lrn.forward([1, 2] as unknown as Tensor),
    Error,
    "x must be a Tensor, got [1, 2]",
  );
  assertThrows(
    () => nn.functional.localResponseNorm(null as unknown as Tensor, 3),
    Error,
    "x must be a Tensor, got null",
  );
  assertThrows(
    () => nn.functional.localResponseNorm(randn(1, 3, 2), -1),
    Error,
    "size must be a positive integer, got -1",
  );
  // a disposed x is named here (it was pad's Error, and a rank-1 one was returned as it was)
  for (const shape of [[1, 3, 2], [3]]) {
    const gone = randn(shape);
    gone.dispose();
    assertThrows(
      () => nn.functional.localResponseNorm(gone, 3),
      Error,
      "localResponseNorm: the tensor was disposed",
    );
    assertThrows(
      () => lrn.forward(gone),
      Error,
      "LocalResponseNorm.forward: the tensor was disposed",
    );
  }
});

Deno.test("LocalResponseNorm: the input is not modified", async () => {
  const x = randn(2, 6, 3);
  const before = await x.data();
  await new nn.LocalResponseNorm(3, 0.5, 0.75, 1).forward(x).data();
  assertEquals(await x.data(), before);
});

export type { DeviceName };

Deno.test({
  name:
    "LocalResponseNorm: 2,000 forward + backward iterations on webgpu keep live GPU buffers bounded",
  ignore: !webgpuAvailable,
  fn: async () => {
    const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
    const shape = [1, 8, 4, 4];
    const xData = randn(shape).dataSync();
    const gData = randn(shape).dataSync();
    const baseline = webgpu.liveBuffers();
    let peak = 0;
    let last: Float32Array | null = null;
    for (let i = 0; i < 2000; i++) {
      using x = tensor(xData, { shape, device: "webgpu", requiresGrad: true });
      using g = tensor(gData, { shape, device: "webgpu" });
      using y = lrn.forward(x);
      y.backward(g);
      using dx = x.grad!;
      await realize(y, dx);
      if (i === 1999) last = (await dx.data()) as Float32Array;
      peak = Math.max(peak, webgpu.liveBuffers());
    }
    assert(peak <= baseline + 8, `live GPU buffers reached ${peak} (baseline ${baseline})`);
    assert(
      webgpu.liveBuffers() <= baseline,
      `${webgpu.liveBuffers() - baseline} GPU buffers leaked`,
    );
    // the last iteration's gradient still equals the cpu result
    const xc = tensor(xData, { shape, requiresGrad: true });
    lrn.forward(xc).backward(tensor(gData, { shape }));
    assertClose(last!, await xc.grad!.data(), { rtol: 1e-4, atol: 1e-6 });
  },
});

Deno.test("LocalResponseNorm builds the graph of pad, unfoldDim, square, sum, affine, pow and div", () => {
  // it makes the nodes directly (one tensor, not seven: the graph of a small call took half
  // the time); hash-consing makes an equal graph the same node, so the graph the tensor methods
  // build is the very node it returns, gradient and all
  for (const requiresGrad of [false, true]) {
    for (
      const [shape, size] of [[[2, 6, 3, 3], 5], [[1, 3, 4], 2], [[2, 4], 9], [
        [1, 1, 2],
        1,
      ]] as const
    ) {
      const x = randn([...shape], { requiresGrad });
      const [alpha, beta, k] = [1e-4, 0.75, 2];
      const y = nn.functional.localResponseNorm(x, size, alpha, beta, k);
      const c = shape[1];
      const before = Math.min(Math.floor((size - 1) / 2), c - 1);
      const after = Math.min(Math.floor(size / 2), c - 1);
      const pads = shape.map((_, i): [number, number] => (i === 1 ? [before, after] : [0, 0]));
      const byMethods = x.div(
        x.pad(pads).unfoldDim(1, before + after + 1, 1).square().sum(-1).affine(alpha, k).pow(beta),
      );
      assertStrictEquals(nodeOf(y), nodeOf(byMethods), `[${shape}], size ${size}`);
      assertEquals(y.requiresGrad, requiresGrad);
    }
  }
});

Deno.test("LocalResponseNorm: forward + backward is at most 3 kernels for every window and beta", () => {
  // with a window of 8 or more and a general beta, the default cpu setting planned 4: d^beta
  // is stored (the backward reads it through a window), and the division after it compiled for
  // Wasm while the pow stayed JavaScript, so the two never merged (2 with cpu.kernels = "js")
  for (const kernelsSetting of ["auto", "js"] as const) {
    const before = cpu.kernels;
    cpu.kernels = kernelsSetting;
    try {
      for (const [size, beta] of [[5, 0.75], [9, 0.6], [9, 0.3], [15, 0.6], [4, 0.6], [9, 0.5]]) {
        const x = randn([2, 12, 5, 5], { requiresGrad: true });
        const y = new nn.LocalResponseNorm(size, 1e-4, beta, 2).forward(x);
        assertEquals(kernels(y).length, 1, `${kernelsSetting} size ${size} beta ${beta}: forward`);
        y.backward(randn([2, 12, 5, 5]));
        const count = kernels(y, x.grad!).length;
        assert(count <= 3, `${kernelsSetting} size ${size} beta ${beta}: ${count} kernels`);
      }
    } finally {
      cpu.kernels = before;
    }
  }
});

Deno.test("LocalResponseNorm: its settings cannot be written past the constructor's checks (helper-161)", async () => {
  const lrn = new nn.LocalResponseNorm(3, 0.5, 0.75, 1);
  for (const [field, value] of [["size", 2.5], ["alpha", "x"], ["beta", NaN], ["k", -1]] as const) {
    assertThrows(() => ((lrn as unknown as Record<string, unknown>)[field] = value), TypeError);
  }
  assertEquals(String(lrn), "LocalResponseNorm(size=3, alpha=0.5, beta=0.75, k=1.0)");
  // and it still computes: channel 0 of [1, 2] with size 3 is 1 / (1 + 0.5 * (1 + 4))^0.75
  const y = await lrn.forward(tensor([1, 2], { shape: [1, 2] })).data();
  assertClose([y[0]], [1 / 3.5 ** 0.75], { rtol: 1e-6 });
});
