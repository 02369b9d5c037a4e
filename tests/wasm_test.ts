// The Wasm emitter (codegen/wasm.ts) beyond the op tables: short windows unrolled with one test
// for the whole window away from the edges and a test per trip at them, checked for values at
// every position of the window against the float64 reference, and in the kernel text.

import { kernels, nn, randn, type Tensor, tensor } from "../mod.ts";
import { assert, assertEquals } from "./assert.ts";
import {
  assertClose,
  onBackend,
  plannedExecutables,
  reference,
  rng,
  testBackends,
  withCpuKernels,
} from "./helpers.ts";

const wasmBackends = testBackends.filter((b) => b.kernels === "wasm");

Deno.test("wasm: a window is whole inside and cut at both edges, forward and backward", async () => {
  for (const backend of wasmBackends) {
    await onBackend(backend, async () => {
      // fewer channels than the window (every trip guarded), as many, and more (interior too)
      for (const [channels, size] of [[1, 5], [2, 5], [3, 3], [5, 5], [9, 5], [11, 7]]) {
        const what = `${backend.name}, ${channels} channels, size ${size}`;
        using x = randn([2, channels, 3, 6], { requiresGrad: true }).mul(3).detach()
          .requiresGrad_();
        await x.realize(); // (else kernels(y) lists x's kernel too, as realizing y runs it)
        using g = randn([2, channels, 3, 6]);
        const lrn = new nn.LocalResponseNorm(size, 0.5, 0.75, 1);
        using y = lrn.forward(x);
        y.backward(g);
        using dx = x.grad!;
        assertEquals(kernels(y).map((k) => k.target), ["wasm"], what);
        assertClose(await y.data(), reference(y), { rtol: 2e-5, atol: 1e-6, msg: `${what}: y` });
        assertClose(await dx.data(), reference(dx), { rtol: 1e-4, atol: 1e-5, msg: `${what}: dx` });
      }
    });
  }
});

Deno.test("wasm: LocalResponseNorm's window is tested once per element away from the edges", async () => {
  await onBackend(wasmBackends[0], () => {
    using x = randn([1, 16, 4, 8]);
    using y = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2).forward(x);
    const [kernel] = kernels(y);
    assertEquals(kernel.target, "wasm");
    const lines = kernel.source.split("\n").map((l) => l.trim());
    // rule WHOLE_WINDOWS: the window's bounds are known before the vector loop, so one test
    // there chooses a copy of the loop whose window has no tests (the centre load and five
    // window loads) or one whose window tests each trip; the scalar tail chooses per element
    const first = lines.indexOf("if");
    let depth = 0;
    let choice = -1;
    for (let i = first + 1; i < lines.length && choice < 0; i++) {
      if (["block", "loop", "if"].includes(lines[i])) depth++;
      else if (lines[i] === "end") depth--;
      else if (lines[i] === "else" && depth === 0) choice = i;
    }
    assert(choice > first, "the test before the vector loop has an else");
    const whole = lines.slice(first + 1, choice);
    assertEquals(whole.filter((l) => l === "if").length, 0, "tests in the whole-window copy");
    assertEquals(whole.filter((l) => l.startsWith("v128.load")).length, 6);
    const vectorLoads = lines.filter((l) => l.startsWith("v128.load")).length;
    assertEquals(vectorLoads, 12, "loads of the two copies of the vector loop");
    assertEquals(lines.filter((l) => l === "else").length, 2, "two choices: loop copy, tail");
  });
});

Deno.test("wasm: two windows fixed along the vector loop, each whole or cut (WHOLE_WINDOWS)", async () => {
  for (const backend of wasmBackends) {
    await onBackend(backend, async () => {
      // two windows over the channels with their own padding, in one kernel: where one is
      // whole and the other cut, the copy of the vector loop with per-element tests runs;
      // innermost lengths give vector loops with and without tails, and none at all
      for (const [channels, width] of [[9, 8], [6, 7], [2, 5], [12, 3], [4, 1]]) {
        const what = `${backend.name}, ${channels} channels, width ${width}`;
        using x = randn([2, channels, 2, width]);
        using sums = x.pad([[0, 0], [2, 2], [0, 0], [0, 0]]).unfoldDim(1, 5, 1).square().sum(-1);
        using after = x.pad([[0, 0], [0, 3], [0, 0], [0, 0]]).unfoldDim(1, 4, 1).sum(-1);
        using y = sums.add(after);
        assertEquals(kernels(y).map((k) => k.target), ["wasm"], what);
        assertClose(await y.data(), reference(y), { rtol: 2e-5, atol: 1e-6, msg: what });
      }
    });
  }
});

Deno.test("wasm: windows along the vectorized axis, with steps, and padded unevenly", async () => {
  for (const backend of wasmBackends) {
    await onBackend(backend, async () => {
      for (
        const [length, size, step, before, after] of [
          [13, 5, 1, 2, 2],
          [13, 3, 2, 0, 4],
          [7, 8, 1, 3, 0],
          [30, 4, 3, 1, 5],
        ]
      ) {
        const what = `${backend.name}: length ${length}, window ${size} step ${step}`;
        using x = randn([3, 2, length]);
        using windows = x.pad([[0, 0], [0, 0], [before, after]]).unfoldDim(2, size, step);
        using sums = windows.square().sum(-1).add(x.sum(-1, true).mul(0));
        using maxes = windows.max(-1);
        assertClose(await sums.data(), reference(sums), { rtol: 2e-5, msg: `${what}: sum` });
        assertClose(await maxes.data(), reference(maxes), {
          rtol: 0,
          atol: 0,
          msg: `${what}: max`,
        });
      }
    });
  }
});

Deno.test("wasm: any cut of a kernel's rows into ranges computes every element once", async () => {
  // Rule SPLIT_TWO_AXES: [start, end) counts rows of the first two output axes when the second
  // is not the vectorized one, so a range may begin and end inside a row of the first; the
  // kernel runs on a memory of its own, whole and in random pieces, and must agree bit for bit
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16384, shared: true });
  const floats = new Float32Array(memory.buffer);
  const random = rng(7);
  await onBackend(wasmBackends[0], async () => {
    // a window along axis 1, the second split axis: its edges depend on where a row starts
    const lrn = (x: Tensor) => new nn.LocalResponseNorm(3, 0.5, 0.75, 1).forward(x);
    for (
      const [shape, rows, f] of [
        [[2, 5, 3, 6], 10, lrn],
        [[1, 7, 2, 9], 7, lrn],
        [[3, 2, 5], 6, lrn],
        [[4, 3, 1, 4], 12, lrn],
        [[6, 3, 3], 18, lrn], // the last axis too short for lanes: both split axes are scalar
        [[5, 8], 40, lrn], // the window along the last axis keeps it out of lanes likewise
        // the second axis in lanes: rows of the first alone
        [[5, 8], 5, (x: Tensor) => x.pad([[0, 0], [1, 2]]).exp()],
        // one axis, in lanes: its groups of four (SPLIT_WHOLE_VECTORS), the last one short
        [[37], 10, (x: Tensor) => x.exp().maximum(x)],
      ] as const
    ) {
      using x = randn([...shape]);
      using y = f(x);
      const executables = plannedExecutables(y);
      assertEquals(executables.length, 1);
      const [executable] = executables;
      assertEquals(executable.target, "wasm");
      assertEquals(executable.splitExtent, rows, `${shape}: rows`);
      assertEquals(executable.program.kernel.inputs.length, 1);
      const n = y.numel;
      floats.set(await x.data(), n); // the output at byte 0, the input after it
      const { exports } = new WebAssembly.Instance(
        new WebAssembly.Module(executable.binary! as Uint8Array<ArrayBuffer>),
        { env: { memory } },
      );
      const run = exports[executable.name] as (...args: number[]) => void;
      run(0, 4 * n, 0, rows);
      const whole = floats.slice(0, n);
      assertClose(whole, reference(y), { rtol: 2e-5, atol: 1e-6, msg: `${shape}: whole` });
      for (let trial = 0; trial < 20; trial++) {
        floats.fill(NaN, 0, n);
        const cuts = [0, rows];
        for (let c = 0; c < 3; c++) cuts.push(Math.floor(random() * (rows + 1)));
        cuts.sort((a, b) => a - b);
        // last piece first, as threads may finish them: a piece that wrote past its end would
        // leave a wrong value where a later piece had written
        for (let c = cuts.length - 2; c >= 0; c--) run(0, 4 * n, cuts[c], cuts[c + 1]);
        assertEquals(Array.from(floats.slice(0, n)), Array.from(whole), `${shape}: cuts ${cuts}`);
      }
    }
  });
});

Deno.test("wasm: a sum over several axes of more than 64 terms in all accumulates in float64", async () => {
  // each axis alone has at most 64 terms: every level summed in float32 steps, so 1e8 and 127
  // ones came to 100000064 (the nearest float32 to the true 100000127 is 100000128)
  const data = [1e8, ...new Array(127).fill(1)];
  const values = Float32Array.from({ length: 50 * 50 * 50 }, (_, i) => Math.sin(i) * 100);
  const jsSums = await withCpuKernels(
    "js",
    () => tensor(values, { shape: [50, 50, 50] }).sum([1, 2]).data(),
  );
  for (const backend of wasmBackends) {
    await onBackend(backend, async () => {
      const both = tensor(data, { shape: [2, 64] }).sum();
      assertEquals(kernels(both).map((k) => k.target), ["wasm"]);
      assertEquals(await both.item(), Math.fround(100000127), backend.name);
      // as the JavaScript kernels sum them: each level in float64, rounded between levels
      const sums = await tensor(values, { shape: [50, 50, 50] }).sum([1, 2]).data();
      assertEquals(Array.from(sums), Array.from(jsSums), backend.name);
    });
  }
});
