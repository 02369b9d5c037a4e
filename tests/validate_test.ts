// Argument checking (src/validate.ts): the Error format and the shape, axis and broadcasting
// rules, with the exact messages users see.

import {
  broadcastShapes,
  checkShape,
  dense,
  described,
  fail,
  normalizeAxis,
  shapeArgs,
} from "../src/validate.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";
import { nodeOf } from "../src/tensor.ts";
import vm from "node:vm";
import {
  arange,
  cpu,
  type ExampleInput,
  exportCompiled,
  type ExportOptions,
  gradcheck,
  graph,
  jit,
  keep,
  kernels,
  manualSeed,
  nn,
  noGrad,
  optim,
  randn,
  setDebug,
  setFusion,
  type Tensor,
  tensor,
  zeros,
} from "../mod.ts";

Deno.test("fail: `fn: expected, got value`, values formatted by kind", () => {
  assertThrows(() => fail("f", "x must be odd", 2), Error, "f: x must be odd, got 2");
  assertThrows(() => fail("f", "s", "a"), Error, 'f: s, got "a"');
  assertThrows(() => fail("f", "s", [1, "b"]), Error, 'f: s, got [1, "b"]');
  assertThrows(() => fail("f", "s", null), Error, "f: s, got null");
  assertThrows(() => fail("f", "s", new Map()), Error, "f: s, got Map");
  assertThrows(() => fail("f", "s", described("a thing")), Error, "f: s, got a thing");
  // a BigInt printed as the number it is not; an anonymous class's instance printed as nothing
  assertThrows(() => fail("f", "s", 1n), Error, "f: s, got 1n");
  assertThrows(() => fail("f", "s", new (class {})()), Error, "f: s, got an object");
});

Deno.test("fail: a Proxy of a typed array is named as an imitation (tensor() refuses it)", () => {
  // a reactive store's array passes instanceof but the built-ins refuse it: "must be a typed
  // array, got Float32Array" said nothing
  const fake = new Proxy(new Float32Array(6), {});
  const imitation = "an imitation of a Float32Array (a Proxy or a copy of one: pass the array " +
    "itself)";
  assertThrows(() => fail("f", "s", fake), Error, `f: s, got ${imitation}`);
  assertThrows(
    () => tensor(fake as unknown as Float32Array),
    Error,
    `tensor: data must be a number, a (nested) array of numbers or a typed array, got ${imitation}`,
  );
  assertThrows(() => tensor([1]).add(fake as never), Error, `got ${imitation}`);
  // the array itself is still a Float32Array
  assertThrows(() => fail("f", "s", new Float32Array(2)), Error, "f: s, got Float32Array");
});

Deno.test("validation: a revoked Proxy is refused by name everywhere (helper-168)", async () => {
  // every question asked of one throws V8's bare TypeError ("Cannot perform 'IsArray' on a
  // proxy that has been revoked"), printing it in an Error included
  const revoked = (target: object = {}): never => {
    const { proxy, revoke } = Proxy.revocable(target, {});
    revoke();
    return proxy as never;
  };
  const t = tensor([1, 2]);
  const param = tensor([1], { requiresGrad: true });
  const cases: [string, () => unknown][] = [
    ["tensor", () => tensor(revoked([1]))],
    ["tensor", () => tensor([1], { shape: revoked([1]) })],
    ["zeros", () => zeros(revoked([1]))],
    ["zeros", () => zeros([2], revoked())],
    ["randn", () => randn(revoked([1]))],
    ["manualSeed", () => manualSeed(revoked())],
    ["LocalResponseNorm", () => new nn.LocalResponseNorm(revoked())],
    ["LocalResponseNorm.forward", () => new nn.LocalResponseNorm(3).forward(revoked())],
    ["graph", () => graph(revoked())],
    ["kernels", () => kernels(revoked())],
    ["setFusion", () => setFusion(revoked())],
    ["setDebug", () => setDebug(revoked())],
    ["cpu.threads", () => (cpu as { threads: unknown; }).threads = revoked()],
    ["add", () => t.add(revoked())],
    ["reshape", () => t.reshape(revoked([1]))],
    ["pad", () => t.pad(revoked([1]))],
    ["sum", () => t.sum(revoked([0]))],
    ["SGD", () => new optim.SGD([param], revoked())],
    ["Adam", () => new optim.Adam([param], { betas: revoked([0.9, 0.9]) })],
    ["arange", () => arange(revoked())],
  ];
  for (const [fn, call] of cases) {
    const error = assertThrows(call, Error, `${fn}`, fn);
    assertEquals(error.constructor, Error, `${fn}: ${error.message}`);
    assertStringIncludes(error.message, "a revoked Proxy", fn);
  }
  // a module's field holding one is not a member: its walks go on
  class Holder extends nn.Module {
    inner = new nn.LocalResponseNorm(3);
    gone = revoked();
    forward(x: Tensor): Tensor {
      return this.inner.forward(x);
    }
  }
  const holder = new Holder();
  assertEquals([...holder.namedChildren()].map(([name]) => name), ["inner"]);
  assertEquals([...holder.parameters()].length, 0);
  assertStringIncludes(String(holder), "LocalResponseNorm");
  assertEquals(Array.from(await t.add(1).data()), [2, 3]); // the library is still usable
  t.dispose();
  param.dispose();
});

Deno.test("checkShape and shapeArgs: non-negative integers, copied", () => {
  const given = [2, 3];
  const got = checkShape("f", "shape", given);
  assertEquals(got, [2, 3]);
  got.push(4);
  assertEquals(given, [2, 3]);
  assertThrows(() => checkShape("f", "shape", [2, -1]), Error, "shape must be an array");
  assertThrows(() => checkShape("f", "shape", [1.5]), Error, "got [1.5]");
  assertEquals(shapeArgs("f", [[4, 5]]), [4, 5]);
  assertEquals(shapeArgs("f", [4, 5]), [4, 5]);
});

Deno.test("normalizeAxis: [-ndim, ndim) made non-negative; 0-D accepts 0 and -1", () => {
  assertEquals(normalizeAxis("f", -1, 3), 2);
  assertEquals(normalizeAxis("f", 0, 3), 0);
  assertEquals(normalizeAxis("f", -1, 0), -1); // a 0-D tensor has no axis to resolve to
  assertThrows(
    () => normalizeAxis("f", 3, 3, "dim"),
    Error,
    "f: dim must be an integer in [-3, 2] for a 3-D tensor, got 3",
  );
  assertThrows(() => normalizeAxis("f", 0.5, 3), Error, "got 0.5");
  // -0 is axis 0 itself: kept, sum(-0) and permute([1, -0]) made nodes (and plans) of their own
  assert(Object.is(normalizeAxis("f", -0, 3), 0));
  const x = tensor([[1, 2], [3, 4]]);
  assert(nodeOf(x.sum(-0)) === nodeOf(x.sum(0)));
  assert(nodeOf(x.permute([1, -0])) === nodeOf(x.permute([1, 0])));
});

Deno.test("broadcastShapes: NumPy rules, and an Error naming both shapes", () => {
  assertEquals(broadcastShapes("f", [2, 1, 3], [4, 1]), [2, 4, 3]);
  assertEquals(broadcastShapes("f", [], [5]), [5]);
  assertEquals(broadcastShapes("f", [0], [1]), [0]);
  assertThrows(
    () => broadcastShapes("add", [2, 3], [4, 3]),
    Error,
    "add: shapes [2, 3] and [4, 3] must broadcast (equal or 1 in each trailing axis), got [2, 3] and [4, 3]",
  );
});

Deno.test("validation: arrays with holes or holding themselves are refused by name", () => {
  // every() and map() skip holes: `sum([0, ,])` and `pad([, [1, 1]])` passed their checks and
  // failed inside (an internal IR error, a TypeError), `shrink([, null])` kept the axis; an
  // array holding itself overflowed the stack in tensor() and in the Error's own formatting
  const x = zeros(2, 3);
  const cases: [() => unknown, string][] = [
    // deno-lint-ignore no-sparse-arrays
    [() => x.sum([0, ,] as number[]), "sum: axis must be an integer"],
    // deno-lint-ignore no-sparse-arrays
    [() => x.pad([, [1, 1]] as [number, number][], 0), "got [undefined, [1, 1]]"],
    // deno-lint-ignore no-sparse-arrays
    [() => x.shrink([, null] as null[]), "shrink: range of axis 0"],
    // deno-lint-ignore no-sparse-arrays
    [() => x.permute([1, ,] as number[]), "permute: dims must be an integer"],
    // deno-lint-ignore no-sparse-arrays
    [() => x.reshape([2, , 3] as number[]), "got [2, undefined, 3]"],
    // deno-lint-ignore no-sparse-arrays
    [() => zeros([2, , 3] as number[]), "zeros: shape must be an array of non-negative integers"],
  ];
  const cyclic: unknown[] = [1];
  cyclic.push(cyclic);
  cases.push([() => tensor(cyclic as number[]), "tensor: data must not contain itself"]);
  cases.push([() => zeros(cyclic as number[]), "got [1, [...]]"]);
  // arrays nested 20,000 deep overflowed the message's own formatting (a bare RangeError)
  let deep: unknown = [1];
  for (let i = 0; i < 20000; i++) deep = [deep];
  cases.push([() => zeros(deep as number[]), "got [[[[[[[[[...]]]]]]]]"]);
  cases.push([() => zeros(1).reshape(deep as number[]), "got [[[[[[[[[...]]]]]]]]"]);
  for (const [call, message] of cases) assertThrows(call, Error, message);
  // one sub-array shared twenty times per level printed 20^depth elements (16 M characters at
  // six levels, out of memory deeper): a message prints 200 elements in all
  let wide: unknown = [-1];
  for (let i = 0; i < 8; i++) wide = Array(20).fill(wide);
  const error = assertThrows(() => zeros(wide as number[]), Error);
  assert(error.message.length < 2000, `${error.message.length} characters`);
  assertStringIncludes(
    error.message,
    "zeros: shape must be an array of non-negative integers, got [[[[",
  );
  // a long array prints its first 20 elements
  const long = Array.from({ length: 1000 }, () => -1);
  assertThrows(() => zeros(long), Error, "-1, -1, ... (1000 elements)]");
});

Deno.test("validation: an unknown option key is an Error naming it and the known ones", async () => {
  // a misspelled option was ignored and its setting silently lost: {dtyp: "int32"} made
  // float32, {momentun: 0.9} no momentum, zeros([2], {shape: [5]}) two elements
  const p = tensor([1, 2], { requiresGrad: true });
  const cases: [() => unknown, string][] = [
    [
      () => tensor([1], { dtyp: "int32" } as object),
      'tensor: options may hold dtype, device, requiresGrad, shape, got an unknown key "dtyp"',
    ],
    [
      () => zeros([2], { shape: [5] } as object),
      'zeros: options may hold dtype, device, requiresGrad, got an unknown key "shape"',
    ],
    [() => randn([2], { requiresgrad: true } as object), 'unknown key "requiresgrad"'],
    [() => arange(0, 3, 1, { devise: "cpu" } as object), "arange: options may hold"],
    [
      () => new optim.SGD([p], { lr: 0.1, momentun: 0.9 } as optim.SGDOptions),
      'SGD: options may hold lr, momentum, weightDecay, nesterov, got an unknown key "momentun"',
    ],
    [
      () => new optim.Adam([p], { beta: [0.9, 0.99] } as optim.AdamOptions),
      'Adam: options may hold lr, betas, eps, weightDecay, got an unknown key "beta"',
    ],
    [() => jit((x) => x, { inputname: ["x"] } as object), "jit: options may hold inputNames"],
  ];
  for (const [call, message] of cases) assertThrows(call, Error, message);
  assertThrows(
    () =>
      gradcheck((x) => x.sum(), [tensor([1], { dtype: "float64" })], { epsilon: 1e-6 } as object),
    Error,
    'gradcheck: options may hold eps, atol, rtol, got an unknown key "epsilon"',
  );
  const f = jit((x) => x.mul(2));
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2] }], { target: "js", nmae: "m" } as ExportOptions),
    Error,
    'exportCompiled: options may hold target, name, description, got an unknown key "nmae"',
  );
  await assertRejects(
    () => exportCompiled(f, [{ shape: [2], dtyp: "int32" } as ExampleInput], { target: "js" }),
    Error,
    'exportCompiled: exampleInputs[0] may hold shape, dtype, requiresGrad, device, got an unknown key "dtyp"',
  );
});

Deno.test("validation: options are an object, not an array, and a null setting is not its default", async () => {
  // `[]` passed as an object without keys (every setting its default), and `?? default` took a
  // null setting for a missing one: Adam ran with lr 0.001 for {lr: null}
  const p = tensor([1, 2], { requiresGrad: true });
  const cases: [() => unknown, string][] = [
    [() => new optim.Adam([p], [] as object), "Adam: options must be an object, got []"],
    [
      () => new optim.SGD([p], [] as unknown as optim.SGDOptions),
      "SGD: options must be an object with lr, got []",
    ],
    [() => jit((x) => x, [] as object), "jit: options must be an object, got []"],
    [
      () => gradcheck((x) => x.sum(), [tensor([1], { dtype: "float64" })], [] as object),
      "gradcheck: options must be an object, got []",
    ],
    [
      () => new optim.Adam([p], { lr: null } as object),
      "Adam: lr must be a finite number in [0, Infinity], got null",
    ],
    [
      () => new optim.Adam([p], { betas: null } as object),
      "Adam: betas must be a pair [beta1, beta2], got null",
    ],
    [
      () => new optim.Adam([p], { eps: null } as object),
      "Adam: eps must be a finite number in [0, Infinity], got null",
    ],
    [() => new optim.Adam([p], { weightDecay: null } as object), "Adam: weightDecay must be"],
    [
      () => new optim.SGD([p], { lr: 0.1, momentum: null } as object as optim.SGDOptions),
      "SGD: momentum must be a finite number in [0, 1], got null",
    ],
    [
      () => new optim.SGD([p], { lr: 0.1, weightDecay: null } as object as optim.SGDOptions),
      "SGD: weightDecay must be",
    ],
    [
      () => new optim.SGD([p], { lr: 0.1, nesterov: null } as object as optim.SGDOptions),
      "SGD: nesterov must be a boolean, got null",
    ],
  ];
  for (const [call, message] of cases) assertThrows(call, Error, message);
  await assertRejects(
    () => exportCompiled(jit((x) => x.mul(2)), [{ shape: [2] }], [] as unknown as ExportOptions),
    Error,
    "exportCompiled: options must be an object with a target, got []",
  );
});

Deno.test("validation: an optimizer's settings and parameter list cannot be changed past its checks", () => {
  // written, they were used unchecked: a momentum of 5, a beta of 1 (the parameter became NaN),
  // a parameter pushed again (stepped twice)
  const w = tensor([1], { requiresGrad: true });
  const sgd = new optim.SGD([w], { lr: 0.1, momentum: 0.5 });
  assertThrows(() => ((sgd as { momentum: number; }).momentum = 5), TypeError);
  assertThrows(() => ((sgd as { weightDecay: number; }).weightDecay = -1), TypeError);
  assertThrows(() => ((sgd as { nesterov: boolean; }).nesterov = true), TypeError);
  assertThrows(() => (sgd.params as Tensor[]).push(w), TypeError);
  assertEquals([sgd.momentum, sgd.weightDecay, sgd.nesterov, sgd.params.length], [
    0.5,
    0,
    false,
    1,
  ]);
  const adam = new optim.Adam([w]);
  assertThrows(() => ((adam.betas as unknown as number[])[0] = 1), TypeError);
  assertThrows(() => ((adam as { eps: number; }).eps = -1), TypeError);
  assertEquals([...adam.betas, adam.eps, adam.weightDecay], [0.9, 0.999, 1e-8, 0]);
  // and an optimizer over no parameters is refused, as torch's is (a generator another
  // optimizer had used up gave one that never stepped)
  const model = new (class extends nn.Module {
    w = tensor([1], { requiresGrad: true });
    forward(x: Tensor): Tensor {
      return x.mul(this.w);
    }
  })();
  const params = model.parameters();
  new optim.SGD(params, { lr: 0.1 });
  assertThrows(
    () => new optim.Adam(params),
    Error,
    "Adam: params must hold at least one tensor, got none",
  );
  assertThrows(
    () => new optim.SGD([], { lr: 0.1 }),
    Error,
    "SGD: params must hold at least one tensor",
  );
});

Deno.test("validation: errors name the function called and the value received", async () => {
  const gone = tensor([1, 2]);
  gone.dispose();
  const cases: [() => unknown, string][] = [
    // named "to" (gradcheck's copy), "got object", the result's rank, the functional form
    [() => gradcheck((x) => x.sum(), [gone]), "gradcheck: the tensor was disposed"],
    [
      () => gradcheck((x) => x.sum(), [tensor([1], { dtype: "int32" })]),
      'gradcheck: input 0 must be float32 or float64, got "int32"',
    ],
    [() => noGrad(null as unknown as () => void), "noGrad: fn must be a function, got null"],
    [
      () => tensor([[1, 2]]).unsqueeze(3),
      "unsqueeze: dim must be an integer in [-3, 2] for a 2-D tensor, got 3",
    ],
    [
      () => new nn.LocalResponseNorm(3).forward(gone),
      "LocalResponseNorm.forward: the tensor was disposed",
    ],
    [() => keep(gone), "keep: the tensor was disposed"],
  ];
  for (const [call, message] of cases) assertThrows(call, Error, message);
  // a disposed tensor's item() said it needed one element
  await assertRejects(() => gone.item(), Error, "item: the tensor was disposed");
});

Deno.test("validation: options read through a prototype or a getter are kept, and checked", () => {
  // they were checked, then lost by a spread copy (requiresGrad: true made false); an
  // inherited misspelling was accepted
  class Options {
    get dtype(): "float64" {
      return "float64";
    }
    get requiresGrad(): boolean {
      return true;
    }
  }
  const a = tensor([1, 2], new Options());
  assertEquals([a.dtype, a.requiresGrad], ["float64", true]);
  assertEquals(zeros([2], Object.create({ requiresGrad: true })).requiresGrad, true);
  const p = tensor([1], { requiresGrad: true });
  assertThrows(
    () => new optim.SGD([p], Object.create({ lr: 0.1, momentun: 0.9 })),
    Error,
    'SGD: options may hold lr, momentum, weightDecay, nesterov, got an unknown key "momentun"',
  );
  // a hole among gradcheck's inputs is gradcheck's to name (grad() named itself)
  const x = tensor([1, 2], { dtype: "float64" });
  assertThrows(
    // deno-lint-ignore no-sparse-arrays
    () => gradcheck((v) => v.sum(), [x, ,] as Tensor[]),
    Error,
    "gradcheck: inputs must be an array of Tensors, got [Tensor, <empty>]",
  );
});

Deno.test("validation: each option and element is read once, so what was checked is used", async () => {
  // a getter valid when checked and not when read again got its second value into the library:
  // a device "tpu", a requiresGrad "yes", an axis of -3, a beta of 5, a pad past the axis
  /** `good` for the first `reads` reads, then `bad`; counts the reads. */
  const shifty = <T>(good: T, bad: T, reads = 1) => {
    const counter = { reads: 0, get: () => counter.reads++ < reads ? good : bad };
    return counter;
  };
  const withGetter = <T extends object>(target: T, key: PropertyKey, c: { get(): unknown; }) =>
    Object.defineProperty(target, key, { get: c.get, enumerable: true }) as T;
  const device = shifty<unknown>("cpu", "tpu");
  const onCpu = tensor([1, 2], withGetter({}, "device", device));
  assertEquals([onCpu.device, device.reads], ["cpu", 1]);
  const grad = shifty<unknown>(true, "yes");
  const leaf = tensor([1, 2], withGetter({}, "requiresGrad", grad));
  assertEquals([leaf.requiresGrad, grad.reads], [true, 1]);
  const axis = shifty(3, -3);
  const expanded = tensor([1, 2]).expand(withGetter([3, 2], 0, axis));
  assertEquals([expanded.shape, axis.reads], [[3, 2], 1]);
  assertEquals(Array.from(await expanded.data()), [1, 2, 1, 2, 1, 2]);
  const before = shifty(1, -5);
  const padded = tensor([1, 2]).pad([withGetter([0, 0], 0, before) as [number, number]]);
  assertEquals([Array.from(await padded.data()), before.reads], [[0, 1, 2], 1]);
  const end = shifty(1, 2);
  const cut = tensor([1, 2]).shrink([withGetter([0, 0], 1, end) as [number, number]]);
  assertEquals([Array.from(await cut.data()), end.reads], [[1], 1]);
  const beta = shifty(0.5, 5);
  const adam = new optim.Adam([zeros([1], { requiresGrad: true })], {
    betas: withGetter([0.9, 0.999], 0, beta) as [number, number],
  });
  assertEquals([adam.betas, beta.reads], [[0.5, 0.999], 1]);
  const input = shifty<unknown>(tensor([0.5, 1], { dtype: "float64" }), 42);
  const checked = gradcheck((t) => t.square(), withGetter([] as Tensor[], 0, input));
  assertEquals([checked.passed, input.reads], [true, 1]);
  const names = shifty<unknown>(["x"], 5);
  const f = jit((t) => t.add(1), withGetter({}, "inputNames", names));
  assertEquals([f.inputNames, names.reads], [["x"], 1]);
});

Deno.test("dense: a copy up to the first hole, which every caller refuses (helper-131)", () => {
  // `[2, 3]` with its length set to 1.4e8 was copied whole before any check: 5 s and 1.1 GB,
  // then V8's bare RangeError; counted here by the reads of a Proxy
  let reads = 0;
  const sparse = [2, 3];
  sparse.length = 1_000_000;
  const counted = new Proxy(sparse, {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  const copy = dense(counted);
  assertEquals(copy.length, 3); // (a diff of a million elements would take minutes to print)
  assertEquals(copy, [2, 3, undefined]);
  assertEquals(reads, 3);
  reads = 0;
  assertThrows(
    () => zeros(counted),
    Error,
    "zeros: shape must be an array of non-negative integers",
  );
  assert(reads <= 8, `${reads} elements read`);
  // an array without holes is copied whole, undefined elements included, and a short one with
  // holes too (an Error then shows what was given)
  assertEquals(dense([1, undefined, 3]), [1, undefined, 3]);
  assertEquals(dense([1, , 3]), [1, undefined, 3]);
});

Deno.test("options: a tensor or a built-in object is not an options object (helper-131)", () => {
  // `zeros([2, 3], t)` read the tensor's dtype and requiresGrad as options; a Map's entries
  // were not seen (Adam with a Map of { lr: 0.5 } ran at 0.001)
  const t = tensor([1.5], { dtype: "float64" });
  assertThrows(
    () => zeros([2, 3], t as never),
    Error,
    "zeros: options must be an object (not a tensor, a Map or another built-in), got Tensor",
  );
  const w = tensor([1], { requiresGrad: true });
  for (const options of [new Map([["lr", 0.5]]), new Date(0), new Float32Array(1), /lr/]) {
    assertThrows(() => new optim.Adam([w], options as never), Error, "Adam: options must be");
  }
  // an object of a class of the program's, or without a prototype, is one
  class Options {
    dtype = "int32" as const;
  }
  assertEquals(zeros([2], new Options()).dtype, "int32");
  assertEquals(zeros([2], Object.assign(Object.create(null), { dtype: "int32" })).dtype, "int32");
  // by prototype, not by tag: a class with a Symbol.toStringTag is one too (helper-132)
  class Tagged {
    dtype = "int32" as const;
    get [Symbol.toStringTag](): string {
      return "Settings";
    }
  }
  assertEquals(zeros([2], new Tagged()).dtype, "int32");
  // built-ins by brand, of any realm: a Map from a node:vm context ran Adam at 0.001, and
  // boxed primitives, arguments objects and iterators were taken for options (helper-133)
  const foreign = vm.runInNewContext(`[new Map([["lr", 0.5]]), new Set(), new Date(0)]`);
  const args = (function (..._: unknown[]) {
    return arguments;
  })();
  for (const options of [...foreign, new Number(1), new Boolean(true), args, [1].values()]) {
    assertThrows(() => zeros([2], options as never), Error, "zeros: options must be an object");
  }
  assertEquals(zeros([2], vm.runInNewContext(`({ dtype: "int32" })`)).dtype, "int32");
  // an Error and a Proxy of a Date are refused too, a revoked Proxy by name; a class of the
  // program's with a then() or an iterator is options (helper-135)
  for (const options of [new Error("x"), new Proxy(new Date(0), {})]) {
    assertThrows(() => zeros([2], options as never), Error, "zeros: options must be an object");
  }
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  assertThrows(
    () => zeros([2], proxy as never),
    Error,
    "zeros: options must be an object, got a revoked Proxy",
  );
  class Builder {
    dtype = "int32" as const;
    then(): this {
      return this;
    }
    *[Symbol.iterator](): Generator<number> {
      yield 1;
    }
  }
  assertEquals(zeros([2], new Builder()).dtype, "int32");
});
