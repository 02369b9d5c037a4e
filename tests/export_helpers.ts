// Helpers of the export tests: LocalResponseNorm golden cases exported per target, run in a
// fresh Deno process that may read the export directory and nothing else, and the library's own
// results for the same inputs to compare with.

import {
  cpu,
  exportCompiled,
  type ExportFile,
  jit,
  kernels,
  nn,
  realize,
  type Tensor,
  tensor,
  writeExport,
} from "../mod.ts";
import type { DeviceName } from "../mod.ts";
import { exportLrn } from "../cli.ts";
import { assertGolden, type GoldenCase, goldenCases } from "./lrn_golden.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { assertClose } from "./helpers.ts";

/** An export target. */
export type Target = "js" | "wgsl" | "wasm";

/** Where a case's export goes: `<root>/<case>_<fwd|grad>/`, module `<case>_<fwd|grad>.js`. */
export function caseName(c: GoldenCase, grad: boolean): string {
  return `${c.name}_${grad ? "grad" : "fwd"}`;
}

/** Exports `c` (forward, or forward and backward) for `target` into `<root>/<caseName>/`. */
export async function exportCase(
  c: GoldenCase,
  grad: boolean,
  target: Target,
  root: string,
): Promise<string> {
  const name = caseName(c, grad);
  const dir = `${root}/${name}`;
  const exported = await exportLrn({
    model: "lrn",
    size: c.size,
    alpha: c.alpha,
    beta: c.beta,
    k: c.k,
    shape: c.shape,
    dtype: "float32",
    target,
    grad,
    out: dir,
    name,
  });
  await writeExport(exported, dir);
  return `${dir}/${name}.js`;
}

/** One module to run in the standalone process, with its inputs. */
export interface StandaloneJob {
  /** Path of the exported module. */
  readonly module: string;
  /** Its inputs, as numbers (the driver makes typed arrays of the dtypes the module names). */
  readonly inputs: readonly (readonly number[])[];
}

/** What the standalone process returns per job: the module's output names and values. */
export interface StandaloneResult {
  readonly names: string[];
  readonly values: number[][];
}

// Runs in the fresh process: imports each module, runs it, prints the results as JSON.
const DRIVER = `
const jobs = JSON.parse(await new Response(Deno.stdin.readable).text());
const types = { float32: Float32Array, float64: Float64Array, int32: Int32Array };
let device = null;
const results = [];
for (const job of jobs) {
  const m = await import(new URL("file://" + job.module).href);
  const inputs = job.inputs.map((values, i) => types[m.inputs[i].dtype].from(values));
  let outputs;
  if (job.target === "wgsl") {
    device ??= await (await navigator.gpu.requestAdapter()).requestDevice();
    outputs = await m.run(device, ...inputs);
  } else {
    outputs = m.run(...inputs);
  }
  results.push({ names: m.outputs.map((o) => o.name), values: outputs.map((o) => Array.from(o)) });
}
console.log(JSON.stringify(results));
`;

/**
 * Runs exported modules in a fresh Deno process with no config, no remote modules and read
 * access to `root` only (no write, net, env or run), and returns their outputs.
 */
export async function runStandalone(
  root: string,
  target: Target,
  jobs: readonly StandaloneJob[],
): Promise<StandaloneResult[]> {
  const driverDir = await Deno.makeTempDir({ prefix: "lucid-export-driver-" });
  try {
    const driver = `${driverDir}/driver.js`;
    await Deno.writeTextFile(driver, DRIVER);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        "--no-remote",
        "--no-prompt",
        `--allow-read=${root}`,
        driver,
      ],
      cwd: root,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(
      new TextEncoder().encode(JSON.stringify(jobs.map((j) => ({ ...j, target })))),
    );
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const text = new TextDecoder().decode(stdout);
    if (code !== 0) {
      throw new Error(`standalone run failed (exit ${code}): ${new TextDecoder().decode(stderr)}`);
    }
    return JSON.parse(text);
  } finally {
    await Deno.remove(driverDir, { recursive: true });
  }
}

/** The library's results for a golden case, and the targets its kernels ran as. */
export interface LibraryResult {
  /** y, and dx = d sum(y * g) / dx with `grad`. */
  readonly values: Float32Array[];
  /** The targets of the kernels the library ran (`js`, `wgsl`, ...). */
  readonly targets: ReadonlySet<string>;
}

/** The library's y (and dx with `grad`) for a golden case on `device`. */
export async function libraryLrn(
  c: GoldenCase,
  grad: boolean,
  device: DeviceName,
): Promise<LibraryResult> {
  const x = tensor(Float32Array.from(c.x), { shape: c.shape, device, requiresGrad: grad });
  const y = new nn.LocalResponseNorm(c.size, c.alpha, c.beta, c.k).forward(x);
  const results: Tensor[] = [y];
  if (grad) {
    y.backward(tensor(Float32Array.from(c.g), { shape: c.shape, device }));
    results.push(x.grad!);
  }
  // a JavaScript kernel beside Wasm ones rounds as Wasm does (short sums in float32 steps):
  // it is not the text the js export writes
  const besideWasm = device === "cpu" && cpu.simd && cpu.kernels !== "js";
  const targets = new Set(
    kernels(...results).map((k) => (k.target === "js" && besideWasm ? "js beside wasm" : k.target)),
  );
  await realize(...results); // one schedule, as the export plans it
  const values = await Promise.all(results.map(async (t) => (await t.data()) as Float32Array));
  return { values, targets };
}

/**
 * Asserts an export's output equals the library's: bit for bit when every library kernel ran
 * as the export's target (the same kernel text on the same engine), else within the float32
 * tolerance of `assertClose` (the cpu device may run other targets, such as Wasm, than `js`).
 */
export function assertLikeLibrary(
  got: ArrayLike<number>,
  library: LibraryResult,
  output: number,
  target: string,
  what: string,
): void {
  const want = library.values[output];
  if (library.targets.size === 1 && library.targets.has(target)) {
    assertSameValues(got, want, what);
  } else {
    const scale = Math.max(0, ...Array.from(want).filter(Number.isFinite).map(Math.abs));
    assertClose(got, want, { rtol: 1e-4, atol: 1e-5 * scale, msg: what });
  }
}

/** Asserts two arrays hold the same numbers, bit for bit (NaN equals NaN). */
export function assertSameValues(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  if (got.length !== want.length) {
    throw new Error(`${what}: ${got.length} elements, want ${want.length}`);
  }
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) {
      throw new Error(`${what}: element ${i} is ${got[i]}, the library gives ${want[i]}`);
    }
  }
}

/**
 * Exports every golden case, forward and forward + backward, for `target`, runs them all in one
 * standalone process and checks each output against the library on `device` (bit for bit where
 * it ran the same target) and against the goldens within their float32 tolerance.
 */
export async function checkGoldenExports(target: Target, device: DeviceName): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: `lucid-export-${target}-` });
  try {
    const jobs = [];
    for (const c of goldenCases) {
      for (const grad of [false, true]) {
        const module = await exportCase(c, grad, target, root);
        jobs.push({ module, inputs: grad ? [c.x, c.g] : [c.x] });
      }
    }
    const results = await runStandalone(root, target, jobs);
    let i = 0;
    for (const c of goldenCases) {
      for (const grad of [false, true]) {
        const { names, values } = results[i++];
        const what = caseName(c, grad);
        assertEquals(names, grad ? ["y", "dx"] : ["y"], what);
        const library = await libraryLrn(c, grad, device);
        assertLikeLibrary(values[0], library, 0, target, `${what} y`);
        assertGolden(values[0], c.y, `${what} y`);
        if (grad) {
          assertLikeLibrary(values[1], library, 1, target, `${what} dx`);
          assertGolden(values[1], c.dx, `${what} dx`);
        }
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/**
 * A function whose outputs are an input (`same`), one value twice (`twice`, `again`), a
 * captured constant (`weights`) and a product with it (`scaled`), of one float32[3] input x.
 */
export function copiesFunction() {
  const w = tensor([1.5, -2, 0.25]);
  return jit((x) => ({
    same: x,
    twice: x.mul(2),
    again: x.mul(2),
    weights: w,
    scaled: x.mul(w),
  }));
}

/** Asserts an exported {@link copiesFunction}'s `run` hands out copies the caller owns. */
export function assertOutputCopies(run: (x: Float32Array) => Float32Array[]): void {
  const x = Float32Array.from([1, 2, 3]);
  const [same, twice, again, weights, scaled] = run(x);
  assertEquals(Array.from(same), [1, 2, 3]);
  assert(same !== x, "an input returned is a copy");
  assertEquals(Array.from(x), [1, 2, 3], "the input is untouched");
  assertEquals([Array.from(twice), Array.from(again)], [[2, 4, 6], [2, 4, 6]]);
  assert(again !== twice && again.buffer !== twice.buffer, "a repeated output is its own array");
  assertEquals(Array.from(weights), [1.5, -2, 0.25]);
  assertEquals(Array.from(scaled), [1.5, -4, 0.75]);
  weights[0] = 99; // the caller owns what it gets: the module's constant is untouched
  twice[0] = 99;
  const [, twice2, , weights2, scaled2] = run(x);
  assertEquals([Array.from(twice2), Array.from(weights2)], [[2, 4, 6], [1.5, -2, 0.25]]);
  assertEquals(Array.from(scaled2), [1.5, -4, 0.75]);
  // the copy of an input is made by the built-in constructor: an input's own slice() or
  // species constructor chose what came back (a string, an array the caller already held,
  // a throw from its constructor: helper-164)
  const elsewhere = new Float32Array(3);
  const oddSlice = new (class extends Float32Array {
    override slice(): Float32Array<ArrayBuffer> {
      return "not an array" as unknown as Float32Array<ArrayBuffer>;
    }
  })([1, 2, 3]);
  const oddSpecies = Float32Array.from([1, 2, 3]);
  Object.defineProperty(oddSpecies, "constructor", {
    value: { [Symbol.species]: () => elsewhere },
  });
  for (const input of [oddSlice, oddSpecies]) {
    const [copy] = run(input);
    assertEquals(Object.getPrototypeOf(copy), Float32Array.prototype);
    assert(copy !== elsewhere && copy !== input, "a new array");
    assertEquals(Array.from(copy), [1, 2, 3]);
  }
}

/** Imports `<name>.js` of an export from its text (a data: URL: it may read no other file). */
export async function importExported(files: readonly ExportFile[], name = "model") {
  const file = files.find((f) => f.path === `${name}.js`);
  if (typeof file?.contents !== "string") throw new Error(`the export has no ${name}.js`);
  const base64 = btoa(unescape(encodeURIComponent(file.contents)));
  return await import(`data:text/javascript;base64,${base64}`);
}

/** A Float32Array of `length` values whose `length` property says `claimed`. */
export function lyingArray(length: number, claimed: number): Float32Array {
  return new (class extends Float32Array {
    override get length() {
      return claimed;
    }
  })(length);
}

/**
 * Asserts the synchronous `run` of a `target` export checks the number, types and lengths of
 * its inputs with TypeErrors naming them, and stays usable after refusing a call.
 */
export async function assertInputChecks(target: "js" | "wasm"): Promise<void> {
  const fn = jit((x, dy) => x.mul(dy), { inputNames: ["x", "dy"] });
  const shape = { shape: [2, 3] };
  const m = await importExported((await exportCompiled(fn, [shape, shape], { target })).files);
  const ok = new Float32Array(6);
  assertThrows(() => m.run(ok), TypeError, "run: expected 2 inputs (x, dy), got 1");
  assertThrows(
    () => m.run(ok, new Float64Array(6)),
    TypeError,
    "run: input dy must be a Float32Array of 6 elements (float32[2, 3]), got a Float64Array of 6 elements",
  );
  assertThrows(() => m.run(new Float32Array(5), ok), TypeError, "got a Float32Array of 5 elements");
  // described as "object" before
  assertThrows(() => m.run([1, 2, 3, 4, 5, 6], ok), TypeError, "got an Array of 6 elements");
  assertThrows(() => m.run(new DataView(new ArrayBuffer(24)), ok), TypeError, "got a DataView");
  assertThrows(() => m.run(new Map(), ok), TypeError, "got a Map");
  assertThrows(() => m.run(new Uint8Array(6), ok), TypeError, "got a Uint8Array of 6 elements");
  assertThrows(() => m.run(7, ok), TypeError, "got number");
  assertThrows(() => m.run(null, ok), TypeError, "got null");
  // a typed array's length and tag as the engine knows them, not as the object says: a
  // subclass saying 6 over 2 values ran (NaN in js, the last run's values in wasm, zeros in wgsl)
  assertThrows(() => m.run(lyingArray(2, 6), ok), TypeError, "got a Float32Array of 2 elements");
  const f64 = new Float64Array(6);
  Object.defineProperty(f64, Symbol.toStringTag, { value: "Float32Array" });
  assertThrows(() => m.run(f64, ok), TypeError, "got a Float64Array of 6 elements");
  // a Proxy of a typed array (a reactive store's), which the built-in getters refuse, a revoked
  // one and a throwing getter: the Error still says what run expected (it was the engine's
  // TypeError from describing the value, helper-156)
  const expected = "run: input x must be a Float32Array of 6 elements (float32[2, 3]), got an " +
    "object that is not a typed array and cannot be looked into";
  assertThrows(() => m.run(new Proxy(new Float32Array(6), {}), ok), TypeError, expected);
  const revocable = Proxy.revocable(new Float32Array(6), {});
  revocable.revoke();
  assertThrows(() => m.run(revocable.proxy, ok), TypeError, expected);
  const throwing = {
    get length() {
      throw new Error("a getter that throws");
    },
  };
  assertThrows(() => m.run(throwing, ok), TypeError, expected);
  const [y] = m.run(ok.fill(2), Float32Array.of(1, 2, 3, 4, 5, 6));
  assertEquals(Array.from(y), [2, 4, 6, 8, 10, 12], "a refused call leaves the module usable");
  // the tables run checks against cannot be changed: a shape changed in them had run read past
  // a shorter input (NaN in js, the last call's values in wasm)
  const inputs = m.inputs as { shape: number[]; }[];
  assertThrows(() => (inputs[0].shape[0] = 1), TypeError);
  assertThrows(() => inputs.push({ shape: [1] }), TypeError);
  assertThrows(() => ((m.outputs as { name: string; }[])[0].name = "z"), TypeError);
  assertThrows(() => m.run(new Float32Array(3), new Float32Array(3)), TypeError, "of 6 elements");
  const count = jit((n) => n.add(1), { inputNames: ["n"] });
  const ints = await importExported(
    (await exportCompiled(count, [{ shape: [2], dtype: "int32" }], { target })).files,
  );
  // "a Int32Array" before
  assertThrows(
    () => ints.run(new Float32Array(2)),
    TypeError,
    "run: input n must be an Int32Array of 2 elements (int32[2]), got a Float32Array of 2 elements",
  );
}
