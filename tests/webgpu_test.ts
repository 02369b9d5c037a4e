// The webgpu runtime: results against the float64 reference evaluator (or values worked out by
// hand), the 2-D grid, buffer pooling and liveBuffers, limits, device mismatch, copies between
// devices, device loss (what a lost or given-up device leaves behind, and a subprocess that
// loses devices and must exit cleanly, issue 8) and a missing adapter. Tests that need an
// adapter are skipped without one (see helpers.ts); the missing-adapter tests run everywhere.

import {
  assert,
  assertEquals,
  assertLessOrEqual,
  assertNotStrictEquals,
  assertRejects,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";
import {
  assertClose,
  assertErrorScopesNest,
  reference,
  testDevices,
  unhandledRejectionsOf,
  webgpuAvailable,
} from "./helpers.ts";
import { type DType, full, kernels, randn, type Tensor, tensor, webgpu, zeros } from "../mod.ts";
import { type Expr, ExprBuilder, type Kernel, type ScalarType } from "../codegen/kernel.ts";
import { compile } from "../codegen/compile.ts";
import { WGSL_TARGET } from "../codegen/targets.ts";
import type { Launch } from "../src/runtime/device.ts";
import { WebGpuBackend, webgpuBackend, type WebGpuBuffer } from "../src/runtime/webgpu.ts";

const ignore = !webgpuAvailable;
const gpuTest = { ignore };

/** Deterministic pseudo-random values in [lo, hi). */
function values(n: number, lo = -2, hi = 2, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (hi - lo) * (s / 2 ** 32);
  }
  return out;
}

/** Deterministic pseudo-random integers in [lo, hi). */
function ints(n: number, lo: number, hi: number, seed = 7): Int32Array {
  return Int32Array.from(values(n, 0, 1, seed), (v) => lo + Math.floor(v * (hi - lo)));
}

/**
 * Builds `fn` on cpu inputs (for the float64 reference) and on copies of them moved to webgpu,
 * and compares the webgpu result with the reference.
 */
async function matchesReference(
  what: string,
  inputs: readonly Tensor[],
  fn: (...xs: Tensor[]) => Tensor,
  tolerance: { rtol?: number; atol?: number; } = {},
): Promise<void> {
  const onCpu = fn(...inputs);
  const expected = reference(onCpu);
  const onGpu = fn(...inputs.map((t) => t.to("webgpu")));
  assertEquals(onGpu.device, "webgpu", what);
  assertEquals(onGpu.shape, onCpu.shape, what);
  assertEquals(onGpu.dtype, onCpu.dtype, what);
  const actual = await onGpu.data();
  assertClose(actual, expected, { rtol: 2e-5, atol: 2e-6, ...tolerance, msg: what });
}

/** A hand-built elementwise kernel over `n` elements: `out[o] = value(b, o)`. */
function elementwiseKernel(
  name: string,
  n: number,
  outType: ScalarType,
  inputs: readonly ScalarType[],
  value: (b: ExprBuilder, o: Expr) => Expr,
): Kernel {
  const b = new ExprBuilder();
  const o = b.variable("o", n);
  return {
    name,
    comment: name,
    outShape: [n],
    outVars: [o],
    outputs: [{ type: outType, value: value(b, o) }],
    outIndex: o,
    inputs: inputs.map((type) => ({ type, shape: [n], numel: n })),
    builder: b,
  };
}

/** `out[o] = in[o] + 1` over 3 float32 elements. */
function add1Kernel(): Kernel {
  return elementwiseKernel(
    "k_add1",
    3,
    "f32",
    ["f32"],
    (b, o) => b.add(b.load(0, o, "f32"), b.constant(1, "f32")),
  );
}

/** One launch of `kernel` on `backend` with the given input data. */
function launchOf(
  backend: WebGpuBackend,
  kernel: Kernel,
  inputs: readonly (Float32Array | Int32Array)[],
): Launch {
  const dtypeOf = (t: ScalarType): DType => (t === "i32" ? "int32" : "float32");
  const numel = kernel.outShape.reduce((a, d) => a * d, 1);
  return {
    executable: compile(kernel, WGSL_TARGET),
    outputs: [backend.allocate(dtypeOf(kernel.outputs[0].type), numel)],
    inputs: inputs.map((data, i) => backend.upload(data, dtypeOf(kernel.inputs[i].type))),
  };
}

Deno.test("webgpu: the test device table includes webgpu when there is an adapter", () => {
  assertEquals(testDevices.includes("webgpu"), webgpuAvailable);
});

Deno.test("webgpu: available() agrees with the adapter probe", async () => {
  assertEquals(await webgpu.available(), webgpuAvailable);
});

Deno.test("webgpu: concurrent runs pop their own error scopes (helper-127)", gpuTest, async () => {
  // a run popped its second scope after an await, when another run had pushed its own: each
  // took the other's out-of-memory scope, and so its errors
  const graphs = [0, 1, 2, 3].map((k) => () => tensor([1, 2, 3], { device: "webgpu" }).add(k));
  for (const make of graphs) await make().data(); // pipelines compiled: the runs only run
  const calls = await assertErrorScopesNest(async () => {
    const reads = await Promise.all(graphs.map((make) => make().data()));
    assertEquals(reads.map((r) => Array.from(r)), [[1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]);
  });
  assert(calls.length >= 16, `four runs, two scopes each: ${calls}`);
});

Deno.test("webgpu: elementwise ops and broadcasting match the reference", gpuTest, async () => {
  const x = tensor(values(24), { shape: [2, 3, 4] });
  const pos = tensor(values(24, 0.1, 3, 2), { shape: [2, 3, 4] });
  const row = tensor(values(4, -1, 1, 3), { shape: [4] });
  const cases: [string, Tensor[], (...t: Tensor[]) => Tensor][] = [
    ["neg", [x], (a) => a.neg()],
    ["exp", [x], (a) => a.exp()],
    ["log", [pos], (a) => a.log()],
    ["sqrt", [pos], (a) => a.sqrt()],
    ["rsqrt", [pos], (a) => a.rsqrt()],
    ["recip", [pos], (a) => a.recip()],
    ["square", [x], (a) => a.square()],
    ["abs", [x], (a) => a.abs()],
    ["relu", [x], (a) => a.relu()],
    ["sigmoid", [x], (a) => a.sigmoid()],
    ["tanh", [x], (a) => a.tanh()],
    ["sign", [x], (a) => a.sign()],
    ["add broadcast", [x, row], (a, r) => a.add(r.expand(2, 3, 4))],
    ["sub", [x, pos], (a, p) => a.sub(p)],
    ["mul scalar", [x], (a) => a.mul(-1.5)],
    ["div", [x, pos], (a, p) => a.div(p)],
    ["pow", [pos, x], (p, a) => p.pow(a)],
    ["pow -0.75", [pos], (p) => p.pow(-0.75)],
    ["negative base, integer exponent", [x, tensor(3)], (a, e) => a.pow(e.expand(2, 3, 4))],
    ["maximum", [x, pos], (a, p) => a.maximum(p)],
    ["minimum", [x, pos], (a, p) => a.minimum(p)],
    ["lt", [x, pos], (a, p) => a.lt(p)],
    ["gt", [x], (a) => a.gt(0.5)],
    ["eq", [x], (a) => a.eq(a.mul(1))],
    ["affine", [x], (a) => a.affine(0.25, 1e-4)],
    ["chain", [x, pos], (a, p) => a.mul(p).add(1).div(p.add(a.abs())).sigmoid().mul(a)],
  ];
  for (const [what, inputs, fn] of cases) await matchesReference(what, inputs, fn);
});

Deno.test("webgpu: reductions match the reference", gpuTest, async () => {
  const x = tensor(values(2 * 5 * 7), { shape: [2, 5, 7] });
  await matchesReference("sum all", [x], (a) => a.sum());
  await matchesReference("sum axis 1", [x], (a) => a.sum(1));
  await matchesReference("sum axes 0,2 keepdim", [x], (a) => a.sum([0, 2], true));
  await matchesReference("max axis -1", [x], (a) => a.max(-1));
  await matchesReference("max all", [x], (a) => a.max());
  await matchesReference("mean axis 0", [x], (a) => a.mean(0));
  await matchesReference("softmax", [x], (a) => {
    const e = a.sub(a.max(-1, true).expand(2, 5, 7)).exp();
    return e.div(e.sum(-1, true).expand(2, 5, 7));
  });
  const long = tensor(values(10_000, -1, 1, 5), { shape: [10_000] });
  await matchesReference("sum of 10000", [long], (a) => a.sum(), { rtol: 1e-4, atol: 1e-4 });
});

Deno.test("webgpu: pad, unfoldDim and other views match the reference", gpuTest, async () => {
  const x = tensor(values(2 * 6 * 3 * 4), { shape: [2, 6, 3, 4] });
  await matchesReference("pad", [x], (a) => a.pad([[0, 0], [2, 1], [0, 0], [1, 0]], -3));
  await matchesReference("permute", [x], (a) => a.permute(2, 0, 3, 1).exp());
  await matchesReference("transpose", [x], (a) => a.transpose().add(1));
  await matchesReference("slice", [x], (a) => a.slice(1, 2, 5).mul(2));
  await matchesReference("unfoldDim", [x], (a) => a.unfoldDim(1, 3, 2).sum(-1));
  // LRN-like: the sum of squares over a window of 5 channels, padded by 2 on each side
  await matchesReference("lrn window", [x], (a) => {
    const windows = a.square().pad([[0, 0], [2, 2], [0, 0], [0, 0]]).unfoldDim(1, 5, 1);
    const scale = windows.sum(-1).mul(1e-4 / 5).add(2).pow(-0.75);
    return a.mul(scale);
  });
});

Deno.test("webgpu: int32 ops match the reference, with 32-bit wrap-around", gpuTest, async () => {
  const a = tensor(ints(30, -1000, 1000), { shape: [5, 6] });
  const b = tensor(ints(30, -50, 50, 11), { shape: [5, 6] });
  const big = tensor([2147483647, -2147483648, 1 << 30, -7], { dtype: "int32" });
  await matchesReference("add", [a, b], (x, y) => x.add(y));
  await matchesReference("mul", [a, b], (x, y) => x.mul(y));
  await matchesReference("neg abs", [a], (x) => x.neg().abs());
  await matchesReference("max min", [a, b], (x, y) => x.maximum(y).sub(x.minimum(y)));
  await matchesReference("square", [b], (x) => x.square());
  await matchesReference("sign", [a], (x) => x.sign());
  await matchesReference("lt eq", [a, b], (x, y) => x.lt(y).add(x.eq(y)));
  await matchesReference("sum axis", [a], (x) => x.sum(1));
  await matchesReference("max axis", [a], (x) => x.max(0));
  await matchesReference(
    "pad window sum",
    [a],
    (x) => x.pad([[1, 1], [0, 0]]).unfoldDim(0, 3).sum(-1),
  );
  await matchesReference("cast from float", [a], (x) => x.cast("float32").mul(0.37).cast("int32"));
  await matchesReference("to float", [a], (x) => x.div(7));
  await matchesReference("wrap", [big], (x) => x.add(1).mul(3));
  // hand-worked: 2147483647 + 1 wraps to -2147483648; -2147483648 * 2 wraps to 0
  const wrapped = tensor([2147483647, -2147483648], { dtype: "int32", device: "webgpu" });
  assertEquals(Array.from(await wrapped.add(1).data()), [-2147483648, -2147483647]);
  assertEquals(Array.from(await wrapped.mul(2).data()), [-2, 0]);
});

Deno.test("webgpu: floor division, literals and pow run as printed", gpuTest, async () => {
  const backend = webgpuBackend();
  const xs = Int32Array.from([-7, -6, -1, 0, 1, 5, 6, 7]);
  const n = xs.length;
  const floorDiv = elementwiseKernel("k_floor_div", n, "i32", ["i32"], (b, o) => {
    const x = b.load(0, o, "i32");
    const three = b.constant(3, "i32");
    return b.add(
      b.mul(b.binary("idiv", x, three), b.constant(100, "i32")),
      b.binary("imod", x, three),
    );
  });
  const l1 = launchOf(backend, floorDiv, [xs]);
  await backend.run([l1]);
  const expectedDiv = Array.from(xs, (x) => Math.floor(x / 3) * 100 + (x - Math.floor(x / 3) * 3));
  assertEquals(Array.from(await backend.read(l1.outputs[0])), expectedDiv);
  // special constants: +inf, -inf, NaN, -0, tiny and huge finite values, INT_MIN
  const specials = [Infinity, -Infinity, NaN, -0, 1e-5, 3.4028234663852886e38, -1e-30, 0.1];
  const pick = elementwiseKernel("k_specials", specials.length, "f32", ["f32"], (b, o) => {
    let value = b.constant(specials[specials.length - 1], "f32");
    for (let i = specials.length - 2; i >= 0; i--) {
      value = b.select(b.binary("eq", o, b.int(i)), b.constant(specials[i], "f32"), value);
    }
    return b.add(value, b.load(0, o, "f32")); // + 0 read at run time: nothing folds
  });
  const l2 = launchOf(backend, pick, [new Float32Array(specials.length)]);
  await backend.run([l2]);
  const got = await backend.read(l2.outputs[0]);
  assertClose(got, specials.map((v) => Math.fround(v)), { rtol: 0, atol: 0 });
  const intMin = elementwiseKernel(
    "k_int_min",
    2,
    "i32",
    ["i32"],
    (b, o) => b.add(b.load(0, o, "i32"), b.constant(-2147483648, "i32")),
  );
  const l3 = launchOf(backend, intMin, [Int32Array.from([0, 5])]);
  await backend.run([l3]);
  assertEquals(Array.from(await backend.read(l3.outputs[0])), [-2147483648, -2147483643]);
  // pow as in JavaScript: negative bases with integer exponents, and x ** 0 = 1
  const bases = Float32Array.from([-2, -2, -0.5, 0, 3, -3, 2]);
  const exps = Float32Array.from([3, 2, -1, 0, 0.5, 0, 1.5]);
  const pow = elementwiseKernel(
    "k_pow",
    7,
    "f32",
    ["f32", "f32"],
    (b, o) => b.binary("pow", b.load(0, o, "f32"), b.load(1, o, "f32")),
  );
  const l4 = launchOf(backend, pow, [bases, exps]);
  await backend.run([l4]);
  assertClose(await backend.read(l4.outputs[0]), Array.from(bases, (x, i) => x ** exps[i]));
  // more than 32 index temporaries (none may be named i32, WGSL's type)
  const table = Int32Array.from([10, 11, 12, 13, 14, 15, 16]);
  const deep = elementwiseKernel("k_deep_index", 16, "i32", ["i32"], (b, o) => {
    let index: Expr = o;
    for (let k = 1; k <= 20; k++) {
      index = b.binary("imod", b.add(b.mul(index, o), b.int(k)), b.int(7));
    }
    return b.load(0, index, "i32");
  });
  const l5 = launchOf(backend, deep, [table]);
  await backend.run([l5]);
  const expectedDeep = Array.from({ length: 16 }, (_, o) => {
    let index = o;
    for (let k = 1; k <= 20; k++) index = (index * o + k) % 7;
    return table[index];
  });
  assertEquals(Array.from(await backend.read(l5.outputs[0])), expectedDeep);
  for (const l of [l1, l2, l3, l4, l5]) {
    for (const b of [...l.outputs, ...l.inputs]) backend.release(b);
  }
});

Deno.test("webgpu: tanh keeps its relative accuracy near 0, -0 and NaN", gpuTest, async () => {
  // the builtin cancels near 0 on llvmpipe (1e-2 relative at 1e-6, tanh(x) >= x at 0.0035) and
  // gives -1 for NaN; the printed tanh_f32 keeps a few ulp everywhere
  const xs = [1e-30, 1e-6, -1e-5, 1e-4, 0.0035, -0.05, 0.1249, 0.125, -0.3, 2, -9, 100];
  const x = tensor([...xs, -0, NaN], { device: "webgpu" });
  const got = await x.tanh().data();
  const want = xs.map((v) => Math.tanh(Math.fround(v)));
  assertClose(got.slice(0, xs.length), want, { rtol: 1e-6, atol: 0, msg: "tanh" });
  assert(got[4] < Math.fround(0.0035), `tanh(0.0035) < 0.0035, got ${got[4]}`);
  assert(Object.is(got[xs.length], -0), `tanh(-0) is -0, got ${got[xs.length]}`);
  assert(Number.isNaN(got[xs.length + 1]), `tanh(NaN) is NaN, got ${got[xs.length + 1]}`);
});

Deno.test(
  "webgpu: NaN propagates through max, min, relu, sign and max-reduce",
  gpuTest,
  async () => {
    // WGSL's max and min return the non-NaN operand; JavaScript's (and IEEE propagation) give NaN
    const xs = [NaN, 1, -Infinity, Infinity, 0, -2.5];
    const cpu = tensor(xs);
    const gpu = tensor(xs, { device: "webgpu" });
    const cases: [string, (t: Tensor) => Tensor][] = [
      ["maximum", (t) => t.maximum(0.5)],
      ["minimum", (t) => t.minimum(0.5)],
      ["maximum, NaN second", (t) => tensor(0.5, { device: t.device }).maximum(t)],
      ["relu", (t) => t.relu()],
      ["sign", (t) => t.sign()],
      ["max over all", (t) => t.max()],
      ["max over rows", (t) => t.reshape(2, 3).max(1)],
      ["max over columns", (t) => t.reshape(3, 2).max(0)],
    ];
    for (const [name, f] of cases) {
      const expected = f(cpu);
      await expected.realize();
      assertClose(await f(gpu).data(), reference(expected), { msg: name });
    }
  },
);

Deno.test("webgpu: pow of a zero base follows JavaScript", gpuTest, async () => {
  // WGSL's pow is undefined for a zero base; Math.pow gives 0 or Infinity (signed for -0)
  const bases = [0, 0, -0, -0, -0, -0, 0, 2, -8];
  const exps = [-1, 2, -1, -2, 3, -0.5, 0.5, -1, 1 / 3];
  const got = await tensor(bases, { device: "webgpu" })
    .pow(tensor(exps, { device: "webgpu" })).data();
  const want = bases.map((x, i) => Math.pow(x, Math.fround(exps[i])));
  assertClose(got, want, { msg: "pow" });
  want.forEach((w, i) => {
    if (w === 0) assert(Object.is(got[i], w), `${bases[i]} ** ${exps[i]} is ${w}, got ${got[i]}`);
  });
});

Deno.test("webgpu: a kernel over 4.5M elements runs on a 2-D grid", gpuTest, async () => {
  const rows = 1500;
  const cols = 3000;
  const n = rows * cols; // 70313 workgroups of 64: more than 65535
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (i % 9973) - 4986;
  using x = tensor(data, { shape: [rows, cols], device: "webgpu" });
  const colTerm = tensor(Float32Array.from({ length: cols }, (_, j) => j), { device: "webgpu" });
  using y = x.mul(2).add(colTerm.expand(rows, cols));
  assertStringIncludes(kernels(y)[0].source, "nwg.x * 64u");
  const out = await y.data();
  assertEquals(out.length, n);
  let bad = -1;
  for (let i = 0; i < n; i++) {
    if (out[i] !== data[i] * 2 + (i % cols)) {
      bad = i;
      break;
    }
  }
  assertEquals(bad, -1, `first wrong element ${bad}: ${out[bad]}`);
});

Deno.test("webgpu: gradients computed on webgpu match the reference", gpuTest, async () => {
  const data = values(12);
  const run = (device: "cpu" | "webgpu") => {
    const x = tensor(data, { shape: [3, 4], device, requiresGrad: true });
    x.mul(x).sigmoid().sum(1).exp().sum().backward();
    return x.grad!;
  };
  const expected = reference(run("cpu"));
  assertClose(await run("webgpu").data(), expected, { rtol: 2e-5, atol: 2e-6 });
});

Deno.test(
  "webgpu: 2,000 realize+dispose iterations keep liveBuffers bounded",
  gpuTest,
  async () => {
    const before = webgpu.liveBuffers();
    let peak = before;
    let last: ArrayLike<number> = [];
    for (let i = 0; i < 2000; i++) {
      const v = (i % 10) * 0.1;
      using x = tensor([v, v + 1, v + 2, v + 3], { device: "webgpu" });
      using y = x.mul(2).exp().add(x).sum();
      using z = y.add(x.max());
      await z.realize();
      peak = Math.max(peak, webgpu.liveBuffers());
      if (i === 1999) last = await z.data();
    }
    // earlier tests' garbage may be collected meanwhile, so the count may also drop
    assertLessOrEqual(webgpu.liveBuffers(), before);
    assertLessOrEqual(peak, before + 2); // x and z of one iteration
    const v = 0.9;
    const xs = [v, v + 1, v + 2, v + 3].map(Math.fround);
    const expected = xs.reduce((s, x) => s + Math.exp(2 * x) + x, 0) + xs[3];
    assertClose(last, [expected]);
    // the same structure compiled once
    const pipelines = webgpuBackend().cachedPipelines();
    using a = tensor([4, 3, 2, 1], { device: "webgpu" });
    using b = a.mul(2).exp().add(a).sum().add(a.max());
    await b.realize();
    assertEquals(webgpuBackend().cachedPipelines(), pipelines);
  },
);

Deno.test(
  "webgpu: uploads are submitted as they pile up and at the end of the task, kernel or not",
  gpuTest,
  async () => {
    // the queue keeps a staging copy of each write until its next submit: a loop that only made
    // and disposed 4 MB tensors grew the process by 4 MB a step (620 MB in 150) unseen
    const backend = new WebGpuBackend();
    await backend.acquireDevice();
    const data = new Float32Array(1_000_000).fill(0.5);
    let most = 0;
    for (let i = 0; i < 20; i++) {
      backend.release(backend.upload(data, "float32"));
      most = Math.max(most, backend.unsubmittedBytes());
    }
    assert(most > 0 && most <= 16 * 1024 * 1024, `${most} bytes held`);
    await null; // the end of the task that wrote
    assertEquals(backend.unsubmittedBytes(), 0);
    // and what was written is what is read
    const b = backend.upload(Float32Array.from([1, 2, 3]), "float32");
    assertEquals(Array.from(await backend.read(b)), [1, 2, 3]);
    backend.release(b);
  },
);

Deno.test(
  "webgpu: released storage is pooled and handed out under a new handle",
  gpuTest,
  async () => {
    const backend = new WebGpuBackend();
    await backend.acquireDevice();
    const a = backend.upload(Float32Array.from([1, 2, 3]), "float32");
    const storage = a.storage.gpu;
    assert(storage !== null);
    backend.release(a);
    assertEquals(backend.liveBuffers(), 0);
    const b = backend.upload(Float32Array.from([4, 5, 6]), "float32");
    assertNotStrictEquals<WebGpuBuffer>(b, a);
    assert(b.id !== a.id);
    assertStrictEquals(b.storage.gpu, storage);
    assertEquals(Array.from(await backend.read(b)), [4, 5, 6]);
    backend.release(b);
    backend.release(b); // a second release does nothing
    assertEquals(backend.liveBuffers(), 0);
    assertEquals(backend.deviceBuffers(), 1); // the pooled one
    backend.destroyDevice();
    assertEquals(backend.deviceBuffers(), 0);
  },
);

Deno.test(
  "webgpu: a full pool gives up the sizes released longest ago, and keeps the latest",
  gpuTest,
  async () => {
    // it destroyed every new size once full, and kept what filled it first for good: a loop of
    // changing sizes held 256 MB of sizes never asked for again
    const backend = new WebGpuBackend();
    await backend.acquireDevice();
    backend.poolLimitBytes = 4096;
    const sizes = [256, 512, 1024, 768, 2048]; // float32 elements: 1, 2, 4, 3, 8 KB
    const buffers = sizes.map((n) => backend.upload(new Float32Array(n).fill(n), "float32"));
    const storage = buffers.map((b) => b.storage.gpu);
    for (const b of buffers) backend.release(b);
    // 1 + 2 + 4 KB past 4 KB: the 1 and 2 KB go when 4 comes; 3 KB pushes out 4; 8 is too large
    assertEquals(backend.storageStats().bytesPooled, 3072);
    assertEquals(backend.deviceBuffers(), 1);
    const again = backend.upload(new Float32Array(768), "float32");
    assertStrictEquals(again.storage.gpu, storage[3], "the 3 KB buffer came back from the pool");
    assertEquals(Array.from((await backend.read(again)).slice(0, 2)), [0, 0]);
    assertEquals(backend.storageStats().bytesPooled, 0);
    backend.release(again);
    backend.destroyDevice();
  },
);

Deno.test("webgpu: mixing devices in one op throws", { ignore }, () => {
  const a = tensor([1, 2, 3], { device: "webgpu" });
  const b = tensor([1, 2, 3]);
  const error = assertThrows(() => a.add(b), Error);
  assertStringIncludes((error as Error).message, "webgpu");
  assertStringIncludes((error as Error).message, "cpu");
  assertThrows(() => b.mul(a), Error, "device");
});

Deno.test("webgpu: float64 tensors are refused with an error naming the call and float64", () => {
  // the backend's Error named "webgpu", not the function called, and no value
  const why = 'dtype must be "float32" or "int32" on "webgpu" (WGSL has no 64-bit floats; ' +
    'float64 lives on "cpu"), got "float64"';
  const webgpuOnly = { dtype: "float64", device: "webgpu" } as const;
  assertThrows(() => tensor([1.5], webgpuOnly), Error, `tensor: ${why}`);
  assertThrows(() => tensor(new Float64Array(2), { device: "webgpu" }), Error, `tensor: ${why}`);
  assertThrows(() => zeros([2], webgpuOnly), Error, `zeros: ${why}`);
  assertThrows(() => full([2], 1, webgpuOnly), Error, `full: ${why}`);
  assertThrows(() => randn([2], webgpuOnly), Error, `randn: ${why}`);
  assertThrows(() => tensor([1], { dtype: "float64" }).to("webgpu"), Error, `to: ${why}`);
  assertThrows(() => new WebGpuBackend().allocate("float64", 4), Error, "webgpu");
});

Deno.test("webgpu: a limit error is reported and the next call works", gpuTest, async () => {
  const device = await webgpuBackend().acquireDevice();
  const maxBinding = Math.min(
    device.limits.maxStorageBufferBindingSize,
    device.limits.maxBufferSize,
  );
  const before = webgpu.liveBuffers();
  // a broadcast view costs no memory; its sum with 1 would need an output above the limit
  const n = Math.floor(maxBinding / 4) + 64;
  const one = tensor([1], { device: "webgpu" });
  const tooBig = one.expand(n).add(1);
  const error = await assertRejects(() => tooBig.data(), Error, "maxStorageBufferBindingSize");
  assertStringIncludes((error as Error).message, String(n * 4));
  assertEquals(webgpu.liveBuffers(), before + 1); // only `one`; the failed output was released
  // more storage buffers than one shader stage may bind
  const backend = webgpuBackend();
  const count = device.limits.maxStorageBuffersPerShaderStage; // inputs; + 1 output is too many
  const wide = elementwiseKernel("k_wide", 4, "f32", Array(count).fill("f32"), (b, o) => {
    let sum = b.load(0, o, "f32");
    for (let i = 1; i < count; i++) sum = b.add(sum, b.load(i, o, "f32"));
    return sum;
  });
  const launch = launchOf(backend, wide, Array.from({ length: count }, () => new Float32Array(4)));
  await assertRejects(() => backend.run([launch]), Error, "maxStorageBuffersPerShaderStage");
  for (const b of [...launch.outputs, ...launch.inputs]) backend.release(b);
  // the backend is still usable
  assertEquals(
    Array.from(await one.expand(3).add(tensor([1, 2, 3], { device: "webgpu" })).data()),
    [2, 3, 4],
  );
});

Deno.test("webgpu: to('webgpu') and to('cpu') round trips keep the values", gpuTest, async () => {
  const f = values(50);
  const i = ints(50, -100000, 100000);
  const cpuF = tensor(f, { shape: [5, 10] });
  const cpuI = tensor(i, { shape: [5, 10] });
  const gpuF = cpuF.to("webgpu");
  assertEquals(gpuF.device, "webgpu");
  assertStrictEquals(gpuF.to("webgpu"), gpuF);
  assertEquals(await gpuF.to("cpu").data(), f);
  assertEquals(await cpuI.to("webgpu").to("cpu").data(), i);
  assertEquals(cpuI.to("webgpu").to("cpu").dtype, "int32");
  // compute on webgpu, continue on cpu, and back
  const back = cpuF.to("webgpu").mul(3).to("cpu").add(1).to("webgpu").sum(1);
  const expected = reference(cpuF.mul(3).add(1).sum(1));
  assertClose(await back.data(), expected);
  // a cpu tensor moved to webgpu is a leaf on webgpu, read back exactly
  assertEquals(await tensor(f).to("webgpu").data(), f);
});

Deno.test("webgpu: empty tensors never launch and read back empty", gpuTest, async () => {
  const empty = tensor(new Float32Array(0), { shape: [0, 3], device: "webgpu" });
  assertEquals((await empty.data()).length, 0);
  assertEquals((await empty.exp().data()).length, 0);
  // a reduction over an empty axis reads an empty buffer and gives the identity
  assertEquals(Array.from(await empty.sum(0).data()), [0, 0, 0]);
});

Deno.test(
  "webgpu: a lost device is reported once, then a new one is acquired",
  gpuTest,
  async () => {
    const backend = new WebGpuBackend();
    const add1 = add1Kernel();
    const first = launchOf(backend, add1, [Float32Array.from([1, 2, 3])]);
    await backend.run([first]);
    assertEquals(Array.from(await backend.read(first.outputs[0])), [2, 3, 4]);
    const device = await backend.acquireDevice();
    device.destroy();
    await device.lost;
    const second = launchOf(backend, add1, [Float32Array.from([5, 6, 7])]);
    await assertRejects(
      () => backend.run([second]),
      Error,
      "lost",
    );
    // the next call acquires a new device; data uploaded meanwhile is still on the host
    await backend.run([second]);
    assertEquals(Array.from(await backend.read(second.outputs[0])), [6, 7, 8]);
    assertNotStrictEquals(await backend.acquireDevice(), device);
    // what lived on the old device is gone, and saying so is an error
    await assertRejects(() => backend.read(first.outputs[0]), Error, "lost with the device");
    for (const b of [first.outputs[0], ...first.inputs, second.outputs[0], ...second.inputs]) {
      backend.release(b);
    }
    assertEquals(backend.liveBuffers(), 0);
    backend.destroyDevice();
  },
);

Deno.test(
  "webgpu: a lost device takes its buffers, pool and pipelines with it",
  gpuTest,
  async () => {
    const backend = new WebGpuBackend();
    const device = await backend.acquireDevice();
    const add1 = add1Kernel();
    const kept = launchOf(backend, add1, [Float32Array.from([1, 2, 3])]);
    await backend.run([kept]);
    const pooled = backend.upload(Float32Array.from([4, 5, 6]), "float32");
    backend.release(pooled);
    // kept's input and output in use, one pooled
    assertEquals(backend.deviceBuffers(), 3);
    assertEquals(backend.cachedPipelines(), 1);
    device.destroy();
    await device.lost;
    // everything made on the device was destroyed with it, nothing waits for a collector
    assertEquals(backend.deviceBuffers(), 0);
    assertEquals(backend.cachedPipelines(), 0);
    await assertRejects(() => backend.read(kept.outputs[0]), Error, "the device was lost");
    // a release after the loss only forgets the handle: nothing goes to the new device's pool
    backend.release(kept.inputs[0]);
    assertEquals(backend.liveBuffers(), 1);
    const fresh = backend.upload(Float32Array.from([7, 8, 9]), "float32");
    const again = launchOf(backend, add1, [Float32Array.from([7, 8, 9])]);
    await backend.run([again]);
    assertEquals(Array.from(await backend.read(again.outputs[0])), [8, 9, 10]);
    assertEquals(Array.from(await backend.read(fresh)), [7, 8, 9]);
    await assertRejects(() => backend.read(kept.outputs[0]), Error, "lost with the device");
    assertEquals(backend.cachedPipelines(), 1); // compiled again on the new device
    for (const b of [kept.outputs[0], fresh, again.outputs[0], ...again.inputs]) backend.release(b);
    assertEquals(backend.liveBuffers(), 0);
    // pooled: again's input and output (fresh stayed on the host: no kernel needed it)
    assertEquals(backend.deviceBuffers(), 2);
    backend.destroyDevice();
    assertEquals(backend.deviceBuffers(), 0);
  },
);

Deno.test(
  "webgpu: a device given up with destroyDevice() is replaced without a loss report",
  gpuTest,
  async () => {
    const backend = new WebGpuBackend();
    const onGpu = backend.upload(Float32Array.from([1, 2]), "float32");
    const first = await backend.acquireDevice();
    const staying = backend.upload(Float32Array.from([3, 4]), "float32"); // straight to the GPU
    assertEquals(Array.from(await backend.read(staying)), [3, 4]);
    // a read that started before the device was given up fails saying so
    const inFlight = backend.read(staying);
    backend.destroyDevice();
    assertEquals(backend.deviceBuffers(), 0);
    backend.destroyDevice(); // twice does nothing
    await assertRejects(() => inFlight, Error, "given up while this call ran");
    // no loss to report: the next call gets a new device; host data is still there
    assertEquals(Array.from(await backend.read(onGpu)), [1, 2]);
    const second = await backend.acquireDevice();
    assertNotStrictEquals(second, first);
    await assertRejects(() => backend.read(staying), Error, "lost with the device");
    backend.release(onGpu);
    backend.release(staying);
    assertEquals(backend.liveBuffers(), 0);
    backend.destroyDevice();
  },
);

Deno.test(
  "webgpu: a test process that lost devices under live, pooled and collected buffers exits 0",
  gpuTest,
  async () => {
    // issue 8: such a process aborted at exit (`double free or corruption`) now and then; the
    // child (webgpu_loss_child.ts, run by `deno test` as the suite is) runs the sequence, three
    // times to give a flaky abort more than one chance
    const expected = [
      "work: 2 3 4 5",
      "private loss: read in flight settled true, device buffers 0, reported true, new device " +
      "reads 10 11, live buffers 0, device buffers 1",
      "private device given up: device buffers 0",
      "global loss: reported true, old value gone true, recovered 3 6, pipelines 1",
      "loss before its event: errors lost, then 2 4",
      "two reads at a loss: lost, lost, then 10",
      "optimizers after a loss: reported true, SGD stepped 0.800 1.600 2.400, momentum SGD: " +
      "SGD.step: parameter 0's momentum buffer must be live (it was lost with the webgpu device " +
      "it lived on: a new optimizer starts it again), got a lost device's buffer",
      "pending momentum: SGD.step: parameter 0's momentum buffer must be live (it was lost with " +
      "the webgpu device it lived on: a new optimizer starts it again), got a lost device's buffer",
      "exit with live buffers",
    ];
    const child = new URL("./webgpu_loss_child.ts", import.meta.url).pathname;
    const config = new URL("../deno.json", import.meta.url).pathname;
    for (let run = 1; run <= 3; run++) {
      const { code, signal, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "test",
          `--config=${config}`,
          "--allow-env",
          "--allow-read",
          "--v8-flags=--expose-gc",
          child,
        ],
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(stdout);
      const err = new TextDecoder().decode(stderr);
      const what = `run ${run}: exit ${code}${signal ? ` (${signal})` : ""}\n${out}\n${err}`;
      assertEquals(code, 0, what);
      const lines = out.split("\n").filter((line) => line.startsWith("child: "));
      assertEquals(lines.map((line) => line.slice("child: ".length)), expected, what);
      assertStringIncludes(out, "ok | 1 passed", what);
    }
  },
);

Deno.test("webgpu: without navigator.gpu or an adapter, running names what is missing", async () => {
  const add1 = add1Kernel();
  const noGpu = new WebGpuBackend(() => undefined);
  assertEquals(await noGpu.available(), false);
  // creating buffers is synchronous and works; the data waits on the host
  const launch = launchOf(noGpu, add1, [Float32Array.from([1, 2, 3])]);
  assertEquals(Array.from(await noGpu.read(launch.inputs[0])), [1, 2, 3]);
  await assertRejects(() => noGpu.run([launch]), Error, "navigator.gpu");
  const noAdapter = new WebGpuBackend(() =>
    ({ requestAdapter: () => Promise.resolve(null) }) as unknown as GPU
  );
  assertEquals(await noAdapter.available(), false);
  const launch2 = launchOf(noAdapter, add1, [Float32Array.from([1, 2, 3])]);
  await assertRejects(() => noAdapter.run([launch2]), Error, "adapter");
  // the error repeats: nothing is cached from a failed acquisition
  await assertRejects(() => noAdapter.run([launch2]), Error, "adapter");
});

const gc = (globalThis as { gc?: () => void; }).gc;

Deno.test({
  name: "webgpu: leaf storage dropped without dispose() is released at garbage collection",
  // needs `deno test --v8-flags=--expose-gc`; no adapter needed (the data stays on the host)
  ignore: gc === undefined,
  fn: async () => {
    const backend = new WebGpuBackend(() => undefined);
    (() => {
      for (let i = 0; i < 100; i++) backend.upload(Float32Array.from([i, i + 1]), "float32");
    })();
    assertEquals(backend.liveBuffers(), 100);
    for (let i = 0; i < 10 && backend.liveBuffers() > 0; i++) {
      gc!();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assertEquals(backend.liveBuffers(), 0);
  },
});

Deno.test({
  ...gpuTest,
  name: "webgpu: max over a padded axis long enough for workgroup lanes (NaN and -0 too)",
  fn: async () => {
    // the lanes' combine step was the kernel's own, decomposed through the pad's select: it
    // named the loop variable outside its loop ("no spelling for op var", then a WGSL error)
    for (const n of [16385, 20000, 65535]) {
      const data = new Float32Array(n).fill(-1);
      data[123] = 3;
      for (const [at, value] of [[7, 3], [n - 1, NaN], [0, -0]] as const) {
        const values = data.slice();
        if (Object.is(value, -0)) values.fill(-0);
        else values[at] = value;
        const cpu = tensor(values).pad([[1, 0]], Object.is(value, -0) ? -0 : -5).max();
        const gpu = tensor(values, { device: "webgpu" }).pad(
          [[1, 0]],
          Object.is(value, -0) ? -0 : -5,
        )
          .max();
        const want = reference(cpu)[0];
        const got = await gpu.item();
        assert(Object.is(got, want), `n ${n}, ${value} at ${at}: got ${got}, expected ${want}`);
      }
    }
  },
});

/** Asserts `gpu` holds `cpu`'s values bit for bit (NaN as NaN, and each zero's sign). */
async function assertLikeCpu(name: string, gpu: Tensor, cpu: Tensor): Promise<void> {
  const [got, want] = [Array.from(await gpu.data()), Array.from(await cpu.data())];
  got.forEach((v, i) => assert(Object.is(v, want[i]), `${name}: got [${got}], cpu [${want}]`));
}

Deno.test({
  ...gpuTest,
  name: "webgpu: a sum of -0 values is +0 as on the cpu, however short",
  fn: async () => {
    // an unrolled sum started from the literal 0.0, which the driver folded into the first
    // add: 2 to 8 terms of -0 gave -0 (mean and sum over an axis too), the cpu +0
    const cases: [string, (device: "cpu" | "webgpu") => Tensor][] = [
      ...[1, 2, 3, 5, 8, 64].map((n): [string, (device: "cpu" | "webgpu") => Tensor] => [
        `sum of ${n}`,
        (device) => full([n], -0, { device }).sum(),
      ]),
      ["mean", (device) => full([2, 2], -0, { device }).mean()],
      ["sum(1)", (device) => full([2, 2], -0, { device }).sum(1)],
    ];
    for (const [name, make] of cases) await assertLikeCpu(name, make("webgpu"), make("cpu"));
  },
});

Deno.test({
  ...gpuTest,
  name: "webgpu: an integer converted to float32 is never -0",
  fn: async () => {
    // llvmpipe folded `f32(i32(x))` into a truncation keeping x's sign: -0.5 through int32 and
    // back gave -0 (its reciprocal -Infinity), and so did int32 0 ** -1 and rsqrt(0) of one
    const values = [-0.5, -0.9, 0.5, -0, -1.5];
    const cases: [string, (t: Tensor) => Tensor][] = [
      ["cast(int32).cast(float32).recip()", (t) => t.cast("int32").cast("float32").recip()],
      ["cast(int32).pow(-1)", (t) => t.cast("int32").pow(-1)],
      ["cast(int32).rsqrt()", (t) => t.cast("int32").rsqrt()],
    ];
    for (const [name, op] of cases) {
      await assertLikeCpu(
        `${name} of [${values}]`,
        op(tensor(values, { device: "webgpu" })),
        op(tensor(values)),
      );
    }
  },
});

Deno.test({
  ...gpuTest,
  name: "webgpu: multiplying or dividing by a constant zero keeps IEEE's NaN, Infinity and -0",
  fn: async () => {
    // the shader compiler folded `x * 0.0` (and a private variable holding 0) to 0: Infinity * 0
    // and NaN * 0 gave 0, 1 * -0 gave +0
    const values = [Infinity, NaN, -1, 2, -0];
    const cases: [string, (t: Tensor) => Tensor][] = [
      ["mul(0)", (t) => t.mul(0)],
      ["mul(-0)", (t) => t.mul(-0)],
      ["affine(0, 0)", (t) => t.affine(0, 0)],
      ["mul(-0).recip()", (t) => t.mul(-0).recip()],
      ["div(0)", (t) => t.div(0)],
      ["div(-0)", (t) => t.div(-0)],
    ];
    for (const [name, op] of cases) {
      // the cpu's values (IEEE: affine(0, 0) of -1 is -1 * 0 + 0, +0)
      await assertLikeCpu(
        `${name} of [${values}]`,
        op(tensor(values, { device: "webgpu" })),
        op(tensor(values)),
      );
    }
  },
});

Deno.test({
  name: "webgpu: to('cpu') of a value that cannot be computed fails only whoever reads the copy",
  ...gpuTest,
  fn: async () => {
    // the cpu side of the copy left a rejection nobody could handle: dropping the moved
    // tensor unread ended the process with "Uncaught (in promise)"
    const unhandled = await unhandledRejectionsOf(async () => {
      for (const readIt of [false, true]) {
        const x = tensor([1, 2, 3], { device: "webgpu" });
        const y = x.mul(2);
        x.dispose(); // computing y is now an Error for whoever computes it
        const moved = y.to("cpu");
        if (readIt) await assertRejects(() => moved.data(), Error, "disposed");
        moved.dispose();
        y.dispose();
      }
    });
    assertEquals(unhandled, []);
    // the library stays usable
    const z = tensor([1, 2, 3], { device: "webgpu" }).mul(2).to("cpu");
    assertEquals(Array.from(await z.data()), [2, 4, 6]);
  },
});
