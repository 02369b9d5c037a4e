// A value built step by step and read only through a result: `w = w.mul(c)` with its sum read at
// every step, and a parameter updated functionally, `w = w.sub(dw.mul(lr))`, with only the loss
// read. Before rule CHECKPOINT (src/runtime/realize.ts) every read computed every step from the
// first, through a new plan each time. Not a tracked suite; the source of README's figures
// ("Deep values read only through results").
//
//   deno run -A bench/probes/deep_chain.ts [steps] [mul|grad] [cpu|webgpu]
//
// Prints the time of each fifth of the steps, the total, and the JavaScript heap at the end.

import { grad, randn, type Tensor } from "../../mod.ts";
import type { DeviceName } from "../../src/runtime/device.ts";
import { planCacheStats } from "../../src/runtime/realize.ts";

const steps = Number(Deno.args[0] ?? 2000);
const mode = Deno.args[1] ?? "mul";
const device = (Deno.args[2] ?? "cpu") as DeviceName;
if (!Number.isInteger(steps) || steps < 5 || !["mul", "grad"].includes(mode)) {
  throw new Error(`usage: deep_chain.ts [steps >= 5] [mul|grad] [cpu|webgpu], got ${Deno.args}`);
}

let w = randn([1000], { device });
const target = randn([1000], { device });
const loss = (p: Tensor) => p.sub(target).square().mean();
const start = performance.now();
let last = start;
for (let step = 1; step <= steps; step++) {
  if (mode === "mul") {
    w = w.mul(0.999);
    await w.sum().item();
  } else {
    const [dw] = grad(loss)(w);
    await loss(w).item();
    w = w.sub(dw.mul(0.1));
  }
  if (step % Math.floor(steps / 5) === 0) {
    const now = performance.now();
    console.log(`steps to ${step}: ${(now - last).toFixed(0)} ms`);
    last = now;
  }
}
const heap = Deno.memoryUsage().heapUsed / 1e6;
console.log(
  `${steps} steps (${mode}, ${device}): ${(performance.now() - start).toFixed(0)} ms; heap ${
    heap.toFixed(0)
  } MB; plans built ${planCacheStats().misses}`,
);
