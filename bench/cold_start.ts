// The child process of the "fresh process" first-call rows (first_call_bench.ts): a new Deno
// process imports @lucid/nn, then times its first LocalResponseNorm forward on A (graph, schedule,
// kernel generation, compile, run, read back; on webgpu also acquiring the device), checks it
// against the float64 reference and prints one JSON line.
// Run: deno run --allow-env --allow-read bench/cold_start.ts [cpu|webgpu]

import { caseData, LRN, SHAPES } from "./cases.ts";
import { referenceLrn, relativeError } from "./reference.ts";

const device = Deno.args[0] === "webgpu" ? "webgpu" : "cpu";
const shape = [...SHAPES.A];
const data = caseData(shape);
const importStart = performance.now();
const { nn, tensor } = await import("../mod.ts");
const callStart = performance.now();
const lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
const x = tensor(data.x, { shape, device });
const y = lrn.forward(x);
const values = await y.data();
const end = performance.now();
y.dispose();
x.dispose();
console.log(JSON.stringify({
  importMs: callStart - importStart,
  firstCallMs: end - callStart,
  error: relativeError(values, referenceLrn(data.x, shape, LRN).y),
}));
