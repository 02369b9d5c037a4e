// The showcase: AlexNet's LocalResponseNorm (size 5, alpha 1e-4, beta 0.75, k 2) on a
// (2, 96, 27, 27) input. Prints the module, the IR it lowers to, the one generated kernel in
// both cpu forms (JavaScript, and WebAssembly SIMD where the runtime has it), checks each
// against the float64 reference evaluator, and times them, and the unfused path (fusion off:
// one kernel per op), all measured in this run.
//
// Run: deno task demo

import { cpu, graph, kernels, manualSeed, nn, randn, setFusion, tensor } from "../mod.ts";
import { evaluateReference } from "../src/ir/reference.ts";
import { nodeOf } from "../src/tensor.ts";

manualSeed(0);
const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
const shape = [2, 96, 27, 27];
const xData = randn(shape).mul(10).dataSync();
const x = tensor(xData, { shape });
const y = lrn.forward(x);

console.log(`module: ${lrn}`);
console.log(`\nIR of lrn.forward(x):\n${graph(y)}`);
const want = evaluateReference(nodeOf(y), () => xData);
const forms = cpu.simd ? (["js", "wasm"] as const) : (["js"] as const);

for (const form of forms) {
  cpu.kernels = form;
  const out = lrn.forward(tensor(xData, { shape }));
  const plan = kernels(out);
  console.log(`\n${plan.length} generated kernel (${plan[0].target}):\n${plan[0].source}`);
  const got = await out.data();
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + 1e-30));
  }
  console.log(
    `${form}: largest relative error against the float64 reference: ${worst.toExponential(2)}`,
  );
  if (!(worst < 1e-5)) throw new Error(`the ${form} kernel disagrees with the reference evaluator`);
}

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

/** `time` after a warm-up (compiling, starting worker threads, filling the memory). */
async function measure(): Promise<number> {
  await time(5);
  return await time(15);
}

const rows: [string, number][] = [];
const threads = cpu.threads;
for (const form of forms) {
  cpu.kernels = form;
  if (form === "wasm" && threads > 1) {
    cpu.threads = 1;
    rows.push(["fused, wasm SIMD, 1 thread", await measure()]);
    cpu.threads = threads;
    rows.push([`fused, wasm SIMD, ${threads} threads`, await measure()]);
  } else rows.push([`fused, ${form === "js" ? "JavaScript" : "wasm SIMD"}`, await measure()]);
}
cpu.kernels = "auto";
setFusion(false);
const unfusedKernels = kernels(lrn.forward(tensor(xData, { shape }))).length;
rows.push([`unfused (${unfusedKernels} kernels)`, await measure()]);
setFusion(true);
console.log(`\ntiming (median of 15, this run, ${Deno.build.os} ${Deno.build.arch}):`);
const slowest = Math.max(...rows.map(([, ms]) => ms));
for (const [what, ms] of rows) {
  console.log(
    `  ${what.padEnd(32)} ${ms.toFixed(2).padStart(7)} ms  ${(slowest / ms).toFixed(1)}x`,
  );
}
