// The Wasm emitter (codegen/wasm.ts) beyond the op tables: short windows unrolled with one test
// for the whole window away from the edges and a test per trip at them, checked for values at
// every position of the window against the float64 reference, and in the kernel text.

import { kernels, nn, randn } from "../mod.ts";
import { assert, assertEquals } from "./assert.ts";
import { assertClose, onBackend, reference, testBackends } from "./helpers.ts";

const wasmBackends = testBackends.filter((b) => b.kernels === "wasm");

Deno.test("wasm: a window is whole inside and cut at both edges, forward and backward", async () => {
  for (const backend of wasmBackends) {
    await onBackend(backend, async () => {
      // fewer channels than the window (every trip guarded), as many, and more (interior too)
      for (const [channels, size] of [[1, 5], [2, 5], [3, 3], [5, 5], [9, 5], [11, 7]]) {
        const what = `${backend.name}, ${channels} channels, size ${size}`;
        using x = randn([2, channels, 3, 6], { requiresGrad: true }).mul(3).detach()
          .requiresGrad_();
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
    // the vector body and the scalar tail each hold one window: a whole-window copy (no test
    // per trip) and an edge copy (one test per trip), chosen by one `if ... else`
    assertEquals(lines.filter((l) => l === "else").length, 2);
    const loads = lines.filter((l) => l.startsWith("v128.load")).length;
    assert(loads >= 10, `expected both copies of the 5 window loads, got ${loads}`);
  });
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
