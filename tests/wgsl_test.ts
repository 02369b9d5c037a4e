// The WGSL printer: the exact source of one small kernel, how literals are spelled, the 2-D
// grid, floor division, and the float64 error. None of these need a GPU; the runtime tests
// (webgpu_test.ts) compile and run what is printed here.

import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { ExprBuilder, type Kernel } from "../codegen/kernel.ts";
import { dispatchGrid, MAX_WORKGROUPS_PER_DIMENSION, WgslPrinter } from "../codegen/wgsl.ts";
import type { Expr, ScalarType } from "../codegen/kernel.ts";
import { compile } from "../codegen/compile.ts";
import { WGSL_TARGET } from "../codegen/targets.ts";
import { kernels, tensor } from "../mod.ts";
import { handKernel } from "./helpers.ts";

/** The WGSL a kernel compiles to. */
const printWgsl = (kernel: Kernel) => compile(kernel, WGSL_TARGET).text;

/** out[o0] = sum over r of in0[o0 * n + r] * 0.5, plus 1e-5: a row sum of a [2, n] input. */
function rowSumKernel(n = 3): Kernel {
  const b = new ExprBuilder();
  const o = b.variable("o", 2);
  const r = b.variable("r", n);
  const x = b.load(0, b.add(b.mul(o, b.int(n)), r), "f32");
  const acc = b.reduce("sum", r, b.mul(x, b.constant(0.5, "f32")));
  return handKernel(b, {
    name: "k_rowsum",
    comment: `out float32[2] from in0: float32[2,${n}]\nout = sum(in0 * 0.5, axis 1) + 1e-5`,
    outShape: [2],
    outType: "f32",
    outVars: [o],
    value: b.add(acc, b.constant(1e-5, "f32")),
    outIndex: o,
    inputs: [{ type: "f32", shape: [2, n] }],
  });
}

Deno.test("wgsl: a reduction of more than 8 trips stays a loop", () => {
  const source = printWgsl(rowSumKernel(9));
  assertStringIncludes(source, "for (var r1: i32 = 0; r1 < 9; r1++) {");
  assert(!source.includes("if (0 <= 0"), source);
});

Deno.test("wgsl: the source of a small reduction kernel (a window of 3 trips, unrolled)", () => {
  assertEquals(
    printWgsl(rowSumKernel()),
    `// out float32[2] from in0: float32[2,3]
// out = sum(in0 * 0.5, axis 1) + 1e-5
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
var<private> zero_bits: u32 = 0x00000000u;

@compute @workgroup_size(64)
fn k_rowsum(@builtin(global_invocation_id) id: vec3<u32>) {
  let gid: u32 = id.x;
  if (gid >= 2u) { return; }
  zero_bits = 0x00000000u | id.z;
  let o0: i32 = i32(gid);
  let idx0: i32 = o0 * 3;
  var acc0: f32 = bitcast<f32>(zero_bits);
  if (0 <= 0 && 0 < 3) {
    let r1: i32 = 0;
    let idx1: i32 = idx0 + r1;
    let in0_0: f32 = in0[idx1];
    let v0: f32 = in0_0 * 0.5;
    acc0 = acc0 + v0;
  }
  if (0 <= 1 && 1 < 3) {
    let r1: i32 = 1;
    let idx1: i32 = idx0 + r1;
    let in0_0: f32 = in0[idx1];
    let v0: f32 = in0_0 * 0.5;
    acc0 = acc0 + v0;
  }
  if (0 <= 2 && 2 < 3) {
    let r1: i32 = 2;
    let idx1: i32 = idx0 + r1;
    let in0_0: f32 = in0[idx1];
    let v0: f32 = in0_0 * 0.5;
    acc0 = acc0 + v0;
  }
  let v1: f32 = acc0 + 1e-5;
  out[o0] = v1;
}
`,
  );
});

/** Exposes the printer's literal spelling. */
class LiteralProbe extends WgslPrinter {
  spellLiteral(value: number, type: ScalarType): string {
    return this.literal(value, type);
  }
}

Deno.test("wgsl: literals are spelled so WGSL accepts them and reads back the same value", () => {
  const p = new LiteralProbe();
  const f32 = (v: number) => p.spellLiteral(v, "f32");
  assertEquals(f32(1), "1.0");
  assertEquals(f32(0), "0.0");
  assertEquals(f32(-2), "-2.0");
  assertEquals(f32(0.5), "0.5");
  assertEquals(f32(0.1), "0.1"); // the shortest decimal that rounds to the same f32
  assertEquals(f32(0.001), "0.001");
  assertEquals(f32(1e-5), "1e-5");
  assertEquals(f32(2.5e-7), "2.5e-7");
  assertEquals(f32(123456789), "123456790.0"); // 123456789 is not an f32; its f32 prints so
  assertEquals(f32(1e21), "1e+21");
  assertEquals(f32(-0), "-0.0");
  // no constant expression may be infinite or NaN: they are read from private variables
  assertEquals(f32(Infinity), "bitcast<f32>(inf_bits)");
  assertEquals(f32(-Infinity), "bitcast<f32>(neg_inf_bits)");
  assertEquals(f32(1e39), "bitcast<f32>(inf_bits)"); // overflows f32
  assertEquals(f32(NaN), "bitcast<f32>(nan_bits)");
  // the largest f32: its short spellings (3.4028235e+38) lie above it, so all digits are kept
  assertEquals(Math.fround(Number(f32(3.4028234663852886e38))), 3.4028234663852886e38);
  assert(Number(f32(3.4028234663852886e38)) <= 3.4028234663852886e38);
  // every finite spelling parses back to the same f32
  for (const v of [Math.PI, 1 / 3, 6.02e23, -1.17549435e-38, 1e-45, 65504.5]) {
    assertEquals(Math.fround(Number(f32(v))), Math.fround(v), `spelling of ${v}`);
    assertStringIncludes(f32(v).replace("e", "."), ".", `${v} must not read as an integer`);
  }
  assertEquals(p.spellLiteral(7, "i32"), "7");
  assertEquals(p.spellLiteral(-7, "i32"), "-7");
  assertEquals(p.spellLiteral(-2147483648, "i32"), "bitcast<i32>(0x80000000u)");
  assertEquals(p.spellLiteral(2147483647, "i32"), "2147483647");
  assertEquals(p.spellLiteral(1, "bool"), "true");
  assertEquals(p.spellLiteral(0, "bool"), "false");
  assertThrows(() => p.spellLiteral(1, "f64"), Error, "float64");
});

Deno.test("wgsl: float64 kernels throw an error naming float64 and webgpu", () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 4);
  const kernel = handKernel(b, {
    name: "k_double",
    comment: "out float64[4]",
    outShape: [4],
    outType: "f64",
    outVars: [o],
    value: b.mul(b.load(0, o, "f64"), b.constant(2, "f64")),
    outIndex: o,
    inputs: [{ type: "f64", shape: [4] }],
  });
  const error = assertThrows(() => printWgsl(kernel), Error, "float64");
  assertStringIncludes((error as Error).message, "webgpu");
  // an f32 kernel with an f64 intermediate is refused too
  const inner = b.cast(b.mul(b.cast(b.load(0, o, "f32"), "f64"), b.constant(2, "f64")), "f32");
  const mixed: Kernel = {
    ...kernel,
    outputs: [{ type: "f32", value: inner }],
    inputs: [{ type: "f32", shape: [4], numel: 4 }],
  };
  assertThrows(() => printWgsl(mixed), Error, "float64");
  // through the Tensor API: a float64 value on webgpu cannot even be made (the cast refuses it)
  const x = tensor([1, 2, 3], { device: "webgpu" });
  assertThrows(() => x.cast("float64"), Error, "float64");
});

Deno.test("wgsl: more than 65535 workgroups use a 2-D grid and index from both dimensions", () => {
  const small = 64 * MAX_WORKGROUPS_PER_DIMENSION;
  assertEquals(dispatchGrid(small), [MAX_WORKGROUPS_PER_DIMENSION, 1]);
  assertEquals(dispatchGrid(small + 1), [MAX_WORKGROUPS_PER_DIMENSION, 2]);
  assertEquals(dispatchGrid(1), [1, 1]);
  const b = new ExprBuilder();
  const rows = b.variable("o", 1500);
  const cols = b.variable("o", 3000);
  const index = b.add(b.mul(rows, b.int(3000)), cols);
  const kernel = handKernel(b, {
    name: "k_big",
    comment: "out float32[1500,3000]",
    outShape: [1500, 3000],
    outType: "f32",
    outVars: [rows, cols],
    value: b.load(0, index, "f32"),
    outIndex: index,
    inputs: [{ type: "f32", shape: [1500, 3000] }],
  });
  const source = printWgsl(kernel);
  assertStringIncludes(source, "@builtin(num_workgroups) nwg: vec3<u32>");
  assertStringIncludes(source, "let gid: u32 = id.x + id.y * (nwg.x * 64u);");
  assertStringIncludes(source, "if (gid >= 4500000u) { return; }");
  assertStringIncludes(source, "let o0: i32 = i32(gid / 3000u);");
  assertStringIncludes(source, "let o1: i32 = i32(gid % 3000u);");
  // a small kernel keeps the 1-D form
  assert(!printWgsl(rowSumKernel()).includes("nwg"));
});

Deno.test("wgsl: floor division of possibly negative integers is decomposed, without %", () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 4);
  const x = b.load(0, o, "i32"); // any i32: may be negative
  const three = b.constant(3, "i32");
  const kernel = handKernel(b, {
    name: "k_floor",
    comment: "out int32[4]",
    outShape: [4],
    outType: "i32",
    outVars: [o],
    value: b.add(b.binary("idiv", x, three), b.binary("imod", x, three)),
    outIndex: o,
    inputs: [{ type: "i32", shape: [4] }],
  });
  const source = printWgsl(kernel);
  // truncating division, the remainder as a - q * b (llvmpipe's % misreads negative operands)
  assertStringIncludes(source, "in0_0 / 3;");
  assert(!source.includes("%"), source);
  assertStringIncludes(source, "select(");
  // non-negative index operands keep WGSL's own operators
  const c = new ExprBuilder();
  const i = c.variable("o", 12);
  const plain = handKernel(c, {
    name: "k_split",
    outShape: [12],
    outType: "f32",
    outVars: [i],
    value: c.load(0, c.add(c.binary("imod", i, c.int(5)), c.binary("idiv", i, c.int(5))), "f32"),
    outIndex: i,
    inputs: [{ type: "f32", shape: [12] }],
  });
  const plainSource = printWgsl(plain);
  assertStringIncludes(plainSource, "o0 % 5");
  assertStringIncludes(plainSource, "o0 / 5");
  assert(!plainSource.includes("select("), plainSource);
});

Deno.test("wgsl: kernels planned for webgpu tensors report the wgsl target", () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]], { device: "webgpu" });
  const list = kernels(x.exp().sum(1));
  assertEquals(list.length, 1);
  assertEquals(list[0].target, "wgsl");
  assertStringIncludes(list[0].source, "@compute @workgroup_size(64)");
  assertStringIncludes(list[0].source, `fn ${list[0].name}(`);
});

Deno.test("wgsl: index temporaries never shadow the i32 type", () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 16);
  let index: Expr = o;
  for (let k = 1; k <= 20; k++) {
    index = b.binary("imod", b.add(b.mul(index, o), b.int(k)), b.int(7)); // three temporaries
  }
  const kernel = handKernel(b, {
    name: "k_deep_index",
    comment: "out int32[16]",
    outShape: [16],
    outType: "i32",
    outVars: [o],
    value: b.load(0, index, "i32"),
    outIndex: o,
    inputs: [{ type: "i32", shape: [7] }],
  });
  const source = printWgsl(kernel);
  assert(!/\bi32:/.test(source), "no variable may be named i32");
  assertStringIncludes(source, "let idx32: i32 = ");
});

Deno.test("wgsl: infinities and NaN come from private variables, declared only when used", () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 4);
  const x = b.load(0, o, "f32");
  const kernel = handKernel(b, {
    name: "k_specials",
    outShape: [4],
    outType: "f32",
    outVars: [o],
    value: b.select(
      b.lt(x, b.constant(0, "f32")),
      b.constant(-Infinity, "f32"),
      b.constant(NaN, "f32"),
    ),
    outIndex: o,
    inputs: [{ type: "f32", shape: [4] }],
  });
  const text = printWgsl(kernel);
  assertStringIncludes(text, "var<private> neg_inf_bits: u32 = 0xff800000u;");
  assertStringIncludes(text, "var<private> nan_bits: u32 = 0x7fc00000u;");
  assert(!text.includes("inf_bits: u32 = 0x7f8"), "only what is used is declared");
  // no bitcast of a constant to a special value: a shader-creation error under Chrome's Tint
  assert(!/bitcast<f32>\(0x/.test(text), text);
  // a sum starts from the run-time zero, the one special it needs (see wgsl.ts `identity`)
  const rowSum = printWgsl(rowSumKernel());
  assertEquals(rowSum.match(/var<private> \w+/g), ["var<private> zero_bits"]);
});
