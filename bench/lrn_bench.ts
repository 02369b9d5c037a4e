// LocalResponseNorm on the cpu device: the fused kernels against the unfused path (one kernel
// per op), forward alone and forward + backward, in one run so the ratios are meaningful.
// Run: deno task bench

import { manualSeed, nn, randn, setFusion, tensor } from "../mod.ts";
import { eagerLrnStep } from "./lrn_step.ts";

manualSeed(0);
const shape = [2, 96, 27, 27];
const data = randn(shape).dataSync();
const gradData = randn(shape).dataSync();
const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);

async function forward(): Promise<void> {
  using x = tensor(data, { shape });
  using y = lrn.forward(x);
  await y.realize();
}

function forwardBackward(): Promise<void> {
  return eagerLrnStep(lrn, data, gradData, shape);
}

async function unfused(fn: () => Promise<void>): Promise<void> {
  setFusion(false);
  try {
    await fn();
  } finally {
    setFusion(true);
  }
}

Deno.bench("lrn forward (2,96,27,27) fused", { group: "forward", baseline: true }, forward);
Deno.bench("lrn forward (2,96,27,27) unfused", { group: "forward" }, () => unfused(forward));
Deno.bench(
  "lrn forward+backward (2,96,27,27) fused",
  { group: "forward+backward", baseline: true },
  forwardBackward,
);
Deno.bench(
  "lrn forward+backward (2,96,27,27) unfused",
  { group: "forward+backward" },
  () => unfused(forwardBackward),
);
