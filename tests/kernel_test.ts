// The kernel IR's rewrite rules (codegen/kernel.ts), applied as the ExprBuilder makes each
// expression: constant folding, algebraic identities that are exact in IEEE arithmetic,
// constant-exponent pow, range folding of comparisons and div/mod, select hoisting, and reduce
// bound clipping. Each rule is checked on the builder directly and, where it shows, in the
// source of a real kernel whose values are checked against the reference.

import { kernels, nn, type Tensor, tensor } from "../mod.ts";
import { printJs } from "../codegen/js.ts";
import { linearize } from "../codegen/linearize.ts";
import { decompose, JS_TARGET } from "../codegen/targets.ts";
import {
  type Expr,
  ExprBuilder,
  exprsInOrder,
  mentions,
  powForm,
  reduceBody,
  someInDag,
} from "../codegen/kernel.ts";
import {
  assert,
  assertEquals,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";
import {
  assertClose,
  handKernel,
  onBackend,
  plannedKernelIR,
  reference,
  testBackends,
  withCpuKernels,
} from "./helpers.ts";

/** Every op in an expression DAG (reduce bodies included). */
function opsOf(e: Expr): Set<string> {
  const ops = new Set<string>();
  const seen = new Set<Expr>();
  const walk = (x: Expr) => {
    if (seen.has(x)) return;
    seen.add(x);
    ops.add(x.op);
    x.srcs.forEach(walk);
  };
  walk(e);
  return ops;
}

/** How many distinct expressions of each op `e` is made of. */
function opsCount(e: Expr): Map<string, number> {
  const counts = new Map<string, number>();
  const seen = new Set<Expr>();
  const walk = (x: Expr) => {
    if (seen.has(x)) return;
    seen.add(x);
    counts.set(x.op, (counts.get(x.op) ?? 0) + 1);
    x.srcs.forEach(walk);
  };
  walk(e);
  return counts;
}

/** A [n] or shaped float32 tensor of distinct positive values. */
function positive(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, (_, i) => 0.25 + i * 0.5), { shape });
}

Deno.test("constant folding: ops on constants are constants", () => {
  const b = new ExprBuilder();
  assertEquals(b.add(b.int(2), b.int(3)).value, 5);
  assertEquals(b.binary("idiv", b.int(-7), b.int(2)).value, -4); // floor division
  assertEquals(b.binary("imod", b.int(-7), b.int(2)).value, 1); // floor remainder
  const i32 = (v: number) => b.constant(v, "i32");
  assertEquals(b.mul(i32(65536), i32(65536)).value, 0); // int32 data wraps
  assertEquals(b.add(i32(2147483647), i32(1)).value, -2147483648);
  assertEquals(b.mul(b.int(65536), b.int(65536)).value, 2 ** 32); // indices are exact
  assertEquals(b.unary("sqrt", b.constant(16, "f64")).value, 4);
  assertEquals(b.unary("sqrt", b.constant(2, "f32")).value, Math.fround(Math.SQRT2));
  assertEquals(b.binary("div", b.constant(1, "f64"), b.constant(3, "f64")).value, 1 / 3);
  assert(Number.isNaN(b.unary("sqrt", b.constant(-1, "f64")).value));
  // exp, log, tanh, sigmoid, rsqrt and pow are each backend's routine: not folded, in float32
  // or float64
  for (const type of ["f32", "f64"] as const) {
    for (const op of ["exp", "log", "tanh", "sigmoid", "rsqrt"] as const) {
      assertEquals(b.unary(op, b.constant(0.5, type)).op, op);
    }
    for (const op of ["pow", "ppow"] as const) {
      assertEquals(b.binary(op, b.constant(2, type), b.constant(0.75, type)).op, op);
    }
  }
  const lt = b.lt(b.constant(1, "f32"), b.constant(2, "f32"));
  assertEquals([lt.op, lt.type, lt.value], ["const", "bool", 1]);
  assertEquals(b.cast(b.constant(-2.7, "f32"), "i32").value, -2);
  // hash-consing: equal expressions are one object
  assertStrictEquals(b.add(b.int(2), b.int(3)), b.int(5));
  const v = b.variable("o", 4);
  assertStrictEquals(b.add(v, b.int(1)), b.add(v, b.int(1)));
});

Deno.test("constant folding rounds float32 after every op, as the kernel would", () => {
  const b = new ExprBuilder();
  const f32 = (v: number) => b.constant(v, "f32");
  assertEquals(f32(0.1).value, Math.fround(0.1));
  // folded in float64 and rounded once: 1.2999999523 and a float32 3e-8 that is not there
  assertEquals(b.add(b.add(f32(1), f32(0.1)), f32(0.2)).value, Math.fround(1.3000000715255737));
  assertEquals(b.sub(b.add(f32(1), f32(1e-8)), f32(1)).value, 0);
  assertEquals(b.mul(f32(3e38), f32(10)).value, Infinity);
  assertEquals(b.cast(b.constant(0.1, "f64"), "f32").value, Math.fround(0.1));
  assertEquals(b.add(b.constant(1, "f64"), b.constant(1e-8, "f64")).value, 1 + 1e-8);
});

for (const backend of testBackends) {
  Deno.test(`fused constants meet as float32 values on ${backend.name}`, () =>
    onBackend(backend, async () => {
      // a comparison's mask and a pad region are selects of constants: the ops after them
      // were hoisted into both branches and folded in float64, rounded once
      const device = backend.device;
      const x = tensor([1, 3], { device });
      const y = tensor([2, 2], { device });
      const mask = x.lt(y);
      const cases: [Tensor, number[]][] = [
        [mask.add(1e-8).sub(1), [0, Math.fround(Math.fround(1e-8) - 1)]],
        [mask.add(1e-8).gt(1), [0, 0]],
        [mask.add(0.1).add(0.2), [
          Math.fround(Math.fround(1.1) + Math.fround(0.2)),
          0.30000001192092896,
        ]],
        [mask.mul(3e38).mul(10).mul(0.1), [Infinity, 0]],
        [tensor([0.5], { device }).pad([[1, 0]], 1e-8).add(1).sub(1), [0, 0.5]],
      ];
      // (webgpu: the sign of a zero is the compiler's, README "Numerics")
      const unsigned = (v: number) => device === "webgpu" && v === 0 ? 0 : v;
      for (const [t, want] of cases) {
        assertEquals(Array.from(await t.data(), unsigned), want);
      }
    }));
}

Deno.test("-0 + 0 is +0 on every backend, as the reference says", async (t) => {
  // `x + 0` folded to x in the kernels (and on webgpu the driver folded `x + 0.0`): -0 stayed
  // -0, where IEEE and the reference evaluator give +0
  for (const backend of testBackends) {
    await t.step(backend.name, () =>
      onBackend(backend, async () => {
        const ops = [
          (x: Tensor) => x.add(0),
          (x: Tensor) => x.affine(1, 0),
          (x: Tensor) => x.mul(0).add(0),
          (x: Tensor) => x.sub(-0),
        ];
        for (const op of ops) {
          const y = op(tensor([-0, 0, -1], { device: backend.device }));
          const got = Array.from(await y.data());
          const want = Array.from(reference(op(tensor([-0, 0, -1]))));
          got.forEach((v, i) =>
            assert(Object.is(v, want[i]), `${backend.name}: ${got} against ${want}`)
          );
          assert(Object.is(got[0], 0), `${backend.name}: -0 + 0 gave ${got[0]}`);
        }
      }));
  }
});

Deno.test("identities: only those exact in IEEE arithmetic", () => {
  const b = new ExprBuilder();
  const x = b.load(0, b.int(0), "f32");
  const i = b.variable("o", 10);
  // x + (-0) is x; x + 0 is not for x = -0 (it folded to x, keeping -0 where IEEE gives +0)
  assertStrictEquals(b.add(x, b.constant(-0, "f32")), x);
  assertEquals(b.add(x, b.constant(0, "f32")).op, "add");
  assertStrictEquals(b.add(i, b.int(0)), i);
  assertStrictEquals(b.mul(b.constant(1, "f32"), x), x);
  assertStrictEquals(b.binary("div", x, b.constant(1, "f32")), x);
  assertStrictEquals(b.unary("neg", b.unary("neg", x)), x);
  assertStrictEquals(b.sub(i, i).value, 0); // integers: x - x = 0
  assertStrictEquals(b.mul(i, b.int(0)).value, 0);
  // floats keep x - x and x * 0: Infinity - Infinity and NaN * 0 are NaN
  assertEquals(b.sub(x, x).op, "sub");
  assertEquals(b.mul(x, b.constant(0, "f32")).op, "mul");
  // x - 0 is x, but x - (-0) is x + 0: +0 for x = -0 (it folded to x, keeping -0)
  assertStrictEquals(b.sub(x, b.constant(0, "f32")), x);
  assertEquals(b.sub(x, b.constant(-0, "f32")).op, "sub");
  // (x + 1) + 2 = x + 3 on integers; constants move to the right
  assertStrictEquals(b.add(b.add(i, b.int(1)), b.int(2)), b.add(i, b.int(3)));
  assertStrictEquals(b.add(b.int(3), i), b.add(i, b.int(3)));
});

Deno.test("range folding: comparisons decided by value ranges become constants", () => {
  const b = new ExprBuilder();
  const v = b.variable("o", 4); // 0..3
  assertEquals(b.lt(v, b.int(4)).value, 1);
  assertEquals(b.le(b.int(0), v).value, 1);
  assertEquals(b.lt(v, b.int(0)).value, 0);
  assertEquals(b.lt(v, b.int(3)).op, "lt"); // undecided: kept
  // select with a known predicate picks its side; a && true = a
  const x = b.load(0, v, "f32");
  assertStrictEquals(b.select(b.lt(v, b.int(9)), x, b.constant(0, "f32")), x);
  const p = b.lt(v, b.int(2));
  assertStrictEquals(b.and(p, b.constant(1, "bool")), p);
  assertEquals(b.and(p, b.constant(0, "bool")).value, 0);
});

Deno.test("select hoisting: op(p ? a : c) = p ? op(a) : op(c) with op(c) folded", () => {
  const b = new ExprBuilder();
  const v = b.variable("o", 8);
  const p = b.lt(v, b.int(5));
  const x = b.load(0, v, "f32");
  const s = b.select(p, x, b.constant(4, "f32"));
  const e = b.unary("sqrt", s);
  assertEquals(e.op, "select");
  assertEquals(e.srcs[2].value, 2); // sqrt(4) folded
  const m = b.mul(s, b.constant(3, "f32"));
  assertEquals(m.op, "select");
  assertEquals(m.srcs[2].value, 12);
  // not for an op that does not fold in float32: exp(4) stays a computed exp
  assertEquals(b.unary("exp", s).op, "exp");
  const wide = b.select(p, b.load(0, v, "f64"), b.constant(9, "f64"));
  assertEquals(b.unary("sqrt", wide).srcs[2].value, 3);
  assertEquals(b.unary("exp", wide).op, "exp");
});

for (const backend of testBackends) {
  Deno.test(`a constant float op gives the bits of the same op computed, on ${backend.name}`, () =>
    onBackend(backend, async () => {
      // a pad region's exp(0.5411) was folded in float64 and differed in the last bit from
      // the exp of a loaded 0.5411 beside it in the same kernel
      const device = backend.device;
      for (const v of [0.5, 0.5411, 3.25, -1.75, 0.01]) {
        for (const op of ["exp", "log", "tanh", "sigmoid", "rsqrt", "sqrt", "recip"] as const) {
          if ((op === "log" || op === "rsqrt" || op === "sqrt") && v < 0) continue;
          const [fromPad, fromLoad] = await tensor([v], { device }).pad([[1, 0]], v)[op]().data();
          assertEquals(fromPad, fromLoad, `${op}(${v})`);
        }
        for (const e of [0.75, 3.5, 2.2]) {
          // (0.75 has square roots; 3.5 and 2.2 are a general pow, the driver's on webgpu)
          const [a, b] = await tensor([v], { device }).pad([[1, 0]], v).abs().pow(e).data();
          assertEquals(a, b, `|${v}| ** ${e}`);
        }
        if (device === "cpu") {
          // float64: sigmoid is a decomposition in the kernel, x ** 3 and x ** -0.75 POW_FORMS
          const wide = tensor([v], { device, dtype: "float64" }).pad([[1, 0]], v);
          for (const t of [wide.sigmoid(), wide.abs().pow(3), wide.abs().pow(-0.75), wide.exp()]) {
            const [a, b] = await t.data();
            assertEquals(a, b, `float64 ${v}`);
          }
        }
      }
    }));
}

Deno.test("pow with a constant exponent: sqrt / rsqrt / reciprocal forms, no Math.pow", () =>
  withCpuKernels("js", async () => {
    const b = new ExprBuilder();
    const x = b.load(0, b.variable("o", 4), "f32");
    const forms: [number, string[]][] = [
      [1, ["load"]],
      [2, ["mul"]],
      [3, ["mul"]],
      [0.5, ["sqrt"]],
      [0.25, ["sqrt"]],
      [0.75, ["sqrt", "mul"]],
      [-0.5, ["rsqrt"]],
      [-0.25, ["recip", "sqrt"]],
      [-0.75, ["rsqrt", "sqrt", "mul"]],
      [-1, ["recip"]],
      [-2, ["recip", "mul"]],
      [-3, ["recip", "mul"]],
      [1.5, ["sqrt", "mul"]],
      [-1.5, ["rsqrt", "recip", "mul"]],
    ];
    for (const [exponent, expected] of forms) {
      // the kernel keeps the pow (so powers of one base can merge); decompose spells it
      assertEquals(b.binary("pow", x, b.constant(exponent, "f32")).op, "pow");
      const ops = opsOf(powForm(b, x, exponent)!);
      assert(!ops.has("pow"), `pow ${exponent} kept pow`);
      for (const op of expected) assert(ops.has(op), `pow ${exponent}: no ${op} in ${[...ops]}`);
    }
    // x ** 0.75 and x ** -0.25 together share sqrt(sqrt(x))
    const both = opsCount(b.mul(powForm(b, x, 0.75)!, powForm(b, x, -0.25)!));
    assertEquals(both.get("sqrt"), 2);
    // any other exponent has no form
    assertEquals(powForm(b, x, 0.3), null);

    // in generated kernels: no Math.pow, and the values match the reference (0 and Infinity too)
    for (const [exponent] of forms) {
      const t = tensor([0, 0.01, 0.3, 1, 2.5, 7, 1e6, Infinity]).pow(exponent);
      const src = kernels(t)[0].source;
      assert(!src.includes("Math.pow"), `pow ${exponent}:\n${src}`);
      assertClose(await t.data(), reference(t), {
        rtol: 2e-7 * 8,
        atol: 0,
        msg: `pow ${exponent}`,
      });
    }
    const src = kernels(positive([6, 4]).pow(-0.75))[0].source;
    assertStringIncludes(src, "1 / Math.fround(Math.sqrt(");
    assertStringIncludes(src, "Math.sqrt(");
    assert(kernels(positive([4]).pow(0.3))[0].source.includes("Math.pow"));
  }));

// The forms must not overflow or underflow in a step where the pow itself does not: x ** -2 as
// 1 / (x * x) gave 0 for |x| > 1.8e19 in float32 (x * x overflows; 1.9e19 ** -2 is 2.8e-39).
for (const backend of testBackends.filter((b) => b.device === "cpu")) {
  Deno.test(`pow forms at the ends of the float range on ${backend.name}`, () =>
    onBackend(backend, async () => {
      const exponents = [2, 3, 0.5, 0.25, 0.75, 1.5, -0.5, -0.25, -0.75, -1, -1.5, -2, -3];
      for (const dtype of ["float32", "float64"] as const) {
        const round = dtype === "float32" ? Math.fround : (v: number) => v;
        const ends = dtype === "float32"
          ? [1e-45, 1e-40, 1e-30, 1e-19, 5e-10, 3e9, 1e19, 1.9e19, 1e25, 1e30, 3.4e38]
          : [5e-324, 1e-310, 1e-160, 1e-100, 1e100, 1e154, 1e160, 1e300, 1.7e308];
        const x = tensor(ends, { dtype });
        for (const exponent of exponents) {
          const got = await x.pow(exponent).data();
          for (let i = 0; i < ends.length; i++) {
            const want = round(Math.pow(round(ends[i]), exponent));
            const close = got[i] === want ||
              Math.abs(got[i] - want) <=
                4 * Math.abs(want) * (dtype === "float32" ? 2 ** -23 : 2 ** -52);
            // a subnormal result carries fewer digits: within a few of its ulps
            const subnormal = Math.abs(want) < (dtype === "float32" ? 2 ** -126 : 2 ** -1022) &&
              Math.abs(got[i] - want) <= 4 * (dtype === "float32" ? 2 ** -149 : 2 ** -1074);
            assert(
              close || subnormal,
              `${dtype} ${ends[i]} ** ${exponent}: ${got[i]}, want ${want}`,
            );
          }
        }
      }
    }));
}

Deno.test("div/mod folding: reshapes that merge or split axes cleanly need no % or /", () =>
  withCpuKernels("js", async () => {
    const cases: [number[], number[]][] = [
      [[4, 6], [24]], // merge
      [[24], [4, 6]], // split
      [[2, 3, 4], [6, 4]], // merge the leading axes
      [[6, 4], [2, 3, 4]], // split the leading axis
      [[2, 3, 4], [2, 12]], // merge the trailing axes
      [[2, 12], [2, 3, 4]],
      [[2, 3, 4], [24]],
      [[1, 6, 1], [6]], // size-1 axes
    ];
    for (const [from, to] of cases) {
      const t = positive(from).reshape(to).exp();
      const src = kernels(t)[0].source;
      const body = src.split("\n").slice(2).join("\n"); // skip the comment header
      assert(!/ % | \/ /.test(body), `reshape [${from}] -> [${to}] divides:\n${src}`);
      assertClose(await t.data(), reference(t), { rtol: 2e-7 });
    }
    // any reshape of contiguous data is the identity index; a reshape of a transposed view must
    // really divide, keeps its % and is still right
    const odd = positive([4, 6]).transpose().reshape(3, 8).exp();
    assertStringIncludes(kernels(odd)[0].source, " % ");
    assertClose(await odd.data(), reference(odd), { rtol: 2e-7 });
    // on the builder: (x / n) * n + x % n = x, and (o * 6 + r) / 6 = o when 0 <= r < 6
    const b = new ExprBuilder();
    const x = b.variable("o", 24);
    const n = b.int(6);
    const back = b.add(b.mul(b.binary("idiv", x, n), n), b.binary("imod", x, n));
    assertStrictEquals(b.canonicalIndex(back), x);
    const o = b.variable("o", 4);
    const r = b.variable("r", 6);
    const flat = b.add(b.mul(o, n), r);
    assertStrictEquals(b.binary("idiv", flat, n), o);
    assertStrictEquals(b.binary("imod", flat, n), r);
    assertStrictEquals(b.binary("idiv", r, n).value, 0);
    assertStrictEquals(b.binary("imod", r, n), r);
  }));

Deno.test("reduce bound clipping: an affine validity test becomes the loop bounds", async () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 8);
  const r = b.variable("r", 5);
  const at = b.add(b.add(o, r), b.int(-2)); // o + r - 2, valid in [0, 8)
  const valid = b.and(b.le(b.int(0), at), b.lt(at, b.int(8)));
  const body = b.select(valid, b.load(0, at, "f32"), b.constant(0, "f32"));
  const sum = b.reduce("sum", r, body);
  assertEquals(sum.op, "reduce");
  // the body no longer tests anything; the bounds depend on o
  assertEquals(reduceBody(sum).op, "load");
  assert(!sum.srcs[1].isConst() && !sum.srcs[2].isConst());
  assertEquals(sum.srcs[1].op, "max");
  assertEquals(sum.srcs[2].op, "min");
  // a max reduction keeps a zero-padded test: 0 is not its identity
  const max = b.reduce("max", r, body);
  assertEquals(reduceBody(max).op, "select");
  // a reduction over nothing is its identity
  const none = b.reduce("sum", b.variable("r", 0), b.load(0, o, "f32"));
  assertEquals(none.value, 0);

  // in a kernel: a padded window sum has no select in its body and computes the right value
  const t = positive([3, 9]).pad([[0, 0], [2, 2]]).unfoldDim(1, 5).sum(-1);
  const [kernel] = plannedKernelIR(t);
  const reduce = exprsInOrder([kernel.outputs[0].value]).find((e) => e.op === "reduce")!;
  assertEquals(opsOf(reduceBody(reduce)).has("select"), false);
  assertClose(await t.data(), reference(t));
  // and with step 2 and a non-zero pad value (which must not be clipped away)
  const u = positive([3, 9]).pad([[0, 0], [1, 2]], 5).unfoldDim(1, 4, 2).sum(-1);
  assertClose(await u.data(), reference(u));
  const w = positive([3, 9]).pad([[0, 0], [3, 3]]).unfoldDim(1, 3, 2).max(-1);
  assertClose(await w.data(), reference(w));
});

Deno.test("canonical index: terms ordered outer loop first so partial sums hoist", () => {
  const b = new ExprBuilder();
  const o0 = b.variable("o", 3);
  const o1 = b.variable("o", 5);
  // written inner-first, the index comes out with the outer term inside
  const idx = b.canonicalIndex(b.add(o1, b.mul(o0, b.int(5))));
  assertEquals(idx.op, "add");
  assertStrictEquals(idx.srcs[1], o1);
  assertStrictEquals(idx.srcs[0], b.mul(o0, b.int(5)));
  // loads go through the same canonical form
  const load = b.load(0, b.add(o1, b.mul(o0, b.int(5))), "f32");
  assertStrictEquals(load.srcs[0], idx);
});

Deno.test("index arithmetic is exact past 2^31: no int32 wrap, truncation by Math.trunc", () => {
  const b = new ExprBuilder();
  const v = b.variable("o", 2 ** 33); // an index past int32
  const i = b.add(b.mul(v, b.int(3)), b.int(1));
  assertEquals([i.min, i.max], [1, 3 * (2 ** 33 - 1) + 1]);
  const half = b.binary("idiv", i, b.int(2));
  const kernel = handKernel(b, {
    name: "k_wide",
    outShape: [2 ** 33],
    outType: "f32",
    outVars: [v],
    value: b.cast(half, "f32"),
    outIndex: v,
    inputs: [],
  });
  const src = printJs(linearize(decompose(kernel, JS_TARGET), "loops"));
  assert(!src.includes("| 0"), src);
  assertStringIncludes(src, "Math.trunc(");
  // int32 data still wraps
  const d = b.add(b.load(0, v, "i32"), b.constant(1, "i32"));
  assertEquals([d.min, d.max], [-2147483648, 2147483647]);
  assertEquals(b.constant(2 ** 31, "i32").value, -(2 ** 31));
  // past 2^53 an index is refused, never rounded
  assertThrows(() => b.mul(b.variable("o", 2 ** 40), b.int(2 ** 20)), RangeError, "2^53");
});

Deno.test("a reduction over a broadcast axis is not looped: max is the value, sum a product", () =>
  withCpuKernels("js", async () => {
    const y = tensor([1.5, -2]).reshape(2, 1).expand(2, 3000).sum(1);
    const src = kernels(y)[0].source;
    assert(!src.includes("for (let r"), src);
    assertEquals(Array.from(await y.data()), [4500, -6000]);
    const huge = tensor([1, 7, 3]).expand(2 ** 31 + 5, 3);
    assertEquals(await huge.max().item(), 7);
    assertEquals(await huge.sum().item(), Math.fround(11 * (2 ** 31 + 5)));
    assertEquals(await tensor([0.75]).expand(2 ** 32 + 3).mean().item(), 0.75);
    // an empty broadcast sums to 0 even when the value is infinite (no Infinity * 0)
    assertEquals(await tensor([Infinity]).expand(0).sum().item(), 0);
    // the same on int32: the product wraps as the sum would
    const ints = tensor([3], { dtype: "int32" }).expand(2 ** 31).sum();
    assertEquals(await ints.item(), Math.imul(3, 2 ** 31));
  }));

Deno.test("LocalResponseNorm with a window of 2^31 channels: clipped loop, exact indices", async () => {
  const x = tensor([[1, 2, 3], [0.5, -1, 4]]);
  // LocalResponseNorm's graph for size 2^31 + 1, built by hand (the module clips a window past
  // every channel to C - 1 on each side before it builds one): 2^30 channels of padding on
  // each side, three windows of 2^31 + 1
  const half = 2 ** 30;
  const windows = x.pad([[0, 0], [half, half]]).unfoldDim(1, 2 * half + 1, 1);
  const y = await x.div(windows.square().sum(-1).affine(1, 1).pow(0.75)).data();
  // every window covers all channels: y = x / (1 + sum x^2) ^ 0.75 per row
  const expected = [[1, 2, 3], [0.5, -1, 4]].flatMap((row) => {
    const s = row.reduce((acc, v) => acc + v * v, 0);
    return row.map((v) => v / (1 + s) ** 0.75);
  });
  assertClose(y, expected, { rtol: 1e-6 });
  // 2^53 channels would need a padded axis past exact integers: a clear error naming the op
  assertThrows(() => x.pad([[0, 0], [2 ** 52, 2 ** 52]]), RangeError, "pad");
  // the module gives the same values for every size past the channels
  for (const size of [2 ** 31, 2 ** 53, 1e300]) {
    const z = await nn.functional.localResponseNorm(x, size, 1, 0.75, 1).data();
    assertClose(z, expected, { rtol: 1e-6, msg: `size ${size}` });
  }
});

Deno.test("exprsInOrder: every expression after its sources, each once, the first root's first", () => {
  const b = new ExprBuilder();
  const i = b.variable("o", 8);
  const x = b.load(0, i, "f32");
  const y = b.load(1, i, "f32");
  const order = exprsInOrder([x, y]);
  assertEquals(order.length, new Set(order).size);
  for (const e of order) for (const s of e.srcs) assert(order.indexOf(s) < order.indexOf(e));
  assert(order.indexOf(x) < order.indexOf(y), "x, the first root, comes before y");
  assertEquals(exprsInOrder([y, x]).indexOf(y) < exprsInOrder([y, x]).indexOf(x), true);
});

Deno.test("powers of one base merge: b ** c1 * b ** c2 = b ** (c1 + c2) where that is exact", async () => {
  const b = new ExprBuilder();
  const o = b.variable("o", 4);
  const x = b.load(0, o, "f32");
  const g = b.load(1, o, "f32");
  const d = b.add(b.mul(x, x), b.constant(2, "f32")); // never negative
  const pow = (base: Expr, e: number) => b.binary("pow", base, b.constant(e, "f32"));
  const isPow = (e: Expr, base: Expr, exponent: number) =>
    e.op === "pow" && e.srcs[0] === base && e.srcs[1].value === exponent;
  // LocalResponseNorm's backward: -(g / d ** 0.75) * 0.75 * d ** -0.25 has one power, d ** -1
  const term = b.mul(
    b.mul(b.unary("neg", b.binary("div", g, pow(d, 0.75))), b.constant(0.75, "f32")),
    pow(d, -0.25),
  );
  const merged = b.mul(b.unary("neg", b.mul(g, pow(d, -1))), b.constant(0.75, "f32"));
  assertStrictEquals(term, merged);
  const powers = exprsInOrder([term]).filter((e) => e.op === "pow");
  assertEquals(powers.length, 1);
  assert(isPow(powers[0], d, -1));
  assert(!exprsInOrder([term]).some((e) => e.op === "div"), "the division became the merged pow");
  // exponents of one sign merge up to a power of 1; through several products too
  assert(exprsInOrder([b.mul(b.mul(pow(d, 0.5), g), pow(d, 0.25))]).some((e) => isPow(e, d, 0.75)));
  // further they do not: d ** 3 overflows where d ** 2 * g * d need not
  assert(!exprsInOrder([b.mul(b.mul(pow(d, 2), g), pow(d, 1))]).some((e) => isPow(e, d, 3)));
  // an earlier output dividing by d ** 3 takes a d ** 2 factor next to it (MULTI_OUTPUT's
  // outputs are reused, never merged): their product with another output is kept in range
  const out0 = b.binary("div", g, pow(d, 3));
  const out1 = b.binary("div", x, pow(d, 3));
  b.opaque.add(out0);
  b.opaque.add(out1);
  const middle = b.mul(b.unary("neg", b.mul(out0, out1)), b.mul(b.constant(3, "f32"), pow(d, 2)));
  const paired = b.mul(out0, pow(d, 2));
  assertStrictEquals(
    middle,
    b.mul(b.unary("neg", b.mul(paired, out1)), b.constant(3, "f32")),
  );
  // one occurrence moves: y * y * d ** 2 is (y * d ** 2) * y (moving by identity gave
  // (y * d ** 2) * (y * d ** 2), an extra d ** 2)
  assertStrictEquals(b.mul(b.mul(out1, out1), pow(d, 2)), b.mul(b.mul(out1, pow(d, 2)), out1));
  // exponents of both signs merge over a base above 0 (d = x^2 + 2: at most +Infinity)
  assert(isPow(b.mul(pow(d, 0.5), pow(d, -0.25)), d, 0.25));
  // not merged: a base that may be negative (x ** 0.5 * x ** 0.5 is NaN for x < 0, x ** 1 is
  // not), exponents of both signs over a base that may be 0 (0 ** 0.5 * 0 ** -0.5 is NaN,
  // 0 ** 0.25 is not), -0 as a base
  for (
    const [base, c1, c2] of [
      [x, 0.5, 0.5],
      [b.mul(x, x), 0.5, -0.25],
      [b.mul(x, b.constant(-1, "f32")), 2, 1],
    ] as const
  ) {
    const product = b.mul(pow(base, c1), pow(base, c2));
    assertEquals(product.op, "mul", `${c1}, ${c2}`);
  }
  // a division by a pow that merges nothing stays a division
  assertEquals(b.binary("div", g, pow(d, 0.3)).op, "div");
  // with y a load, (y * d^0.5) * d^0.5 is y * d^1: the merged pow times y is the product
  const [y, z] = [b.load(2, o, "f32"), b.load(3, o, "f32")];
  assertStrictEquals(b.mul(b.mul(y, pow(d, 0.5)), pow(d, 0.5)), b.mul(y, pow(d, 1)));
  // two powers stay apart unless one is all of its operand and the other has at most one
  // factor beside it: (x * d^0.5) * (d^0.5 * y) as (x * d) * y overflows at x = 1e30, d = 1e10,
  // where x * d^0.5 and the result do not; ((x * d^0.5) * (y * z)) * d^0.5 as
  // (x * d) * (y * z) likewise; and d^0.5 * ((x * d^0.5) * y) as d * (x * y) at x = y = 1e20,
  // d = 1e-20
  const cases = [
    b.mul(b.mul(x, pow(d, 0.5)), b.mul(pow(d, 0.5), y)),
    b.mul(b.mul(b.mul(x, pow(d, 0.5)), b.mul(y, z)), pow(d, 0.5)),
    b.mul(pow(d, 0.5), b.mul(b.mul(x, pow(d, 0.5)), y)),
  ];
  for (const [i, apart] of cases.entries()) {
    assertEquals(exprsInOrder([apart]).filter((e) => isPow(e, d, 0.5)).length, 1, `${i}`);
    assert(!exprsInOrder([apart]).some((e) => isPow(e, d, 1)), `${i}`);
  }
  // and so do two beside a division: ((g / y^2) * d^0.5) * d^0.5 as (g / y^2) * d overflows
  // where g / y^2 is large and d is
  const kept = b.mul(b.mul(b.binary("div", g, pow(y, 2)), pow(d, 0.5)), pow(d, 0.5));
  assert(!exprsInOrder([kept]).some((e) => isPow(e, d, 1)));
  assertEquals(exprsInOrder([kept]).filter((e) => e.op === "div").length, 1);
  // not merged: a sum beyond float32 (3e38 + 3e38), and a sum without a sqrt form when an
  // exponent had one (2 + 0.5: the kernel would need a general pow); merged when neither had;
  // not merged either: a sum float32 does not hold exactly (0.3 + 0.4)
  assertEquals(b.mul(pow(d, 3e38), pow(d, 3e38)).op, "mul");
  assertEquals(b.mul(pow(d, 2), pow(d, 0.5)).op, "mul");
  assert(isPow(b.mul(pow(d, 2.5), pow(d, -1.25)), d, 1.25));
  assertEquals(b.mul(pow(d, 0.3), pow(d, 0.4)).op, "mul");

  // in generated kernels, against the float64 reference at the edges (0, Infinity, NaN, tiny)
  await withCpuKernels("js", async () => {
    const values = [0, -0, 1e-8, 0.3, 1, -2.5, 7, 1e3, Infinity, -Infinity, NaN];
    for (const [c1, c2] of [[-0.75, -0.25], [0.5, 0.25], [2, -1], [-0.5, -0.5]]) {
      const s = tensor(values).square();
      const t = s.pow(c1).mul(tensor(values)).mul(s.pow(c2));
      const src = kernels(t)[0].source;
      assert(!src.includes("Math.pow"), `${c1} + ${c2}:\n${src}`);
      if (c1 === -0.75) assert(!src.includes("Math.sqrt"), `merged into 1 / s:\n${src}`);
      assertClose(await t.data(), reference(t), { rtol: 1e-6, msg: `${c1} + ${c2}` });
    }
  });
});

Deno.test("kernel: what each expression keeps about its DAG agrees with a walk of it", () => {
  // innermostVar and hasDivMod are kept bottom-up (a walk per term of every index comparison
  // made long chains of views compile in quadratic time); random index arithmetic over four
  // loop variables, each fact checked against a walk
  const b = new ExprBuilder();
  const vars = [b.variable("o", 5), b.variable("o", 7), b.variable("r", 3), b.variable("r", 4)];
  let seed = 11;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const pool: Expr[] = [...vars, b.int(3)];
  for (let i = 0; i < 400; i++) {
    const x = pool[next(pool.length)];
    const y = pool[next(pool.length)];
    const choice = next(5);
    const e = choice === 0
      ? b.add(x, y)
      : choice === 1
      ? b.mul(x, b.int(1 + next(4)))
      : choice === 2
      ? b.binary("idiv", x, b.int(2 + next(5)))
      : choice === 3
      ? b.binary("imod", x, b.int(2 + next(5)))
      : b.sub(x, y);
    pool.push(e);
  }
  for (const e of pool) {
    let innermost = -1;
    someInDag(e, (x) => {
      if (x.op === "var") innermost = Math.max(innermost, x.id);
      return false;
    });
    assertEquals(e.innermostVar, innermost);
    assertEquals(e.hasDivMod, someInDag(e, (x) => x.op === "idiv" || x.op === "imod"));
    for (const v of vars) assertEquals(mentions(e, v), someInDag(e, (x) => x === v));
  }
});

Deno.test("kernel: a chain of 500 pads and transposes fuses and computes the right values", async () => {
  // (long chains of views compiled in quadratic time: 6,000 steps of pad and transpose took
  // 20 s, now half a second; 2,000 with the scaling as well, as here, 5.2 s, now 0.9 s); each step
  // shifts the six values right by one (a zero comes in), transposes them as a 2 x 3 matrix
  // and scales them in float32, which the reference does by hand
  const start = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
  let y = tensor(start);
  let want = Array.from(start);
  const scale = Math.fround(1.0001);
  for (let i = 0; i < 500; i++) {
    y = y.pad([[1, -1]]).reshape([2, 3]).permute([1, 0]).reshape([6]).mul(1.0001);
    const s = [0, ...want.slice(0, 5)];
    want = [s[0], s[3], s[1], s[4], s[2], s[5]].map((v) => Math.fround(v * scale));
  }
  assertEquals(kernels(y).length, 1);
  assertEquals(Array.from(await y.data()), want);
});

Deno.test("kernel: an op moves into nested selects at most SELECT_HOIST_DEPTH (8) deep", () => {
  // each op of a chain of pads moved through every pad below it: a thousand pad-and-scale
  // steps made half a million selects; now it moves through eight and stays outside the rest
  const b = new ExprBuilder();
  const v = b.variable("o", 40);
  const selectsIn = (e: Expr) => exprsInOrder([e]).filter((x) => x.op === "select").length;
  const nest = (depth: number) => {
    let x: Expr = b.cast(v, "f32");
    for (let i = 0; i < depth; i++) x = b.select(b.lt(v, b.int(39 - i)), x, b.constant(0, "f32"));
    return x;
  };
  const mulIn = (e: Expr) => exprsInOrder([e]).filter((x) => x.op === "mul");
  // shallow: moved all the way in, to the value inside the three selects
  const shallow = b.mul(nest(3), b.constant(2, "f32"));
  assertEquals(shallow.op, "select");
  assertEquals(mulIn(shallow).length, 1);
  assertEquals(selectsIn(mulIn(shallow)[0]), 0);
  // deep: moved through eight of the twenty, the twelve below stay inside its operand
  const scaled = b.mul(nest(20), b.constant(2, "f32"));
  assertEquals(scaled.op, "select");
  assertEquals(mulIn(scaled).length, 1);
  assertEquals(selectsIn(mulIn(scaled)[0]), 12);
  assertEquals(selectsIn(scaled), 20);
});

Deno.test("kernel: a chain of 600 reshapes and permutes fuses and moves every element right", async () => {
  // (merging a reshape's split index worked out the chain's earlier steps anew each time: 4,000
  // steps compiled in 3.6 s, now 0.5 s); the reference permutes a plain array the same way
  const permuted = (flat: number[], shape: number[], perm: number[]) => {
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const outShape = perm.map((p) => shape[p]);
    const out: number[] = [];
    const index = outShape.map(() => 0);
    for (let n = 0; n < flat.length; n++) {
      out.push(flat[perm.reduce((at, p, k) => at + index[k] * strides[p], 0)]);
      for (let k = outShape.length - 1; k >= 0 && ++index[k] === outShape[k]; k--) index[k] = 0;
    }
    return out;
  };
  let want = Array.from({ length: 480 }, (_, i) => i);
  let y = tensor(Float32Array.from(want), { shape: [12, 5, 8] });
  for (let i = 0; i < 600; i++) {
    y = y.reshape([60, 8]).permute([1, 0]).reshape([8, 12, 5]).permute([1, 2, 0]);
    want = permuted(permuted(want, [60, 8], [1, 0]), [8, 12, 5], [1, 2, 0]);
  }
  const doubled = y.mul(2);
  assertEquals(kernels(doubled).length, 1);
  assertEquals(Array.from(await doubled.data()), want.map((v) => 2 * v));
});

Deno.test("powers of one base merge only up to a power of 1 where their signs agree, and never between two products", async () => {
  // LocalResponseNorm with beta 1 and a denominator d near 1e-20: `(g / d) * (x / d)` was
  // merged into `g * (1 / d) ** 2 * x` on the Wasm path, and (1 / d) ** 2 = 1e40 left float32:
  // dx NaN and -Infinity where it is about 1e20 (the JavaScript path kept the quotients)
  const values = [0, 1e-20, 0, 2e-20, 0, 0];
  // float64 reference: y_c = x_c / d_c, d_c = k + x_c^2 + x_{c+1}^2 (size 2, channels 3)
  const want: number[] = [];
  const k = Math.fround(1e-20);
  const at = (c: number, i: number) => Math.fround(values[c * 2 + i]);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 2; i++) {
      const d = (j: number) => k + at(j, i) ** 2 + (j + 1 < 3 ? at(j + 1, i) ** 2 : 0);
      let dx = 1 / d(c);
      for (const j of [c - 1, c]) if (j >= 0) dx -= (2 * at(c, i) * at(j, i)) / d(j) ** 2;
      want.push(dx);
    }
  }
  // and two quotients by powers summing to 1 keep their divisions: (g / d ** 0.5) * (x / d ** 0.5)
  // as (g * (1 / d)) * x made g / d = 1e40 where each quotient and the result are in range
  for (const cpuKernels of ["js", "wasm"] as const) {
    await withCpuKernels(cpuKernels, async () => {
      const [g, t, d] = [1e20, 1e-30, 1e-20].map((v) => tensor(new Array(8).fill(v)));
      const product = g.div(d.abs().pow(0.5)).mul(t.div(d.abs().pow(0.5)));
      assertClose(await product.data(), new Array(8).fill(1e10), { rtol: 1e-5, msg: cpuKernels });
      // the same family in products: (g * d ** -0.5) * (t * d ** -0.5) merged into
      // (g * d ** -1) * t, and (g * d ** 2) * (t * d ** -3) into (g * d ** -1) * t, with
      // g * d ** -1 = 1e40 (Infinity) where every factor, product and the result are in range
      const negative = g.mul(d.abs().pow(-0.5)).mul(t.mul(d.abs().pow(-0.5)));
      assertClose(await negative.data(), new Array(8).fill(1e10), { rtol: 1e-5, msg: cpuKernels });
      const [g2, t2, d2] = [1e30, 1e-20, 1e-10].map((v) => tensor(new Array(8).fill(v)));
      const mixed = g2.mul(d2.abs().pow(2)).mul(t2.mul(d2.abs().pow(-3)));
      assertClose(await mixed.data(), new Array(8).fill(1e20), { rtol: 1e-5, msg: cpuKernels });
      // and a power all of its operand merged into a product of more than two factors:
      // p * ((g * p) * g) as (1 / d) * (g * g), g * g = 1e40 at d = 1e20; ((x * h) * (s * s)) * h
      // as (x * d) * (s * s), x * d = 1e40
      const p = tensor(new Array(8).fill(1e20)).pow(-0.5); // 1e-10
      const deep = p.mul(g.mul(p).mul(g));
      assertClose(await deep.data(), new Array(8).fill(1e20), { rtol: 1e-5, msg: cpuKernels });
      const [x3, s3, d3] = [1e30, 1e-10, 1e10].map((v) => tensor(new Array(8).fill(v)));
      const half = d3.abs().pow(0.5); // 1e5
      const wide = x3.mul(half).mul(s3.mul(s3)).mul(half);
      assertClose(await wide.data(), new Array(8).fill(1e20), { rtol: 1e-5, msg: cpuKernels });
    });
  }
  for (const cpuKernels of ["js", "wasm"] as const) {
    await withCpuKernels(cpuKernels, async () => {
      const x = tensor(values, { shape: [1, 3, 2], requiresGrad: true });
      const y = new nn.LocalResponseNorm(2, 1, 1, 1e-20).forward(x);
      y.backward(tensor([1, 1, 1, 1, 1, 1], { shape: [1, 3, 2] }));
      assertClose(await x.grad!.data(), want, { rtol: 1e-5, msg: cpuKernels });
    });
  }
});
