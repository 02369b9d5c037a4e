// The optimizers' receiver check (src/optim/receiver.ts): an optimizer's state is private, so
// its members used through a Proxy, or on an object made from its prototype, throw an Error
// naming the member (V8's "Cannot read private member #lr" before), and leave it usable.

import { optim, tensor } from "../../mod.ts";
import { assertEquals, assertThrows } from "../assert.ts";
import { assertClose } from "../helpers.ts";

Deno.test("receiver: an optimizer behind a Proxy names the member it cannot reach", async () => {
  const p = tensor([1], { requiresGrad: true });
  const sgd = new optim.SGD([p], { lr: 0.1, momentum: 0.5 });
  const adam = new optim.Adam([tensor([1], { requiresGrad: true })]);
  const message = (member: string) =>
    `${member}: to be used on the optimizer itself (its state is private: a Proxy of an ` +
    "optimizer, or an object made from its prototype, cannot reach it), got another object";
  const proxy = new Proxy(sgd, {});
  assertThrows(() => proxy.step(), Error, message("SGD.step"));
  assertThrows(() => proxy.lr, Error, message("SGD.lr"));
  assertThrows(() => (proxy.lr = 0.5), Error, message("SGD.lr"));
  assertThrows(() => proxy.params, Error, message("SGD.params"));
  assertThrows(() => proxy.zeroGrad(), Error, message("SGD.zeroGrad"));
  assertThrows(() => proxy.momentum, Error, message("SGD.momentum"));
  assertThrows(() => proxy.weightDecay, Error, message("SGD.weightDecay"));
  assertThrows(() => proxy.nesterov, Error, message("SGD.nesterov"));
  const adamProxy = new Proxy(adam, {});
  for (const member of ["betas", "eps", "weightDecay", "lr"] as const) {
    assertThrows(() => adamProxy[member], Error, message(`Adam.${member}`));
  }
  const imitation = Object.create(optim.SGD.prototype) as optim.SGD;
  assertThrows(() => imitation.step(), Error, message("SGD.step"));
  // the optimizer itself is untouched and steps as before
  assertEquals(sgd.lr, 0.1);
  p.grad = tensor([2]);
  sgd.step();
  assertClose(await p.data(), [0.8]);
});

Deno.test("optimizers: toString without an optimizer says so, not a bare TypeError (helper-131)", () => {
  // (`'#lr' in undefined` threw: a method taken off its optimizer has no receiver)
  for (const Class of [optim.SGD, optim.Adam]) {
    const text = (Class.prototype.toString as (this: unknown) => string).call(undefined);
    assertEquals(text, "an imitation of an optimizer (a Proxy or a copy of one)");
  }
});
