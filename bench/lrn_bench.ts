// LocalResponseNorm forward on the cpu device: the fused kernel against the unfused path (one
// kernel per op), in one run so the ratio is meaningful. Run: deno task bench

import { manualSeed, nn, randn, setFusion, tensor } from "../mod.ts";

manualSeed(0);
const shape = [2, 96, 27, 27];
const data = randn(shape).dataSync();
const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);

async function forward(): Promise<void> {
  const x = tensor(data, { shape });
  const y = lrn.forward(x);
  await y.realize();
  y.dispose();
  x.dispose();
}

Deno.bench("lrn forward (2,96,27,27) fused", { group: "lrn", baseline: true }, async () => {
  await forward();
});

Deno.bench("lrn forward (2,96,27,27) unfused", { group: "lrn" }, async () => {
  setFusion(false);
  try {
    await forward();
  } finally {
    setFusion(true);
  }
});
