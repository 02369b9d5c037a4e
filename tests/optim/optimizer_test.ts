// The optimizers' base (src/optim/optimizer.ts): a step checks every gradient before it changes
// anything, so a step that throws leaves parameters and state as they were; after a step, a
// gradient is read before the parameters (storing their updates frees the values it reads).

import { optim, type Tensor, tensor } from "../../mod.ts";
import { assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { assertClose, testDevices } from "../helpers.ts";

const makers: [string, (params: Tensor[]) => optim.SGD | optim.Adam][] = [
  ["SGD", (params) => new optim.SGD(params, { lr: 0.1, momentum: 0.9 })],
  ["Adam", (params) => new optim.Adam(params, { lr: 0.1 })],
];

Deno.test("optimizer: a step with a bad gradient throws before any parameter changes", async () => {
  for (const [name, make] of makers) {
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const b = tensor([1, 2, 3], { requiresGrad: true });
    const opt = make([a, b]);
    const bad: [unknown, RegExp][] = [
      [tensor([[1, 1, 1]]), /parameter 1's grad must be float32\[3\] on cpu.*got float32\[1, 3\]/],
      [tensor([10]), /parameter 1's grad must be float32\[3\]/], // broadcastable, still refused
      [5, /parameter 1's grad must be a Tensor or null, got 5/],
    ];
    for (const [grad, message] of bad) {
      a.grad = tensor([2, 4, 6]);
      (b as { grad: unknown; }).grad = grad;
      const error = assertThrows(() => opt.step());
      assertEquals(message.test(String(error)), true, `${name}: ${error}`);
      // before: a was updated (and Adam counted the step), and a retry failed
      assertEquals(Array.from(await a.data()), [1, 2, 3], `${name}: a unchanged`);
    }
    b.grad = tensor([2, 4, 6]);
    opt.step();
    const first = Array.from(await a.data());
    assertEquals(Array.from(await b.data()), first, `${name}: the retry updates both alike`);
    const expected = name === "SGD" ? [0.8, 1.6, 2.4] : [0.9, 1.9, 2.9]; // Adam's first step: lr
    assertClose(first, expected, { rtol: 1e-6, msg: name });
  }
});

Deno.test("optimizer: after a step, gradients read before the parameters; after them, an Error", async () => {
  // the gradients read the parameters' old values, which storing the updates frees (README,
  // known limitations): read them first, and a later read says why it cannot be done
  for (const device of testDevices) {
    for (const [name, make] of makers) {
      const p = tensor([1, 2, 3], { requiresGrad: true, device });
      const q = tensor([0.5, -1, 2], { requiresGrad: true, device });
      const opt = make([p, q]);
      p.mul(q).square().sum().backward(); // each gradient reads both old values
      opt.step();
      // every gradient before any parameter: q's gradient reads p's old value too
      assertClose(await p.grad!.data(), [0.5, 4, 24], { msg: `${device} ${name}: p.grad` });
      assertClose(await q.grad!.data(), [1, -8, 36], { msg: `${device} ${name}: q.grad` });
      await p.data();
      const r = tensor([1, 2], { requiresGrad: true, device });
      const other = make([r]);
      r.square().sum().backward();
      other.step();
      await r.data();
      await assertRejects(() => r.grad!.data(), Error, "overwritten by assign()");
    }
  }
});
