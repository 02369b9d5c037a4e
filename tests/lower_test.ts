// Lowering (codegen/lower.ts) and every other walk of the compiler are iterative: graphs far
// deeper than the JavaScript call stack realize and differentiate, on cpu and (with the
// schedule's MAX_KERNEL_OPS keeping each shader small) on webgpu.

import { cpu, kernels, setFusion, type Tensor, tensor } from "../mod.ts";
import { assert, assertEquals } from "./assert.ts";
import { onBackend, testBackends, webgpuAvailable } from "./helpers.ts";

Deno.test("lower: a 130,000-op chain realizes and differentiates on cpu, in kernels of bounded size", async () => {
  // one fused JavaScript kernel of 130,000 values threw "Maximum call stack size exceeded"
  // when it ran (V8 could not make its frame): MAX_KERNEL_VALUES cuts it
  const x = tensor([0.5, -2], { requiresGrad: true });
  const c = tensor([1, 1]); // a tensor: nothing folds
  let t = x;
  for (let i = 0; i < 65_000; i++) t = t.mul(c).sub(c);
  const ks = kernels(t);
  assert(ks.length >= 130_000 / 16_384, `${ks.length} kernels`);
  assertEquals(Array.from(await t.data()), [0.5 - 65_000, -2 - 65_000]);
  t.mul(tensor([3, -4])).sum().backward();
  assertEquals(Array.from(await x.grad!.data()), [3, -4]);
});

Deno.test("lower: 1000 rounds of transpose and two reshapes index the right elements", async () => {
  let u = tensor([[10, 20, 30], [40, 50, 60]]);
  for (let i = 0; i < 1000; i++) u = u.transpose().reshape(6).reshape(u.shape[1], u.shape[0]);
  // each round maps m to transpose(m) read in row-major order: 1000 rounds are the identity
  // on the values' positions only if the period divides 1000; compute it by hand
  let expected = [10, 20, 30, 40, 50, 60];
  let rows = 2;
  let cols = 3;
  for (let i = 0; i < 1000; i++) {
    const transposed: number[] = [];
    for (let c = 0; c < cols; c++) {
      for (let r = 0; r < rows; r++) transposed.push(expected[r * cols + c]);
    }
    expected = transposed;
    [rows, cols] = [cols, rows];
  }
  assertEquals(u.shape, [rows, cols]);
  assertEquals(Array.from(await u.data()), expected);
});

Deno.test({
  name: "lower: a long chain of views on webgpu is cut for its index arithmetic, values right",
  ignore: !webgpuAvailable,
  fn: async () => {
    // views weighed nothing against MAX_KERNEL_OPS: 1,500 rounds fused into one 429 KB shader
    // that llvmpipe took 24 s to compile
    const rounds = (device: "cpu" | "webgpu") => {
      let x = tensor(Array.from({ length: 24 }, (_, i) => i), { shape: [2, 3, 4], device });
      for (let i = 0; i < 300; i++) x = x.reshape([4, 6]).permute([1, 0]).reshape([2, 3, 4]);
      return x;
    };
    const onGpu = rounds("webgpu");
    assert(kernels(onGpu).length > 1, "cut");
    assertEquals(Array.from(await onGpu.data()), Array.from(await rounds("cpu").data()));
  },
});

Deno.test({
  name: "lower: a 3000-op chain on webgpu becomes kernels of at most MAX_KERNEL_OPS ops",
  ignore: !webgpuAvailable,
  fn: async () => {
    const x = tensor([1, 2, 3], { device: "webgpu", requiresGrad: true });
    let t = x;
    for (let i = 0; i < 3000; i++) t = t.add(1);
    const ks = kernels(t);
    assertEquals(ks.length, 3, ks.map((k) => k.name).join());
    assertEquals(Array.from(await t.data()), [3001, 3002, 3003]);
    t.sum().backward();
    assertEquals(Array.from(await x.grad!.data()), [1, 1, 1]);
  },
});

// Rule EMPTY_VALUE: results that read a value of no elements (through padding, or a reduction
// over an empty axis) on every backend, fused and unfused. The empty value reached through a
// reshape of empty axes used to divide by zero in the index arithmetic (an Error, every backend).
for (const backend of testBackends) {
  Deno.test(`lower: results reading empty values on ${backend.name}`, () =>
    onBackend(backend, async () => {
      const device = backend.device;
      const empty = () => tensor(new Float32Array(0), { shape: [0, 2, 0], device });
      const emptyInt = () => tensor(new Int32Array(0), { shape: [2, 0, 3], device });
      const cases: [string, () => Tensor, number[], number[]][] = [
        ["reshape then pad", () => empty().reshape(0).pad([[1, 1]], 1.5), [2], [1.5, 1.5]],
        ["reshape then sum", () => empty().reshape(0).sum(), [], [0]],
        ["reshape, sum over the empty axis", () => empty().reshape(0, 3).sum(0), [3], [0, 0, 0]],
        [
          "reshape, permute, pad",
          () => empty().reshape(0, 3).permute(1, 0).pad([[0, 0], [1, 0]], 2),
          [3, 1],
          [2, 2, 2],
        ],
        ["exp of a reshape, padded", () => empty().reshape(0).exp().pad([[2, 0]], -1), [2], [
          -1,
          -1,
        ]],
        ["int32: reshape, sum", () => emptyInt().reshape(0, 6).sum(0), [6], [0, 0, 0, 0, 0, 0]],
      ];
      for (const fusion of [true, false]) {
        setFusion(fusion);
        try {
          for (const [name, make, shape, want] of cases) {
            const t = make();
            assertEquals(t.shape, shape, name);
            assertEquals(Array.from(await t.data()), want, `${name}, fusion ${fusion}`);
          }
        } finally {
          setFusion(true);
        }
      }
      // and the gradient of such a result: an empty gradient of the empty leaf's shape
      const x = tensor(new Float32Array(0), { shape: [0, 2, 0], device, requiresGrad: true });
      x.reshape(0).pad([[1, 1]], 1.5).mul(tensor([3, 4], { device })).sum().backward();
      assertEquals(x.grad!.shape, [0, 2, 0]);
      assertEquals(Array.from(await x.grad!.data()), []);
    }));
}

Deno.test("lower: views whose index constants would pass 2^53 in lanes never read still compute", async () => {
  // two nested unfolds of step 2^27 multiplied to an index constant of 2^54: an Error
  const before = cpu.kernels;
  try {
    for (const kind of ["wasm", "js"] as const) {
      cpu.kernels = kind;
      const x = tensor([1, 2, 3, 4, 5]);
      const view = x.unfoldDim(0, 5, 2 ** 27).unfoldDim(0, 1, 2 ** 27);
      assertEquals(view.shape, [1, 5, 1]);
      assertEquals(Array.from(await view.data()), [1, 2, 3, 4, 5], kind);
      assertEquals(await view.sum().item(), 15, kind);
      // a shrink of padded rows alone never reads the source, whose index arithmetic, folded
      // in such a lane, passed 2^53 (an Error naming a tensor "too large to index")
      const padded = tensor([1, 2, 3]).pad([[0, 2]]).unfoldDim(0, 3, 2 ** 30)
        .pad([[1073741827, 2147483659], [0, 1]], -1.5)
        .shrink([[2897761549, 2897761550], [0, 4]]);
      assertEquals(Array.from(await padded.data()), [-1.5, -1.5, -1.5, -1.5], kind);
      const windows = tensor([7]).expand(2 ** 30 + 1).unfoldDim(0, 1, 2 ** 30); // [2, 1]
      const far = windows.pad([[2 ** 40, 0], [0, 0]], -1.5);
      assertEquals(Array.from(await far.shrink([[5, 6], [0, 1]]).data()), [-1.5], kind);
      assertEquals(Array.from(await far.shrink([[2 ** 40 + 1, 2 ** 40 + 2], [0, 1]]).data()), [7]);
    }
  } finally {
    cpu.kernels = before;
  }
});
