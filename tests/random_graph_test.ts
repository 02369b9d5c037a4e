// Seeded random graphs: hundreds of random op chains mixing elementwise ops (with broadcasting
// and with values used twice), reductions and movement ops (permute, reshape, pad, shrink,
// unfoldDim, expand) on small random shapes. Each graph is built twice from the same seed with
// fresh inputs, realized once fused and once unfused (one kernel per op), and both must match
// the float64 reference evaluator. Values stay in safe ranges (log and sqrt of |x| + 1,
// division by |x| + 1) so the tolerance means something.
//
// Graphs also hold realized intermediates (a value computed by an earlier realization, then
// used again) and constants, some of them realized, like the zero gradients of grad(): the
// plan cache must key everything lowering bakes in (a constant's value) and nothing else.
//
// The test runs once per device of the device table (`testDevices`: cpu always, webgpu when
// there is an adapter). Every graph is float32, so every graph runs on both. On webgpu the same
// seed builds the same graph on webgpu tensors from the same data, in the same process as its
// cpu copy (equal constants are one hash-consed node on both devices); the reference is
// evaluated on the cpu copy (the reference evaluator reads cpu buffers only).

import { type DeviceName, setFusion, type Tensor, tensor } from "../mod.ts";
import * as ir from "../src/ir/node.ts";
import { assertClose, onBackend, reference, rng, testBackends } from "./helpers.ts";
import { assertEquals } from "./assert.ts";
import { createTensor } from "../src/tensor.ts";

/** Graphs per device (about 1 s on cpu, 10 s on webgpu through llvmpipe). */
const CASES = 300;
const MAX_NUMEL = 1500;

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Builds one random graph on `device`; the same seed always builds the same graph on fresh
 * inputs holding the same data, whatever the device.
 */
async function build(
  seed: number,
  device: DeviceName = "cpu",
): Promise<{ out: Tensor; ops: string[]; }> {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1)); // inclusive
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const leaf = (shape: number[]) =>
    tensor(Array.from({ length: numel(shape) }, () => r() * 4 - 2), { shape, device });
  // a constant node (as grad() returns for an input a function ignores), realized or not
  const constant = async (shape: number[], value: number, realized: boolean) => {
    const c = createTensor(ir.constant(value, shape, "float32"), device, false, true);
    if (realized) await c.realize();
    return c;
  };
  const ops: string[] = [];

  const rank = int(1, 3);
  let x = leaf(Array.from({ length: rank }, () => (r() < 0.15 ? 1 : int(2, 7))));

  /** A shape that broadcasts against `shape`: some axes 1, maybe fewer leading axes. */
  const broadcastable = (shape: number[]) => {
    const s = shape.map((d) => (r() < 0.4 ? 1 : d));
    return r() < 0.3 ? s.slice(int(0, s.length)) : s;
  };

  const unary: [string, (t: Tensor) => Tensor][] = [
    ["neg", (t) => t.neg()],
    ["exp(tanh)", (t) => t.tanh().exp()],
    ["log(|x|+1)", (t) => t.abs().add(1).log()],
    ["sqrt|x|", (t) => t.abs().sqrt()],
    ["rsqrt(|x|+1)", (t) => t.abs().add(1).rsqrt()],
    ["recip(|x|+1)", (t) => t.abs().affine(1, 1).recip()],
    ["square", (t) => t.square().mul(0.5)],
    ["relu", (t) => t.relu()],
    ["sigmoid", (t) => t.sigmoid()],
    ["tanh", (t) => t.tanh()],
    ["sign", (t) => t.sign().mul(t)],
    ["affine", (t) => t.affine(pick([0.5, -1.5, 2]), pick([0, 1, -0.25]))],
    ["pow", (t) => t.abs().add(0.5).pow(pick([-0.75, 0.5, 2, 1.3]))],
  ];
  const binary: [string, (a: Tensor, b: Tensor) => Tensor][] = [
    ["add", (a, b) => a.add(b)],
    ["sub", (a, b) => a.sub(b)],
    ["mul", (a, b) => a.mul(b)],
    ["div", (a, b) => a.div(b.abs().add(1))],
    ["maximum", (a, b) => a.maximum(b)],
    ["minimum", (a, b) => a.minimum(b)],
    ["lt", (a, b) => a.lt(b).add(a)],
  ];

  const steps = int(3, 8);
  for (let step = 0; step < steps; step++) {
    const shape = x.shape;
    const kind = r();
    if (kind < 0.25) {
      const [name, f] = pick(unary);
      ops.push(name);
      x = f(x);
    } else if (kind < 0.42) {
      const [name, f] = pick(binary);
      const otherShape = broadcastable(shape);
      // the other operand: a fresh leaf, the value itself through another op (a diamond), or a
      // constant (realized half the time)
      const kindOfOther = r();
      const value = pick([0, 1, -1.5, 3]);
      const realized = r() < 0.5;
      const other = kindOfOther < 0.4
        ? leaf(otherShape)
        : kindOfOther < 0.8
        ? x.tanh()
        : await constant(otherShape, value, realized);
      const swap = r() < 0.5;
      const what = kindOfOther < 0.8 ? "" : ` const ${value}${realized ? " realized" : ""}`;
      ops.push(`${name}[${other.shape}]${what}${swap ? " swapped" : ""}`);
      x = swap ? f(other.expand(...broadcastShape(other.shape, shape)), x) : f(x, other);
    } else if (kind < 0.55 && x.ndim > 0) {
      const axes = shape.map((_, i) => i).filter(() => r() < 0.5);
      const axis = axes.length === 0 ? int(-x.ndim, x.ndim - 1) : axes;
      const empty = [axis].flat().some((a) => shape[(a + x.ndim) % x.ndim] === 0);
      let op = pick(["sum", "max", "mean"] as const);
      if (op === "max" && empty) op = "sum"; // a max over nothing is an error
      const keepdim = r() < 0.5;
      ops.push(`${op}(${JSON.stringify(axis)}, ${keepdim})`);
      x = x[op](axis, keepdim);
    } else if (kind < 0.62 && x.ndim > 1) {
      // Fisher-Yates: sort() with a random comparator is not deterministic in V8 (the same
      // comparator results gave other orders once the code was optimized), so two builds of
      // one seed drifted apart (1 full test run in 30)
      const perm = shape.map((_, i) => i);
      for (let i = perm.length - 1; i > 0; i--) {
        const j = int(0, i);
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      ops.push(`permute(${perm})`);
      x = x.permute(perm);
    } else if (kind < 0.7 && x.ndim > 0) {
      // reshape: merge two adjacent axes, split one by a divisor, flatten, or add a 1
      const choice = int(0, 3);
      let target: number[];
      if (choice === 0 && x.ndim > 1) {
        const i = int(0, x.ndim - 2);
        target = [...shape.slice(0, i), shape[i] * shape[i + 1], ...shape.slice(i + 2)];
      } else if (choice === 1) {
        const i = int(0, x.ndim - 1);
        const divisors = [1, 2, 3, 4, 5].filter((d) => shape[i] % d === 0);
        const d = pick(divisors);
        target = [...shape.slice(0, i), d, shape[i] / d, ...shape.slice(i + 1)];
      } else if (choice === 2) target = [-1];
      else target = [...shape, 1];
      ops.push(`reshape(${target})`);
      x = x.reshape(target);
    } else if (kind < 0.8 && x.ndim > 0) {
      const pads = shape.map((d) => {
        const before = int(-1, 2);
        const after = int(-1, 2);
        return (Math.max(-before, 0) + Math.max(-after, 0) > d
          ? [0, after > 0 ? after : 0]
          : [before, after]) as [number, number];
      });
      const value = pick([0, 0, 1.5, -2]);
      ops.push(`pad(${JSON.stringify(pads)}, ${value})`);
      x = x.pad(pads, value);
    } else if (kind < 0.86 && x.ndim > 0) {
      // mostly non-empty; now and then an empty axis
      const ranges = shape.map((d) => {
        if (d === 0 || r() < 0.05) return [0, 0] as [number, number];
        const s = int(0, Math.floor(d / 3));
        return [s, int(Math.max(s + 1, Math.ceil((2 * d) / 3)), d)] as [number, number];
      });
      ops.push(`shrink(${JSON.stringify(ranges)})`);
      x = x.shrink(ranges);
    } else if (kind < 0.95 && x.ndim > 0 && x.ndim < 4) {
      const dim = int(0, x.ndim - 1);
      if (shape[dim] === 0) continue;
      const size = int(1, Math.min(shape[dim], 4));
      const step = int(1, 3);
      ops.push(`unfoldDim(${dim}, ${size}, ${step})`);
      x = x.unfoldDim(dim, size, step);
    } else if (x.ndim < 4) {
      // an explicit expand of a new or size-1 axis
      const i = int(0, x.ndim);
      const n = int(2, 3);
      ops.push(`unsqueeze(${i}).expand(${n})`);
      const u = x.unsqueeze(i);
      x = u.expand(u.shape.map((d, j) => (j === i ? n : d)));
    }
    if (x.numel > MAX_NUMEL) {
      ops.push("sum(0)");
      x = x.sum(0);
    }
    if (r() < 0.1) {
      // a realized intermediate: later kernels load it instead of computing it
      ops.push("realize");
      await x.realize();
    }
    if (x.ndim > 4) {
      ops.push("flatten");
      x = x.flatten();
    }
  }
  return { out: x, ops };
}

/** The broadcast of two shapes (valid by construction here). */
function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    return da === 1 ? db : da;
  });
}

/**
 * Tolerance scaled to the result: float32 storage of intermediates, then cancellation. The
 * same bound holds on webgpu, whose WGSL exp/log/tanh/pow are a few ulp looser than the cpu's
 * float64 Math functions rounded to float32: still far inside rtol 1e-4.
 */
function check(got: ArrayLike<number>, want: Float64Array, msg: string): void {
  let scale = 0;
  for (const v of want) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  assertClose(got, want, { rtol: 1e-4, atol: 1e-5 * scale + 1e-6, msg });
}

for (const backend of testBackends) {
  const device = backend.device;
  Deno.test(`${CASES} random graphs on ${backend.name}: fused == unfused == reference`, () =>
    onBackend(backend, async () => {
      let elements = 0;
      for (let seed = 1; seed <= CASES; seed++) {
        const fused = await build(seed, device);
        const unfused = await build(seed, device);
        // the reference reads cpu buffers: on webgpu it runs on a cpu copy of the same graph
        const onCpu = device === "cpu" ? fused : await build(seed, "cpu");
        assertEquals(fused.ops, unfused.ops);
        assertEquals(fused.ops, onCpu.ops);
        assertEquals(fused.out.shape, unfused.out.shape);
        assertEquals(fused.out.device, device);
        const msg = `${device}, seed ${seed}: ${fused.ops.join(" -> ")} [${fused.out.shape}]`;
        const want = reference(onCpu.out);
        let a: ArrayLike<number>;
        let b: ArrayLike<number>;
        try {
          a = await fused.out.data();
          setFusion(false);
          b = await unfused.out.data();
        } catch (e) {
          throw new Error(`${msg}: ${e instanceof Error ? e.stack : e}`);
        } finally {
          setFusion(true);
        }
        check(a, want, `fused, ${msg}`);
        check(b, want, `unfused, ${msg}`);
        elements += a.length;
      }
      // the graphs were not all trivially empty
      if (elements < CASES * 10) throw new Error(`only ${elements} elements checked`);
    }));
}
