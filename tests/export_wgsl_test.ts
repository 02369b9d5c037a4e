// The `wgsl` export: LocalResponseNorm forward and forward + backward exported for every golden
// case, run by the exported runner in a fresh Deno process (software adapter) that may read
// the export directory only, must give the golden values and the library's webgpu results bit
// for bit (the same WGSL on the same adapter). Then the manifest (checked against values worked
// out by hand), workgroup-mode and 2-D-grid kernels, and the checks the runner makes.

import { jit, tensor } from "../mod.ts";
import { exportCompiled } from "../src/export.ts";
import { VERSION } from "../src/version.ts";
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { assertClose, assertErrorScopesNest, webgpuAvailable } from "./helpers.ts";
import { assertSameValues, checkGoldenExports, lyingArray } from "./export_helpers.ts";

/** The runner's exports after importing its text. */
async function importModule(text: string) {
  return await import(`data:text/javascript;base64,${btoa(text)}`);
}

let device: GPUDevice | null = null;
async function gpuDevice(): Promise<GPUDevice> {
  device ??= await (await navigator.gpu.requestAdapter())!.requestDevice();
  return device;
}

Deno.test({
  name: "wgsl export: LRN golden cases run standalone and match the library and the goldens",
  ignore: !webgpuAvailable,
  fn: async () => {
    await checkGoldenExports("wgsl", "webgpu");
  },
});

Deno.test("wgsl export: the manifest says how to run every launch", async () => {
  const fn = jit((x, w) => ({ y: x.exp().mul(w).sum(1) }), { inputNames: ["x", "w"] });
  const { files } = await exportCompiled(fn, [{ shape: [1000, 3] }, { shape: [1000, 3] }], {
    target: "wgsl",
    name: "weighted",
  });
  const paths = files.map((f) => f.path);
  const kernelFiles = paths.filter((p) => p.endsWith(".wgsl"));
  assertEquals(paths, [...kernelFiles, "manifest.json", "weighted.js"]);
  const manifest = JSON.parse(files.find((f) => f.path === "manifest.json")!.contents);
  assertEquals(manifest.runner, "weighted.js");
  assertEquals(Object.keys(manifest).slice(0, 4), ["format", "generator", "name", "description"]);
  assertEquals(manifest.format, "lucid-nn-wgsl-export/1");
  assertEquals(manifest.name, "weighted");
  assertEquals(manifest.description, "computes y from x, w");
  assertEquals(manifest.generator, `@lucid/nn ${VERSION}`);
  assertEquals(manifest.inputs, [
    { name: "x", shape: [1000, 3], dtype: "float32" },
    { name: "w", shape: [1000, 3], dtype: "float32" },
  ]);
  assertEquals(manifest.outputs, [{ name: "y", shape: [1000], dtype: "float32" }]);
  assertEquals(manifest.launches.length, 1, "one fused kernel");
  const [launch] = manifest.launches;
  assertEquals(launch.order, 0);
  assertEquals(launch.workgroupSize, [64, 1, 1]);
  assertEquals(launch.dispatch, [16, 1, 1], "ceil(1000 / 64) workgroups");
  assertEquals(launch.bindings.map((b: { buffer: string; }) => b.buffer).sort(), ["w", "x", "y"]);
  const out = launch.bindings[0];
  assertEquals(out, {
    binding: 0,
    variable: "out",
    access: "read_write",
    buffer: "y",
    dtype: "float32",
    elements: 1000,
    bytes: 4000,
  });
  for (const b of launch.bindings.slice(1)) {
    assertEquals([b.access, b.elements, b.bytes], ["read", 3000, 12000]);
  }
  const wgsl = files.find((f) => f.path === launch.file)!.contents;
  assert(wgsl.includes(`fn ${launch.entryPoint}(`), "the entry point is in the file");
  assert(wgsl.includes("@compute @workgroup_size(64)"));
  const runner = files.find((f) => f.path === "weighted.js")!.contents;
  assert(runner.includes(wgsl.split("\n")[0]), "the runner embeds the same WGSL");
  assert(!runner.includes("import "), "the runner has no imports");
});

Deno.test({
  name: "wgsl export: workgroup-mode reductions, 2-D grids and intermediates run as the library",
  ignore: !webgpuAvailable,
  fn: async () => {
    // a reduction of 20000 per row runs with lanes in a workgroup; 4,194,500 elements need a
    // 2-D grid (more than 65535 workgroups of 64); the softmax-like chain has intermediates
    const long = jit((x) => ({ s: x.sum(1) }));
    const wide = jit((x) => ({ e: x.mul(0.5) }));
    const chain = jit((x) => {
      const e = x.sub(x.max(1, true)).exp();
      return { p: e.div(e.sum(1, true)) };
    });
    const cases = [
      { fn: long, shape: [3, 20000], check: "workgroupSize" },
      { fn: wide, shape: [4194500], check: "dispatch" },
      { fn: chain, shape: [7, 300], check: "intermediates" },
    ];
    for (const { fn, shape, check } of cases) {
      const { files } = await exportCompiled(fn, [{ shape }], { target: "wgsl" });
      const manifest = JSON.parse(files.find((f) => f.path === "manifest.json")!.contents);
      if (check === "workgroupSize") assertEquals(manifest.launches[0].workgroupSize, [64, 1, 1]);
      if (check === "workgroupSize") assertEquals(manifest.launches[0].dispatch, [3, 1, 1]);
      if (check === "dispatch") assertEquals(manifest.launches[0].dispatch, [65535, 2, 1]);
      const n = shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 4);
      const m = await importModule(files.find((f) => f.path === "model.js")!.contents);
      const [got] = await m.run(await gpuDevice(), data);
      const x = tensor(data, { shape, device: "webgpu" });
      const result = await fn(x);
      const want = await Object.values(result)[0].data();
      assertSameValues(got, want, `${check}: runner vs library`);
      if (check === "intermediates") {
        assert(manifest.buffers.some((b: { role: string; }) => b.role === "intermediate"));
        const rowSum = got.slice(0, 300).reduce((a: number, b: number) => a + b, 0);
        assertClose([rowSum], [1], { rtol: 1e-5, msg: "a softmax row sums to 1" });
      }
    }
  },
});

Deno.test({
  name: "wgsl export: the runner checks its device and inputs, and runs again on another device",
  ignore: !webgpuAvailable,
  fn: async () => {
    const w = tensor([2, -1, 0.5]);
    const fn = jit((x) => ({ y: x.mul(w), w }));
    const { files } = await exportCompiled(fn, [{ shape: [3] }], { target: "wgsl" });
    const m = await importModule(files.find((f) => f.path === "model.js")!.contents);
    await assertRejects(
      () => m.run({}, new Float32Array(3)),
      TypeError,
      "device must be a GPUDevice",
    );
    const gpu = await gpuDevice();
    await assertRejects(
      () => m.run(gpu, new Float64Array(3)),
      TypeError,
      "input x must be a Float32Array of 3 elements",
    );
    await assertRejects(() => m.run(gpu), TypeError, "expected 1 inputs (x), got 0");
    // the checks of the js and wasm modules: an Array had been "Array", the article missing
    await assertRejects(
      () => m.run(gpu, [1, 2, 3]),
      TypeError,
      "input x must be a Float32Array of 3 elements (float32[3]), got an Array of 3 elements",
    );
    // the length the engine knows, not the object's own (a subclass saying 3 over 1 value had
    // its one value uploaded and zeros after it); and the copy taken at the call is made by the
    // built-in constructor, not by a subclass's slice()
    await assertRejects(
      () => m.run(gpu, lyingArray(1, 3)),
      TypeError,
      "input x must be a Float32Array of 3 elements (float32[3]), got a Float32Array of 1 element",
    );
    const slicing = new (class extends Float32Array {
      override slice() {
        return new Float32Array(3);
      }
    })([1, 2, 3]);
    assertEquals(Array.from((await m.run(gpu, slicing))[0]), [2, -2, 1.5]);
    await assertRejects(
      () => m.run(new Float32Array(3), new Float32Array(3)),
      TypeError,
      "device must be a GPUDevice (from (await navigator.gpu.requestAdapter()).requestDevice()), got a Float32Array",
    );
    const x = Float32Array.from([1, 2, 3]);
    // the values at the call count: the caller refills x while the run awaits its pipelines
    // (a run computed on the new values, and in Chromium on zeros when x's buffer was transferred)
    const running = m.run(gpu, x);
    x.fill(0);
    const [y, weights] = await running;
    x.set([1, 2, 3]);
    assertEquals(Array.from(y), [2, -2, 1.5]);
    assertEquals(Array.from(weights), [2, -1, 0.5]);
    const other = await (await navigator.gpu.requestAdapter())!.requestDevice();
    const [y2] = await m.run(other, Float32Array.from([4, 5, 6]));
    assertEquals(Array.from(y2), [8, -5, 3]);
    other.destroy();
    const [y3] = await m.run(gpu, x);
    assertEquals(Array.from(y3), [2, -2, 1.5], "the first device still runs");
  },
});

Deno.test({
  name: "wgsl export: concurrent runs of the runner pop their own error scopes (helper-127)",
  ignore: !webgpuAvailable,
  fn: async () => {
    // the runner popped its second error scope after an await, as the library did: a run
    // started meanwhile took the other's out-of-memory scope, and its errors
    const fn = jit((x) => x.mul(2).add(1));
    const { files } = await exportCompiled(fn, [{ shape: [3] }], { target: "wgsl" });
    const m = await importModule(files.find((f) => f.path === "model.js")!.contents);
    const gpu = await gpuDevice();
    await m.run(gpu, new Float32Array(3)); // pipelines made
    await assertErrorScopesNest(async () => {
      const runs = [0, 1, 2].map((k) => m.run(gpu, new Float32Array([k, k + 1, k + 2])));
      const results = await Promise.all(runs);
      assertEquals(results.map(([y]) => Array.from(y)), [[1, 3, 5], [3, 5, 7], [5, 7, 9]]);
    });
  },
});

Deno.test("wgsl export: float64 is refused with a clear Error, before anything is written", async () => {
  const fn = jit((x) => x.mul(2));
  await assertRejects(
    () => exportCompiled(fn, [{ shape: [3], dtype: "float64" }], { target: "wgsl" }),
    Error,
    'exportCompiled: target "wgsl" has no float64 (WGSL has no 64-bit floats): export float32 values, or use target "js" or "wasm", got input x of type float64[3]',
  );
  const widened = jit((x) => x.cast("float64").mul(2));
  await assertRejects(
    () => exportCompiled(widened, [{ shape: [3] }], { target: "wgsl" }),
    Error,
    "kernel k_cast_mul of the function computes in float64",
  );
  const inside = jit((x) => x.cast("float64").exp().sum().cast("float32"));
  // a function returning a captured float64 tensor runs no kernel: the output check names it
  const captured = tensor([1, 2], { dtype: "float64" });
  await assertRejects(
    () =>
      exportCompiled(jit((x) => ({ x2: x.mul(2), captured })), [{ shape: [3] }], {
        target: "wgsl",
      }),
    Error,
    "got output captured of type float64[2]",
  );
  await assertRejects(
    () => exportCompiled(inside, [{ shape: [3] }], { target: "wgsl" }),
    Error,
    'computes in float64; export float32 values, or use target "js" or "wasm"',
  );
});

Deno.test({
  name: "wgsl export: a kernel the device rejects is an Error with the compiler's messages",
  ignore: !webgpuAvailable,
  fn: async () => {
    const fn = jit((x) => x.exp());
    const { files } = await exportCompiled(fn, [{ shape: [3] }], { target: "wgsl" });
    const runner = files.find((f) => f.path === "model.js")!.contents;
    const broken = runner.replace("  let gid: u32 = id.x;", "  let gid: u32 = id.x + undeclared;");
    assert(broken !== runner);
    const m = await importModule(broken);
    const gpu = await gpuDevice();
    const error: unknown = await m.run(gpu, new Float32Array(3)).then(
      () => null,
      (e: unknown) => e,
    );
    assert(error instanceof Error, "the run must fail");
    assert(
      error.message.startsWith("run: a kernel does not compile on this device: "),
      error.message,
    );
    // Deno's wgpu puts the parser's message in the error; Chrome gives it through
    // getCompilationInfo(), which the runner appends as "k_exp.wgsl:line:column: message"
    assert(error.message.includes("undeclared"), error.message);
    const good = await importModule(runner);
    assertEquals(Array.from((await good.run(gpu, new Float32Array(3)))[0]), [1, 1, 1]);
  },
});

Deno.test({
  name: "wgsl export: a lost device is named as lost, before or after a first run",
  ignore: !webgpuAvailable,
  fn: async () => {
    // a device destroyed after a run failed with a bare OperationError from mapAsync; before a
    // first run, the Error blamed the kernels ("does not compile on this device")
    const fn = jit((x) => x.mul(2));
    const { files } = await exportCompiled(fn, [{ shape: [4] }], { target: "wgsl" });
    const m = await importModule(files.find((f) => f.path === "model.js")!.contents);
    const adapter = (await navigator.gpu.requestAdapter())!;
    const x = new Float32Array([1, 2, 3, 4]);
    for (const runFirst of [true, false]) {
      const doomed = await adapter.requestDevice();
      if (runFirst) assertEquals(Array.from((await m.run(doomed, x))[0]), [2, 4, 6, 8]);
      doomed.destroy();
      await assertRejects(
        () => m.run(doomed, x),
        Error,
        "run: the device was lost (destroyed",
        `run first: ${runFirst}`,
      );
      // and again, at once
      await assertRejects(() => m.run(doomed, x), Error, "request a new GPUDevice");
    }
    assertEquals(Array.from((await m.run(await gpuDevice(), x))[0]), [2, 4, 6, 8]);
  },
});

Deno.test("wgsl export: indices past 32 bits are refused in the export's terms", async () => {
  // the device's advice ("run it on the cpu device") was passed through, which an export
  // cannot follow
  await assertRejects(
    () =>
      exportCompiled(jit((x) => x.add(1)), [{ shape: [1, 2, 1_100_000_000] }], { target: "wgsl" }),
    Error,
    'exportCompiled: target "wgsl" indexes with 32-bit integers (up to 2147483647), and kernel ' +
      "k_add of the function needs indices up to 2199999999; export smaller shapes, or use " +
      'target "js" or "wasm"',
  );
});

Deno.test({
  name: "wgsl export: overlapping runs on one device share intermediates safely",
  ignore: !webgpuAvailable,
  fn: async () => {
    const fn = jit((x) => x.exp().sum(1, true).log().sub(x)); // an intermediate: the row sums
    const { files } = await exportCompiled(fn, [{ shape: [64, 100] }], { target: "wgsl" });
    const m = await importModule(files.find((f) => f.path === "model.js")!.contents);
    const inputs = Array.from(
      { length: 6 },
      (_, k) => Float32Array.from({ length: 6400 }, (_, i) => Math.sin(i * (k + 1))),
    );
    const gpu = await gpuDevice();
    const outputs = await Promise.all(inputs.map((x) => m.run(gpu, x)));
    for (const [k, x] of inputs.entries()) {
      const want = await (await fn(tensor(x, { shape: [64, 100], device: "webgpu" }))).data();
      assertSameValues(outputs[k][0], want, `run ${k}`);
    }
  },
});
