// The `js` export: LocalResponseNorm forward and forward + backward exported for every golden
// case, run in a fresh Deno process that may read the export directory only, must give the
// golden values and the library's own, bit for bit (the module runs the library's kernels).
// Then what the module is made of: one function per distinct kernel, intermediates allocated
// once, copies for outputs that are inputs or constants, the checks `run` makes.

import { jit, setFusion, type Tensor, tensor } from "../mod.ts";
import { exportCompiled } from "../src/export.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { assertClose, withCpuKernels } from "./helpers.ts";
import {
  assertInputChecks,
  assertOutputCopies,
  checkGoldenExports,
  copiesFunction,
} from "./export_helpers.ts";

/** The module's exports after importing its text (the test process has every permission). */
async function importModule(text: string) {
  const url = `data:text/javascript;base64,${btoa(unescape(encodeURIComponent(text)))}`;
  return await import(url);
}

Deno.test("js export: LRN golden cases run standalone and match the library and the goldens", async () => {
  // the library on JavaScript kernels alone, whose text the export writes (beside Wasm ones,
  // a JavaScript kernel rounds short sums as Wasm does)
  await withCpuKernels("js", () => checkGoldenExports("js", "cpu"));
});

Deno.test("js export: equal kernels are one function called twice; equal names get suffixes", async () => {
  const fn = jit((a, b, c) => [a.exp(), b.exp(), c.exp()], { inputNames: ["a", "b", "c"] });
  // a and b have one shape: one kernel; c another: same name k_exp, different text
  const { files } = await exportCompiled(fn, [{ shape: [3, 4] }, { shape: [3, 4] }, {
    shape: [5],
  }], { target: "js", name: "exps" });
  const text = files[0].contents;
  assertEquals(text.match(/^function k_exp\(/gm)?.length, 1);
  assertEquals(text.match(/^function k_exp_2\(/gm)?.length, 1);
  const called = (call: string) =>
    text.match(new RegExp(`^ {2}(k_exp(?:_2)?)\\(${call}\\);$`, "m"))?.[1];
  assertEquals(called("y0, a"), called("y1, b"), "a and b: one function");
  assert(called("y2, c") !== undefined && called("y2, c") !== called("y0, a"));
  const m = await importModule(text);
  const a = Float32Array.from({ length: 12 }, (_, i) => i / 7 - 1);
  const b = Float32Array.from({ length: 12 }, (_, i) => -i / 5);
  const c = Float32Array.from([0, 1, -1, 2, -2]);
  const [ea, eb, ec] = m.run(a, b, c);
  assertClose(ea, a.map(Math.exp), { rtol: 1e-6 });
  assertClose(eb, b.map(Math.exp), { rtol: 1e-6 });
  assertClose(ec, c.map(Math.exp), { rtol: 1e-6 });
});

Deno.test("js export: intermediates are allocated once and reused; lifetimes share scratch", async () => {
  setFusion(false); // one kernel per op: a chain of intermediates
  try {
    const fn = jit((x) => x.exp().add(1).log().sqrt().neg());
    const { files } = await exportCompiled(fn, [{ shape: [6] }], { target: "js" });
    const text = files[0].contents;
    // four intermediates, at most two alive at once: two scratch buffers at module level
    assertEquals(text.match(/^const scratch\d+ = new ArrayBuffer\(24\);$/gm)?.length, 2);
    assertEquals(text.match(/^const tmp\d = new Float32Array\(scratch\d, 0, 6\);$/gm)?.length, 4);
    const runBody = text.slice(
      text.indexOf("export function run"),
      text.indexOf("// ---- kernels"),
    );
    assert(!/tmp\d = new/.test(runBody), "run allocates no intermediate");
    const m = await importModule(text);
    const x = Float32Array.from([0, 0.5, 1, 2, -1, 3]);
    const want = Array.from(x, (v) => -Math.sqrt(Math.log(Math.exp(v) + 1)));
    assertClose(m.run(x)[0], want, { rtol: 1e-6 });
    assertClose(m.run(x)[0], want, { rtol: 1e-6, msg: "a second run reuses the buffers" });
    const other = Float32Array.from([5, 4, 3, 2, 1, 0]);
    assertClose(m.run(other)[0], Array.from(other, (v) => -Math.sqrt(Math.log(Math.exp(v) + 1))), {
      rtol: 1e-6,
    });
  } finally {
    setFusion(true);
  }
});

Deno.test("js export: outputs that are inputs, constants or repeated are copies", async () => {
  const { files } = await exportCompiled(copiesFunction(), [{ shape: [3] }], { target: "js" });
  const text = files[0].contents;
  assertMatch(text, /const constant0 = Float32Array\.from\(\[\n {2}1\.5, -2, 0\.25,\n\]\);/);
  assertMatch(
    text,
    /const same = new Float32Array\(x\);\n {2}const again = new Float32Array\(twice\);\n {2}const weights = new Float32Array\(constant0\);/,
  );
  assertOutputCopies((await importModule(text)).run);
});

Deno.test("js export: float64 and int32 keep their types", async () => {
  const fn = jit((a, n) => ({ a2: a.mul(a), n3: n.mul(3) }), { inputNames: ["a", "n"] });
  const { files } = await exportCompiled(fn, [{ shape: [2], dtype: "float64" }, {
    shape: [2],
    dtype: "int32",
  }], { target: "js" });
  const m = await importModule(files[0].contents);
  assertEquals(m.outputs.map((o: { dtype: string; }) => o.dtype), ["float64", "int32"]);
  const [a2, n3] = m.run(Float64Array.from([0.1, 1e200]), Int32Array.from([7, 1 << 30]));
  assert(a2 instanceof Float64Array && n3 instanceof Int32Array);
  assertEquals(Array.from(a2), [0.1 * 0.1, Infinity]);
  assertEquals(Array.from(n3), [21, (3 * (1 << 30)) | 0], "int32 wraps as the library does");
});

Deno.test("js export: run checks the number, types and lengths of its inputs", async () => {
  await assertInputChecks("js");
});

Deno.test("js export: the header says what it computes, the version, the signature and launches", async () => {
  const meta = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const fn = jit((x: Tensor) => ({ y: x.square().sum(1) }));
  const { files } = await exportCompiled(fn, [{ shape: [4, 5] }], {
    target: "js",
    name: "sumsq",
    description: "row sums of squares",
  });
  assertEquals(files.map((f) => f.path), ["sumsq.js"]);
  const lines = files[0].contents.split("\n");
  assertEquals(lines[0], "// sumsq: row sums of squares");
  assertEquals(
    lines[1],
    `// Generated by @lucid/nn ${meta.version}: a standalone ES module, no imports.`,
  );
  assert(lines.includes("// run(x) -> [y]"));
  assert(lines.includes("//   x  float32[4, 5]"));
  assert(lines.includes("//   y  float32[4]"));
  assert(lines.some((l) => /^\/\/ {3}1\. k_\w+: y <- x$/.test(l)));
  assert(!files[0].contents.includes("import "), "no imports");
  assert(files[0].contents.includes(" * @param {Float32Array} x float32[4, 5]: 20 elements"));
  assert(files[0].contents.includes(" * @returns {[Float32Array]} [y], new arrays on every call:"));
});

Deno.test("export: a description is a comment whatever line terminators it holds", async () => {
  // a // comment ends at \r, U+2028 and U+2029 too: the rest of the description became code
  const fn = jit((x: Tensor) => ({ y: x.mul(2) }));
  for (const target of ["js", "wasm", "wgsl"] as const) {
    for (const terminator of ["\n", "\r\n", "\r", "\u2028", "\u2029"]) {
      const description = `doubles x${terminator}globalThis.lucidInjected = "${target}";`;
      const { files } = await exportCompiled(fn, [{ shape: [2] }], { target, description });
      const module = files.find((f) => f.path === "model.js")!.contents as string;
      await import(`data:text/javascript;charset=utf-8,${encodeURIComponent(module)}`);
      assertEquals((globalThis as Record<string, unknown>).lucidInjected, undefined, target);
      assert(module.includes("// globalThis.lucidInjected"), `${target}: the second line`);
    }
  }
});

Deno.test("js export: empty tensors and functions of no arguments", async () => {
  const sums = jit((x) => ({ rows: x.exp().sum(1), cols: x.exp().sum(0) }));
  const { files } = await exportCompiled(sums, [{ shape: [0, 3] }], { target: "js" });
  const m = await importModule(files[0].contents);
  const [rows, cols] = m.run(new Float32Array(0));
  assertEquals([rows.length, Array.from(cols)], [0, [0, 0, 0]], "an empty sum is 0");
  const constant = jit(() => tensor([1, 2]).mul(3));
  const none = await exportCompiled(constant, [], { target: "js" });
  assertEquals(Array.from((await importModule(none.files[0].contents)).run()[0]), [3, 6]);
});
