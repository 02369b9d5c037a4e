// Lazy values the library is responsible for (src/pending.ts): a computed leaf made to require
// grad, and an assigned value, are computed with the next realization that reaches them; the
// gradients stored in `grad` and the pending assignments are computed before storage they read
// is freed, on every device.

import { tensor, tidy } from "../mod.ts";
import { topoSort } from "../src/ir/graph.ts";
import { assert, assertEquals } from "./assert.ts";
import { testDevices } from "./helpers.ts";
import { nodeOf } from "../src/tensor.ts";

Deno.test("pending: a computed leaf requiring grad is stored by the next realization reaching it", async () => {
  const w = tensor([1, 2]).mul(2).requiresGrad_();
  assert(!w.isRealized);
  const unrelated = tensor([5]).add(1);
  await unrelated.realize();
  assert(!w.isRealized, "a realization that does not reach w leaves it lazy");
  const y = w.add(1);
  assertEquals(Array.from(await y.data()), [3, 5]);
  assert(w.isRealized, "computed with y, and stored");
  assertEquals(topoSort([nodeOf(w)]).length, 1, "its history is dropped");
});

Deno.test("pending: a stored gradient survives the disposal of what it reads", async () => {
  for (const device of testDevices) {
    const x = tensor([1, 2, 3], { device });
    const w = tensor([1, 1, 1], { device, requiresGrad: true });
    x.mul(w).sum().backward(); // w.grad = x, lazily
    x.dispose();
    tensor([9, 9, 9], { device }); // would reuse x's storage
    assertEquals(Array.from(await w.grad!.data()), [1, 2, 3], device);
  }
});

Deno.test("pending: an assignment survives the disposal of what it reads", async () => {
  for (const device of testDevices) {
    const p = tensor([1, 2], { device });
    const d = tensor([10, 20], { device });
    p.assign(p.add(d));
    d.dispose();
    tensor([0, 0], { device });
    assertEquals(Array.from(await p.data()), [11, 22], device);
  }
});

Deno.test("pending: a training step inside tidy keeps its update", async () => {
  for (const device of testDevices) {
    const p = tensor([1, 2], { device, requiresGrad: true });
    tidy(() => {
      const x = tensor([3, 4], { device }); // disposed when the scope closes
      p.mul(x).sum().backward();
      p.assign(p.sub(p.grad!.mul(0.5)));
      p.zeroGrad();
    });
    assertEquals(Array.from(await p.data()), [1 - 1.5, 2 - 2], device);
  }
});
