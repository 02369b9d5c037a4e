// The names the library's modules print by (src/nn/names.ts): spelled out, so a bundle whose
// minifier renamed the classes still prints `LocalResponseNorm(...)`; a user's class prints by
// its own name.

import { nn, type Tensor, tensor } from "../../mod.ts";
import { assertEquals, assertThrows } from "../assert.ts";

/** Runs `fn` with `cls.name` changed to `name`, as a minifier would have it. */
function renamed(classes: readonly [object, string][], fn: () => void): void {
  const before = classes.map(([cls]) => Object.getOwnPropertyDescriptor(cls, "name")!);
  classes.forEach(([cls, name]) => Object.defineProperty(cls, "name", { value: name }));
  try {
    fn();
  } finally {
    classes.forEach(([cls], i) => Object.defineProperty(cls, "name", before[i]));
  }
}

Deno.test("names: the library's modules print by their own names in a minified bundle", () => {
  class Block extends nn.Module {
    norm = new nn.LocalResponseNorm(3, 0.5);
    forward(x: Tensor): Tensor {
      return this.norm.forward(x);
    }
  }
  class MyNorm extends nn.LocalResponseNorm {}
  renamed([[nn.LocalResponseNorm, "Wr"], [nn.Module, "Ue"], [Block, "Xt"]], () => {
    const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
    assertEquals(String(lrn), "LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=2.0)");
    assertThrows(
      () => lrn.train("yes" as unknown as boolean),
      Error,
      'LocalResponseNorm.train: mode must be a boolean, got "yes"',
    );
    // a user's classes print by the names they have (their bundler's business)
    assertEquals(
      String(new Block()),
      "Xt(\n  (norm): LocalResponseNorm(size=3, alpha=0.5, beta=0.75, k=1.0)\n)",
    );
    assertEquals(String(new MyNorm(2)), "MyNorm(size=2, alpha=0.0001, beta=0.75, k=1.0)");
    // and errors that print one as a received value
    assertThrows(
      () => tensor([1]).add(lrn as never),
      Error,
      "add: other must be a Tensor or a number, got LocalResponseNorm",
    );
  });
  assertEquals(String(new Block()).split("(")[0], "Block");
});

Deno.test("names: a module prints by the first class up its prototype chain", () => {
  class Leaf extends nn.Module {
    forward(x: Tensor): Tensor {
      return x;
    }
    override extraRepr(): string {
      return "in=2";
    }
  }
  // an object made from an instance has no own constructor on its prototype: it printed by
  // the fallback, Module(in=2)
  const derived = Object.create(new Leaf()) as Leaf;
  assertEquals(String(derived), "Leaf(in=2)");
  assertThrows(() => derived.train(1 as unknown as boolean), Error, "Leaf.train: mode must be");
  const inserted = new Leaf();
  Object.setPrototypeOf(inserted, Object.create(Leaf.prototype));
  assertEquals(String(inserted), "Leaf(in=2)");
});
