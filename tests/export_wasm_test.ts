// The `wasm` export: LocalResponseNorm forward and forward + backward exported for every golden
// case, loaded in a fresh Deno process that may read the export directory only, must give the
// golden values and the library's own bit for bit (the library's cpu device runs the same Wasm
// kernels). Then: the manifest, checked by a host that runs the .wasm files from it alone;
// kernels Wasm does not compute embedded as JavaScript; intermediates sharing scratch blocks;
// outputs that are inputs, constants or repeated; the checks `run` makes; empty tensors and
// functions without kernels; memories beyond 4 GiB refused at export.

import { cpu, jit, realize, setFusion, type Tensor, tensor } from "../mod.ts";
import { exportCompiled } from "../src/export.ts";
import { VERSION } from "../src/version.ts";
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { assertClose } from "./helpers.ts";
import {
  assertInputChecks,
  assertOutputCopies,
  assertSameValues,
  checkGoldenExports,
  copiesFunction,
  importExported,
} from "./export_helpers.ts";

type Files = readonly { path: string; contents: string | Uint8Array; }[];

/** A text file of an export. */
function text(files: Files, path: string): string {
  const file = files.find((f) => f.path === path);
  if (typeof file?.contents !== "string") throw new Error(`no text file ${path}`);
  return file.contents;
}

Deno.test("wasm export: LRN golden cases run standalone and match the library and the goldens", async () => {
  await checkGoldenExports("wasm", "cpu");
});

Deno.test("wasm export: the manifest alone runs the .wasm files as the loader does", async () => {
  const fn = jit((x, w) => ({ y: x.exp().mul(w).sum(1) }), { inputNames: ["x", "w"] });
  const { files } = await exportCompiled(fn, [{ shape: [10, 3] }, { shape: [10, 3] }], {
    target: "wasm",
    name: "weighted",
  });
  assertEquals(files.map((f) => f.path), [
    "k_exp_mul_sum.wasm",
    "k_exp_mul_sum.wat",
    "manifest.json",
    "weighted.js",
  ]);
  const manifest = JSON.parse(text(files, "manifest.json"));
  assertEquals(manifest.loader, "weighted.js");
  assertEquals(Object.keys(manifest).slice(0, 4), ["format", "generator", "name", "description"]);
  assertEquals(manifest.format, "lucid-nn-wasm-export/1");
  assertEquals(manifest.name, "weighted");
  assertEquals(manifest.description, "computes y from x, w");
  assertEquals(manifest.generator, `@lucid/nn ${VERSION}`);
  // x and w: 120 bytes each, blocks of 128; y: 40 bytes at 256; one page holds all
  assertEquals(manifest.memory, { pages: 1, bytes: 320, shared: false });
  assertEquals(
    manifest.buffers.map((b: { name: string; offset: number; }) => [b.name, b.offset]),
    [["x", 0], ["w", 128], ["y", 256]],
  );
  assertEquals(manifest.launches, [{
    order: 0,
    kernel: "k_exp_mul_sum",
    kind: "wasm",
    buffers: ["y", "x", "w"],
    // y's 10 elements are the vectorized loop, split in groups of four: 3 of them
    arguments: [256, 0, 128, 0, 3],
  }]);
  // a host that knows the manifest's conventions and nothing of the loader
  const memory = new WebAssembly.Memory({ initial: manifest.memory.pages });
  const functions = new Map<string, (...args: number[]) => void>();
  for (const k of manifest.kernels) {
    const bytes = files.find((f) => f.path === k.file)!.contents as Uint8Array<ArrayBuffer>;
    assert(WebAssembly.validate(bytes), `${k.file} is a valid module`);
    const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
    functions.set(k.name, instance.exports[k.export] as (...args: number[]) => void);
  }
  const x = Float32Array.from({ length: 30 }, (_, i) => Math.sin(i) * 2);
  const w = Float32Array.from({ length: 30 }, (_, i) => (i % 7) - 3);
  const at = (name: string) => manifest.buffers.find((b: { name: string; }) => b.name === name);
  new Float32Array(memory.buffer, at("x").offset, 30).set(x);
  new Float32Array(memory.buffer, at("w").offset, 30).set(w);
  for (const launch of manifest.launches) functions.get(launch.kernel)!(...launch.arguments);
  const hosted = new Float32Array(memory.buffer, at("y").offset, 10).slice();
  const [y] = (await importExported(files, "weighted")).run(x, w);
  assertSameValues(hosted, y, "the manifest's host and the loader");
  const want = Array.from({ length: 10 }, (_, r) => {
    let s = 0;
    for (let c = 0; c < 3; c++) s += Math.exp(x[r * 3 + c]) * w[r * 3 + c];
    return s;
  });
  assertClose(y, want, { rtol: 1e-5, atol: 1e-5 });
  const wat = text(files, "k_exp_mul_sum.wat");
  assert(wat.includes('(import "env" "memory" (memory 1))'), "a memory that is not shared");
  assert(wat.includes('(export "k_exp_mul_sum" (func $k_exp_mul_sum))'));
});

Deno.test("wasm export: kernels Wasm does not compute are JavaScript in the loader", async () => {
  // a.exp(): float32, Wasm; d.exp(): float64, JavaScript, with the same name k_exp; n * 3:
  // int32, JavaScript; a ** a: a general pow, JavaScript
  const fn = jit((a, d, n) => ({ e: a.exp(), d2: d.exp(), n3: n.mul(3), p: a.pow(a) }), {
    inputNames: ["a", "d", "n"],
  });
  const specs = [{ shape: [6] }, { shape: [6], dtype: "float64" as const }, {
    shape: [6],
    dtype: "int32" as const,
  }];
  const { files } = await exportCompiled(fn, specs, { target: "wasm" });
  assertEquals(files.map((f) => f.path), [
    "k_exp_2.wasm",
    "k_exp_2.wat",
    "manifest.json",
    "model.js",
  ]);
  const loader = text(files, "model.js");
  for (const name of ["k_pow", "k_mul", "k_exp"]) {
    assertEquals(loader.match(new RegExp(`^function ${name}\\(out, in0\\) \\{$`, "gm"))?.length, 1);
  }
  assert(loader.includes("// JavaScript kernels (float64 or int32 data, or a general pow):"));
  assert(!/^import /m.test(loader), "no imports");
  const manifest = JSON.parse(text(files, "manifest.json"));
  assertEquals(
    manifest.kernels.map((k: { name: string; kind: string; }) => `${k.name} ${k.kind}`).sort(),
    ["k_exp js", "k_exp_2 wasm", "k_mul js", "k_pow js"],
  );
  const a = Float32Array.from([0.5, 1, 2, 0, 3.25, 1e-3]);
  const d = Float64Array.from([0.1, -1, 700, 0, 1e-300, -745]);
  const n = Int32Array.from([1, -2, 1 << 30, 0, 7, -(2 ** 31)]);
  const [e, d2, n3, p] = (await importExported(files)).run(a, d, n);
  assert(e instanceof Float32Array && d2 instanceof Float64Array && n3 instanceof Int32Array);
  assertClose(e, Array.from(a, Math.exp), { rtol: 2e-7 });
  assertEquals(Array.from(d2), Array.from(d, Math.exp), "float64 exactly as Math.exp");
  assertEquals(Array.from(n3), Array.from(n, (v) => Math.imul(v, 3)), "int32 wraps");
  assertEquals(Array.from(p), Array.from(a, (v) => Math.fround(v ** v)), "pow exactly");
  // and the library on cpu, which runs the same split of kernels
  const library = await fn(
    tensor(a),
    tensor(d, { dtype: "float64" }),
    tensor(n, { dtype: "int32" }),
  );
  const got = { e, d2, n3, p };
  for (const [name, t] of Object.entries(library) as [keyof typeof got, Tensor][]) {
    const want = await t.data();
    if (cpu.simd && cpu.kernels !== "js") assertSameValues(got[name], want, name);
    else assertClose(got[name], want, { rtol: 2e-7, msg: name });
  }
});

Deno.test("wasm export: intermediates share scratch blocks; every run reuses the memory", async () => {
  setFusion(false); // one kernel per op: a chain of intermediates
  try {
    const fn = jit((x) => x.exp().add(1).log().sqrt().neg());
    const { files } = await exportCompiled(fn, [{ shape: [20] }], { target: "wasm" });
    const loader = text(files, "model.js");
    const manifest = JSON.parse(text(files, "manifest.json"));
    const tmps = manifest.buffers.filter((b: { role: string; }) => b.role === "intermediate");
    // exp, the constant 1 (reshaped, expanded), add, log, sqrt: six intermediates, at most three
    // alive at once: three scratch blocks of 80 bytes (rounded to 128) after x and y
    assertEquals(tmps.length, 6);
    const offsets = tmps.map((b: { offset: number; }) => b.offset);
    assertEquals([...new Set(offsets)].sort(), [256, 384, 512]);
    assertEquals(manifest.memory.bytes, 640);
    assertEquals(
      loader.match(/^ {2}new Float32Array\(memory\.buffer, (256|384|512), \d+\), \/\/ tmp/gm)
        ?.length,
      6,
    );
    assert(!/^ {2}(const|let) tmp/m.test(loader), "run allocates nothing");
    const m = await importExported(files);
    const f = (v: number) => -Math.sqrt(Math.log(Math.exp(v) + 1));
    const x = Float32Array.from({ length: 20 }, (_, i) => i / 4 - 2);
    assertClose(m.run(x)[0], Array.from(x, f), { rtol: 1e-6 });
    const other = Float32Array.from({ length: 20 }, (_, i) => 3 - i / 3);
    assertClose(m.run(other)[0], Array.from(other, f), { rtol: 1e-6, msg: "a second run" });
    assertClose(m.run(x)[0], Array.from(x, f), { rtol: 1e-6, msg: "and back" });
  } finally {
    setFusion(true);
  }
});

Deno.test("wasm export: outputs that are inputs, constants or repeated are copies", async () => {
  const { files } = await exportCompiled(copiesFunction(), [{ shape: [3] }], { target: "wasm" });
  const loader = text(files, "model.js");
  assert(/^views\[\d\]\.set\(Float32Array\.from\(\[\n {2}1\.5, -2, 0\.25,\n\]\)\);$/m.test(loader));
  assertOutputCopies((await importExported(files)).run);
});

Deno.test("wasm export: run checks the number, types and lengths of its inputs", async () => {
  await assertInputChecks("wasm");
});

Deno.test("wasm export: the header says what it computes, the version, the signature and launches", async () => {
  const meta = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const fn = jit((x: Tensor) => ({ y: x.square().sum(1) }));
  const { files } = await exportCompiled(fn, [{ shape: [4, 5] }], {
    target: "wasm",
    name: "sumsq",
    description: "row sums of squares",
  });
  const lines = text(files, "sumsq.js").split("\n");
  assertEquals(lines[0], "// sumsq: row sums of squares");
  assertEquals(
    lines[1],
    `// Generated by @lucid/nn ${meta.version}: WebAssembly kernels and a standalone ES module ` +
      "that loads and runs them, no imports.",
  );
  assert(lines.includes("// run(x) -> [y]"));
  assert(lines.includes("//   x  float32[4, 5]"));
  assert(lines.some((l) => /^\/\/ {3}1\. k_\w+: y <- x$/.test(l)));
  assert(lines.includes(" * @param {Float32Array} x float32[4, 5]: 20 elements, row-major"));
  assert(lines.includes(" * @returns {[Float32Array]} [y], new arrays on every call:"));
  const manifest = JSON.parse(text(files, "manifest.json"));
  assertEquals(manifest.generator, `@lucid/nn ${meta.version}`);
  assertEquals(manifest.description, "row sums of squares");
});

Deno.test("wasm export: empty tensors, and functions with no kernel at all", async () => {
  const sums = jit((x) => ({ rows: x.exp().sum(1), cols: x.exp().sum(0) }));
  const { files } = await exportCompiled(sums, [{ shape: [0, 3] }], { target: "wasm" });
  const [rows, cols] = (await importExported(files)).run(new Float32Array(0));
  assertEquals([rows.length, Array.from(cols)], [0, [0, 0, 0]], "an empty sum is 0");
  const constant = jit(() => ({ c: tensor([1, 2]) }));
  const none = await exportCompiled(constant, [], { target: "wasm" });
  assertEquals(none.files.map((f) => f.path), ["manifest.json", "model.js"]);
  assert(!text(none.files, "model.js").includes("const MODULES"), "nothing to instantiate");
  assertEquals(Array.from((await importExported(none.files)).run()[0]), [1, 2]);
});

Deno.test("wasm export: a memory beyond 4 GiB is refused when exporting", async () => {
  // 2 x 600,000,000 float32 (x and y) are 4.8 GB: no data is made to find out
  const fn = jit((x) => x.mul(2));
  await assertRejects(
    () => exportCompiled(fn, [{ shape: [600_000_000] }], { target: "wasm" }),
    Error,
    'exportCompiled: target "wasm" needs 4800000000 bytes of memory for its buffers, more than ' +
      'the 4 GiB a WebAssembly memory holds; export smaller shapes, or use target "js"',
  );
});

Deno.test("wasm export: the bytes handed out are the caller's own", async () => {
  const fn = jit((x) => x.exp());
  const first = await exportCompiled(fn, [{ shape: [8] }], { target: "wasm" });
  const module = first.files.find((f) => f.path.endsWith(".wasm"))!.contents as Uint8Array;
  const kept = module.slice();
  module.fill(0);
  const again = await exportCompiled(fn, [{ shape: [8] }], { target: "wasm" });
  assertEquals(again.files.find((f) => f.path.endsWith(".wasm"))!.contents, kept);
  const [y] = (await importExported(again.files)).run(Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7));
  assertClose(y, [0, 1, 2, 3, 4, 5, 6, 7].map(Math.exp), { rtol: 2e-7 });
});

Deno.test("wasm export: gathers, broadcasts, padding, reductions and specials run as the library", async () => {
  // transposed reads (four scalar loads a vector), broadcast rows, padded windows whose loads
  // are clamped, a 0-D sum, odd extents (vector body and scalar tail), NaN, infinities and -0
  const fn = jit((a, b) => ({
    t: a.permute(2, 0, 1).exp(),
    m: a.max(1),
    soft: a.sub(a.max(2, true)).exp().sum(2),
    clamp: a.maximum(b).minimum(0.5),
    mixed: a.sigmoid().mul(a.tanh()).add(a.sign()),
    padded: a.pad([[0, 0], [1, 2], [3, 0]], -1).square().sum(1),
    total: a.sum(),
    above: a.gt(b).cast("float32"),
  }), { inputNames: ["a", "b"] });
  const shapes = [[3, 5, 7], [7]];
  const specials = [NaN, Infinity, -Infinity, -0, 0, 1e-30, -1e30];
  const a = Float32Array.from(
    { length: 105 },
    (_, i) => i % 17 === 3 ? specials[i % 7] : Math.sin(i * 1.7) * 4,
  );
  const b = Float32Array.from([0, -1, 0.25, NaN, 2, -0, 3]);
  const { files } = await exportCompiled(fn, shapes.map((shape) => ({ shape })), {
    target: "wasm",
  });
  const got = (await importExported(files)).run(a, b);
  const eager = fn.fn(tensor(a, { shape: [3, 5, 7] }), tensor(b));
  const outputs = Object.values(eager) as Tensor[];
  await realize(...outputs); // one schedule, as the export plans it
  const sameKernels = cpu.simd && cpu.kernels !== "js";
  for (const [o, name] of Object.keys(eager).entries()) {
    const want = await outputs[o].data();
    if (sameKernels) assertSameValues(got[o], want, name);
    else assertClose(got[o], want, { rtol: 1e-5, msg: name });
  }
  assertEquals(got[6].length, 1, "the 0-D sum");
});

Deno.test("wasm export: inputs no kernel reads have no block; names the loader uses are refused", async () => {
  const fn = jit((x, _unused, kept) => ({ y: x.mul(2), same: kept }), {
    inputNames: ["x", "unused", "kept"],
  });
  const { files } = await exportCompiled(fn, [{ shape: [4] }, { shape: [1000] }, { shape: [2] }], {
    target: "wasm",
  });
  const manifest = JSON.parse(text(files, "manifest.json"));
  const offsets = Object.fromEntries(
    manifest.buffers.map((b: { name: string; offset?: number; }) => [b.name, b.offset]),
  );
  assertEquals(offsets, { x: 0, y: 64, unused: undefined, kept: undefined }, "x, y: blocks");
  assert(
    text(files, "model.js").includes("  null, // unused: input float32[1000], read by no kernel"),
  );
  const [y, same] = (await importExported(files)).run(
    Float32Array.of(1, 2, 3, 4),
    new Float32Array(1000),
    Float32Array.of(5, 6),
  );
  assertEquals([Array.from(y), Array.from(same)], [[2, 4, 6, 8], [5, 6]]);
  for (const name of ["views", "memory", "MODULES", "instantiate"]) {
    await assertRejects(
      () =>
        exportCompiled(jit((x) => ({ [name]: x.mul(2) })), [{ shape: [2] }], { target: "wasm" }),
      Error,
      `the name "${name}" is one the exported module uses itself`,
    );
  }
});

Deno.test("wasm export: a module the engine refuses fails the import with a clear Error", async () => {
  const { files } = await exportCompiled(jit((x) => x.exp()), [{ shape: [4] }], { target: "wasm" });
  const loader = text(files, "model.js");
  // what an engine without SIMD would do with the module: refuse to compile it
  const broken = loader.replace(/ {4}"AGFzbQ[^"]*"/, '    "AGFzbQEAAAAB"');
  assert(broken !== loader, "the module's first line was replaced");
  await assertRejects(
    () => importExported([{ path: "model.js", contents: broken }]),
    Error,
    "kernel k_exp does not load here: ",
  );
});
