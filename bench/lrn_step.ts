// The eager LocalResponseNorm training step the benchmarks time: forward, backward with an
// upstream gradient, both realized in one schedule, every tensor disposed (equal graphs are
// hash-consed and realized values remembered: without disposal a timed call is a cache hit).

import { type nn, realize, tensor, type TypedArray } from "../mod.ts";

/** One eager forward + backward of `lrn` on `data` with upstream gradient `gradData`. */
export async function eagerLrnStep(
  lrn: nn.LocalResponseNorm,
  data: TypedArray,
  gradData: TypedArray,
  shape: readonly number[],
): Promise<void> {
  using x = tensor(data, { shape, requiresGrad: true });
  using g = tensor(gradData, { shape });
  using y = lrn.forward(x);
  y.backward(g);
  using dx = x.grad!;
  await realize(y, dx);
}
