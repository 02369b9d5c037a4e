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
import { cpuBackend } from "../src/runtime/cpu.ts";

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
async function time(runs: number, values: typeof xData, dims: number[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const input = tensor(values, { shape: dims });
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
async function measure(values = xData, dims = shape): Promise<number> {
  await time(5, values, dims);
  return await time(15, values, dims);
}

/** Prints `rows` of [what, ms] with each row's speed-up over the slowest. */
function printRows(rows: [string, number][]): void {
  const slowest = Math.max(...rows.map(([, ms]) => ms));
  for (const [what, ms] of rows) {
    console.log(
      `  ${what.padEnd(32)} ${ms.toFixed(2).padStart(7)} ms  ${(slowest / ms).toFixed(1)}x`,
    );
  }
}

// A Wasm kernel writing fewer than cpuBackend.threadMinElements elements (this input's 140K
// among them) runs on the calling thread alone, so its rows are one-thread rows whatever
// cpu.threads says; threads are timed below on an input large enough to split.
const threads = cpu.threads;
cpu.threads = 1;
const rows: [string, number][] = [];
for (const form of forms) {
  cpu.kernels = form;
  rows.push([`fused, ${form === "js" ? "JavaScript" : "wasm SIMD"}`, await measure()]);
}
cpu.kernels = "auto";
setFusion(false);
const unfusedKernels = kernels(lrn.forward(tensor(xData, { shape }))).length;
rows.push([`unfused (${unfusedKernels} kernels)`, await measure()]);
setFusion(true);
console.log(`\ntiming (median of 15, this run, ${Deno.build.os} ${Deno.build.arch}, 1 thread):`);
printRows(rows);

if (cpu.simd && threads > 1) {
  const bigShape = [8, 96, 55, 55];
  const bigData = randn(bigShape).mul(10).dataSync();
  const elements = bigData.length;
  if (elements < cpuBackend.threadMinElements) throw new Error("the threads input does not split");
  const threadRows: [string, number][] = [];
  for (const count of [1, threads]) {
    cpu.threads = count;
    const label = `fused, wasm SIMD, ${count} thread${count === 1 ? "" : "s"}`;
    threadRows.push([label, await measure(bigData, bigShape)]);
  }
  console.log(
    `\nthreads on (${bigShape.join(", ")}), ${elements} elements (kernels of at least ` +
      `${cpuBackend.threadMinElements} split over the threads):`,
  );
  printRows(threadRows);
}
cpu.threads = threads;
