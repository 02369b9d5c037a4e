// What the garbage-collection backstop costs (src/runtime/backstop.ts): the same loops with it
// on and off, in one run. `yield` times one macrotask round trip alone; the loops drop their
// tensors without dispose() and await data(), as the loops the backstop exists for do (a short
// run off is harmless; a long one would not stay bounded).
// Run: deno bench --allow-env --allow-read bench/backstop_bench.ts

import { nn, tensor } from "../mod.ts";
import { setBackstop, yieldMacrotask } from "../src/runtime/backstop.ts";

const shape = [2, 96, 27, 27];
const n = shape.reduce((a, b) => a * b, 1);
const host = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const upstream = tensor(Float32Array.from({ length: n }, (_, i) => Math.cos(i)), { shape });
const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
const small = new Float32Array(64).fill(1);

async function lrnStep(): Promise<void> {
  const x = tensor(host, { shape, requiresGrad: true });
  const y = lrn.forward(x);
  y.backward(upstream);
  await y.data();
  await x.grad!.data();
}

/** Ten small ops and a read: graph-heavy, little data. */
async function smallOps(): Promise<void> {
  let t = tensor(small);
  for (let i = 0; i < 10; i++) t = t.mul(1.5).add(1);
  await t.data();
}

async function off(fn: () => Promise<void>): Promise<void> {
  setBackstop(false);
  try {
    await fn();
  } finally {
    setBackstop(true);
  }
}

Deno.bench("one macrotask yield (MessageChannel round trip)", yieldMacrotask);
Deno.bench("lrn forward+backward, backstop on", { group: "lrn", baseline: true }, lrnStep);
Deno.bench("lrn forward+backward, backstop off", { group: "lrn" }, () => off(lrnStep));
Deno.bench("10 small ops + data(), backstop on", { group: "small", baseline: true }, smallOps);
Deno.bench("10 small ops + data(), backstop off", { group: "small" }, () => off(smallOps));
