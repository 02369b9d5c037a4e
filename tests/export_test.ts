// exportCompiled and writeExport (src/export.ts) and the layout every target shares
// (codegen/export.ts): exports are byte-identical twice (and from a fresh jit of the same
// function), files are written atomically and a failure leaves nothing behind, bad arguments
// give Errors naming them, constants are embedded up to a limit, and intermediates share
// scratch slots only when their lifetimes do not overlap.

import {
  exportCompiled,
  jit,
  MAX_EMBEDDED_ELEMENTS,
  nn,
  type Tensor,
  tensor,
  writeExport,
  zeros,
} from "../mod.ts";
import { formatJson, layoutOf } from "../codegen/export.ts";
import type { ExportProgram } from "../codegen/export.ts";
import type { Plan } from "../codegen/plan.ts";
import type { Executable } from "../codegen/compile.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";
import { webgpuAvailable } from "./helpers.ts";
import { importExported } from "./export_helpers.ts";

const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
const lrnStep = () =>
  jit((x, dy) => {
    const y = lrn.forward(x);
    y.backward(dy);
    return { y, dx: x.grad! };
  }, { inputNames: ["x", "dy"] });
const examples = [{ shape: [2, 96, 27, 27], requiresGrad: true }, { shape: [2, 96, 27, 27] }];

Deno.test("export: two exports are byte-identical, for every target", async () => {
  for (const target of ["js", "wgsl", "wasm"] as const) {
    const step = lrnStep();
    const first = await exportCompiled(step, examples, { target, name: "lrn_grad" });
    const again = await exportCompiled(step, examples, { target, name: "lrn_grad" });
    const fresh = await exportCompiled(lrnStep(), examples, { target, name: "lrn_grad" });
    assertEquals(again, first, `${target}: the same compiled function`);
    assertEquals(fresh, first, `${target}: a new jit of the same function`);
    assertEquals(step.traceCount, 1, "the export trace is kept per signature and target");
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    try {
      for (const dir of dirs) await writeExport(first, dir);
      for (const f of first.files) {
        const a = await Deno.readFile(`${dirs[0]}/${f.path}`);
        const b = await Deno.readFile(`${dirs[1]}/${f.path}`);
        assertEquals(a, b, `${target}: ${f.path} on disk`);
        if (typeof f.contents === "string") assertEquals(new TextDecoder().decode(a), f.contents);
        else assertEquals(a, f.contents, `${target}: ${f.path} is written as bytes`);
      }
    } finally {
      for (const dir of dirs) await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("export: writeExport replaces files whole and leaves no temporary behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const step = lrnStep();
    const exported = await exportCompiled(step, examples, { target: "wgsl" });
    const written = await writeExport(exported, `${dir}/nested/out/`);
    assertEquals(written, exported.files.map((f) => `${dir}/nested/out/${f.path}`));
    await Deno.writeTextFile(`${dir}/nested/out/manifest.json`, "stale");
    await writeExport(exported, `${dir}/nested/out`);
    const names = [...Deno.readDirSync(`${dir}/nested/out`)].map((e) => e.name).sort();
    assertEquals(names, exported.files.map((f) => f.path).sort(), "no temporary files");
    assert((await Deno.readTextFile(`${dir}/nested/out/manifest.json`)).startsWith("{"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export: an unwritable directory is an Error and nothing is written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "a file, not a directory");
    const exported = await exportCompiled(lrnStep(), examples, { target: "js" });
    await assertRejects(
      () => writeExport(exported, `${dir}/file/out`),
      Error,
      `writeExport: cannot write the export to "${dir}/file/out"`,
    );
    // a directory whose files cannot be created: one of the paths is taken by a directory
    await Deno.mkdir(`${dir}/taken/model.js`, { recursive: true });
    const two = {
      target: "js" as const,
      files: [{ path: "a.js", contents: "a" }, ...exported.files],
    };
    await assertRejects(() => writeExport(two, `${dir}/taken`), Error, "cannot write the export");
    const left = [...Deno.readDirSync(`${dir}/taken`)].map((e) => e.name).sort();
    assertEquals(left, ["model.js"], "no temporary and no half of the export");
    assertEquals(Deno.statSync(`${dir}/file`).isFile, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export: bad arguments name what was expected and what was given", async () => {
  const f = jit((x) => x.mul(2));
  const shape = { shape: [2] };
  await assertRejects(
    () => exportCompiled(f, [shape], { target: "webgl" as never }),
    Error,
    'exportCompiled: options.target must be one of "js", "wgsl", "wasm", got "webgl"',
  );
  await assertRejects(
    () => exportCompiled(f, [shape], undefined as never),
    Error,
    "options must be an object",
  );
  await assertRejects(
    () => exportCompiled(f, [shape], { target: "js", name: "../evil" }),
    Error,
    'options.name must be a file name of letters, digits, _, . and - (no directories), got "../evil"',
  );
  await assertRejects(
    () => exportCompiled(((x: never) => x) as never, [shape], { target: "js" }),
    Error,
    "exportCompiled: compiled must be a function made by jit()",
  );
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2, -1] }], { target: "js" }),
    Error,
    "exportCompiled: exampleInputs[0].shape must be non-negative integers of at most 2^53 - 1 elements, got [2, -1]",
  );
  await assertRejects(
    // every() skipped the hole, and the trace failed with a RangeError naming no argument
    // deno-lint-ignore no-sparse-arrays
    () => exportCompiled(f, [{ shape: [, 2] as number[] }], { target: "js" }),
    Error,
    "exportCompiled: exampleInputs[0].shape must be non-negative integers of at most 2^53 - 1 elements, got [<empty>, 2]",
  );
  for (const shape of [[1e9, 1e9], [2 ** 53], [1e300]]) {
    // a count no tensor can have failed inside, as an op named "buffer"
    await assertRejects(
      () => exportCompiled(f, [{ shape }], { target: "js" }),
      Error,
      "exportCompiled: exampleInputs[0].shape must be non-negative integers of at most 2^53 - 1 elements",
    );
  }
  // an imitation of a tensor, read as a spec, threw a TypeError from a private field
  await assertRejects(
    () => exportCompiled(f, [new Proxy(tensor([1, 2]), {})], { target: "js" }),
    Error,
    "exportCompiled: exampleInputs[0] must be a Tensor or {shape, dtype}, got an imitation of a Tensor",
  );
  // each axis read once: an axis that is 2 when checked and -3 when read again
  let reads = 0;
  const shifty = [2];
  Object.defineProperty(shifty, 0, { get: () => reads++ === 0 ? 2 : -3, enumerable: true });
  const { files } = await exportCompiled(f, [{ shape: shifty }], { target: "js" });
  assertStringIncludes(files.find((file) => file.path === "model.js")!.contents as string, "[2]");
  assertEquals(reads, 1);
  await assertRejects(
    // tensor() refuses it, so no call could pass such an input
    () => exportCompiled(f, [{ shape: [3], dtype: "int32", requiresGrad: true }], { target: "js" }),
    Error,
    'exportCompiled: exampleInputs[0].requiresGrad needs a float dtype, got "int32"',
  );
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2], dtype: "float16" as never }], { target: "js" }),
    Error,
    'exampleInputs[0].dtype must be a dtype, got "float16"',
  );
  await assertRejects(
    () =>
      exportCompiled(jit((a, b) => a.add(b), { inputNames: ["a", "b"] }), [shape], {
        target: "js",
      }),
    Error,
    "exampleInputs must have one entry per argument (a, b), got 1 entries",
  );
  await assertRejects(
    // fn read undefined for x, and failed inside with a bare TypeError
    () => exportCompiled(f, [], { target: "js" }),
    Error,
    "exportCompiled: tracing fn failed (exampleInputs has 0 entries and fn declares 1 parameters: a missing example may be why): ",
  );
  // an optional parameter counts in fn.length too: fewer examples that fn accepts are fine
  const scaled = jit((x: Tensor, bias?: Tensor) => bias ? x.add(bias) : x.mul(2));
  const [y] =
    (await importExported((await exportCompiled(scaled, [shape], { target: "js" })).files))
      .run(Float32Array.of(1, 2));
  assertEquals(Array.from(y as Float32Array), [2, 4]);
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2], device: null as never }], { target: "js" }),
    Error,
    'exportCompiled: exampleInputs[0].device must be one of "cpu", "webgpu", got null',
  );
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2], device: "webgpu", dtype: "float64" }], { target: "js" }),
    Error,
    'exportCompiled: exampleInputs[0].dtype float64 needs device "cpu", got "webgpu"',
  );
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2], device: "gpu" as never }], { target: "js" }),
    Error,
    'exportCompiled: exampleInputs[0].device must be one of "cpu", "webgpu", got "gpu"',
  );
  await assertRejects(
    () => exportCompiled(f, "x" as never, { target: "js" }),
    Error,
    "exampleInputs must be an array",
  );
  await assertRejects(
    () => exportCompiled(jit(() => ({ "my-out": tensor([1]) })), [], { target: "js" }),
    Error,
    'output names (the keys fn returns) must be JavaScript identifiers (they name variables of exports), got "my-out"',
  );
  await assertRejects(
    () => exportCompiled(jit((x) => ({ x: x.mul(2) })), [shape], { target: "js" }),
    Error,
    'exportCompiled: input and output names must differ, got "x"',
  );
  await assertRejects(
    () => exportCompiled(jit((x) => ({ tmp0: x.mul(2) })), [shape], { target: "js" }),
    Error,
    'the name "tmp0" is one the exported module uses itself',
  );
  await assertRejects(
    () =>
      exportCompiled(jit((x) => x.mul(2), { inputNames: ["Float32Array"] }), [shape], {
        target: "js",
      }),
    Error,
    'the name "Float32Array" is one the exported module uses itself',
  );
  await assertRejects(
    () => exportCompiled(jit(() => 5 as never), [], { target: "js" }),
    Error,
    "jit: fn must return a Tensor, an array of Tensors or an object of Tensors, got 5",
  );
});

Deno.test("export: captured tensors are embedded up to MAX_EMBEDDED_ELEMENTS in all", async () => {
  const small = tensor([0.1, -0, 3e-39, 1e30, -Infinity]);
  const f = jit((x) => ({ y: x.add(small), c: small }));
  const { files } = await exportCompiled(f, [{ shape: [5] }], { target: "js" });
  const m = await import(`data:text/javascript;base64,${btoa(files[0].contents)}`);
  const [y, c] = m.run(Float32Array.of(1, 1, 1, 1, 1));
  const want = await small.data();
  want.forEach((v, i) => assert(Object.is(c[i], v), `element ${i}: ${c[i]}, want ${v}`));
  assertEquals(Array.from(y), Array.from(want, (v) => Math.fround(1 + v)));
  const big = zeros(MAX_EMBEDDED_ELEMENTS + 1);
  await assertRejects(
    () =>
      exportCompiled(jit((x) => x.add(big)), [{ shape: [MAX_EMBEDDED_ELEMENTS + 1] }], {
        target: "js",
      }),
    Error,
    `exportCompiled: the tensors the function captures must hold at most ${MAX_EMBEDDED_ELEMENTS} elements in all to be embedded; pass large tensors (weights) as arguments instead, got 1 captured tensors of ${
      MAX_EMBEDDED_ELEMENTS + 1
    } elements`,
  );
});

/** A plan of `steps` (output, inputs) over float32 buffers of `sizes` elements. */
function handPlan(
  roles: readonly ("input" | "output" | "intermediate")[],
  sizes: readonly number[],
  steps: readonly [number, number[]][],
): ExportProgram {
  const executable = {
    key: "k",
    name: "k_op",
    text: "",
    workgroups: [1, 1],
  } as unknown as Executable;
  const plan: Plan = {
    buffers: roles.map((role, i) => ({ dtype: "float32", shape: [sizes[i]], role, node: -1 })),
    steps: steps.map(([output, inputs]) => ({ executable, inputs, outputs: [output] })),
  };
  return {
    name: "m",
    description: "",
    generator: "",
    plan,
    inputs: [{ name: "x", buffer: 0 }],
    outputs: [{ name: "y", buffer: roles.indexOf("output") }],
    constants: new Map(),
  };
}

Deno.test("export layout: scratch slots are shared only by intermediates that do not overlap", () => {
  // x -> t1 -> t2 -> t3 -> y, each step reading the previous buffer: t1 is free once t2 is
  // written, so t3 reuses t1's slot; t1 is 10 elements, t3 30: the slot is 120 bytes
  const chain = handPlan(
    ["input", "intermediate", "intermediate", "intermediate", "output"],
    [5, 10, 20, 30, 5],
    [[1, [0]], [2, [1]], [3, [2]], [4, [3]]],
  );
  const layout = layoutOf(chain, new Set());
  assertEquals(layout.slots, [-1, 0, 1, 0, -1]);
  assertEquals(layout.slotBytes, [120, 80]);
  assertEquals(layout.names, ["x", "tmp0", "tmp1", "tmp2", "y"]);
  // the last step reads t1 and t2: nothing is free while they are read
  const fan = handPlan(
    ["input", "intermediate", "intermediate", "intermediate", "output"],
    [4, 4, 4, 4, 4],
    [[1, [0]], [2, [0]], [3, [1, 2]], [4, [3, 1]]],
  );
  assertEquals(layoutOf(fan, new Set()).slots, [-1, 0, 1, 2, -1]);
  assertEquals(layoutOf(fan, new Set()).stepKernels, [0, 0, 0, 0], "one executable, one kernel");
  assertThrows(
    () => layoutOf(chain, new Set(["x"])),
    Error,
    'the name "x" is one the exported module uses',
  );
});

Deno.test("export layout: formatJson keeps number arrays on one line and is valid JSON", () => {
  const value = { a: [1, 2, 3], b: { c: "d", e: [] }, f: [{ g: [1.5] }], h: {} };
  const text = formatJson(value);
  assertEquals(JSON.parse(text), value);
  assertEquals(
    text,
    '{\n  "a": [1, 2, 3],\n  "b": {\n    "c": "d",\n    "e": []\n  },\n  "f": [\n    {\n      "g": [1.5]\n    }\n  ],\n  "h": {}\n}\n',
  );
});

Deno.test("writeExport: every file is a plain name in dir; exportCompiled checks compiled first", async () => {
  // a path of "../escaped.js" was written outside dir; a null file was a TypeError from inside
  const dir = await Deno.makeTempDir({ prefix: "lucid-write-" });
  try {
    const files = (path: unknown, contents: unknown = "x") => ({ files: [{ path, contents }] });
    const bad: [unknown, string][] = [
      [
        files("../escaped.js"),
        'exported.files[0].path must be a file name of letters, digits, _, . and - (no directories), got "../escaped.js"',
      ],
      [files("sub/a.js"), 'got "sub/a.js"'],
      [files(""), 'got ""'],
      [{ files: [null] }, "exported.files[0].path must be a file name"],
      [files("a.js", 5), "exported.files[0].contents must be a string or a Uint8Array, got 5"],
      [
        // two files of one path shared a temporary: the first landed, the second failed
        {
          files: [{ path: "m.js", contents: "1" }, { path: "b.js", contents: "2" }, {
            path: "m.js",
            contents: "3",
          }],
        },
        'exported.files[2].path must differ from exported.files[0].path (a file is written once), got "m.js"',
      ],
    ];
    for (const [exported, message] of bad) {
      await assertRejects(() => writeExport(exported as never, `${dir}/out`), Error, message);
    }
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [], "nothing was written");
    // a name near the 255-byte limit is written: its temporary was the name plus 19 bytes
    const long = `${"n".repeat(248)}.js`;
    assertEquals(await writeExport({ files: [{ path: long, contents: "x" }] } as never, dir), [
      `${dir}/${long}`,
    ]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [long], "no temporary left");
    // a rename that fails midway (a name past the system's 255-byte limit) undoes the ones
    // that landed and puts back what they replaced: a new manifest stayed beside an old module
    const again = `${dir}/again`;
    await writeExport({ files: [{ path: "manifest.json", contents: "old" }] } as never, again);
    const tooLong = `${"n".repeat(260)}.js`;
    await assertRejects(
      () =>
        writeExport({
          files: [{ path: "manifest.json", contents: "new" }, { path: tooLong, contents: "x" }],
        } as never, again),
      Error,
      "writeExport: cannot write the export to",
    );
    assertEquals([...Deno.readDirSync(again)].map((e) => e.name), ["manifest.json"]);
    assertEquals(await Deno.readTextFile(`${again}/manifest.json`), "old");
    // two calls into one directory run one after another: their renames interleaved, a manifest
    // of one beside the modules of the other, and moving aside a file the other had just moved
    // failed the export
    const both = `${dir}/both`;
    const names = ["manifest.json", "model.js", "k0.wgsl", "k1.wgsl"];
    const exportOf = (tag: string) => ({ files: names.map((path) => ({ path, contents: tag })) });
    // (one directory however it is spelled: relative, absolute, with `.` and repeated slashes)
    const spellings = [both, `${both}/.`, `${dir}//both`];
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        ["A", "B", "C"].map((tag, i) => writeExport(exportOf(tag) as never, spellings[i])),
      );
      const got = names.map((path) => Deno.readTextFileSync(`${both}/${path}`));
      assertEquals(got, names.map(() => "C"), `round ${round}`);
      assertEquals([...Deno.readDirSync(both)].length, names.length, "no temporary left");
    }
    // each field is read once: a path that is a file name when checked and "../" when read
    // again was written outside dir
    let reads = 0;
    const shifty = {
      get path() {
        return reads++ === 0 ? "m.js" : "../escaped.js";
      },
      contents: "x",
    };
    assertEquals(await writeExport({ files: [shifty] } as never, `${dir}/inner`), [
      `${dir}/inner/m.js`,
    ]);
    assertEquals(reads, 1);
    assertEquals(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["again", "both", "inner", long].sort(),
    );
    for (const compiled of [null, undefined, (x: unknown) => x]) {
      await assertRejects(
        () => exportCompiled(compiled as never, [{ shape: [2] }], { target: "js" }),
        Error,
        "exportCompiled: compiled must be a function made by jit()",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "export: shape examples may name their device, for functions that capture webgpu tensors",
  ignore: !webgpuAvailable,
  fn: async () => {
    const w = tensor([1, 2, 3], { device: "webgpu" });
    const f = jit((x) => x.mul(w));
    // examples without a device are cpu's: the trace mixed devices, and the Error named mul
    await assertRejects(
      () => exportCompiled(f, [{ shape: [3] }], { target: "wgsl" }),
      Error,
      "mul: both operands must be on one device",
    );
    const bySpec = await exportCompiled(f, [{ shape: [3], device: "webgpu" }], { target: "wgsl" });
    const byTensor = await exportCompiled(f, [tensor([0, 0, 0], { device: "webgpu" })], {
      target: "wgsl",
    });
    assertEquals(bySpec, byTensor);
    await assertRejects(
      () =>
        exportCompiled(
          jit((a, b) => a.add(b)),
          [{ shape: [3], device: "webgpu" }, { shape: [3] }],
          {
            target: "wgsl",
          },
        ),
      Error,
      "exampleInputs must all be on one device, got webgpu, cpu",
    );
  },
});

Deno.test("exportCompiled: holes in the examples are named; a spec's fields are read once", async () => {
  // map() skipped holes: [, spec] was "must all be on one device, got , cpu", and [, ,] reached
  // fn with undefined arguments (a bare TypeError from inside it)
  const f = jit((a, b) => a.add(b));
  // deno-lint-ignore no-sparse-arrays
  for (const examples of [[, { shape: [2] }], [, ,]]) {
    await assertRejects(
      () => exportCompiled(f, examples as never, { target: "js" }),
      Error,
      "exportCompiled: exampleInputs[0] must be a Tensor or {shape, dtype?, requiresGrad?, " +
        "device?}, got undefined",
    );
  }
  // the device was read once to pick the device and again for the spec
  let reads = 0;
  const spec = {
    shape: [2],
    get device(): "cpu" {
      reads++;
      return "cpu";
    },
  };
  const exported = await exportCompiled(jit((a) => a.exp()), [spec], { target: "js" });
  assertEquals(reads, 1);
  assertStringIncludes(exported.files.map((f) => f.contents).join("\n"), "float32[2]");
});

Deno.test("writeExport: contents are copied at the call (detached or shrunk later, still written)", async () => {
  // the caller's bytes were kept and written after awaits: detached or shrunk right after
  // the call, they were written as empty files and the call reported success
  const dir = await Deno.makeTempDir();
  try {
    const buffer = new ArrayBuffer(8, { maxByteLength: 16 });
    const shrunk = new Uint8Array(buffer);
    shrunk.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const detached = new Uint8Array([9, 8, 7]);
    const writing = writeExport(
      {
        files: [{ path: "a.bin", contents: shrunk }, { path: "b.bin", contents: detached }],
      } as never,
      dir,
    );
    buffer.resize(0);
    detached.buffer.transfer();
    await writing;
    assertEquals(Array.from(await Deno.readFile(`${dir}/a.bin`)), [1, 2, 3, 4, 5, 6, 7, 8]);
    assertEquals(Array.from(await Deno.readFile(`${dir}/b.bin`)), [9, 8, 7]);
    // contents whose memory is already gone are refused by name
    const gone = new Uint8Array([1]);
    gone.buffer.transfer();
    await assertRejects(
      () => writeExport({ files: [{ path: "c.bin", contents: gone }] } as never, dir),
      Error,
      "writeExport: exported.files[0].contents must be a Uint8Array whose memory is there",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeExport: a runtime without Deno's file system is an Error saying so", async () => {
  // a browser page: a ReferenceError from deep inside said only "Deno is not defined"
  const program = `
    const lib = await import(${JSON.stringify(new URL("../mod.ts", import.meta.url).href)});
    const exported = await lib.exportCompiled(lib.jit((x) => x.exp()), [{ shape: [2] }], {
      target: "js",
    });
    delete globalThis.Deno;
    try {
      await lib.writeExport(exported, "never-written");
      console.log("written");
    } catch (e) {
      console.log(e.message);
    }`;
  const dir = await Deno.makeTempDir();
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", program],
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder();
    assertEquals(code, 0, text.decode(stderr));
    assertEquals(
      text.decode(stdout).trim(),
      "writeExport: a runtime with Deno's file system (elsewhere, save exported.files " +
        "yourself), got no Deno file system",
    );
    assertEquals([...Deno.readDirSync(dir)], [], "nothing written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exportCompiled: a leaf passed twice in the examples is one stand-in, as in the call", async () => {
  // the examples' specs lacked jit's marking of a leaf passed twice: the export traced another
  // signature, a stand-in per use, and split the gradient between them (2 where eager gives 102)
  const f = jit((a, c, a2) => {
    const y = a.mul(2).add(c.mul(10)).add(a2.mul(100));
    y.sum().backward();
    return { y, ga: a.grad! };
  });
  const a = tensor([1, 2], { requiresGrad: true });
  const c = tensor([3, 4]);
  const called = await f(a, c, a);
  assertEquals(Array.from(await called.ga.data()), [102, 102]);
  // the module takes the leaf once, at its first position (it declared every position and
  // read the last alone, whatever the others held)
  const m = await importExported((await exportCompiled(f, [a, c, a], { target: "js" })).files);
  assertEquals(m.inputs.map((i: { name: string; }) => i.name), ["x0", "x1"]);
  const [y, ga] = m.run(Float32Array.from([1, 2]), Float32Array.from([3, 4])) as Float32Array[];
  assertEquals([Array.from(y), Array.from(ga)], [[132, 244], [102, 102]]);
});

Deno.test("exportCompiled: a captured tensor disposed since an earlier export is named (helper-140)", async () => {
  // the export's trace is kept: the second export read the freed storage ("cpu: read of a
  // float32[3] buffer that was released"), naming neither exportCompiled nor the capture
  const b = tensor([0.5, 0.5, 0.5]);
  const f = jit((x) => x.add(b));
  await exportCompiled(f, [{ shape: [3] }], { target: "js" });
  b.dispose();
  await assertRejects(
    () => exportCompiled(f, [{ shape: [3] }], { target: "js" }),
    Error,
    "exportCompiled: the tensors fn captured must stay alive while the compiled function is " +
      "used (or be passed as arguments), got a float32[3] tensor captured by fn, disposed",
  );
});
