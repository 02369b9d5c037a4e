// What jit and export save: a LocalResponseNorm training step (forward + backward) run eagerly
// (build the graph, look the plan up by structural key, run), replayed by a jit-compiled
// function (bind the inputs, run the kept plan), and run by the exported js module (no
// library at all), on a small input where per-call overhead dominates and on AlexNet's
// (2, 96, 27, 27) where the kernels do. Every timed call disposes what it creates.
// Run: deno task bench

import { exportCompiled, jit, manualSeed, nn, randn, type Tensor, tensor } from "../mod.ts";
import { eagerLrnStep } from "./lrn_step.ts";

manualSeed(0);
const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
const step = jit((x, dy) => {
  const y = lrn.forward(x);
  y.backward(dy);
  return { y, dx: x.grad! };
}, { inputNames: ["x", "dy"] });

for (const shape of [[1, 8, 4, 4], [2, 96, 27, 27]]) {
  const data = randn(shape).dataSync();
  const gradData = randn(shape).dataSync();
  const group = `lrn forward+backward (${shape})`;
  const { files } = await exportCompiled(step, [{ shape, requiresGrad: true }, { shape }], {
    target: "js",
  });
  const exported = await import(`data:text/javascript;base64,${btoa(files[0].contents)}`);

  Deno.bench(
    `${group} eager`,
    { group, baseline: true },
    () => eagerLrnStep(lrn, data, gradData, shape),
  );
  Deno.bench(`${group} jit`, { group }, async () => {
    using x = tensor(data, { shape, requiresGrad: true });
    using g = tensor(gradData, { shape });
    const out: { y: Tensor; dx: Tensor; } = await step(x, g);
    out.y.dispose();
    out.dx.dispose();
  });
  Deno.bench(`${group} exported js module`, { group }, () => {
    exported.run(data, gradData);
  });
}
