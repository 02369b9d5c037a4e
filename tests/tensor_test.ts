// The Tensor API (src/tensor.ts): every op against the float64 reference evaluator on several
// shapes (broadcasting, size-1 and empty axes) and on every device of the table; dtypes and
// their promotion; creation functions; reading values; toString; and every bad input.

import {
  arange,
  full,
  grad,
  jit,
  keep,
  kernels,
  manualSeed,
  memory,
  ones,
  optim,
  rand,
  randn,
  Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import type { DeviceName, DType } from "../mod.ts";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";
import { privateUniforms } from "../src/random.ts";
import {
  assertClose,
  type CloseOptions,
  onBackend,
  reference,
  testBackends,
  testDevices,
  webgpuAvailable,
} from "./helpers.ts";

// ---- the device table ------------------------------------------------------------------------

/** Float dtypes a device supports (float64 is cpu-only). */
const floatDtypes = (device: DeviceName): DType[] =>
  device === "cpu" ? ["float32", "float64"] : ["float32"];

/** Tolerances: float32 arithmetic, a bit looser for transcendental functions and on the GPU. */
function tolerance(device: DeviceName, transcendental = false): CloseOptions {
  if (device === "webgpu") return { rtol: 1e-4, atol: 1e-5 };
  return transcendental ? { rtol: 2e-5, atol: 1e-6 } : { rtol: 1e-5, atol: 1e-6 };
}

// ---- deterministic inputs ------------------------------------------------------------------------

/** `n` numbers in [lo, hi) from a small LCG (independent of the library's generator). */
function values(n: number, seed: number, lo = -2, hi = 2): number[] {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(lo + (hi - lo) * (s / 4294967296));
  }
  return out;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A tensor of `shape` with deterministic values in [lo, hi). */
function input(
  shape: readonly number[],
  seed: number,
  device: DeviceName,
  options: { lo?: number; hi?: number; dtype?: DType; } = {},
): Tensor {
  const data = values(numel(shape), seed, options.lo ?? -2, options.hi ?? 2);
  return tensor(data, { shape, device, dtype: options.dtype ?? "float32" });
}

/**
 * Builds the graph on `device`, realizes it, and compares with the float64 reference of the same
 * graph built on cpu. Also checks shape and dtype against the cpu graph.
 */
async function check(
  device: DeviceName,
  build: (device: DeviceName) => Tensor,
  tol: CloseOptions = tolerance(device),
): Promise<void> {
  const t = build(device);
  const cpu = device === "cpu" ? t : build("cpu");
  const expected = reference(cpu);
  const got = await t.data();
  assertEquals(t.shape, cpu.shape, `${tol.msg ?? ""} shape`);
  assertEquals(t.dtype, cpu.dtype, `${tol.msg ?? ""} dtype`);
  assertEquals(t.device, device);
  if (t.dtype === "int32") assertEquals(Array.from(got), Array.from(expected), tol.msg);
  else assertClose(got, expected, tol);
}

const SHAPES: number[][] = [[5], [2, 3], [1, 4, 1], [2, 3, 4], [], [0, 3], [3, 0, 2]];

// ---- elementwise -------------------------------------------------------------------------------

/** Each unary op with an input range where the function is defined and well-conditioned. */
const UNARY: [string, (x: Tensor) => Tensor, number, number, boolean][] = [
  ["neg", (x) => x.neg(), -3, 3, false],
  ["exp", (x) => x.exp(), -4, 4, true],
  ["log", (x) => x.log(), 0.05, 10, true],
  ["sqrt", (x) => x.sqrt(), 0, 10, true],
  ["rsqrt", (x) => x.rsqrt(), 0.05, 10, true],
  ["recip", (x) => x.recip(), 0.1, 4, false],
  ["square", (x) => x.square(), -3, 3, false],
  ["abs", (x) => x.abs(), -3, 3, false],
  ["relu", (x) => x.relu(), -3, 3, false],
  ["sigmoid", (x) => x.sigmoid(), -6, 6, true],
  ["tanh", (x) => x.tanh(), -3, 3, true],
  ["sign", (x) => x.sign(), -3, 3, false],
];

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`unary ops match the reference, ${backend.name}`, (t) =>
    onBackend(backend, async () => {
      for (const [name, op, lo, hi, transcendental] of UNARY) {
        for (const dtype of floatDtypes(device)) {
          for (const shape of SHAPES) {
            await t.step(
              `${name} ${dtype}[${shape}]`,
              () =>
                check(device, (d) => op(input(shape, 1, d, { lo, hi, dtype })), {
                  ...tolerance(device, transcendental),
                  msg: `${name} ${dtype}[${shape}]`,
                }),
            );
          }
        }
      }
    }));
}

// sigmoid down to where its result underflows: 1 / (1 + e^-x) overflowed e^-x first, giving 0
// for float32 below -88.7 on Wasm and for float64 below -709.8 (sigmoid(-720) is 2.03e-313)
for (const backend of testBackends) {
  Deno.test(`sigmoid at the ends of the range, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const device = backend.device;
      const stable = (x: number) =>
        x < 0 ? Math.exp(x) / (1 + Math.exp(x)) : 1 / (1 + Math.exp(-x));
      const cases = {
        float32: [-200, -103, -90, -88.8, -87, -50, -0, 0, 50, 90, -Infinity, Infinity, NaN],
        float64: [-800, -745, -720, -700, -90, 0, 40, 720, -Infinity, Infinity, NaN],
      };
      for (const dtype of floatDtypes(device)) {
        const xs = cases[dtype as keyof typeof cases];
        const got = await tensor(xs, { dtype, device }).sigmoid().data();
        const round = dtype === "float32" ? Math.fround : (v: number) => v;
        const tiny = dtype === "float32" ? 2 ** -126 : 2 ** -1022;
        const ulp = dtype === "float32" ? 2 ** -23 : 2 ** -52;
        xs.forEach((x, i) => {
          const want = round(stable(round(x)));
          // webgpu's llvmpipe flushes float32 subnormals to zero (README)
          const flushed = device === "webgpu" && Math.abs(want) < tiny && got[i] === 0;
          // WGSL allows exp an error of 3 + 2|x| ulps
          const ulps = device === "webgpu" ? 3 + 2 * Math.abs(x) : 4;
          const close = Object.is(got[i], want) ||
            Math.abs(got[i] - want) <= ulps * ulp * Math.abs(want) ||
            (Math.abs(want) < tiny && Math.abs(got[i] - want) <= 4 * tiny * ulp);
          assert(close || flushed, `${dtype} sigmoid(${x}): ${got[i]}, want ${want}`);
        });
      }
    }));
}

Deno.test("unary ops: hand-worked values and special cases", async () => {
  const x = tensor([-2, -0.5, 0, 0.5, 2]);
  assertEquals(Array.from(await x.neg().data()), [2, 0.5, -0, -0.5, -2]);
  assertEquals(Array.from(await x.abs().data()), [2, 0.5, 0, 0.5, 2]);
  assertEquals(Array.from(await x.relu().data()), [0, 0, 0, 0.5, 2]);
  assertEquals(Array.from(await x.sign().data()), [-1, -1, 0, 1, 1]);
  assertEquals(Array.from(await x.square().data()), [4, 0.25, 0, 0.25, 4]);
  assertEquals(Array.from(await tensor([4, 0.25]).sqrt().data()), [2, 0.5]);
  assertEquals(Array.from(await tensor([4, 0.25]).rsqrt().data()), [0.5, 2]);
  assertEquals(Array.from(await tensor([4, -0.25]).recip().data()), [0.25, -4]);
  assertEquals(Array.from(await tensor([0]).sigmoid().data()), [0.5]);
  // IEEE: log(0) = -Infinity, sqrt(-1) = NaN, 1/0 = Infinity, NaN propagates through relu
  const special = await tensor([0, -1, 0, NaN]).log().data();
  assertEquals(special[0], -Infinity);
  assert(Number.isNaN(special[1]));
  assert(Number.isNaN((await tensor([-1]).sqrt().data())[0]));
  assertEquals((await tensor([0]).recip().data())[0], Infinity);
  assert(Number.isNaN((await tensor([NaN]).relu().data())[0]));
  assert(Number.isNaN((await tensor([NaN]).sign().data())[0]));
});

const BROADCAST_SHAPES: [number[], number[]][] = [
  [[3, 4], [3, 4]],
  [[3, 4], [4]],
  [[3, 1], [1, 4]],
  [[2, 3, 4], [3, 1]],
  [[], [2, 3]],
  [[2, 1, 3], [4, 1]],
  [[1], [5]],
  [[0, 3], [1, 3]],
  [[2, 0], [2, 1]],
];

/** Each binary op with operand ranges that keep it well-conditioned. */
const BINARY: [string, (a: Tensor, b: Tensor | number) => Tensor, [number, number], [
  number,
  number,
], boolean][] = [
  ["add", (a, b) => a.add(b), [-3, 3], [-3, 3], false],
  ["sub", (a, b) => a.sub(b), [-3, 3], [-3, 3], false],
  ["mul", (a, b) => a.mul(b), [-3, 3], [-3, 3], false],
  ["div", (a, b) => a.div(b), [-3, 3], [0.5, 3], false],
  ["pow", (a, b) => a.pow(b), [0.1, 3], [-2, 2], true],
  ["maximum", (a, b) => a.maximum(b), [-3, 3], [-3, 3], false],
  ["minimum", (a, b) => a.minimum(b), [-3, 3], [-3, 3], false],
  ["lt", (a, b) => a.lt(b), [-3, 3], [-3, 3], false],
  ["gt", (a, b) => a.gt(b), [-3, 3], [-3, 3], false],
  ["eq", (a, b) => a.eq(b), [-3, 3], [-3, 3], false],
];

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`binary ops with broadcasting match the reference, ${backend.name}`, (t) =>
    onBackend(backend, async () => {
      for (const [name, op, [alo, ahi], [blo, bhi], transcendental] of BINARY) {
        // comparisons get integer-valued inputs so that ties (and eq) actually happen
        const round = name === "lt" || name === "gt" || name === "eq";
        const make = (shape: number[], seed: number, lo: number, hi: number, d: DeviceName) =>
          round
            ? tensor(values(numel(shape), seed, lo, hi).map(Math.round), { shape, device: d })
            : input(shape, seed, d, { lo, hi });
        for (const [sa, sb] of BROADCAST_SHAPES) {
          for (const [pa, pb] of [[sa, sb], [sb, sa]]) {
            await t.step(`${name} [${pa}] [${pb}]`, () =>
              check(
                device,
                (d) => op(make(pa, 2, alo, ahi, d), make(pb, 3, blo, bhi, d)),
                { ...tolerance(device, transcendental), msg: `${name} [${pa}] [${pb}]` },
              ));
          }
        }
        for (const scalar of [2, -1.5, 0.5]) {
          if (name === "div" && scalar < 0) continue;
          await t.step(`${name} [2,3] and the number ${scalar}`, () =>
            check(
              device,
              (d) => op(make([2, 3], 4, alo, ahi, d), round ? Math.round(scalar) : scalar),
              { ...tolerance(device, transcendental), msg: `${name} number ${scalar}` },
            ));
        }
      }
    }));

  Deno.test(`binary ops in float64, ${device === "cpu" ? "cpu" : "skipped"}`, () =>
    onBackend(backend, async () => {
      if (device !== "cpu") return;
      for (const [name, op, [alo, ahi], [blo, bhi]] of BINARY) {
        await check(device, (d) =>
          op(
            input([2, 3], 5, d, { lo: alo, hi: ahi, dtype: "float64" }),
            input([3], 6, d, { lo: blo, hi: bhi, dtype: "float64" }),
          ), { rtol: 1e-12, atol: 1e-14, msg: name });
      }
    }));

  Deno.test(`affine matches the reference, ${backend.name}`, () =>
    onBackend(backend, async () => {
      for (const shape of SHAPES) {
        await check(device, (d) => input(shape, 7, d).affine(2.5, -1), tolerance(device));
        await check(device, (d) => input(shape, 8, d).affine(-0.5, 3).affine(4, 0));
      }
      assertEquals(Array.from(await tensor([1, 2]).affine(3, 1).data()), [4, 7]);
    }));
}

Deno.test("binary ops: hand-worked values, reversed comparisons and number operands", async () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const b = tensor([10, 20, 30]);
  assertEquals(await a.add(b).toArray(), [[11, 22, 33], [14, 25, 36]]);
  assertEquals(await b.sub(a).toArray(), [[9, 18, 27], [6, 15, 24]]);
  assertEquals(await a.mul(tensor([[2], [3]])).toArray(), [[2, 4, 6], [12, 15, 18]]);
  assertEquals(await a.div(2).toArray(), [[0.5, 1, 1.5], [2, 2.5, 3]]);
  assertEquals(await a.pow(2).toArray(), [[1, 4, 9], [16, 25, 36]]);
  assertEquals(await a.lt(3).toArray(), [[1, 1, 0], [0, 0, 0]]);
  assertEquals(await a.gt(3).toArray(), [[0, 0, 0], [1, 1, 1]]);
  assertEquals(await a.eq(tensor([1, 0, 6])).toArray(), [[1, 0, 0], [0, 0, 1]]);
  assertEquals(await a.maximum(3.5).toArray(), [[3.5, 3.5, 3.5], [4, 5, 6]]);
  assertEquals(await a.minimum(tensor([[2], [5]])).toArray(), [[1, 2, 2], [4, 5, 5]]);
  // NaN compares false everywhere
  assertEquals(Array.from(await tensor([NaN, 1]).eq(tensor([NaN, 1])).data()), [0, 1]);
  assertEquals(Array.from(await tensor([NaN]).lt(1).data()), [0]);
});

// ---- dtypes ----------------------------------------------------------------------------------

const INT_MAX = 2147483647;
const INT_MIN = -2147483648;

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`int32 arithmetic wraps on overflow, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const big = tensor([INT_MAX, INT_MIN, 65536, -3], { dtype: "int32", device });
      assertEquals(Array.from(await big.add(1).data()), [INT_MIN, INT_MIN + 1, 65537, -2]);
      assertEquals(Array.from(await big.sub(1).data()), [INT_MAX - 1, INT_MAX, 65535, -4]);
      assertEquals(Array.from(await big.mul(big).data()), [1, 0, 0, 9]);
      assertEquals(Array.from(await big.square().data()), [1, 0, 0, 9]);
      assertEquals(Array.from(await big.neg().data()), [-INT_MAX, INT_MIN, -65536, 3]);
      assertEquals(Array.from(await big.abs().data()), [INT_MAX, INT_MIN, 65536, 3]);
      assertEquals(
        Array.from(
          await tensor([INT_MAX, INT_MAX, 2], { dtype: "int32", device }).sum()
            .data(),
        ),
        [0],
      );
      assertEquals(big.add(1).dtype, "int32");
      // each of these against the reference too
      for (
        const op of [
          (x: Tensor) => x.add(x),
          (x: Tensor) => x.mul(3).sub(x),
          (x: Tensor) => x.sum(0),
          (x: Tensor) => x.max(0),
          (x: Tensor) => x.sign().mul(x).relu(),
        ]
      ) {
        await check(
          device,
          (d) =>
            op(tensor([INT_MAX, INT_MIN, 65536, -3], { dtype: "int32", shape: [2, 2], device: d })),
        );
      }
    }));

  Deno.test(`dtype promotion, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const i = tensor([1, 2, 3], { dtype: "int32", device });
      const f = tensor([0.5, 0.5, 0.5], { device });
      // division, float-only unary ops, pow and mean promote int32 to float32
      assertEquals(i.div(2).dtype, "float32");
      assertEquals(Array.from(await i.div(2).data()), [0.5, 1, 1.5]);
      assertEquals(Array.from(await i.div(i.add(1)).data()), [0.5, 2 / 3, 0.75].map(Math.fround));
      assertEquals(i.exp().dtype, "float32");
      assertEquals(i.sqrt().dtype, "float32");
      assertEquals(i.pow(2).dtype, "float32");
      assertEquals(i.mean().dtype, "float32");
      assertEquals(await i.mean().item(), 2);
      // a mean divides by the count, as NumPy's: times a rounded 1/3 it was an ulp off
      const third = tensor([1, 2, 4], { dtype: "int32", device }).mean();
      assertEquals(await third.item(), Math.fround(7 / 3));
      const v = Math.fround(1.001);
      assertEquals(await tensor([v, v, v], { device }).mean().item(), v);
      assertEquals(i.affine(2, 0).dtype, "float32");
      // int32 with a float tensor or a fractional number computes in float32
      assertEquals(i.add(f).dtype, "float32");
      assertEquals(Array.from(await i.add(f).data()), [1.5, 2.5, 3.5]);
      assertEquals(i.mul(0.5).dtype, "float32");
      assertEquals(Array.from(await i.mul(0.5).data()), [0.5, 1, 1.5]);
      // int32 with an integer number stays int32, comparisons keep the operands' dtype
      assertEquals(i.mul(2).dtype, "int32");
      assertEquals(i.lt(2).dtype, "int32");
      assertEquals(i.neg().dtype, "int32");
      assertEquals(i.sum().dtype, "int32");
      assertEquals(f.lt(1).dtype, "float32");
      if (device === "cpu") {
        const d = tensor([1, 2, 3], { dtype: "float64" });
        assertEquals(d.add(f).dtype, "float64");
        assertEquals(d.add(i).dtype, "float64");
        assertEquals(f.add(d).dtype, "float64");
        // float64 keeps digits float32 cannot
        assertEquals((await tensor([0.1], { dtype: "float64" }).mul(3).data())[0], 0.1 * 3);
      }
      await check(device, (d) => input([2, 3], 9, d, { dtype: "int32", lo: -50, hi: 50 }).div(7));
      await check(
        device,
        (d) =>
          tensor([1, -2, 3, 4, -5, 6], { dtype: "int32", shape: [2, 3], device: d }).add(
            input([3], 10, d),
          ),
      );
    }));

  Deno.test(`cast converts and truncates, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const f = tensor([1.7, -1.7, 2.5, -0.2], { device });
      assertEquals(Array.from(await f.cast("int32").data()), [1, -1, 2, 0]);
      assertEquals(f.cast("int32").dtype, "int32");
      assertEquals(
        Array.from(await tensor([3, -4], { dtype: "int32", device }).cast("float32").data()),
        [3, -4],
      );
      await check(device, (d) => input([3, 4], 11, d, { lo: -100, hi: 100 }).cast("int32"));
    }));
}

// ---- reductions --------------------------------------------------------------------------------

const REDUCE_CASES: [number[], (number | number[] | undefined)[]][] = [
  [[5], [0, -1, undefined]],
  [[2, 3, 4], [0, 1, 2, -1, [0, 2], [1, 2], [0, 1, 2], undefined]],
  [[3, 1, 5], [1, [0, 1], undefined]],
  [[1, 1], [0, undefined]],
  [[], [undefined]],
  [[0, 3], [1]],
];

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`sum mean max match the reference, ${backend.name}`, (t) =>
    onBackend(backend, async () => {
      for (const dtype of [...floatDtypes(device), "int32" as DType]) {
        for (const [shape, axes] of REDUCE_CASES) {
          for (const axis of axes) {
            for (const keepdim of [false, true]) {
              for (const op of ["sum", "mean", "max"] as const) {
                const label = `${op} ${dtype}[${shape}] axis ${
                  JSON.stringify(axis)
                } keepdim ${keepdim}`;
                await t.step(label, () =>
                  check(device, (d) => {
                    const x = input(shape, 12, d, { dtype, lo: -20, hi: 20 });
                    return x[op](axis, keepdim);
                  }, { ...tolerance(device), msg: label }));
              }
            }
          }
        }
        // a sum over an empty axis is 0 (and keeps the other axes)
        await t.step(
          `sum over an empty axis ${dtype}`,
          () => check(device, (d) => input([0, 3], 13, d, { dtype }).sum(0)),
        );
      }
    }));
}

Deno.test("reductions: hand-worked values and shapes", async () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  assertEquals(await x.sum().item(), 21);
  assertEquals(await x.sum(0).toArray(), [5, 7, 9]);
  assertEquals(await x.sum(1, true).toArray(), [[6], [15]]);
  assertEquals(x.sum(1, true).shape, [2, 1]);
  assertEquals(x.sum([0, 1], true).shape, [1, 1]);
  assertEquals(x.sum().shape, []);
  assertEquals(await x.mean(1).toArray(), [2, 5]);
  assertEquals(await x.mean().item(), 3.5);
  assertEquals(await x.max(0).toArray(), [4, 5, 6]);
  assertEquals(await x.max(-1, true).toArray(), [[3], [6]]);
  assertEquals(await tensor([[-5, -7], [-9, -2]], { dtype: "int32" }).max(1).toArray(), [-5, -2]);
  // max propagates NaN; an empty sum is 0
  const nan = await tensor([[1, NaN, 3], [-1, -2, -3]]).max(1).data();
  assert(Number.isNaN(nan[0]));
  assertEquals(nan[1], -1);
  assertEquals(Array.from(await zeros(0, 3).sum(0).data()), [0, 0, 0]);
  assertEquals(Array.from(await zeros(0, 3).sum(1).data()), []);
});

// ---- movement ---------------------------------------------------------------------------------

const MOVEMENT: [string, number[], (x: Tensor) => Tensor][] = [
  ["reshape", [2, 3, 4], (x) => x.reshape(4, 6)],
  ["reshape -1", [2, 3, 4], (x) => x.reshape(-1, 2)],
  ["reshape array", [2, 3, 4], (x) => x.reshape([3, -1])],
  ["reshape to scalar", [1, 1], (x) => x.reshape([])],
  ["reshape empty", [0, 3], (x) => x.reshape(3, 0)],
  ["permute", [2, 3, 4], (x) => x.permute(2, 0, 1)],
  ["permute negative", [2, 3, 4], (x) => x.permute([-1, -3, -2])],
  ["transpose", [2, 3, 4], (x) => x.transpose()],
  ["transpose 0 2", [2, 3, 4], (x) => x.transpose(0, 2)],
  ["expand", [3, 1], (x) => x.expand(3, 4)],
  ["expand leading", [3, 1], (x) => x.expand(2, -1, 5)],
  ["expand size-1 to empty", [1, 3], (x) => x.expand([0, 3])],
  ["squeeze all", [1, 3, 1], (x) => x.squeeze()],
  ["squeeze dim", [1, 3, 1], (x) => x.squeeze(-1)],
  ["squeeze non-1 dim", [2, 3], (x) => x.squeeze(0)],
  ["unsqueeze", [2, 3], (x) => x.unsqueeze(1)],
  ["unsqueeze end", [2, 3], (x) => x.unsqueeze(-1)],
  ["flatten", [2, 3, 4], (x) => x.flatten()],
  ["flatten 1", [2, 3, 4], (x) => x.flatten(1)],
  ["flatten 0 1", [2, 3, 4], (x) => x.flatten(0, 1)],
  ["flatten scalar", [], (x) => x.flatten()],
  ["pad", [2, 3], (x) => x.pad([[1, 0], [2, 3]])],
  ["pad value", [2, 3], (x) => x.pad([[0, 1], [1, 1]], -7.5)],
  ["pad negative", [4, 5], (x) => x.pad([[-1, 0], [-2, -1]])],
  ["pad mixed", [4, 5], (x) => x.pad([[-1, 2], [1, -3]], 2)],
  ["pad crop all", [2, 3], (x) => x.pad([[0, 0], [-2, -1]])],
  ["pad empty", [0, 2], (x) => x.pad([[1, 1], [0, 0]], 3)],
  ["shrink", [4, 5], (x) => x.shrink([[1, 3], [0, 5]])],
  ["shrink null", [4, 5], (x) => x.shrink([null, [2, 4]])],
  ["shrink to empty", [4, 5], (x) => x.shrink([[2, 2], null])],
  ["slice", [4, 5], (x) => x.slice(1, 1, 4)],
  ["slice negative", [4, 5], (x) => x.slice(-1, -3)],
  ["slice clamped", [4, 5], (x) => x.slice(0, 2, 100)],
  ["slice empty", [4, 5], (x) => x.slice(0, 3, 1)],
  ["unfoldDim step 1", [2, 6], (x) => x.unfoldDim(1, 3)],
  ["unfoldDim step 2", [2, 7], (x) => x.unfoldDim(1, 3, 2)],
  ["unfoldDim step 3 dim 0", [8, 2], (x) => x.unfoldDim(0, 2, 3)],
  ["unfoldDim full size", [5], (x) => x.unfoldDim(0, 5)],
  ["unfoldDim step > size", [3, 9], (x) => x.unfoldDim(-1, 2, 4)],
  ["pad then unfoldDim then sum", [2, 6], (x) => x.pad([[0, 0], [2, 2]]).unfoldDim(1, 5).sum(-1)],
  ["permute then reshape", [2, 3, 4], (x) => x.permute(1, 2, 0).reshape(12, 2)],
  ["expand then reshape", [3, 1], (x) => x.expand(3, 4).reshape(2, 6)],
  ["unfoldDim then permute", [2, 6], (x) => x.unfoldDim(1, 2, 2).permute(2, 0, 1)],
];

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`movement ops match the reference, ${backend.name}`, (t) =>
    onBackend(backend, async () => {
      for (const dtype of [...floatDtypes(device), "int32" as DType]) {
        for (const [name, shape, op] of MOVEMENT) {
          await t.step(
            `${name} ${dtype}`,
            () =>
              check(device, (d) => op(input(shape, 14, d, { dtype, lo: -9, hi: 9 })), {
                ...tolerance(device),
                msg: `${name} ${dtype}`,
              }),
          );
        }
      }
    }));
}

Deno.test("movement ops: hand-worked values and shapes", async () => {
  const x = arange(6).reshape(2, 3); // [[0,1,2],[3,4,5]]
  assertEquals(x.reshape(-1).shape, [6]);
  assertEquals(await x.transpose().toArray(), [[0, 3], [1, 4], [2, 5]]);
  assertEquals(await x.permute(1, 0).reshape(6).toArray(), [0, 3, 1, 4, 2, 5]);
  assertEquals(await tensor([[1], [2]]).expand(2, 3).toArray(), [[1, 1, 1], [2, 2, 2]]);
  assertEquals(tensor([[1], [2]]).expand(4, -1, 3).shape, [4, 2, 3]);
  assertEquals(zeros(1, 3, 1).squeeze().shape, [3]);
  assertEquals(zeros(1, 3, 1).squeeze(0).shape, [3, 1]);
  assertEquals(zeros(2, 3).unsqueeze(0).shape, [1, 2, 3]);
  assertEquals(zeros(2, 3).unsqueeze(2).shape, [2, 3, 1]);
  assertEquals(zeros(2, 3, 4).flatten(1).shape, [2, 12]);
  // a 0-D tensor's axes are checked as a 1-D tensor's (flatten(5, 9) passed unchecked)
  assertEquals(tensor(3).flatten(0, -1).shape, [1]);
  assertThrows(() => tensor(3).flatten(5, 9), Error, "flatten: startDim must be an integer");
  assertThrows(() => tensor(3).flatten(0, "a" as never), Error, "endDim must be an integer");
  assertEquals(await x.pad([[0, 0], [1, 1]], 9).toArray(), [[9, 0, 1, 2, 9], [9, 3, 4, 5, 9]]);
  assertEquals(await x.pad([[-1, 0], [-1, 1]]).toArray(), [[4, 5, 0]]);
  assertEquals(await x.shrink([null, [1, 3]]).toArray(), [[1, 2], [4, 5]]);
  assertEquals(await x.slice(1, -2).toArray(), [[1, 2], [4, 5]]);
  assertEquals(await arange(5).unfoldDim(0, 2).toArray(), [[0, 1], [1, 2], [2, 3], [3, 4]]);
  assertEquals(await arange(7).unfoldDim(0, 3, 2).toArray(), [[0, 1, 2], [2, 3, 4], [4, 5, 6]]);
  // L = floor((n - size) / step) + 1: the tail that fits no window is dropped
  assertEquals(await arange(6).unfoldDim(0, 3, 2).toArray(), [[0, 1, 2], [2, 3, 4]]);
  assertEquals(arange(10).reshape(2, 5).unfoldDim(1, 2, 2).shape, [2, 2, 2]);
  assertEquals(
    await arange(10).reshape(2, 5).pad([[0, 0], [2, 1]]).unfoldDim(1, 3, 2).sum(-1).toArray(),
    [[0, 3, 9], [5, 18, 24]],
  );
});

Deno.test("squeeze of a non-1 axis keeps the shape", () => {
  const x = zeros(2, 3);
  assertEquals(x.squeeze(1).shape, [2, 3]);
});

// ---- creation ------------------------------------------------------------------------------------

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`creation functions, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const nested = tensor([[1, 2, 3], [4, 5, 6]], { device });
      assertEquals(nested.shape, [2, 3]);
      assertEquals(nested.dtype, "float32");
      assertEquals(nested.device, device);
      assertEquals(await nested.toArray(), [[1, 2, 3], [4, 5, 6]]);
      assertEquals(tensor([[[1], [2]]], { device }).shape, [1, 2, 1]);
      assertEquals(tensor(3, { device }).shape, []);
      assertEquals(await tensor(3, { device }).item(), 3);
      assertEquals(tensor([], { device }).shape, [0]);
      const flat = tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2], device, dtype: "int32" });
      assertEquals(flat.shape, [3, 2]);
      assertEquals(flat.dtype, "int32");
      assertEquals(await flat.toArray(), [[1, 2], [3, 4], [5, 6]]);
      // typed arrays set the dtype unless one is given; the data is copied
      const f32 = new Float32Array([1.5, 2.5]);
      assertEquals(tensor(f32, { device }).dtype, "float32");
      assertEquals(tensor(new Int32Array([1, 2]), { device }).dtype, "int32");
      assertEquals(tensor(new Int32Array([1, 2]), { device, dtype: "float32" }).dtype, "float32");
      assertEquals(
        await tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2], device }).toArray(),
        [[1, 2], [3, 4]],
      );
      // values round to the dtype
      assertEquals(Array.from(await tensor([0.1], { device }).data()), [Math.fround(0.1)]);
      assertEquals(Array.from(await tensor([1.9, -1.9], { dtype: "int32", device }).data()), [
        1,
        -1,
      ]);

      assertEquals(await zeros([2, 2], { device }).toArray(), [[0, 0], [0, 0]]);
      assertEquals(zeros(2, 3).shape, [2, 3]);
      assertEquals(zeros().shape, []);
      assertEquals(await ones([3], { device, dtype: "int32" }).toArray(), [1, 1, 1]);
      assertEquals(ones([3], { device, dtype: "int32" }).dtype, "int32");
      assertEquals(await full([2], 7.5, { device }).toArray(), [7.5, 7.5]);
      assertEquals(full([0, 2], 1).shape, [0, 2]);

      assertEquals(await arange(4, undefined, 1, { device }).toArray(), [0, 1, 2, 3]);
      assertEquals(arange(4).dtype, "int32");
      assertEquals(await arange(2, 8, 2).toArray(), [2, 4, 6]);
      assertEquals(await arange(5, 0, -2).toArray(), [5, 3, 1]);
      assertEquals(await arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
      assertEquals(arange(0, 1, 0.25).dtype, "float32");
      assertEquals(arange(3, 3).shape, [0]);
      assertEquals(arange(3, 0).shape, [0]);
      if (device === "cpu") {
        assertEquals(ones([2], { dtype: "float64" }).dtype, "float64");
        assertEquals(arange(3, undefined, 1, { dtype: "float64" }).dtype, "float64");
        // whole numbers past int32 are float64, exact up to 2^53
        const big = arange(2 ** 53 - 3, 2 ** 53);
        assertEquals(big.dtype, "float64");
        assertEquals(Array.from(await big.data()), [2 ** 53 - 3, 2 ** 53 - 2, 2 ** 53 - 1]);
        // past it 2^53 came twice and 2^53 + 1 never: refused, unless a dtype says to round
        assertThrows(
          () => arange(2 ** 53 - 2, 2 ** 53 + 2),
          Error,
          "arange: whole numbers float64 holds exactly (pass a dtype for rounded values), got 9007199254740993 among the values from 9007199254740990 to 9007199254740992",
        );
        assertEquals(arange(2 ** 53, 2 ** 53 + 4, 2, { dtype: "float64" }).shape, [2]);
        // a huge range is refused for its size at once (each value was checked first: minutes)
        assertThrows(() => arange(0, 2 ** 60), Error, "arange: a tensor must fit 4 GiB");
        assertThrows(
          () => arange(2 ** 60, 2 ** 61, 2 ** 8),
          Error,
          "arange: a tensor must fit 4 GiB",
        );
        // exact without checking each value: multiples of the spacing of floats up there
        assertEquals(arange(2 ** 60, 2 ** 60 + 2 ** 30, 2 ** 8).shape, [2 ** 22]);
        // values past 2^53 that are floats stay allowed
        for (
          const [a, b, step] of [[-(2 ** 53), -(2 ** 53) + 3, 1], [2 ** 53, 2 ** 53 + 20, 2], [
            0,
            2 ** 60,
            2 ** 57,
          ], [0, 1e20, 1e19]]
        ) {
          const values = Array.from(await arange(a, b, step).data());
          const want = Array.from({ length: values.length }, (_, i) =>
            BigInt(a) + BigInt(i) * BigInt(step));
          assertEquals(values.map(BigInt), want);
        }
      } else {
        // whole numbers past int32 would be float64, which webgpu lacks: the Error says so and
        // asks for a dtype (it said webgpu has no float64, a dtype the caller never passed)
        assertThrows(
          () =>
            arange(3e9, 3e9 + 3, 1, { device }),
          Error,
          `arange: a dtype must be given for whole numbers beyond int32's range on "webgpu"`,
        );
        assertEquals(
          Array.from(await arange(3e9, 3e9 + 3 * 256, 256, { device, dtype: "float32" }).data()),
          [3e9, 3e9 + 256, 3e9 + 512],
        );
      }
    }));
}

Deno.test("rand and randn: both call forms, ranges, moments and manualSeed", async () => {
  manualSeed(42);
  const a = await randn(2, 3).data();
  const u = await rand(4, 5).data();
  manualSeed(42);
  const b = await randn([2, 3]).data();
  const v = await rand([4, 5]).data();
  // the same seed gives the same numbers, whichever call form is used
  assertEquals(Array.from(a), Array.from(b));
  assertEquals(Array.from(u), Array.from(v));
  assertEquals(randn(2, 3).shape, [2, 3]);
  assertEquals(randn([2, 3], { dtype: "float64" }).dtype, "float64");
  assertEquals(randn([2, 3], { dtype: "float64" }).shape, [2, 3]);
  assertEquals(rand([0, 3]).shape, [0, 3]);
  // a different seed gives different numbers
  manualSeed(43);
  assert(Array.from(await randn(2, 3).data()).some((x, i) => x !== a[i]));
  // rand is in [0, 1), randn has mean ~0 and variance ~1 (bounds are many sigmas wide)
  manualSeed(7);
  const big = Array.from(await rand(20000).data());
  assert(big.every((x) => x >= 0 && x < 1));
  const mean = big.reduce((s, x) => s + x, 0) / big.length;
  assert(Math.abs(mean - 0.5) < 0.02, `rand mean ${mean}`);
  const normal = Array.from(await randn([20000], { dtype: "float64" }).data());
  const m = normal.reduce((s, x) => s + x, 0) / normal.length;
  const variance = normal.reduce((s, x) => s + (x - m) ** 2, 0) / normal.length;
  assert(Math.abs(m) < 0.05, `randn mean ${m}`);
  assert(Math.abs(variance - 1) < 0.05, `randn variance ${variance}`);
  assert(normal.some((x) => x < -2) && normal.some((x) => x > 2));
});

// ---- reading values --------------------------------------------------------------------------------

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`data toArray item dataSync, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const x = tensor([[1, 2], [3, 4]], { device }).mul(2);
      const data = await x.data();
      assertInstanceOf(data, Float32Array);
      assertEquals(Array.from(data), [2, 4, 6, 8]);
      // data() is a copy: changing it does not change the tensor
      data[0] = 100;
      assertEquals(Array.from(await x.data()), [2, 4, 6, 8]);
      assertEquals(await x.toArray(), [[2, 4], [6, 8]]);
      assertEquals(await x.sum().toArray(), 20);
      assertEquals(await x.sum().item(), 20);
      assertEquals(await x.reshape(1, 4).slice(1, 2, 3).item(), 6);
      assertInstanceOf(await tensor([1], { dtype: "int32", device }).data(), Int32Array);
      if (device === "cpu") {
        assertInstanceOf(await tensor([1], { dtype: "float64" }).data(), Float64Array);
        const y = tensor([1, 2, 3]).exp();
        const sync = y.dataSync();
        assertClose(sync, [1, 2, 3].map(Math.exp));
        assertEquals(Array.from(sync), Array.from(await y.data()));
      } else {
        assertThrows(() => x.dataSync(), Error, "dataSync: needs a cpu tensor");
      }
    }));
}

Deno.test("toString and Deno.inspect describe dtype, shape, device and state", async () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  assertEquals(x.toString(), "Tensor(float32[2, 3], cpu, realized)");
  const y = x.exp();
  assertEquals(`${y}`, "Tensor(float32[2, 3], cpu, lazy)");
  assertEquals(Deno.inspect(y), "Tensor(float32[2, 3], cpu, lazy)");
  await y.realize();
  assertEquals(y.toString(), "Tensor(float32[2, 3], cpu, realized)");
  assertEquals(String(tensor(1, { dtype: "int32" })), "Tensor(int32[], cpu, realized)");
  assertEquals(
    String(zeros([2], { requiresGrad: true })),
    "Tensor(float32[2], cpu, realized, requiresGrad)",
  );
  assertEquals(x.ndim, 2);
  assertEquals(x.numel, 6);
});

// ---- inputs are never modified; empty tensors ----------------------------------------------------

Deno.test("ops never modify their inputs", async () => {
  const source = new Float32Array([1, -2, 3, -4, 5, -6]);
  const x = tensor(source, { shape: [2, 3] });
  source[0] = 99; // the tensor copied the data
  const before = Array.from(await x.data());
  assertEquals(before, [1, -2, 3, -4, 5, -6]);
  const outs = [
    x.neg(),
    x.exp(),
    x.add(x),
    x.mul(3).sub(1),
    x.sum(0),
    x.max(1),
    x.transpose().reshape(6),
    x.pad([[1, 1], [0, 0]], 5),
    x.unfoldDim(1, 2),
    x.relu().sqrt(),
  ];
  for (const o of outs) await o.data();
  assertEquals(Array.from(await x.data()), before);
  assertEquals(Array.from(source.slice(1)), [-2, 3, -4, 5, -6]);
});

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`empty tensors compute without kernels, ${backend.name}`, () =>
    onBackend(backend, async () => {
      const e = zeros([0, 3], { device });
      for (
        const t of [
          e.exp(),
          e.add(1),
          e.mul(tensor([1, 2, 3], { device })),
          e.transpose().neg(),
          e.pad([[0, 0], [1, 1]]),
          e.sum(1),
          zeros([2, 0], { device }).max(0),
        ]
      ) {
        assertEquals(kernels(t).length, 0, `kernels for ${t}`);
        assertEquals((await t.data()).length, 0);
      }
      assertEquals(e.exp().shape, [0, 3]);
      assertEquals(await e.exp().toArray(), []);
      assertEquals(await zeros([2, 0], { device }).toArray(), [[], []]);
      // reducing an empty axis gives a non-empty result: that one is computed
      assertEquals(Array.from(await e.sum(0).data()), [0, 0, 0]);
    }));
}

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`disposing a no-op view keeps the data it shares, ${backend.name}`, () =>
    onBackend(backend, async () => {
      // x.flatten() of a 1-D x, a same-dtype cast, a same-shape reshape or expand is x's node:
      // disposing that computed tensor must not free (and hand out again) x's storage
      const x = tensor([1, 2, 3], { device });
      const views = [x.flatten(), x.cast("float32"), x.reshape(3), x.expand(3), x.squeeze()];
      for (const v of views) {
        using _view = v;
      }
      const other = tensor([7, 8, 9], { device }).mul(2); // would take a freed buffer of 3
      assertEquals(Array.from(await other.data()), [14, 16, 18]);
      assertEquals(Array.from(await x.data()), [1, 2, 3]);
      assertEquals(Array.from(await x.add(1).data()), [2, 3, 4]);
      // a gradient that is the caller's own tensor is not freed with x.grad either
      const w = tensor([1, 2], { device, requiresGrad: true });
      const seed = tensor([5, 6], { device });
      w.backward(seed);
      w.grad!.dispose();
      assertEquals(Array.from(await seed.data()), [5, 6]);
    }));
}

// ---- bad input -------------------------------------------------------------------------------------

Deno.test("bad input throws Errors naming the function, the expectation and the value", async () => {
  const x = zeros(2, 3);
  // broadcasting names both shapes
  assertThrows(() => x.add(zeros(4)), Error, "add: shapes [2, 3] and [4] must broadcast");
  assertThrows(() => x.mul(zeros(3, 2)), Error, "got [2, 3] and [3, 2]");
  assertThrows(() => x.maximum(zeros(2, 2)), Error, "maximum:");
  assertThrows(() => x.add("1" as unknown as number), Error, "add: other must be a Tensor");
  // reshape names both element counts
  assertThrows(
    () => x.reshape(4, 2),
    Error,
    "reshape: shape [4, 2] has 8 elements, the tensor [2, 3] has 6",
  );
  assertThrows(() => x.reshape(-1, 4), Error, "reshape: cannot infer -1: 6 elements");
  assertThrows(() => x.reshape(-1, -1), Error, "reshape: shape may hold at most one -1");
  assertThrows(() => x.reshape(2.5, 2), Error, "reshape: shape must hold non-negative integers");
  // axes out of range
  assertThrows(
    () => x.sum(2),
    Error,
    "sum: axis must be an integer in [-2, 1] for a 2-D tensor, got 2",
  );
  assertThrows(() => x.max(-3), Error, "max: axis must be an integer in [-2, 1]");
  assertThrows(() => x.mean([0, 0]), Error, "mean: axes must be distinct");
  assertThrows(() => x.sum(0.5), Error, "got 0.5");
  assertThrows(() => x.sum(0, 1 as unknown as boolean), Error, "sum: keepdim must be a boolean");
  assertThrows(() => x.mean(0, 1 as unknown as boolean), Error, "mean: keepdim must be a boolean");
  assertThrows(() => zeros(0, 2).max(0), Error, "max: cannot take the max over an empty axis");
  assertThrows(() => x.permute(0, 2), Error, "permute: dims must be an integer in [-2, 1]");
  assertThrows(() => x.permute(0, 0), Error, "permute: dims must be a permutation");
  assertThrows(() => x.permute(0), Error, "permute: dims must list all 2 axes");
  assertThrows(() => x.transpose(0, 5), Error, "transpose: dim1 must be an integer in [-2, 1]");
  assertThrows(() => x.squeeze(3), Error, "squeeze: dim must be an integer");
  assertThrows(() => x.unsqueeze(4), Error, "unsqueeze: dim must be an integer in [-3, 2]");
  assertThrows(() => x.flatten(1, 0), Error, "flatten: startDim must not come after endDim");
  assertThrows(() => x.slice(2, 0), Error, "slice: dim must be an integer in [-2, 1]");
  assertThrows(() => x.slice(0, 0.5), Error, "slice: start must be an integer, got 0.5");
  // expand
  assertThrows(() => x.expand(2, 4), Error, "expand: axis 1 of length 3 can only expand to 3");
  assertThrows(() => x.expand(3), Error, "expand: shape must be integers, at least 2 of them");
  assertThrows(() => x.expand(-1, 2, 3), Error, "expand: new leading axes cannot be -1");
  // pad: negative pads larger than the axis, wrong arity, non-integers
  assertThrows(
    () => x.pad([[-2, -1], [0, 0]]),
    Error,
    "pad: negative pads of axis 0 must not remove more than its 2 elements, got [-2, -1]",
  );
  assertThrows(() => x.pad([[0, 0]]), Error, "pad: pads must be 2 pairs [before, after]");
  assertThrows(() => x.pad([[0, 0], [0.5, 0]]), Error, "pad: pads must be 2 pairs");
  assertThrows(() => x.pad([[0, 0], [0, 0]], "1" as unknown as number), Error, "pad: value");
  // shrink
  assertThrows(
    () => x.shrink([[0, 3], null]),
    Error,
    "shrink: range of axis 0 must satisfy 0 <= start <= end <= 2, got [0, 3]",
  );
  assertThrows(
    () => x.shrink([null]),
    Error,
    "shrink: ranges must have one [start, end] or null per axis (2)",
  );
  // unfoldDim: size larger than the axis, non-positive size or step
  assertThrows(
    () => x.unfoldDim(1, 4),
    Error,
    "unfoldDim: size must not exceed the length 3 of axis 1, got 4",
  );
  assertThrows(() => x.unfoldDim(1, 0), Error, "unfoldDim: size must be a positive integer, got 0");
  assertThrows(
    () => x.unfoldDim(1, -2),
    Error,
    "unfoldDim: size must be a positive integer, got -2",
  );
  assertThrows(
    () => x.unfoldDim(1, 2, 0),
    Error,
    "unfoldDim: step must be a positive integer, got 0",
  );
  assertThrows(
    () => x.unfoldDim(1, 2, 1.5),
    Error,
    "unfoldDim: step must be a positive integer, got 1.5",
  );
  assertThrows(() => x.unfoldDim(2, 1), Error, "unfoldDim: dim must be an integer in [-2, 1]");
  // non-integer or negative shapes
  assertThrows(
    () => zeros(2.5),
    Error,
    "zeros: shape must be an array of non-negative integers, got [2.5]",
  );
  assertThrows(
    () => ones([2, -1]),
    Error,
    "ones: shape must be an array of non-negative integers, got [2, -1]",
  );
  assertThrows(
    () => full([NaN], 1),
    Error,
    "full: shape must be an array of non-negative integers",
  );
  assertThrows(
    () => randn(2, 0.5),
    Error,
    "randn: shape must be an array of non-negative integers",
  );
  assertThrows(() => rand([2], { dtype: "int32" }), Error, "rand: dtype must be a float dtype");
  assertThrows(
    () => tensor([1, 2], { shape: [1.5] }),
    Error,
    "tensor: shape must be an array of non-negative integers, got [1.5]",
  );
  // data length not matching the shape
  assertThrows(
    () => tensor([1, 2, 3], { shape: [2, 2] }),
    Error,
    "tensor: data length must equal the product of shape [2, 2] = 4, got 3 elements",
  );
  assertThrows(
    () => tensor([[1, 2], [3]]),
    Error,
    "tensor: nested arrays must be rectangular (every row of shape [2]), got a row of shape [1]",
  );
  assertThrows(
    () => tensor([[[1], [2]], [3, 4]] as unknown as number[][]),
    Error,
    "tensor: nested arrays must be rectangular (every row of shape [1]), got a row of shape []",
  );
  assertThrows(
    () => tensor([[1, 2], 3] as unknown as number[][]),
    Error,
    "tensor: nested arrays must be rectangular (every row of shape [2]), got a row of shape []",
  );
  assertThrows(
    () => tensor([[], [1]]),
    Error,
    "tensor: nested arrays must be rectangular (every row of shape [0]), got a row of shape [1]",
  );
  assertEquals(tensor([[], []]).shape, [2, 0]);
  // nesting deeper than the call stack: recursion threw a bare RangeError past 1,000 levels
  let deep: unknown = 7;
  for (let i = 0; i < 20_000; i++) deep = [deep];
  const t = tensor(deep as number[]);
  assertEquals([t.ndim, t.numel], [20_000, 1]);
  // a stack of every element before looking at any ran out of memory (a fatal V8 error)
  assertThrows(
    () => tensor(new Array(1e8) as number[]),
    Error,
    "tensor: data must be a number, a (nested) array of numbers or a typed array, got undefined",
  );
  // an array that grows while it is read: the length checked against the shape is the one used
  // (the walk read it again, and a shape [2] tensor held three values)
  const growing = [1, 2];
  Object.defineProperty(growing, 1, {
    get() {
      growing.push(3);
      return 2;
    },
  });
  const read = tensor(growing);
  assertEquals([read.shape, Array.from(read.dataSync())], [[2], [1, 2]]);
  const cyclic: unknown[] = [[1], [2]];
  (cyclic[1] as unknown[])[0] = cyclic; // an ancestor, not on the first elements' path
  assertThrows(() => tensor(cyclic as number[][]), Error, "tensor: data must not contain itself");
  assertThrows(() => tensor(["a"] as unknown as number[]), Error, "tensor: data must be a number");
  assertThrows(
    () => tensor(new Uint8Array(2) as unknown as Float32Array),
    Error,
    "tensor: a typed array must be Float32Array",
  );
  // unknown dtypes and devices
  assertThrows(
    () => tensor([1], { dtype: "float16" as DType }),
    Error,
    `tensor: dtype must be one of "float32", "float64", "int32", got "float16"`,
  );
  assertThrows(() => zeros([1], { dtype: "bool" as DType }), Error, `zeros: dtype must be one of`);
  assertThrows(
    () => x.cast("uint8" as DType),
    Error,
    `cast: dtype must be one of "float32", "float64", "int32", got "uint8"`,
  );
  assertThrows(
    () => tensor([1], { device: "tpu" as DeviceName }),
    Error,
    `tensor: device must be "cpu" or "webgpu", got "tpu"`,
  );
  assertThrows(
    () => x.to("cuda" as DeviceName),
    Error,
    `to: device must be "cpu" or "webgpu", got "cuda"`,
  );
  assertThrows(
    () => tensor([1], 5 as unknown as object),
    Error,
    "tensor: options must be an object, got 5",
  );
  // arange
  assertThrows(() => arange(0, 5, 0), Error, "arange: step must not be 0");
  assertThrows(() => arange(Infinity), Error, "arange: end must be a finite number, got Infinity");
  // affine and item
  assertThrows(
    () => x.affine("2" as unknown as number, 0),
    Error,
    `affine: scale must be a number, got "2"`,
  );
  await assertRejects(
    () => x.item(),
    Error,
    "item: needs a tensor with exactly one element, got shape [2, 3]",
  );
  await assertRejects(() => zeros(0).item(), Error, "got shape [0]");
  assertThrows(
    () => manualSeed(1.5),
    Error,
    "manualSeed: seed must be an integer from 0 to 2^32 - 1, got 1.5",
  );
});

Deno.test("a failed op leaves its inputs usable", async () => {
  const x = tensor([1, 2, 3]);
  assertThrows(() => x.add(zeros(2)));
  assertThrows(() => x.reshape(2, 2));
  assertEquals(Array.from(await x.add(1).data()), [2, 3, 4]);
});

Deno.test("0-D tensors: reductions over axis 0 or -1 keep the value; unfoldDim needs an axis", async () => {
  const s = tensor(3);
  assertEquals(await s.sum(0).item(), 3);
  assertEquals(await s.max(-1, true).item(), 3);
  assertEquals(await s.mean(0).item(), 3);
  assertThrows(
    () => s.sum(1),
    Error,
    "sum: axis must be an integer in [-1, 0] for a 0-D tensor, got 1",
  );
  assertThrows(
    () => s.unfoldDim(0, 1),
    Error,
    "unfoldDim: needs a tensor with at least one axis, got a 0-D tensor",
  );
});

Deno.test("0-D tensors: slice needs an axis (not a complaint about an end never given)", () => {
  assertThrows(
    () => tensor(3).slice(0, 0),
    Error,
    "slice: needs a tensor with at least one axis, got a 0-D tensor",
  );
});

Deno.test("arange: whole numbers beyond int32 become float64; an int32 request that overflows throws", async () => {
  const big = arange(3e9, 3e9 + 2);
  assertEquals(big.dtype, "float64");
  assertEquals(Array.from(await big.data()), [3e9, 3e9 + 1]);
  assertEquals(arange(4).dtype, "int32");
  assertThrows(
    () => arange(3e9, 3e9 + 2, 1, { dtype: "int32" }),
    Error,
    "arange: values must fit int32 for dtype int32, got values from 3000000000 to 3000000001",
  );
});

Deno.test("pad values -0 and 0 are different constants", async () => {
  const x = tensor([1]);
  const negative = await x.pad([[1, 0]], -0).data();
  const positive = await x.pad([[1, 0]], 0).data();
  assertEquals(Object.is(negative[0], -0), true);
  assertEquals(Object.is(positive[0], 0), true);
});

Deno.test("int32 values beyond int32 throw at creation, assign and pad instead of wrapping", () => {
  // Int32Array.set wrapped them: 3e9 became -1294967296, 2^40 became 0, NaN 0
  const int32 = { dtype: "int32" } as const;
  const message = "must be within int32 [-2147483648, 2147483647] for dtype int32";
  assertThrows(() => tensor([1, 3e9], int32), Error, `tensor: data ${message}, got 3000000000`);
  assertThrows(() => tensor(new Float64Array([NaN]), int32), Error, "tensor: data must be");
  assertThrows(() => tensor([[2 ** 40]], int32), Error, `got ${2 ** 40}`);
  assertThrows(() => full([2], -3e9, int32), Error, `full: value ${message}, got -3000000000`);
  assertThrows(() => full([2], Infinity, int32), Error, "got Infinity");
  const x = tensor([1, 2], int32);
  assertThrows(() => x.assign(2 ** 31), Error, `assign: value ${message}, got 2147483648`);
  assertThrows(() => x.pad([[1, 0]], 3e9), Error, `pad: value ${message}, got 3000000000`);
  // in range: fractions truncate toward zero, as a cast does
  assertEquals(Array.from(tensor([1.9, -1.9, 2147483647.5], int32).dataSync()), [
    1,
    -1,
    2147483647,
  ]);
  assertEquals(Array.from(full([1], -2147483648.5, int32).dataSync()), [-2147483648]);
  assertEquals(Array.from(x.pad([[1, 0]], -5).dataSync()), [-5, 1, 2]);
  assertEquals(Array.from(x.assign(7).dataSync()), [7, 7]);
});

Deno.test("toArray of an empty tensor with an axis longer than an array names itself", async () => {
  // a bare "RangeError: Invalid array length"
  await assertRejects(
    () => zeros([2 ** 32, 0]).toArray(),
    Error,
    "toArray: axes of at most 4294967295 (the longest JavaScript array), got shape [4294967296, 0]",
  );
  assertEquals(await zeros([2, 0]).toArray(), [[], []]);
  // an axis an array can hold, with too many empty rows: 4 billion arrays were built for 52 s,
  // then a bare RangeError
  await assertRejects(
    () => zeros([2 ** 32 - 1, 0]).toArray(),
    Error,
    "toArray: an empty tensor of at most 16777216 nested arrays, got shape [4294967295, 0] " +
      "(4294967296 arrays)",
  );
  await assertRejects(() => zeros([4096, 4096, 2, 0]).toArray(), Error, "(50335745 arrays)");
  assertEquals(await zeros([3, 2, 0]).toArray(), [[[], []], [[], []], [[], []]]);
  assertEquals(await zeros([0, 2 ** 31]).toArray(), []);
});

Deno.test("toArray of a tensor of 20,000 axes nests 20,000 deep", async () => {
  // nest() recursed once per axis: "Maximum call stack size exceeded" from 5,000 axes
  let nested: unknown = await tensor([7], { shape: new Array(20_000).fill(1) }).toArray();
  let depth = 0;
  while (Array.isArray(nested)) {
    assertEquals(nested.length, 1);
    nested = nested[0];
    depth++;
  }
  assertEquals([depth, nested], [20_000, 7]);
  const wide = await tensor(Array.from({ length: 24 }, (_, i) => i), { shape: [1, 2, 1, 3, 4, 1] })
    .toArray();
  assertEquals(
    wide,
    [[[[[[0], [1], [2], [3]], [[4], [5], [6], [7]], [[8], [9], [10], [11]]]], [[
      [[12], [13], [14], [
        15,
      ]],
      [[16], [17], [18], [19]],
      [[20], [21], [22], [23]],
    ]]]],
  );
});

Deno.test("a filled tensor beyond 4 GiB is refused before any allocation, on either device", () => {
  // the host array came first: a RangeError "Array buffer allocation failed", naming nothing
  // (on webgpu too: its values are made on the host first)
  const refused =
    "a tensor must fit 4 GiB less 64 bytes (the cpu memory; webgpu buffers hold less)";
  assertThrows(
    () => zeros([2 ** 34]),
    Error,
    `zeros: ${refused}, got shape [17179869184] of float32 (68719476736 bytes)`,
  );
  assertThrows(() => arange(1e10), Error, `arange: ${refused}`);
  assertThrows(() => randn([2 ** 33]), Error, `randn: ${refused}`);
  assertThrows(() => full([2 ** 30], 1, { dtype: "float64" }), Error, "(8589934592 bytes)");
  assertThrows(() => zeros([1e10], { device: "webgpu" }), Error, `zeros: ${refused}`);
  // exactly 4 GiB too (the memory holds 64 bytes less): its 4 GiB host array was filled first,
  // seconds of work, before the allocator's RangeError said "together" with nothing else live
  assertThrows(() => zeros([2 ** 30]), Error, "(4294967296 bytes)");
  assertThrows(() => randn([2 ** 30]), Error, `randn: ${refused}`);
  assertThrows(() => arange(0, 1, 1e-300, { device: "webgpu" }), Error, `arange: ${refused}`);
  assertEquals(Array.from(zeros(2).dataSync()), [0, 0], "still usable");
});

Deno.test("squeeze of a longer axis is a handle of its own; an array with holes is an Error", async () => {
  // squeeze(dim) on an axis longer than 1 returned the input object: disposing the result
  // disposed the input
  const x = tensor([[1, 2, 3]]);
  const y = x.squeeze(1);
  assert(y !== x);
  y.dispose();
  assertEquals(Array.from(await x.data()), [1, 2, 3]);
  // holes were skipped by map() and read as undefined deep inside: a TypeError
  for (const data of [[1, , 3], new Array(3), [[1, 2], [3, ,]]]) {
    assertThrows(
      () => tensor(data as never),
      Error,
      "tensor: data must be a number, a (nested) array",
    );
  }
});

Deno.test("a shape axis past 2^53 - 1 and a float64 cast on webgpu are refused by the call", () => {
  // an axis of 1e300 beside a 0 was refused by the internal op node ("buffer: ... would have 0
  // elements, beyond 2^53 - 1")
  assertThrows(
    () => zeros([1e300, 0]),
    Error,
    "zeros: shape must be an array of non-negative integers, each at most 2^53 - 1, got [1e+300, 0]",
  );
  assertThrows(() => tensor([], { shape: [0, 2 ** 60] }), Error, "tensor: shape must be");
  if (webgpuAvailable) {
    // accepted, then failed at the first read
    const x = ones([2], { device: "webgpu" });
    assertThrows(() => x.cast("float64"), Error, 'cast: dtype "float64" needs the "cpu" device');
    x.dispose();
  }
});

Deno.test("Tensor: device cannot be reassigned, and new Tensor() is an Error naming the way", async () => {
  // device was a plain field (readonly for TypeScript only): x.device = "webgpu" broke every
  // later op on x inside; new Tensor() from JavaScript failed with a TypeError inside
  const x = tensor([1, 2]);
  assertThrows(() => (x as { device: string; }).device = "webgpu", TypeError);
  assertEquals(x.device, "cpu");
  assertEquals(await x.add(1).toArray(), [2, 3]);
  assertThrows(
    () => new (Tensor as unknown as new () => Tensor)(),
    Error,
    "Tensor: tensors are made by tensor(), zeros(), randn() or another creation function, got new Tensor()",
  );
});

Deno.test("manualSeed: nearby seeds give unrelated streams", async () => {
  // the state was the seed, and each draw adds one constant: seed s + 227 was seed s shifted
  // by 732,539 draws (305,096 consecutive pairs of a million draws shared with seed 0), and
  // the default stream was seed 0's shifted by one draw
  const draws = async (seed: number) => {
    manualSeed(seed);
    return await rand([1 << 20]).data();
  };
  const base = await draws(0);
  const first = new Map<number, number>();
  base.forEach((v, i) => first.has(v) || first.set(v, i));
  for (const seed of [227, 5965, 1]) {
    const other = await draws(seed);
    let shared = 0; // consecutive pairs of `other` found consecutive in `base`: a shifted stream
    for (let i = 0; i + 1 < other.length; i++) {
      const at = first.get(other[i]);
      if (at !== undefined && base[at + 1] === other[i + 1]) shared++;
    }
    assert(shared < 100, `seed ${seed} shares ${shared} consecutive pairs with seed 0`);
  }
});

Deno.test("privateUniforms: manualSeed's stream, without touching the global one", async () => {
  manualSeed(11);
  const want = Array.from(await rand([5], { dtype: "float64" }).data());
  manualSeed(3);
  const next = privateUniforms(11);
  assertEquals(Array.from({ length: 5 }, next), want);
  const after = Array.from(await rand([2], { dtype: "float64" }).data());
  manualSeed(3);
  assertEquals(Array.from(await rand([2], { dtype: "float64" }).data()), after);
});

Deno.test("Tensor: an imitation of a tensor is refused by name, never read", async () => {
  // a Proxy of a tensor and an object made from Tensor.prototype pass `instanceof Tensor` and
  // have none of its private state: every use was a TypeError naming a private field
  const imitations = [new Proxy(tensor([1, 2]), {}), Object.create(Tensor.prototype)];
  const imitation = "an imitation of a Tensor (a Proxy or a copy of one)";
  for (const [k, fake] of imitations.entries()) {
    const calls: [() => unknown, string][] = [
      [() => tensor([1, 2]).add(fake), `add: other must be a Tensor or a number, got ${imitation}`],
      [() => fake.mul(2), `mul: the tensor must be one the library made, got ${imitation}`],
      [() => fake.exp(), `exp: the tensor must be one the library made, got ${imitation}`],
      [
        () => tensor([1, 2]).assign(fake),
        `assign: value must be a Tensor or a number, got ${imitation}`,
      ],
      [() => keep(fake), `keep: t must be a Tensor, got ${imitation}`],
      [
        () => new optim.SGD([fake], { lr: 0.1 }),
        `SGD: parameter 0 must be a Tensor, got ${imitation}`,
      ],
      [
        () => grad((t: Tensor) => t.sum())(fake),
        `grad: input 0 must be a Tensor, got ${imitation}`,
      ],
    ];
    for (const [call, message] of calls) assertThrows(call, Error, message);
    // printing one says what it is (it threw, and so did console.log of anything holding one)
    assertEquals(String(fake), imitation);
    // (Deno.inspect shows a Proxy's target: a real tensor)
    const shown = k === 0 ? "Tensor(float32[2], cpu, realized)" : imitation;
    assertStringIncludes(Deno.inspect({ weights: fake }), shown);
    await assertRejects(
      () => jit((t) => t.exp())(fake),
      Error,
      `jit: argument 0 must be a Tensor, got ${imitation}`,
    );
  }
  // every member, on a Proxy of a tensor: a library Error or a result, never a TypeError from a
  // private field (shape, dispose, zeroGrad, item... threw one)
  const proxy = new Proxy(tensor([1, 2], { requiresGrad: true }), {});
  const prototype = Tensor.prototype as unknown as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(prototype)) {
    if (name === "constructor") continue;
    const { get, value } = Object.getOwnPropertyDescriptor(prototype, name)!;
    try {
      const result = get
        ? get.call(proxy)
        : (value as (...a: unknown[]) => unknown).call(proxy, 1, 1);
      if (result instanceof Promise) await result;
    } catch (e) {
      assert(e instanceof Error && e.constructor === Error, `${name}: ${e}`);
    }
  }
  assertEquals(Array.from(await tensor([1, 2]).add(1).data()), [2, 3], "still usable");
  // the asynchronous reads reject, never throw, for a receiver that is no tensor (item() and
  // toArray() threw at the call once they checked jit traces synchronously)
  for (const read of [() => proxy.item(), () => proxy.toArray(), () => proxy.data()]) {
    let promise: Promise<unknown> | undefined;
    try {
      promise = read();
    } catch (e) {
      throw new Error(`threw instead of rejecting: ${e}`);
    }
    await assertRejects(() => promise!, Error, "the tensor must be one the library made");
  }
});

Deno.test("tensor(): a typed array over memory gone is refused by name, leaving no storage", () => {
  // a detached buffer, or a fixed-length view past its shrunk resizable buffer (length 0 then):
  // the cpu's copy threw a bare TypeError and kept the storage it had allocated; webgpu made
  // an empty tensor
  const detached = () => {
    const buffer = new ArrayBuffer(16);
    const view = new Float32Array(buffer);
    structuredClone(buffer, { transfer: [buffer] });
    return view;
  };
  const pastShrunk = () => {
    const buffer = new ArrayBuffer(16, { maxByteLength: 32 });
    const view = new Float32Array(buffer, 0, 4);
    buffer.resize(8);
    return view;
  };
  for (const device of testDevices) {
    for (const make of [detached, pastShrunk]) {
      const before = memory()[device].liveBuffers;
      assertThrows(
        () => tensor(make(), { device }),
        Error,
        "tensor: a typed array whose memory is there (not detached, nor a view past its shrunk " +
          "buffer), got a Float32Array over memory gone",
      );
      assertEquals(memory()[device].liveBuffers, before, `${device}: nothing left behind`);
    }
    // a length-tracking view of a shrunk buffer is still its memory
    const buffer = new ArrayBuffer(16, { maxByteLength: 32 });
    const view = new Float32Array(buffer);
    view.set([1, 2, 3, 4]);
    buffer.resize(8);
    assertEquals(Array.from(tensor(view, { device: "cpu" }).dataSync()), [1, 2]);
  }
});

Deno.test("tensor(): a typed array's length and kind are read by the built-in accessors", async () => {
  // a subclass whose length said 8 over 4 values made an [8] tensor whose last values were a
  // disposed tensor's storage; one saying 2 threw a bare RangeError on cpu, gave [0, 0] on webgpu
  class Long extends Float32Array {
    override get length() {
      return 8;
    }
  }
  class Short extends Float32Array {
    override get length() {
      return 2;
    }
  }
  const ownLength = new Float32Array([1, 2, 3, 4]);
  Object.defineProperty(ownLength, "length", { value: 8 });
  for (const device of testDevices) {
    const stale = full([8], 777, { device }).add(1);
    await stale.data();
    stale.dispose();
    for (const data of [new Long([1, 2, 3, 4]), new Short([1, 2, 3, 4]), ownLength]) {
      const t = tensor(data, { device });
      assertEquals(t.shape, [4], `${device}: ${data.constructor.name}`);
      assertEquals(Array.from(await t.data()), [1, 2, 3, 4], `${device}: ${data.constructor.name}`);
      t.dispose();
    }
    // a DataView dressed as a Float32Array is no typed array
    const dressed = Object.setPrototypeOf(new DataView(new ArrayBuffer(8)), Float32Array.prototype);
    assertThrows(
      () => tensor(dressed, { device }),
      Error,
      "tensor: a typed array must be Float32Array, Float64Array or Int32Array",
    );
  }
});

Deno.test("tensor(): shape getters run before the data is checked", async () => {
  // a getter in the shape that transferred the data's buffer ran after the data's check: a
  // bare TypeError on cpu, an empty tensor on webgpu
  for (const device of testDevices) {
    const view = new Float32Array([1, 2, 3, 4]);
    const shape = [2, 0];
    Object.defineProperty(shape, 1, {
      get: () => (view.buffer.transfer(), 2),
    });
    const before = memory()[device].liveBuffers;
    assertThrows(
      () => tensor(view, { shape, device }),
      Error,
      "tensor: a typed array whose memory is there",
    );
    assertEquals(memory()[device].liveBuffers, before, `${device}: nothing left behind`);
    assertEquals(Array.from(await tensor([1, 2]).add(1).data()), [2, 3], "still usable");
  }
});

Deno.test("tensor(): data in shared memory is checked and stored as one snapshot", async () => {
  // another thread writing 3e9 between the int32 check and the copy stored a wrapped value;
  // a worker flips the values as fast as it can while tensors are made (without the snapshot
  // the wrapped value came within a few thousand tensors)
  const values = new Float32Array(new SharedArrayBuffer(16)).fill(1);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const source = `self.onmessage = (e) => {
    const [values, stop] = e.data;
    self.postMessage("flipping");
    while (Atomics.load(stop, 0) === 0) { values.fill(1); values.fill(3e9); }
  };`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    await new Promise((resolve) => {
      worker.onmessage = resolve;
      worker.postMessage([values, stop]);
    });
    let made = 0;
    for (let i = 0; i < 20_000; i++) {
      let t: Tensor;
      try {
        t = tensor(values, { dtype: "int32" });
      } catch (e) {
        assertStringIncludes((e as Error).message, "tensor: data must be within int32");
        continue;
      }
      made++;
      assertEquals(Array.from(t.dataSync()), [1, 1, 1, 1], `tensor ${i}`);
      t.dispose();
    }
    assert(made > 0, "some tensors were made");
  } finally {
    Atomics.store(stop, 0, 1);
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});

Deno.test("tensor(): data past 4 GiB is refused by name, as zeros() refuses it", () => {
  // 2 GiB of float32 as float64 is 4 GiB + 128 bytes: the allocator's RangeError named nothing
  // (the host array is never touched: no memory is used for it)
  assertThrows(
    () => tensor(new Float32Array(2 ** 29 + 16), { dtype: "float64" }),
    Error,
    "tensor: a tensor must fit 4 GiB less 64 bytes (the cpu memory; webgpu buffers hold less), " +
      "got shape [536870928] of float64 (4294967424 bytes)",
  );
});

Deno.test("shapes: an axis of -0 is 0, whoever makes it", () => {
  const shapes = [
    zeros(-0).shape,
    zeros([2, -0]).shape,
    full([-0], 1).shape,
    tensor([], { shape: [2, -0] }).shape,
    zeros([1, 3]).expand([-0, 3]).shape,
  ];
  for (const shape of shapes) assert(!shape.some((d) => Object.is(d, -0)), `[${shape}]`);
  assertEquals(shapes[4], [0, 3]);
});

Deno.test("arange: every value below end, counted in the dtype's rounding; a span past float64 named", async () => {
  // (end - start) / step rounded up past a whole number: arange(1, 1.3, 0.1) counted 4 values,
  // the last 1.3 itself; 0 to 1 by 0.99999999 ended at 1 once rounded to float32
  assertEquals(Array.from(await arange(1, 1.3, 0.1, { dtype: "float64" }).data()), [1, 1.1, 1.2]);
  assertEquals(Array.from(await arange(1, 0.7, -0.1, { dtype: "float64" }).data()), [1, 0.9, 0.8]);
  assertEquals(Array.from(await arange(0, 1, 0.99999999).data()), [0]);
  assertEquals(Array.from(await arange(0, 0.3, 0.1, { dtype: "float64" }).data()), [0, 0.1, 0.2]);
  assertEquals(Array.from(await arange(5).data()), [0, 1, 2, 3, 4]);
  // int32 truncates: -2.5 to 0 by 0.5 ended at 0 itself
  assertEquals(Array.from(await arange(-2.5, 0, 0.5, { dtype: "int32" }).data()), [-2, -2, -1, -1]);
  assertEquals(Array.from(await arange(2.5, 0, -0.5, { dtype: "int32" }).data()), [2, 2, 1, 1]);
  // every value rounds to end in float32: none, found in a few steps (one value at a time
  // walked 2^32 of them)
  assertEquals(arange(1 - 1e-9, 1, 1e-18).shape, [0]);
  assertEquals(arange(1 - 1e-9, 1, 2.4e-19).shape, [0]);
  // a count past any tensor is refused for its size, not said to be of infinite values
  assertThrows(() => arange(0, 1, 5e-324), Error, "arange: a tensor must fit 4 GiB");
  // end - start past float64 was "a tensor must fit 4 GiB..., got shape [Infinity]"
  assertThrows(
    () => arange(-1.5e308, 1.5e308, 1e308, { dtype: "float64" }),
    Error,
    "arange: values that are finite numbers, got 3 values from -1.5e+308 by 1e+308",
  );
});

Deno.test("tensor(): readonly nested arrays are accepted (the input is never changed)", async () => {
  // a type error before (NestedArray is mutable), though tensor() never writes its input
  const rows: readonly (readonly number[])[] = [[1, 2], [3, 4]];
  assertEquals(await tensor(rows).toArray(), [[1, 2], [3, 4]]);
  assertEquals(await tensor([[5, 6]] as const).toArray(), [[5, 6]]);
});

Deno.test("Tensor members called without their tensor are named Errors (helper-131)", async () => {
  // `queueMicrotask(t.dispose)`, `const { item } = t`: the receiver is undefined, and the brand
  // check (`#node in undefined`) threw a bare TypeError; requiresGrad_ had no check and wrote
  // `requiresGrad` into a plain object
  const proto = Tensor.prototype as unknown as Record<string, (this: unknown) => unknown>;
  for (const member of ["dispose", "zeroGrad", "detach", "requiresGrad_"]) {
    assertThrows(
      () => proto[member].call(undefined),
      Error,
      `${member}: the tensor must be one the library made, got undefined`,
    );
  }
  for (const member of ["item", "toArray", "data"]) {
    await assertRejects(
      async () => await proto[member].call(undefined),
      Error,
      `${member}: the tensor must be one the library made, got undefined`,
    );
  }
  for (const getter of ["shape", "dtype", "device", "grad", "requiresGrad", "isLeaf"]) {
    const get = Object.getOwnPropertyDescriptor(Tensor.prototype, getter)!.get!;
    assertThrows(() => get.call(undefined), Error, `${getter}: the tensor must be one the library`);
  }
  const plain: Record<string, unknown> = {};
  assertThrows(() => proto.requiresGrad_.call(plain), Error, "requiresGrad_: the tensor must be");
  assertEquals(Object.keys(plain), [], "the plain object is left as it was");
  assertEquals(
    String(proto.toString.call(undefined)),
    "an imitation of a Tensor (a Proxy or a copy of one)",
  );
});
