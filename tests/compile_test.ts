// compile() (codegen/compile.ts): executables keyed by content, so an equal kernel compiles
// once wherever it sits; the launch mode a GPU kernel gets (WORKGROUP_REDUCE_WORK) and the
// target limits compile() enforces (loop work per invocation, index width, a Wasm function's
// size); and reductions of
// every length around llvmpipe's 65,535-iteration cap, on webgpu against cpu.

import { cpu, kernels, rand, realize, tensor } from "../mod.ts";
import { compile, executableCount, WORKGROUP_REDUCE_WORK } from "../codegen/compile.ts";
import { ExprBuilder } from "../codegen/kernel.ts";
import { JS_TARGET, WASM_TARGET, WGSL_TARGET } from "../codegen/targets.ts";
import { linearize } from "../codegen/linearize.ts";
import { emitWasm } from "../codegen/wasm.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { assertClose, handKernel, reference, webgpuAvailable, withCpuKernels } from "./helpers.ts";

Deno.test("compile: an equal kernel at another position of another plan compiles once", async () => {
  const x = rand(5, 7);
  const alone = x.exp(); // plan 1: the exp kernel is step 0
  const [only] = kernels(alone);
  await alone.data();
  const executables = executableCount();
  const compiled = cpuBackend.compiledCount();
  // plan 2: another kernel first, then an exp of an equal [5, 7] input as step 1
  const y = rand(5, 7);
  const first = y.sum(1);
  const second = rand(5, 7).exp();
  const ks = kernels(second, first);
  assertEquals(ks.map((k) => k.name), ["k_sum", only.name]);
  assertEquals(ks[1].key, only.key, "same content, same key");
  assertEquals(ks[1].source, only.source, "kernels() still shows the readable source");
  await realize(first, second);
  assertEquals(executableCount(), executables + 1, "only the sum kernel is new");
  assertEquals(cpuBackend.compiledCount(), compiled + 1, "the exp function is reused");
  assertClose(await second.data(), Array.from(second.dataSync()));
  // a different target compiles the same kernel anew, under another key
  const onGpu = kernels(rand(5, 7).to("webgpu").exp());
  assertEquals(onGpu[0].target, "wgsl");
  assert(onGpu[0].key !== only.key);
});

/** out[o] = in0[o] * 3 + 1 over [n]: the same code under any name and comment. */
function affineKernel(n: number, name: string, comment: string) {
  const b = new ExprBuilder();
  const o = b.variable("o", n);
  const value = b.add(b.mul(b.load(0, o, "f32"), b.constant(3, "f32")), b.constant(1, "f32"));
  return handKernel(b, {
    name,
    comment,
    outShape: [n],
    outType: "f32",
    outVars: [o],
    value,
    outIndex: o,
    inputs: [{ type: "f32", shape: [n] }],
  });
}

Deno.test("compile: a Wasm executable's text, printed when read, is that of its own kernel", () => {
  const first = compile(affineKernel(37, "k_mul_add", "out = x * 3 + 1 (first)"), WASM_TARGET);
  // the same bytes under another comment: another executable, whose text says its own comment
  const second = compile(affineKernel(37, "k_mul_add", "out = x * 3 + 1 (second)"), WASM_TARGET);
  assert(first !== second && first.key !== second.key);
  assertEquals(first.binary, second.binary);
  assert(first.text.startsWith(";; out = x * 3 + 1 (first)\n"), first.text);
  assert(second.text.startsWith(";; out = x * 3 + 1 (second)\n"), second.text);
  // an equal kernel is the same executable; its text is the module's text form
  const again = compile(affineKernel(37, "k_mul_add", "out = x * 3 + 1 (first)"), WASM_TARGET);
  assert(again === first);
  const printed = emitWasm(linearize(affineKernel(37, "k_mul_add", "x"), "loops"), true)!.text();
  assertEquals(first.text.split("\n").slice(1), printed.split("\n").slice(1));
  assertStringIncludes(first.text, "f32x4.mul");
});

/** out[o] = sum over r1 < n of sum over r2 < n of in0[r2]: loop work n * n per output. */
function nestedKernel(n: number) {
  const b = new ExprBuilder();
  const o = b.variable("o", 1);
  const r1 = b.variable("r", n);
  const r2 = b.variable("r", n);
  const body = b.add(b.load(0, r2, "f32"), b.cast(b.lt(r1, b.int(1)), "f32"));
  const value = b.reduce("sum", r1, b.reduce("sum", r2, body));
  return handKernel(b, {
    name: "k_nested",
    outShape: [1],
    outType: "f32",
    outVars: [o],
    value,
    outIndex: o,
    inputs: [{ type: "f32", shape: [n] }],
  });
}

Deno.test("compile: WORKGROUP_REDUCE_WORK picks the launch mode of a GPU kernel", () => {
  assertEquals(WORKGROUP_REDUCE_WORK, 16384);
  // 100 x 100 loop iterations: one invocation per output
  const small = compile(nestedKernel(100), WGSL_TARGET);
  assertEquals(small.program.mode, "grid");
  assertStringIncludes(small.text, "@workgroup_size(64)");
  assert(!small.text.includes("workgroupBarrier"));
  // 200 x 200 = 40000: the outer loop is split over 64 lanes and combined in a tree
  const large = compile(nestedKernel(200), WGSL_TARGET);
  assertEquals(large.program.mode, "workgroup");
  assertEquals(large.workgroups, [1, 1], "one workgroup per output");
  assertStringIncludes(large.text, "@builtin(local_invocation_index) lane: u32");
  assertStringIncludes(large.text, "var<workgroup> partial_f32: array<f32, 64>;");
  assertStringIncludes(large.text, "r1 += 64) {");
  assertStringIncludes(large.text, "workgroupBarrier();");
  assertStringIncludes(large.text, "if (lane == 0u) { out[o0] = acc0; }");
  // the cpu target always loops
  assertEquals(compile(nestedKernel(200), JS_TARGET).program.mode, "loops");
});

Deno.test("compile: a kernel whose invocations would loop past the target's cap is refused", () => {
  // 3000 x 3000 nested iterations: 47 x 3000 per lane even with 64 lanes
  const error = assertThrows(() => compile(nestedKernel(3000), WGSL_TARGET), Error, "65535");
  assertStringIncludes((error as Error).message, "k_nested");
  // the JavaScript target has no such cap
  assertEquals(compile(nestedKernel(3000), JS_TARGET).program.mode, "loops");
});

Deno.test("compile: indices beyond the target's integers are refused, never wrapped", async () => {
  // an expand of 2^31 + 10 elements, padded, reduced on webgpu: its indices leave i32
  const long = tensor([1.5], { device: "webgpu" }).expand(2 ** 31 + 10).mul(tensor([2], {
    device: "webgpu",
  }));
  const error = assertThrows(() => kernels(long.pad([[0, 1]]).sum()), Error, "2147483647");
  assertStringIncludes((error as Error).message, '"cpu"');
  // the kernel refused is a stage of the split sum: the Error says what spans too far, not the
  // stage's own output ("a tensor of 46341 elements", which the program never made)
  assertStringIncludes(
    (error as Error).message,
    "(a view or reduction in it spans more than 2147483648 elements)",
  );
  // the same graph on cpu is exact: JavaScript numbers hold indices to 2^53
  const onCpu = tensor([1.5]).expand(2 ** 31 + 10).mul(tensor([2]));
  assertEquals(await onCpu.pad([[0, 1]]).sum().item(), Math.fround(3 * (2 ** 31 + 10)));
  // not padded, the broadcast axis is not looped, on either device: nothing to index
  for (const t of [onCpu, long]) {
    assertEquals(await t.sum().item(), Math.fround(3 * (2 ** 31 + 10)));
    assertEquals(await t.max().item(), 3);
    assertEquals(await t.mean().item(), 3);
  }
});

/** Deterministic values in [0, 1) (positive: sums have no cancellation to blur the check). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32;
  }
  return out;
}

Deno.test({
  name: "compile: webgpu reductions across the loop cap agree with cpu (sum, max, mean)",
  ignore: !webgpuAvailable,
  fn: async () => {
    for (const n of [1, 255, 256, 16385, 65535, 65536, 70000, 1_000_000]) {
      const data = values(n, n);
      const onCpu = tensor(data);
      const onGpu = tensor(data, { device: "webgpu" });
      for (const op of ["sum", "max", "mean"] as const) {
        const want = await onCpu[op]().item();
        const got = await onGpu[op]().item();
        assertClose([got], [want], { rtol: op === "max" ? 0 : 2e-5, msg: `${op} of ${n}` });
      }
    }
    // several axes at once (512 x 512 per output), and a long row per output of a batch
    const data = values(3 * 512 * 512, 9);
    const image = (device: "cpu" | "webgpu") => tensor(data, { shape: [1, 3, 512, 512], device });
    for (const op of ["sum", "max", "mean"] as const) {
      const want = await image("cpu")[op]([2, 3]).data();
      assertClose(await image("webgpu")[op]([2, 3]).data(), want, { rtol: 2e-5, msg: op });
      const rows = await image("webgpu").reshape(6, 131072)[op](1).data();
      assertClose(rows, await image("cpu").reshape(6, 131072)[op](1).data(), {
        rtol: 2e-5,
        msg: `${op} of rows`,
      });
    }
    // nested: the sum over rows of each row's max (a reduction inside a reduction)
    const grid = values(900 * 900, 4);
    const nested = (device: "cpu" | "webgpu") =>
      tensor(grid, { shape: [900, 900], device }).max(1).sum();
    assertClose([await nested("webgpu").item()], [await nested("cpu").item()], { rtol: 2e-5 });
    // NaN still wins a max split over lanes and chunks
    const withNan = values(70000, 3);
    withNan[12345] = NaN;
    assert(Number.isNaN(await tensor(withNan, { device: "webgpu" }).max().item()));
  },
});

Deno.test({
  name: "compile: a kernel past the engines' Wasm function limits compiles for JavaScript",
  ignore: !cpu.simd,
  fn: () =>
    withCpuKernels("wasm", async () => {
      const data = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
      const chain = (links: number) => {
        let y = tensor(data);
        for (let i = 0; i < links; i++) y = y.mul(1.1).tanh();
        return y;
      };
      // each tanh is about a dozen values, two locals each in the vector loop: 200 fit in
      // 50,000 locals, 1500 do not (V8 refused that module: "local count too large")
      for (const [links, target] of [[200, "wasm"], [1500, "js"]] as const) {
        const y = chain(links);
        const ks = kernels(y);
        assertEquals(ks.map((k) => k.target), [target], `${links} links`);
        assertClose(await y.data(), reference(y), { rtol: 1e-5, atol: 1e-6, msg: `${links}` });
      }
    }),
});

Deno.test("compile: nested short reductions unroll the innermost only (bounded code)", async () => {
  // every reduction of at most 8 trips was unrolled, nested ones inside each other's copies:
  // the sum of a (7, 7, 7, 7, 7, 7) tensor printed 2.5 million lines and took 18 s on the cpu,
  // and overflowed the stack on webgpu
  const shape = [7, 7, 7, 7, 7, 7];
  const values = Float32Array.from({ length: 7 ** 6 }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  for (const device of webgpuAvailable ? ["cpu", "webgpu"] as const : ["cpu"] as const) {
    for (const kernelsOf of device === "cpu" ? ["js", "wasm"] as const : ["auto"] as const) {
      await withCpuKernels(kernelsOf, async () => {
        const x = tensor(values, { shape, device });
        const y = x.tanh().sum();
        for (const k of kernels(y)) {
          const lines = k.source.split("\n").length;
          assert(lines < 1000, `${device} ${kernelsOf}: ${lines} lines`);
        }
        const want = reference(tensor(values, { shape }).tanh().sum());
        assertClose(await y.data(), want, { rtol: 1e-4, msg: `${device} ${kernelsOf}` });
      });
    }
  }
});
