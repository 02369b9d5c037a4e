// The JavaScript printer (codegen/js.ts over codegen/printer.ts): the exact source of small
// kernels is pinned, so any change to lowering, rewrite rules or placement shows up here as a
// reviewed diff. Each pinned kernel is also run and checked against hand-worked values.

import { cpu, full, kernels, realize, tensor, zeros } from "../mod.ts";
import { printJs } from "../codegen/js.ts";
import { ExprBuilder } from "../codegen/kernel.ts";
import { linearize } from "../codegen/linearize.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import {
  assertClose,
  handKernel,
  onBackend,
  plannedKernelIR,
  reference,
  testBackends,
  withCpuKernels,
} from "./helpers.ts";
import { compile } from "../codegen/compile.ts";
import { JS_BESIDE_WASM_TARGET } from "../codegen/targets.ts";

Deno.test("padded window sum: clipped loop bounds are hoisted out of the innermost loop", () =>
  withCpuKernels("js", async () => {
    const x = zeros(2, 8).pad([[0, 0], [2, 2]]).unfoldDim(1, 5).sum(-1);
    const ks = kernels(x);
    assertEquals(ks.length, 1);
    assertEquals(ks[0].target, "js");
    // the window's validity test became the loop bounds [max(0, 2 - o1), min(5, 10 - o1)),
    // computed once per output element; the innermost loop only adds and loads.
    assertEquals(
      ks[0].source,
      `// lucid kernel: out float32[2,8] from in0: float32[2,8]
// out = reshape(sum(unfoldDim(pad(in0, {pads=[[0,0],[2,2]],value=0}), {dim=1,size=5,step=1}), [2]))
function k_sum(out, in0) {
  for (let o0 = 0; o0 < 2; o0++) {
    const idx0 = o0 * 8;
    const idx1 = idx0 - 2;
    for (let o1 = 0; o1 < 8; o1++) {
      const idx2 = idx0 + o1;
      const idx3 = -o1;
      const idx4 = idx3 + 2;
      const idx5 = Math.max(0, idx4);
      const idx6 = idx3 + 10;
      const idx7 = Math.min(5, idx6);
      const idx8 = idx1 + o1;
      let acc0 = 0;
      for (let r2 = idx5; r2 < idx7; r2++) {
        const idx9 = idx8 + r2;
        const in0_0 = in0[idx9];
        acc0 += in0_0;
      }
      acc0 = Math.fround(acc0);
      out[idx2] = acc0;
    }
  }
}
`,
    );
    // run the same structure on data: each output is the sum of its (clipped) 5-window
    const data = Array.from({ length: 16 }, (_, i) => i + 1);
    const y = tensor(data, { shape: [2, 8] }).pad([[0, 0], [2, 2]]).unfoldDim(1, 5).sum(-1);
    const expected = [0, 1].flatMap((r) =>
      Array.from({ length: 8 }, (_, c) => {
        let s = 0;
        for (let k = c - 2; k <= c + 2; k++) if (k >= 0 && k < 8) s += data[r * 8 + k];
        return s;
      })
    );
    assertEquals(Array.from(await y.data()), expected);
  }));

Deno.test("int32 kernel: products use Math.imul, sums wrap with | 0, max starts at INT_MIN", async () => {
  const ks = kernels(
    zeros([3, 4], { dtype: "int32" }).mul(zeros([4], { dtype: "int32" })).add(7).max(0),
  );
  assertEquals(
    ks[0].source,
    `// lucid kernel: out int32[4] from in0: int32[3,4], in1: int32[4]
// out = reshape(max(add(mul(in0, expand(reshape(in1))), expand(reshape(7))), [0]))
function k_mul_add_max(out, in0, in1) {
  for (let o0 = 0; o0 < 4; o0++) {
    const in1_0 = in1[o0];
    let acc0 = -2147483648;
    for (let r1 = 0; r1 < 3; r1++) {
      const idx0 = r1 * 4;
      const idx1 = o0 + idx0;
      const in0_0 = in0[idx1];
      const v0 = Math.imul(in0_0, in1_0);
      const v1 = (v0 + 7) | 0;
      acc0 = Math.max(acc0, v1);
    }
    out[o0] = acc0;
  }
}
`,
  );
  const a = tensor([[1, -2, 3, 65536], [4, 5, -6, 65536], [-7, 8, 9, -1]], { dtype: "int32" });
  const b = tensor([2, 3, -1, 65536], { dtype: "int32" });
  const y = a.mul(b).add(7);
  // column 3: 65536 * 65536 wraps to 0 (unwrapped it would be 2^32), so its max is 0 + 7
  assertEquals(Array.from(await y.max(0).data()), [15, 31, 13, 7]);
  assertEquals(Array.from(await y.max(0).data()), Array.from(reference(y.max(0))));
});

Deno.test("strided window: unfoldDim with step 2 needs no division", () =>
  withCpuKernels("js", () => {
    const src = kernels(zeros(6).unfoldDim(0, 2, 2).sum(-1))[0].source;
    assertStringIncludes(src, "const idx0 = o0 * 2;");
    assertEquals(/[%/]\s/.test(src.split("\n").slice(2).join("\n")), false, src);
  }));

Deno.test("printer spells literals, comparisons, selects and casts", () =>
  withCpuKernels("js", async () => {
    // NaN, infinities and -0 as literals; a comparison as a select of 1 and 0
    const x = tensor([1, -1, 0, 2]);
    const y = x.maximum(-Infinity).add(x.lt(0)).pad([[1, 1]], NaN);
    const src = kernels(y)[0].source;
    assertStringIncludes(src, "-Infinity");
    assertStringIncludes(src, "NaN");
    assertStringIncludes(src, " < 0");
    assertStringIncludes(src, " ? 1 : 0");
    const got = Array.from(await y.data());
    assertClose(got, reference(y));
    assertEquals(got.slice(1, 5), [1, 0, 0, 2]);
    // float64 -> float32 casts round with Math.fround, float -> int32 truncates with | 0
    const c = tensor([0.1], { dtype: "float64" }).cast("float32");
    assertStringIncludes(kernels(c)[0].source, "Math.fround(");
    assertEquals((await c.data())[0], Math.fround(0.1));
    assertStringIncludes(kernels(tensor([1.5]).cast("int32"))[0].source, " | 0");
  }));

Deno.test("printJs of a hand-built kernel: constants fold before printing", () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 3);
  const value = b.add(b.load(0, o, "f32"), b.mul(b.constant(2, "f32"), b.constant(3, "f32")));
  const kernel = handKernel(b, {
    name: "k_test",
    comment: "hand-built",
    outShape: [3],
    outType: "f32",
    outVars: [o],
    value,
    outIndex: o,
    inputs: [{ type: "f32", shape: [3] }],
  });
  const source = printJs(linearize(kernel, "loops"));
  assertEquals(
    source,
    `// hand-built
function k_test(out, in0) {
  for (let o0 = 0; o0 < 3; o0++) {
    const in0_0 = in0[o0];
    const v0 = Math.fround(in0_0 + 6);
    out[o0] = v0;
  }
}
`,
  );
  const fn = new Function(`${source}\nreturn k_test;`)() as (
    out: Float32Array,
    in0: Float32Array,
  ) => void;
  const out = new Float32Array(3);
  fn(out, new Float32Array([1, 2, 3]));
  assertEquals(Array.from(out), [7, 8, 9]);
});

Deno.test("js: float32 values are float32 (each rounding op rounds), on every cpu backend", async (t) => {
  for (const backend of testBackends.filter((b) => b.device === "cpu")) {
    await t.step(backend.name, () =>
      onBackend(backend, async () => {
        // 0.7f * 10 is 6.99999988 in double, 7 in float32; 1.7f * 10 is 17.0000005 -> 17
        const x = tensor([0.7, 1.7, -2.3]);
        const a = x.mul(10);
        const b = a.cast("int32");
        assertEquals(Array.from(await b.data()), [7, 17, -23], "fused: cast of a product");
        // realized together (one kernel writes both) or apart, b is the cast of a as stored
        const x2 = tensor([0.7, 1.7, -2.3]);
        const a2 = x2.mul(10);
        const b2 = a2.cast("int32").add(x2.cast("int32"));
        await realize(a2, b2);
        const stored = Array.from(await a2.data());
        assertEquals(
          Array.from(await b2.data()),
          stored.map((v, i) => Math.trunc(v) + [0, 1, -2][i]),
        );
        // a float32 constant is the float32 nearest it, and rsqrt rounds the root first, as
        // Wasm and WGSL compute them
        const ys = tensor([13, 7, 3, 1.5, 0.7]);
        const f = Math.fround;
        assertEquals(
          Array.from(await ys.mul(0.1).data()),
          [13, 7, 3, 1.5, 0.7].map((y) => f(f(y) * f(0.1))),
        );
        assertEquals(
          Array.from(await ys.rsqrt().data()),
          [13, 7, 3, 1.5, 0.7].map((y) => f(1 / f(Math.sqrt(f(y))))),
        );
        // a long float32 sum still accumulates in double and rounds once
        const n = 1 << 16;
        const s = full([n], 0.1).sum();
        assertClose(await s.data(), [Math.fround(0.1) * n], { rtol: 1e-6 });
        // a sum over two axes rounds each row's sum (README): 1e8 + 3 is 1e8 in float32
        const rows = tensor([1e8, 1, 1, 1, -1e8, 1, 1, 1], { shape: [2, 4] });
        assertEquals(Array.from(await rows.sum().data()), [0]);
        // in one axis, a JavaScript-only kernel sums in a double (6); Wasm's eight terms round
        // each step (3)
        const flat = await rows.reshape([8]).sum().data();
        assertEquals(Array.from(flat), [backend.kernels === "js" ? 6 : 3], backend.name);
      }));
  }
});

Deno.test({
  name: "js: beside Wasm, float32 exp, log, tanh and sigmoid have the Wasm backend's bits",
  ignore: !cpu.simd,
  fn: async () => {
    // 2^18 float32 bit patterns from a fixed generator, and the edges of every range
    const n = 1 << 18;
    const bits = new Uint32Array(n);
    for (let i = 0, s = 12345; i < n; i++) bits[i] = s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const edges = [0, -0, 1, -1, Infinity, -Infinity, NaN, 1e-45, -1e-45, 1.17549435e-38];
    const more = [3.4e38, -3.4e38, 88.7, 88.8, -103.9, -104.1, 89.5, 0.5, 2.5, -2.5, 0.125];
    const values = new Float32Array([
      ...edges,
      ...more,
      -0.125,
      0.12499999,
      ...new Float32Array(bits.buffer),
    ]);
    for (const op of ["exp", "log", "tanh", "sigmoid"] as const) {
      const wasm = await withCpuKernels("wasm", () => tensor(values)[op]().data());
      // the kernel planned for JavaScript alone (tanh native there), compiled as the cpu
      // compiles a JavaScript kernel beside Wasm ones
      const [kernel] = await withCpuKernels("js", () => plannedKernelIR(tensor(values)[op]()));
      const { text, name } = compile(kernel, JS_BESIDE_WASM_TARGET);
      const run = new Function(`${text}\nreturn ${name};`)();
      const js = new Float32Array(values.length);
      run(js, values);
      let differ = 0;
      for (let i = 0; i < values.length; i++) {
        if (!Object.is(js[i], wasm[i]) && !(Number.isNaN(js[i]) && Number.isNaN(wasm[i]))) differ++;
      }
      assertEquals(differ, 0, `${op}: ${differ} of ${values.length} differ`);
    }
  },
});

Deno.test({
  name: "js: a value a Wasm kernel and a JavaScript kernel both compute agrees with itself",
  ignore: !cpu.simd,
  fn: async () => {
    // a float32 v whose exp in JavaScript's Math.exp, rounded, is not Wasm's
    const candidates = Array.from({ length: 256 }, (_, i) => Math.fround(0.1 + i * 0.0123));
    const wasmExp = await withCpuKernels("wasm", () => tensor(candidates).exp().data());
    const v = candidates.find((c, i) => Math.fround(Math.exp(c)) !== wasmExp[i])!;
    // V = exp(x): its max is a Wasm kernel; V < max, next to a general pow, a JavaScript one,
    // which used Math.exp: at the maximum itself V was below the max
    const build = () => {
      const x = tensor([v - 0.5, v]);
      const big = x.exp();
      const max = big.max();
      return [max, big.lt(max).mul(x.pow(tensor([2, 2])))];
    };
    const together = build();
    assertEquals(kernels(...together).map((k) => k.target).sort(), ["js", "wasm"]);
    await realize(...together);
    const below = Array.from(await together[1].data());
    assertEquals(below, [Math.fround((v - 0.5) ** 2), 0]);
    assertEquals(below, Array.from(await build()[1].data()), "as realized one at a time");
  },
});

Deno.test({
  name: "js: beside Wasm, a short float32 sum rounds each step as Wasm's does",
  ignore: !cpu.simd,
  fn: async () => {
    // -1 - 2^-24 - 2^-24 is -1 summed in float32 (each step a tie to even) and -1 - 2^-23 in
    // a double rounded once: S's max is a Wasm kernel; S < max, next to a general pow, a
    // JavaScript one, which found the maximum row below the maximum
    const e = 2 ** -24;
    const build = () => {
      const x = tensor([[-1, -e, -e], [-2, 0, 0]]);
      const s = x.sum(1);
      const max = s.max();
      return [max, s.lt(max).mul(tensor([1, 2]).pow(tensor([2, 2])))];
    };
    const together = build();
    assertEquals(kernels(...together).map((k) => k.target).sort(), ["js", "wasm"]);
    await realize(...together);
    assertEquals(Array.from(await together[0].data()), [-1]);
    assertEquals(Array.from(await together[1].data()), [0, 4]);
    // JavaScript kernels alone keep the double accumulator (closer to the exact sum)
    const alone = await withCpuKernels("js", () => tensor([[-1, -e, -e]]).sum(1).data());
    assertEquals(Array.from(alone), [Math.fround(-1 - 2 * e)]);
  },
});

Deno.test("JavaScript kernels: a NaN has the same bits at every run, however hot the kernel", async () => {
  // Math.max and Math.min of a NaN gave fff8... at first and ffff... once V8 had optimized the
  // kernel (about 70 runs): results equal bit for bit, NaNs included, were not
  const a = tensor([NaN, 1, -0, 5, 0 / 0], { dtype: "float64" });
  const b = tensor([1, NaN, 0, 2, Infinity - Infinity], { dtype: "float64" });
  const bits = (values: Float64Array) =>
    Array.from(new BigUint64Array(values.buffer), (v) => v.toString(16)).join(",");
  const seen = new Set<string>();
  for (let run = 0; run < 300; run++) {
    // a new structure at every run would compile anew: the same one, computed again
    const y = a.maximum(b).add(a.minimum(b)).exp();
    seen.add(bits(await y.data() as Float64Array));
    y.dispose();
  }
  assertEquals(seen.size, 1, [...seen].join(" | "));
  const [first] = [...seen];
  const lanes = first.split(",");
  assertEquals([lanes[0], lanes[1], lanes[4]], new Array(3).fill("7ff8000000000000"));
  assertEquals(lanes[2], "3ff0000000000000"); // exp(max(-0, 0) + min(-0, 0)) = exp(0)
  // a max reduction keeps plain Math.max on its accumulator, and makes its NaN one after it
  const reduced = new Set<string>();
  for (let run = 0; run < 300; run++) {
    const m = a.max();
    reduced.add(bits(await m.data() as Float64Array));
    m.dispose();
  }
  assertEquals([...reduced], ["7ff8000000000000"]);
  // float32 exp of a NaN: a JavaScript kernel beside Wasm ones (a general pow keeps it on
  // JavaScript) gives Wasm's NaN, as README says the two targets agree on exp
  const x = tensor([NaN, 1, NaN, 0.5]);
  const bits32 = (values: Float32Array) =>
    Array.from(new Uint32Array(values.buffer), (v) => v.toString(16)).join(",");
  const wasmExp = bits32(await x.exp().data() as Float32Array);
  const jsExp = bits32(await x.pow(tensor([1, 1, 1, 1])).exp().data() as Float32Array);
  if (cpu.simd) assertEquals(jsExp, wasmExp);
});
