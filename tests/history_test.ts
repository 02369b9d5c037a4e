// What a realized value keeps of its history (src/history.ts): a value built upon once stored
// and no gradient can flow through it is settled (its sources dropped), so step-by-step
// computations do not keep every earlier step; a value leading to a leaf requiring grad keeps
// its graph; settled values read right everywhere (kernels, the reference evaluator, graph()).

import { graph, tensor } from "../mod.ts";
import { topoSort } from "../src/ir/graph.ts";
import { isSettled } from "../src/ir/node.ts";
import { backwardNodes } from "../src/autodiff.ts";
import * as ir from "../src/ir/node.ts";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { reference } from "./helpers.ts";
import { nodeOf } from "../src/tensor.ts";

Deno.test("history: a running total keeps one step of graph, not all of them", async () => {
  let total = tensor([0, 0]);
  for (let i = 1; i <= 50; i++) {
    total = total.add(tensor([i, 2 * i]));
    await total.realize();
    // what the total holds on to: itself (settled once built upon) plus at most one step
    assert(topoSort([nodeOf(total)]).length <= 3, `step ${i}: ${topoSort([nodeOf(total)]).length}`);
  }
  assertEquals(Array.from(await total.data()), [1275, 2550]);
});

Deno.test("history: a stored value leading to a leaf requiring grad keeps its graph", async () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const h = w.mul(2);
  await h.realize();
  const loss = h.square().sum(); // h is built upon, but gradients flow through it to w
  assert(!isSettled(nodeOf(h)));
  loss.backward();
  assertEquals(Array.from(await w.grad!.data()), [8, 16, 24]); // d/dw (2w)^2 = 8w
});

Deno.test("history: the detach update keeps a parameter's graph at one node", async () => {
  let p = tensor([1, -2, 4], { requiresGrad: true });
  const want = [1, -2, 4];
  let walked = 0;
  for (let step = 0; step < 30; step++) {
    const loss = p.square().sum();
    let visits = 0;
    backwardNodes(nodeOf(loss), ir.constant(1, [], "float32"), () => (visits++, false));
    if (step === 2) walked = visits;
    if (step > 2) assertEquals(visits, walked, `backward walks the same graph at step ${step}`);
    loss.backward();
    p = p.sub(p.grad!.mul(0.1)).detach().requiresGrad_();
    await loss.item(); // realizes the new p with it: a stored variable, history dropped
    for (let i = 0; i < 3; i++) want[i] -= 0.1 * 2 * want[i];
  }
  await p.realize();
  assertEquals(topoSort([nodeOf(p)]).length, 1);
  const got = Array.from(await p.data());
  got.forEach((v, i) => assert(Math.abs(v - want[i]) < 1e-5, `${v} vs ${want[i]}`));
});

Deno.test("history: settled values read right in kernels, the reference and graph()", async () => {
  const x = tensor([0.5, 1, 2]);
  const y = x.exp();
  await y.realize();
  const z = y.add(1); // y is built upon: settled
  assert(isSettled(nodeOf(y)));
  assertStringIncludes(graph(z), "exp(stored)");
  const want = [0.5, 1, 2].map((v) => Math.exp(v) + 1);
  const got = Array.from(await z.data());
  got.forEach((v, i) => assert(Math.abs(v - want[i]) < 1e-5 * want[i]));
  const ref = Array.from(reference(z));
  ref.forEach((v, i) => assert(Math.abs(v - want[i]) < 1e-5 * want[i]));
});

Deno.test("history: after a settled value is disposed, an equal computation recomputes", async () => {
  const x = tensor([1, 2]);
  const y = x.mul(3);
  await y.realize();
  y.add(0.5); // settles y
  y.dispose();
  const again = x.mul(3); // same structure as y: a fresh node, computed from x
  assertEquals(Array.from(await again.data()), [3, 6]);
});

Deno.test("history: unread steps with gradients accumulated settle each stored update, values exact (helper-144)", async () => {
  // settling an update walked, off the gradient path, through every earlier step's stored
  // gradient down to a buffer (stored gradients are kept unsettled): the read after n unread
  // steps was quadratic in n. A stored value now says the update reads stored data; the
  // updates still settle, and the loss is the float64 recurrence's
  const w = tensor([1, 1, 1, 1], { requiresGrad: true });
  let loss = w.square().sum();
  let x = 1;
  let g = 0;
  let want = 0;
  for (let i = 0; i < 200; i++) {
    loss = w.square().sum();
    loss.backward(); // accumulates into w.grad: 2 w per step
    w.assign(w.sub(w.grad!.mul(1e-3)).detach());
    want = 4 * x * x;
    g += 2 * x;
    x -= 1e-3 * g;
  }
  const got = await loss.item();
  assert(Math.abs(got - want) <= 1e-5 * want, `loss ${got}, float64 ${want}`);
  assertEquals(Array.from(await w.data()).map((v) => Math.abs(v - x) < 1e-5), [
    true,
    true,
    true,
    true,
  ]);
  assert(isSettled(nodeOf(w)), "the stored update is settled");
});
