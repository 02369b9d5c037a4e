// nn.Module: discovery of children and parameters from fields, train/eval, zeroGrad, the state
// dict and Lucid's toString forms (leaf and nested).

import { jit, memory, nn, optim, randn, type Tensor, tensor, tidy, zeros } from "../../mod.ts";
import {
  assert,
  assertEquals,
  assertStrictEquals,
  assertStringIncludes,
  assertThrows,
} from "../assert.ts";

class Scale extends nn.Module {
  weight: Tensor = randn([3], { requiresGrad: true });
  offset: Tensor = zeros(3); // state, not a parameter
  forward(x: Tensor): Tensor {
    return x.mul(this.weight).add(this.offset);
  }
  override extraRepr(): string {
    return "features=3";
  }
}

class Block extends nn.Module {
  scale = new Scale();
  norm = new nn.LocalResponseNorm(3, 0.5, 0.75, 1);
  bias: Tensor = zeros([3], { requiresGrad: true });
  forward(x: Tensor): Tensor {
    return this.norm.forward(this.scale.forward(x).add(this.bias).reshape(1, 3));
  }
}

Deno.test("Module: children, modules and parameters come from fields", () => {
  const block = new Block();
  assertEquals([...block.namedChildren()].map(([n]) => n), ["scale", "norm"]);
  assertEquals([...block.children()].length, 2);
  assertEquals([...block.modules()].map((m) => m.constructor.name), [
    "Block",
    "Scale",
    "LocalResponseNorm",
  ]);
  assertEquals([...block.namedParameters()].map(([n]) => n), ["bias", "scale.weight"]);
  assertEquals([...block.namedParameters("net.")].map(([n]) => n), [
    "net.bias",
    "net.scale.weight",
  ]);
  // a prefix of another kind was glued on ("nullbias") or threw a bare TypeError (a symbol)
  for (const [prefix, shown] of [[null, "null"], [1.5, "1.5"], [Symbol("p"), "Symbol(p)"]]) {
    assertThrows(
      () => block.namedParameters(prefix as never),
      Error,
      `Block.namedParameters: prefix must be a string, got ${shown as string}`,
    );
  }
  const params = [...block.parameters()];
  assertStrictEquals(params[0], block.bias);
  assertStrictEquals(params[1], block.scale.weight);
  assertEquals(Object.keys(block.stateDict()), ["bias", "scale.weight", "scale.offset"]);
});

Deno.test("Module: a parameter two submodules share comes once, and an optimizer takes it", async () => {
  // parameters() gave it twice and the optimizer refused the duplicate
  class Tied extends nn.Module {
    first = new Scale();
    second = new Scale();
    constructor() {
      super();
      this.second.weight = this.first.weight;
    }
    forward(x: Tensor): Tensor {
      return this.second.forward(this.first.forward(x));
    }
  }
  const tied = new Tied();
  assertEquals([...tied.namedParameters()].map(([n]) => n), ["first.weight"]);
  const opt = new optim.SGD(tied.parameters(), { lr: 0.5 });
  const w = Array.from(await tied.first.weight.data());
  tied.forward(tensor([1, 1, 1])).sum().backward(); // sum(w^2): gradient 2 w
  opt.step();
  assertEquals(Array.from(await tied.second.weight.data()), w.map(() => 0)); // w - 0.5 * 2 w
});

Deno.test("Module: train and eval set the training flag on the whole tree", () => {
  const block = new Block();
  assertEquals(block.training, true);
  assertStrictEquals(block.eval(), block);
  assertEquals([...block.modules()].map((m) => m.training), [false, false, false]);
  block.train();
  assertEquals(block.norm.training, true);
  block.train(false);
  assertEquals(block.scale.training, false);
  assertThrows(
    () => block.train("yes" as unknown as boolean),
    Error,
    'Block.train: mode must be a boolean, got "yes"',
  );
  assertEquals(block.training, false, "a rejected call changes nothing");
});

Deno.test("Module: zeroGrad clears every parameter's gradient", async () => {
  const block = new Block();
  block.forward(tensor([1, 2, 3])).sum().backward();
  assertEquals(block.bias.grad !== null && block.scale.weight.grad !== null, true);
  const first = await block.bias.grad!.data();
  block.forward(tensor([1, 2, 3])).sum().backward();
  const twice = await block.bias.grad!.data();
  twice.forEach((v, i) =>
    assertEquals(Math.abs(v - 2 * first[i]) <= 1e-5 * Math.abs(v) + 1e-6, true)
  );
  block.zeroGrad();
  assertEquals(block.bias.grad, null);
  assertEquals(block.scale.weight.grad, null);
});

Deno.test("Module: zeroGrad clears a parameter frozen after its backward, so it stops moving", async () => {
  // zeroGrad visited the tensors requiring grad only: the frozen bias kept its gradient, and an
  // optimizer built before the freeze stepped it with that one every step (torch's zero_grad
  // clears it)
  const block = new Block();
  const opt = new optim.SGD(block.parameters(), { lr: 0.5 });
  const before = Array.from(await block.bias.data());
  block.forward(tensor([1, 2, 3])).sum().backward();
  const grad = Array.from(await block.bias.grad!.data());
  block.bias.requiresGrad = false;
  opt.step();
  block.zeroGrad();
  assertEquals(block.bias.grad, null);
  const once = Array.from(await block.bias.data());
  for (let i = 0; i < 3; i++) {
    block.forward(tensor([1, 2, 3])).sum().backward();
    opt.step();
    block.zeroGrad();
  }
  // the bias took the one step, then stayed
  assertEquals(once, before.map((v, i) => Math.fround(v - Math.fround(0.5 * grad[i]))));
  assertEquals(Array.from(await block.bias.data()), once);
});

Deno.test("Module: zeroGrad inside tidy frees the cleared gradients; under jit it is undone", async () => {
  // it set `grad` to null directly, skipping Tensor.zeroGrad's bookkeeping: a training step in
  // tidy that reads with dataSync kept every step's gradient (live buffers growing by one a
  // step), and a jit trace's zeroGrad cleared the real parameter's gradient for good
  const block = new Block();
  const x = tensor([1, 2, 3]);
  const live: number[] = [];
  for (let i = 0; i < 60; i++) {
    tidy(() => {
      block.zeroGrad();
      block.forward(x).sum().backward();
      block.bias.grad!.dataSync();
    });
    if (i % 20 === 19) live.push(memory().cpu.liveBuffers);
  }
  assertEquals(live[2], live[0], `live cpu buffers after 20, 40, 60 steps: ${live}`);
  const before = block.bias.grad;
  await jit((t: Tensor) => {
    block.zeroGrad();
    return t.add(1);
  })(x);
  assertStrictEquals(block.bias.grad, before, "the trace's zeroGrad is undone");
});

Deno.test("Module: toString in Lucid's leaf and nested forms, also through Deno.inspect", () => {
  assertEquals(String(new Scale()), "Scale(features=3)");
  const expected = [
    "Block(",
    "  (scale): Scale(features=3)",
    "  (norm): LocalResponseNorm(size=3, alpha=0.5, beta=0.75, k=1.0)",
    ")",
  ].join("\n");
  assertEquals(String(new Block()), expected);
  assertEquals(Deno.inspect(new Block()), expected);
  class Outer extends nn.Module {
    inner = new Block();
    forward(x: Tensor): Tensor {
      return this.inner.forward(x);
    }
  }
  assertEquals(
    String(new Outer()),
    [
      "Outer(",
      "  (inner): Block(",
      "    (scale): Scale(features=3)",
      "    (norm): LocalResponseNorm(size=3, alpha=0.5, beta=0.75, k=1.0)",
      "  )",
      ")",
    ].join("\n"),
  );
});

Deno.test("Module: a module without extraRepr prints empty parentheses", () => {
  class Identity extends nn.Module {
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  assertEquals(String(new Identity()), "Identity()");
  assertEquals(new Identity().extraRepr(), "");
});

Deno.test("Module: a module behind a Proxy prints and lists its parameters", () => {
  // a Proxy passes instanceof Module (it is found as a child), but Module's private methods
  // refused it: a bare "TypeError: Receiver must be an instance of class Module"
  class Net extends nn.Module {
    w = tensor([1, 2], { requiresGrad: true });
    norm = new Proxy(new nn.LocalResponseNorm(3), {});
    forward(x: Tensor): Tensor {
      return this.norm.forward(x).mul(this.w);
    }
  }
  const net = new Net();
  const behind = new Proxy(net, {});
  assertEquals(
    String(behind),
    "Net(\n  (norm): LocalResponseNorm(size=3, alpha=0.0001, beta=0.75, k=1.0)\n)",
  );
  assertEquals([...behind.namedParameters("net.")].map(([name]) => name), ["net.w"]);
  assertEquals([...behind.parameters()], [net.w]);
  assertEquals(String(net.norm), "LocalResponseNorm(size=3, alpha=0.0001, beta=0.75, k=1.0)");
});

Deno.test("Module: a shared child and a back-reference are walked once; toString ends", () => {
  // a child holding its parent overflowed the stack in parameters, stateDict, eval, zeroGrad
  // and toString; a child shared under two names came twice from modules()
  class Child extends nn.Module {
    w: Tensor = tensor([1, 2], { requiresGrad: true });
    owner: nn.Module | null = null;
    forward(x: Tensor): Tensor {
      return x.mul(this.w);
    }
  }
  class Top extends nn.Module {
    child = new Child();
    again = this.child;
    forward(x: Tensor): Tensor {
      return this.child.forward(x);
    }
  }
  const top = new Top();
  top.child.owner = top;
  assertEquals([...top.modules()].length, 2);
  assertEquals([...top.namedParameters()].map(([name]) => name), ["child.w"]);
  assertEquals(Object.keys(top.stateDict()), ["child.w", "again.w"]);
  top.eval();
  assertEquals([top.training, top.child.training], [false, false]);
  top.child.w.grad = tensor([1, 1]);
  top.zeroGrad();
  assertEquals(top.child.w.grad, null);
  assertEquals(
    String(top),
    "Top(\n  (child): Child(\n    (owner): Top(...)\n  )\n  (again): Child(\n    (owner): Top(...)\n  )\n)",
  );
});

Deno.test("Module: a multi-line extraRepr is indented; an anonymous class prints as Module", () => {
  class Inner extends nn.Module {
    forward(x: Tensor): Tensor {
      return x;
    }
    override extraRepr(): string {
      return "in_features=3\nout_features=4";
    }
  }
  class Outer extends nn.Module {
    inner = new Inner();
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  assertEquals(String(new Inner()), "Inner(\n  in_features=3\n  out_features=4\n)");
  assertEquals(
    String(new Outer()),
    "Outer(\n  (inner): Inner(\n    in_features=3\n    out_features=4\n  )\n)",
  );
  const anonymous = new (class extends nn.Module {
    forward(x: Tensor): Tensor {
      return x;
    }
  })();
  assertEquals(String(anonymous), "Module()");
});

Deno.test("Module: the elements of array fields are children, parameters and state", async () => {
  // a model keeping its layers in an array had no children and no parameters: an optimizer
  // built from parameters() trained nothing
  class Stack extends nn.Module {
    layers = [new Scale(), [new Scale()]];
    weights: Tensor[] = [tensor([2], { requiresGrad: true }), zeros(1)];
    forward(x: Tensor): Tensor {
      return (this.layers[1] as Scale[])[0].forward((this.layers[0] as Scale).forward(x))
        .mul(this.weights[0]);
    }
  }
  const model = new Stack();
  assertEquals([...model.namedChildren()].map(([name]) => name), ["layers.0", "layers.1.0"]);
  assertEquals(
    [...model.namedParameters()].map(([name]) => name),
    ["weights.0", "layers.0.weight", "layers.1.0.weight"],
  );
  assertEquals(Object.keys(model.stateDict()), [
    "weights.0",
    "weights.1",
    "layers.0.weight",
    "layers.0.offset",
    "layers.1.0.weight",
    "layers.1.0.offset",
  ]);
  const before = await model.weights[0].item();
  const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
  model.forward(tensor([1, 1, 1])).sum().backward();
  opt.step();
  assert(await model.weights[0].item() !== before, "the array's parameter was trained");
  assertStringIncludes(String(model), "(layers.0): Scale(features=3)");
});

Deno.test("Module: deep chains, sparse and repeated arrays are walked without recursion limits", () => {
  class Link extends nn.Module {
    w: Tensor = tensor([1], { requiresGrad: true });
    next: nn.Module | null = null;
    prev: nn.Module | null = null;
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  // a doubly linked chain of 20,000: modules(), parameters() and train() overflowed the stack
  const root = new Link();
  let last = root;
  for (let i = 0; i < 20000; i++) {
    const link = new Link();
    last.next = link;
    link.prev = last;
    last = link;
  }
  assertEquals([...root.modules()].length, 20001);
  assertEquals([...root.parameters()].length, 20001);
  assertEquals(Object.keys(root.stateDict()).length, 20001);
  root.eval();
  assertEquals(last.training, false);
  // toString too: it recursed (10,000 links overflowed the stack) and re-indented each child's
  // whole text at every level. This chain's text, indented deeper at each link, would be 1.2e9
  // characters (a bare RangeError from join); 2,000 links print, each its line, its prev
  // back-reference and its `)`
  assertThrows(
    () => String(root),
    Error,
    "Link.toString: a text of at most 16777216 characters (the tree is too deep or wide to print)",
  );
  const short = new Link();
  let end = short;
  for (let i = 0; i < 2000; i++) {
    const link = new Link();
    end.next = link;
    link.prev = end;
    end = link;
  }
  const text = String(short);
  const lines = text.split("\n");
  assertEquals(lines.length, 2 + 2000 * 3); // the first link has no prev
  // each link's next comes before its prev (field order): the prevs print on the way back up
  assertEquals(lines.slice(0, 2), ["Link(", "  (next): Link("]);
  assertEquals(lines[2000], `${"  ".repeat(2000)}(next): Link(`);
  assertEquals(lines[2001], `${"  ".repeat(2001)}(prev): Link(...)`);
  assertEquals(lines[2002], `${"  ".repeat(2000)})`);
  assertEquals(lines.slice(-3), ["    (prev): Link(...)", "  )", ")"]);
  // arrays nested 5,000 deep: the walk of array fields recursed too
  class Nest extends nn.Module {
    deep: unknown[] = [];
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  const nest = new Nest();
  const w = tensor([1], { requiresGrad: true });
  let nested: unknown = w;
  for (let i = 0; i < 5000; i++) nested = [nested];
  nest.deep = nested as unknown[];
  assertEquals([...nest.namedParameters()].map(([name]) => name), [`deep${".0".repeat(5000)}`]);
  assertEquals(String(nest), "Nest()");
  // one module at index 10^6 of an empty array: a walk of the elements there are only
  class Slots extends nn.Module {
    slots: unknown[] = [];
    inner = [1, 2];
    pair: unknown[] = [];
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  const slots = new Slots();
  slots.slots[1e6] = new Link();
  slots.slots[1e8] = new Link(); // forEach stepped over every index: 3 s a walk
  const started = performance.now();
  const inner = [zeros(1)];
  slots.pair = [inner, inner]; // one array under two names: listed under each
  assertEquals([...slots.namedParameters()].map(([name]) => name), [
    "slots.1000000.w",
    "slots.100000000.w",
  ]);
  assertEquals(Object.keys(slots.stateDict()), [
    "pair.0.0",
    "pair.1.0",
    "slots.1000000.w",
    "slots.100000000.w",
  ]);
  // not a timing assertion: a functional bound walks of 10^8 holes (3 s each) cannot meet
  assert(performance.now() - started < 2000, "the sparse arrays are walked by their elements");
  // nor walks of 10^6 holes, index by index (20 ms each), a thousand times
  const holey = new Slots();
  holey.slots[1e6] = new Link();
  const walked = performance.now();
  for (let i = 0; i < 1000; i++) [...holey.parameters()];
  assert(performance.now() - walked < 2000, "a short sparse array is walked by its elements");
  // an array with a hole in the middle: the elements on both sides
  const gap = new Slots();
  const both: unknown[] = [zeros(1), , zeros(1)];
  gap.slots = both;
  assertEquals(Object.keys(gap.stateDict()), ["slots.0", "slots.2"]);
  // the keys of a long array that are not elements are not elements
  const odd = new Slots();
  const long: unknown[] = [];
  long[5000] = zeros(1);
  Object.assign(long, { "01": zeros(1), "1.5": zeros(1), "-1": zeros(1) });
  odd.slots = long;
  assertEquals(Object.keys(odd.stateDict()), ["slots.5000"]);
});

Deno.test("Module: two tensors under one dotted name are refused; a dotted name alone is fine", () => {
  class Dotted extends nn.Module {
    a = [tensor([1], { requiresGrad: true })];
    "a.0" = tensor([2], { requiresGrad: true });
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  const m = new Dotted();
  // stateDict had one key for two tensors (one dropped), namedParameters the same name twice
  const message = (method: string) =>
    `Dotted.${method}: a name of its own for each tensor (a field whose name has a '.' can ` +
    "clash with the dotted names of array elements and children: rename it), got two tensors " +
    'named "a.0"';
  assertThrows(() => m.stateDict(), Error, message("stateDict"));
  assertThrows(() => [...m.namedParameters()], Error, message("namedParameters"));
  assertEquals(String(m), "Dotted()", "printing and train() do not name tensors");
  m.eval();
  // nor do parameters() and zeroGrad(): they named namedParameters and stateDict, which the
  // program never called, and an optimizer could not be built from parameters()
  assertEquals([...m.parameters()].length, 2);
  m.a[0].grad = tensor([1]);
  m.zeroGrad();
  assertEquals(m.a[0].grad, null);
  // torch's names kept as field names: nothing clashes, nothing is refused
  class Imported extends nn.Module {
    "conv.weight" = tensor([1], { requiresGrad: true });
    "conv.bias" = zeros(1);
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  assertEquals(Object.keys(new Imported().stateDict()), ["conv.weight", "conv.bias"]);
  assertEquals([...new Imported().namedParameters()].map(([n]) => n), ["conv.weight"]);
});

Deno.test("Module: train on a tree with a frozen module changes nothing and names the module", () => {
  const root = new Block();
  Object.freeze(root.scale);
  // a bare TypeError half way, root switched and its children not
  assertThrows(
    () => root.eval(),
    Error,
    "Block.train: every module of the tree must have a writable `training` (frozen or sealed " +
      "modules cannot switch mode), got Scale whose training cannot be set",
  );
  assertEquals([...root.modules()].map((m) => m.training), [true, true, true]);
  const sealed = new Block();
  Object.defineProperty(sealed.norm, "training", { get: () => true });
  assertThrows(() => sealed.train(false), Error, "got LocalResponseNorm whose training");
  assertEquals(sealed.training, true);
});

Deno.test("Module: an own field named constructor does not change the name it prints by", () => {
  class Net extends nn.Module {
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  const net = new Net();
  Object.defineProperty(net, "constructor", { value: null, enumerable: false });
  // a bare TypeError from every message naming the module, and String(net) too
  assertEquals(String(net), "Net()");
  assertThrows(() => net.train("yes" as unknown as boolean), Error, "Net.train: mode must be");
  const holding = new Net();
  Object.assign(holding, { constructor: zeros(1) }); // state named constructor: printed Module()
  assertEquals(String(holding), "Net()");
  assertEquals(Object.keys(holding.stateDict()), ["constructor"]);
});

Deno.test("Module.zeroGrad: a child shared at every level is cleared once, not once per name (helper-131)", async () => {
  // zeroGrad walked stateDict's entries, which name a shared child under each of its fields:
  // a tree of 23 modules each holding the one below twice (weight tying, repeated) listed its
  // one tensor 2^22 times, 11 s. Counted here by reads of the leaf's field.
  let reads = 0;
  const w = tensor([1, 2], { requiresGrad: true });
  class Leaf extends nn.Module {
    constructor() {
      super();
      Object.defineProperty(this, "w", { enumerable: true, get: () => (reads++, w) });
    }
    forward(x: Tensor): Tensor {
      return x.mul(w);
    }
  }
  class Tied extends nn.Module {
    constructor(readonly a: nn.Module, readonly b: nn.Module) {
      super();
    }
    forward(x: Tensor): Tensor {
      return this.b.forward(this.a.forward(x));
    }
  }
  let model: nn.Module = new Leaf();
  for (let i = 0; i < 16; i++) model = new Tied(model, model); // 2^16 names for w
  w.mul(3).sum().backward();
  assertEquals(Array.from(await w.grad!.data()), [3, 3]);
  reads = 0;
  model.zeroGrad();
  assertEquals(w.grad, null);
  assert(reads <= 2, `the leaf's fields read ${reads} times`);
});

Deno.test("Module members called without their module are named Errors (helper-131)", () => {
  // `xs.map(lrn.forward)`, `queueMicrotask(model.zeroGrad)`: a bare TypeError from inside
  const lrn = new nn.LocalResponseNorm(3);
  const members = lrn as unknown as Record<string, (this: unknown, ...args: unknown[]) => unknown>;
  for (const member of ["forward", "stateDict", "zeroGrad", "eval", "train", "toString"]) {
    assertThrows(
      () => members[member].call(undefined, tensor([[1], [2]])),
      Error,
      `Module.${member}: to be called on a module`,
    );
  }
  for (const member of ["parameters", "modules", "children", "namedChildren"]) {
    assertThrows(
      () => [...(members[member].call(undefined) as Iterable<unknown>)],
      Error,
      `Module.${member}: to be called on a module`,
    );
  }
  // a Proxy of a module is a module as far as its members go
  const proxied = new Proxy(lrn, {});
  assertEquals(proxied.toString(), "LocalResponseNorm(size=3, alpha=0.0001, beta=0.75, k=1.0)");
});

Deno.test("Module: fields named children or modules do not break zeroGrad, train or modules (helper-132)", async () => {
  // the walks called the public children(), which such a field (a list of layers) shadows:
  // V8's "m.children is not a function"
  class Scale extends nn.Module {
    w = tensor([2, 3], { requiresGrad: true });
    forward(x: Tensor): Tensor {
      return x.mul(this.w);
    }
  }
  const layers = [new Scale(), new Scale()];
  class Stack extends nn.Module {
    constructor() {
      super();
      // (as a JavaScript program writes it; TypeScript refuses the clash with the methods)
      Object.assign(this, { children: layers, modules: { note: "not a module" } });
    }
    forward(x: Tensor): Tensor {
      return layers.reduce((a, m) => m.forward(a), x);
    }
  }
  const net = new Stack();
  net.forward(tensor([1, 1])).sum().backward();
  const [first] = layers;
  assertEquals(Array.from(await first.w.grad!.data()), [2, 3]); // x * w of the other layer
  net.zeroGrad();
  assertEquals([...net.parameters()].map((p) => p.grad), [null, null]);
  net.eval();
  assertEquals(layers.map((m) => m.training), [false, false]);
  assertEquals(nn.Module.prototype.modules.call(net).next().value, net);
  assertEquals([...nn.Module.prototype.modules.call(net)].length, 3);
});

Deno.test("Module: fields named like its methods do not break the walks or printing (helper-133)", async () => {
  // parameters, stateDict and toString called m.namedChildren(), eval this.train, toString
  // m.extraRepr(), and inspect this.toString(): a field of that name made each V8's "is not a
  // function"
  class Scale extends nn.Module {
    w = tensor([2, 3], { requiresGrad: true });
    forward(x: Tensor): Tensor {
      return x.mul(this.w);
    }
  }
  const layer = new Scale();
  class Odd extends nn.Module {
    constructor() {
      super();
      // (as a JavaScript program writes it; TypeScript refuses the clash with the methods)
      Object.assign(this, {
        namedChildren: [layer],
        train: "a note",
        extraRepr: 3,
        toString: null,
      });
    }
    forward(x: Tensor): Tensor {
      return layer.forward(x);
    }
  }
  const net = new Odd();
  assertEquals([...net.parameters()], [layer.w]);
  assertEquals(Object.keys(net.stateDict()), ["namedChildren.0.w"]);
  net.forward(tensor([1, 1])).sum().backward();
  assertEquals(Array.from(await layer.w.grad!.data()), [1, 1]);
  net.zeroGrad();
  assertEquals(layer.w.grad, null);
  nn.Module.prototype.eval.call(net);
  assertEquals(layer.training, false);
  assertEquals(
    nn.Module.prototype.toString.call(net),
    "Odd(\n  (namedChildren.0): Scale()\n)",
  );
  assertEquals(Deno.inspect(net), "Odd(\n  (namedChildren.0): Scale()\n)");
});

Deno.test("Module: overrides of namedChildren, train, toString are followed; extraRepr must give text (helper-135)", () => {
  // the walks went by fields alone for a moment (e67375e): a subclass keeping its layers in a
  // Map and overriding namedChildren lost them from parameters() (an optimizer never trained
  // them), eval() skipped an overridden train, and inspect an overridden toString
  class Lin extends nn.Module {
    w = tensor([1, 2], { requiresGrad: true });
    forward(x: Tensor): Tensor {
      return x.mul(this.w);
    }
  }
  const layers = new Map([["a", new Lin()], ["b", new Lin()]]);
  let trainCalls = 0;
  class Dict extends nn.Module {
    override *namedChildren(): Generator<[string, nn.Module]> {
      yield* layers;
    }
    override train(mode = true): this {
      trainCalls++;
      return super.train(mode);
    }
    override toString(): string {
      return "Dict(custom)";
    }
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  const d = new Dict();
  assertEquals([...d.parameters()].length, 2);
  assertEquals([...d.children()].length, 2);
  assertEquals(Object.keys(d.stateDict()), ["a.w", "b.w"]);
  d.eval();
  assertEquals(trainCalls, 1);
  assertEquals(layers.get("a")!.training, false);
  assertEquals(Deno.inspect(d), "Dict(custom)");
  class Sized extends nn.Module {
    override extraRepr(): string {
      return 3 as unknown as string;
    }
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  assertThrows(
    () => String(new Sized()),
    Error,
    "Sized.toString: extraRepr() to return a string, got 3",
  );
});

Deno.test("Module: a namedChildren override that gives something else is an Error naming it (helper-161)", () => {
  class Leaf extends nn.Module {
    w = tensor([1], { requiresGrad: true });
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  class YieldsModules extends nn.Module {
    a = new Leaf();
    override *namedChildren(): Generator<[string, nn.Module]> {
      yield this.a as never; // a module, not [name, module]
    }
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  class ReturnsNull extends nn.Module {
    a = new Leaf();
    override namedChildren(): Generator<[string, nn.Module]> {
      return null as never;
    }
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  class YieldsNumber extends nn.Module {
    override *namedChildren(): Generator<[string, nn.Module]> {
      yield ["x", 5] as never;
    }
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  const pairs = "an override must yield [name, Module] pairs";
  for (
    const [make, message] of [
      [() => new YieldsModules(), `YieldsModules.namedChildren: ${pairs}, got Leaf`],
      [() => new YieldsNumber(), `YieldsNumber.namedChildren: ${pairs}, got ["x", 5]`],
      [
        () => new ReturnsNull(),
        "ReturnsNull.namedChildren: an override must return an iterable of [name, Module] pairs, got null",
      ],
    ] as [() => nn.Module, string][]
  ) {
    const m = make();
    assertThrows(() => [...m.parameters()], Error, message);
    assertThrows(() => m.stateDict(), Error, message);
    assertThrows(() => String(m), Error, message);
    assertThrows(() => m.train(), Error, message);
    assertThrows(() => m.zeroGrad(), Error, message);
  }
});
