// The showcase: AlexNet's LocalResponseNorm (size 5, alpha 1e-4, beta 0.75, k 2) on a
// (2, 96, 27, 27) input. Prints the module, the IR it lowers to, the one generated kernel,
// checks the result against the float64 reference evaluator, and times the fused kernel
// against the unfused path (fusion off: one kernel per op), both measured in this run.
//
// Run: deno task demo

import { graph, kernels, manualSeed, nn, randn, setFusion, tensor } from "../mod.ts";
import { evaluateReference } from "../src/ir/reference.ts";

manualSeed(0);
const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
const shape = [2, 96, 27, 27];
const xData = randn(shape).mul(10).dataSync();
const x = tensor(xData, { shape });
const y = lrn.forward(x);

console.log(`module: ${lrn}`);
console.log(`\nIR of lrn.forward(x):\n${graph(y)}`);
const plan = kernels(y);
console.log(`\n${plan.length} generated kernel (${plan[0].target}):\n${plan[0].source}`);

const got = await y.data();
const want = evaluateReference(y.node, () => xData);
let worst = 0;
for (let i = 0; i < want.length; i++) {
  worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + 1e-30));
}
console.log(`largest relative error against the float64 reference: ${worst.toExponential(2)}`);
if (!(worst < 1e-5)) throw new Error("the fused kernel disagrees with the reference evaluator");

/** Median milliseconds of `runs` realizations of LRN on fresh input of the same structure. */
async function time(runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const input = tensor(xData, { shape });
    const start = performance.now();
    const out = lrn.forward(input);
    await out.realize();
    times.push(performance.now() - start);
    out.dispose();
    input.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

await time(3); // warm up: compile and fill the buffer pool
const fused = await time(15);
setFusion(false);
const unfusedKernels = kernels(lrn.forward(tensor(xData, { shape }))).length;
await time(3);
const unfused = await time(15);
setFusion(true);
console.log(`\ntiming (median of 15, this run, ${Deno.build.os} ${Deno.build.arch}):`);
console.log(`  fused:   ${fused.toFixed(2)} ms (1 kernel)`);
console.log(`  unfused: ${unfused.toFixed(2)} ms (${unfusedKernels} kernels)`);
console.log(`  fused is ${(unfused / fused).toFixed(1)}x faster`);
