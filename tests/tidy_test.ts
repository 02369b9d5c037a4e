// tidy() and keep() (src/tidy.ts): every tensor created inside is disposed except what is
// returned (in arrays, objects, Maps and Sets too) and what is kept; nesting hands returned
// tensors to the enclosing scope; a throwing fn still cleans up; async fns are refused; shared
// values (a returned tensor sharing an inner tensor's node) survive.

import { jit, keep, memory, nn, optim, randn, type Tensor, tensor, tidy } from "../mod.ts";
import vm from "node:vm";
import { assertClose, testDevices } from "./helpers.ts";
import { assert, assertEquals, assertRejects, assertStrictEquals, assertThrows } from "./assert.ts";

Deno.test("tidy: disposes what fn created, returns its result alive", async () => {
  const x = tensor([1, 2, 3]);
  let inner: Tensor[] = [];
  const y = tidy(() => {
    const a = x.mul(2);
    const b = a.add(1);
    inner = [a, b];
    return b.exp();
  });
  assert(inner.every((t) => t.isDisposed));
  assert(!y.isDisposed && !x.isDisposed);
  const want = [3, 5, 7].map((v) => Math.fround(Math.exp(v)));
  const got = Array.from(await y.data());
  got.forEach((v, i) => assert(Math.abs(v - want[i]) <= 1e-6 * want[i], `${v} vs ${want[i]}`));
  assertThrows(() => inner[0].add(1), Error, "add: the tensor was disposed");
});

Deno.test("tidy: tensors inside arrays, objects, Maps and Sets survive; others do not", async () => {
  const x = tensor([1, 2]);
  let dropped: Tensor | null = null;
  const out = tidy(() => {
    dropped = x.neg();
    return {
      list: [x.add(1), [x.add(2)]],
      nested: { deep: x.add(3) },
      map: new Map([["k", x.add(4)]]),
      set: new Set([x.add(5)]),
      number: 7,
    };
  });
  assert(dropped!.isDisposed);
  assertEquals(Array.from(await (out.list[0] as Tensor).data()), [2, 3]);
  assertEquals(Array.from(await (out.list[1] as Tensor[])[0].data()), [3, 4]);
  assertEquals(Array.from(await out.nested.deep.data()), [4, 5]);
  assertEquals(Array.from(await out.map.get("k")!.data()), [5, 6]);
  assertEquals(Array.from(await [...out.set][0].data()), [6, 7]);
  assertEquals(out.number, 7);
});

Deno.test("tidy: nested scopes; an inner result belongs to the outer scope", () => {
  const x = tensor([1]);
  let fromInner: Tensor | null = null;
  let innerTemp: Tensor | null = null;
  const outer = tidy(() => {
    fromInner = tidy(() => {
      innerTemp = x.mul(3);
      return innerTemp.add(1);
    });
    assert(innerTemp!.isDisposed, "the inner scope disposed its temporary");
    assert(!fromInner!.isDisposed, "the inner result is alive inside the outer scope");
    return fromInner!.mul(2);
  });
  assert(fromInner!.isDisposed, "the outer scope disposed the inner result it did not return");
  assert(!outer.isDisposed);
  assertEquals(Array.from(outer.dataSync()), [8]);
});

Deno.test("tidy: keep() exempts a tensor from every scope", () => {
  const x = tensor([2]);
  let kept: Tensor | null = null;
  tidy(() => {
    tidy(() => {
      kept = keep(x.square());
    });
  });
  assert(!kept!.isDisposed);
  assertEquals(Array.from(kept!.dataSync()), [4]);
  assertThrows(() => keep(3 as unknown as Tensor), Error, "keep: t must be a Tensor, got 3");
});

Deno.test("tidy: a returned tensor that shares a disposed tensor's value keeps it", async () => {
  const x = tensor([1, 2, 3]);
  const y = x.exp();
  await y.realize();
  // a no-op view is y's own node: disposing the view inside must not free y's storage
  tidy(() => {
    y.reshape(3).flatten();
  });
  assert(!y.isDisposed && y.isRealized);
  // two equal computations share one node; the returned one keeps the value
  const twin = tidy(() => {
    const a = x.mul(5);
    a.dataSync();
    const b = x.mul(5);
    return b;
  });
  assertEquals(Array.from(await twin.data()), [5, 10, 15]);
  assert(twin.isRealized, "the twin's stored value was not freed with the disposed twin");
});

Deno.test("tidy: fn throwing still disposes; the error propagates", () => {
  const x = tensor([1]);
  let made: Tensor | null = null;
  assertThrows(
    () =>
      tidy(() => {
        made = x.add(1);
        throw new Error("boom");
      }),
    Error,
    "boom",
  );
  assert(made!.isDisposed);
  // the scope stack is intact: a later tidy works and tensors outside are untracked
  const y = tidy(() => x.add(2));
  assertEquals(Array.from(y.dataSync()), [3]);
  const z = x.add(3);
  tidy(() => {});
  assert(!z.isDisposed);
});

Deno.test("tidy: async functions are refused before they run; Promise results too", async () => {
  let ran = false;
  assertThrows(
    () =>
      tidy(async () => {
        ran = true;
        return await Promise.resolve(tensor([1]));
      }),
    Error,
    "tidy: fn must be synchronous (await outside tidy, then tidy the tensor code), got an async function",
  );
  assertEquals(ran, false);
  let made: Tensor | null = null;
  assertThrows(
    () =>
      tidy(() => {
        made = tensor([1]);
        return Promise.resolve(made);
      }),
    Error,
    "got a function returning a Promise",
  );
  assert(made!.isDisposed);
  assertThrows(() => tidy(3 as unknown as () => void), Error, "tidy: fn must be a function, got 3");
  // nothing is left open
  const outside = tensor([2]);
  tidy(() => {});
  assert(!outside.isDisposed);
  await assertRejects(() => Promise.reject(new Error("x")), Error, "x");
});

Deno.test("tidy: gradients stored by backward() belong to the leaf, not the scope", async () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const loss = tidy(() => {
    const l = w.mul(w).sum();
    l.backward();
    return l;
  });
  assert(w.grad !== null && !w.grad.isDisposed);
  assertEquals(Array.from(await w.grad.data()), [2, 4, 6]);
  assertEquals(await loss.item(), 14);
});

Deno.test("tidy: a gradient set by hand belongs to the leaf holding it, not the scope", async () => {
  // clipping inside tidy: the scope disposed the new gradient its leaf held, and the step then
  // found a disposed grad
  const w = tensor([3, 4], { requiresGrad: true });
  const opt = new optim.SGD([w], { lr: 0.1 });
  tidy(() => {
    w.mul(w).sum().backward();
    w.grad = w.grad!.mul(0.5);
  });
  assert(!w.grad!.isDisposed);
  opt.step();
  assertClose(await w.data(), [2.7, 3.6]);
  // one gradient held by two leaves: the scope keeps it while either holds it
  const a = tensor([1, 2], { requiresGrad: true });
  const b = tensor([5, 6], { requiresGrad: true });
  tidy(() => {
    a.mul(a).sum().backward();
    b.grad = a.grad;
    a.zeroGrad();
  });
  assert(!b.grad!.isDisposed);
  b.mul(1).sum().backward();
  assertEquals(Array.from(await b.grad!.data()), [3, 5]);
  // held by the first of many leaves: a list of holders cut to its 64 newest forgot the first
  const shared = tensor([1, 1], { requiresGrad: true });
  const leaves = Array.from({ length: 70 }, () => tensor([0, 0], { requiresGrad: true }));
  tidy(() => {
    const g = tensor([2, 3]);
    shared.grad = g;
    for (const leaf of leaves) leaf.grad = g;
    for (let i = 0; i < 70; i++) leaves[0].grad = g; // one leaf again and again
    for (const leaf of leaves) leaf.grad = null;
  });
  assert(!shared.grad!.isDisposed);
  assertEquals(Array.from(await shared.grad!.data()), [2, 3]);
  // let go of by every leaf inside the scope, it is the scope's again
  const c = tensor([1, 1], { requiresGrad: true });
  let dropped: Tensor | null = null;
  tidy(() => {
    c.grad = tensor([7, 7]);
    dropped = c.grad;
    c.grad = null;
  });
  assert(dropped!.isDisposed);
});

Deno.test("tidy: a training step that clips its gradient by hand holds nothing across steps", async () => {
  // the optimizer's update read the clipped gradient, which the library did not hold: the
  // update stayed lazy step after step (each step's old value kept until collection, and each
  // step slower than the last) where an unclipped step computes it as the scope ends
  const w = tensor(Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)), {
    requiresGrad: true,
  });
  const opt = new optim.SGD([w], { lr: 1e-3 });
  const want = Array.from(await w.data());
  const before = memory().cpu.liveTensors;
  for (let step = 0; step < 40; step++) {
    tidy(() => {
      w.mul(w).sum().backward();
      w.grad = w.grad!.mul(0.5);
      opt.step();
      opt.zeroGrad();
    });
    // each step: w -= 1e-3 * 0.5 * 2w, in float32
    for (let i = 0; i < want.length; i++) {
      want[i] = Math.fround(want[i] - Math.fround(1e-3 * Math.fround(want[i])));
    }
  }
  assertClose(await w.data(), want, { rtol: 1e-5 });
  // (before: the 40 lazy steps were computed at this read, and 39 old values stayed)
  assert(memory().cpu.liveTensors <= before + 1, `${memory().cpu.liveTensors} live`);
});

Deno.test("tidy: a gradient set by hand from outside the scope is the program's, kept", async () => {
  // cleared inside the scope, it was disposed as if backward() had made it, and the next step
  // reusing it threw
  const w = tensor([1, 2], { requiresGrad: true });
  const constant = tensor([1, 1]);
  const opt = new optim.SGD([w], { lr: 0.5 });
  for (let step = 0; step < 3; step++) {
    tidy(() => {
      w.grad = constant;
      opt.step();
      opt.zeroGrad();
    });
    assert(!constant.isDisposed, `step ${step}`);
  }
  assertEquals(Array.from(await w.data()), [-0.5, 0.5]);
  // a gradient backward() made is still the library's: cleared in the scope, it goes with it
  let made: Tensor | null = null;
  tidy(() => {
    w.sum().backward();
    made = w.grad;
    w.zeroGrad();
  });
  assert(made!.isDisposed);
});

Deno.test("tidy: the gradient of a leaf the scope disposes is disposed with it", () => {
  const before = memory().cpu;
  let leaf: Tensor | null = null;
  for (let i = 0; i < 50; i++) {
    tidy(() => {
      const x = tensor([1, 2, 3, 4], { requiresGrad: true });
      x.square().sum().backward();
      assertEquals(Array.from(x.grad!.dataSync()), [2, 4, 6, 8]); // d sum(x^2) = 2x, realized
      leaf = x;
    });
    assert(leaf!.isDisposed && leaf!.grad!.isDisposed);
  }
  // a loop that never yields (dataSync only) frees it all the same: nothing waits for GC
  assertEquals(memory().cpu.liveTensors, before.liveTensors);
  assertEquals(memory().cpu.bytesInUse, before.bytesInUse);
});

Deno.test("tidy: gradients cleared or replaced inside a scope are disposed at its end", async () => {
  const p = tensor([3, -1], { requiresGrad: true });
  const target = tensor([1, 1]);
  const opt = new optim.SGD([p], { lr: 0.25 });
  const step = () =>
    tidy(() => {
      opt.zeroGrad();
      const loss = p.sub(target).square().sum();
      loss.backward();
      opt.step();
      return loss.dataSync()[0]; // a loop that never yields to the event loop
    });
  step();
  const before = memory().cpu;
  const losses: number[] = [];
  for (let i = 0; i < 100; i++) losses.push(step());
  // the loop holds the same storage after 100 steps: the gradient each zeroGrad cleared (made,
  // and realized by the update, in the scope before) is gone
  assertEquals(memory().cpu.liveTensors, before.liveTensors);
  assertEquals(memory().cpu.bytesInUse, before.bytesInUse);
  // and it trains: p - t halves each step (p -= 0.25 * 2 (p - t)), from (2, -2) after step 1
  assertEquals(losses[0], 8 / 4);
  assert(losses[99] < 1e-20, `${losses[99]}`);
  // the gradient a leaf still holds survives: 2 (p - t) of the last step's p
  const held = p.grad!;
  assert(!held.isDisposed);

  // accumulation: the first gradient object is replaced by the sum, and disposed at the end
  const w = tensor([1, 2], { requiresGrad: true });
  let first: Tensor | null = null;
  tidy(() => {
    w.mul(3).sum().backward();
    first = w.grad;
    w.square().sum().backward();
  });
  assert(first!.isDisposed);
  assertEquals(Array.from(await w.grad!.data()), [3 + 2, 3 + 4]); // 3 + 2w

  // a cleared gradient the scope returns survives; so does one that is kept
  const [returned, kept] = tidy(() => {
    w.zeroGrad();
    w.sum().backward();
    const g1 = w.grad!;
    w.zeroGrad();
    w.mul(2).sum().backward();
    const g2 = w.grad!;
    w.zeroGrad();
    return [g1, keep(g2)];
  });
  assertEquals(Array.from(await returned.data()), [1, 1]);
  assertEquals(Array.from(await kept.data()), [2, 2]);
  assertEquals(w.grad, null);

  // nested: a gradient made in an inner scope and held passes to the outer one, which disposes
  // it when it is cleared there
  let inner: Tensor | null = null;
  tidy(() => {
    tidy(() => w.sum().backward());
    inner = w.grad;
    assert(!inner!.isDisposed);
    w.zeroGrad();
  });
  assert(inner!.isDisposed);
});

Deno.test("tidy: a loop of tidy scopes holds no storage beyond what it returns", async () => {
  const x = randn(100, 100);
  await x.realize();
  const before = memory().cpu;
  for (let i = 0; i < 20; i++) {
    const s = tidy(() => {
      const y = x.mul(i).exp();
      y.dataSync(); // realized inside: its storage must be freed at the end of the scope
      return y.sum();
    });
    assertStrictEquals(s.isDisposed, false);
    await s.data();
    s.dispose();
  }
  const after = memory().cpu;
  assertEquals(after.liveBuffers, before.liveBuffers);
  assertEquals(after.bytesInUse, before.bytesInUse);
});

Deno.test("tidy: a lazy result reading storage made inside is computed before that is freed", async () => {
  for (const device of testDevices) {
    const y = tidy(() => tensor([1, 2, 3], { device }).mul(2));
    assertEquals(Array.from(await y.data()), [2, 4, 6], device);
    // the LRN of a tensor created in the scope, with its gradient
    const lrn = new nn.LocalResponseNorm(3, 1, 1, 1);
    const [out, grad] = tidy(() => {
      const x = tensor([[[1]], [[2]]], { device, requiresGrad: true }); // (1, 2, 1): two channels
      const z = lrn.forward(x.reshape(1, 2, 1));
      z.sum().backward();
      return [z, x.grad!];
    });
    // y_c = x_c / (1 + S_c), S over channels c-1..c+1: S = 5 for both channels
    assertEquals(Array.from(await out.data()), [1 / 6, 2 / 6].map(Math.fround), device);
    // d/dx_a sum_c x_c / (1 + S) = 1/(1+S) - sum_c x_c * 2 x_a / (1+S)^2 = 1/6 - 3*2*x_a/36
    const want = [1 / 6 - 6 / 36, 1 / 6 - 12 / 36];
    const got = Array.from(await grad.data());
    got.forEach((g, i) => assert(Math.abs(g - want[i]) < 1e-6, `${device} grad ${i}: ${g}`));
  }
  const x = tensor([1, 2]);
  const lazy = tidy(() => x.mul(3));
  assert(!lazy.isRealized, "a result reading nothing disposed stays lazy (it can still fuse)");
  assertEquals(Array.from(await lazy.data()), [3, 6]);
});

Deno.test("tidy: a kept lazy tensor that reads a tensor of the scope is computed before it goes", async () => {
  // TensorFlow.js's running average: the kept value read `batch`, which the scope disposed,
  // and the next read failed with "input was disposed"
  let running = tensor([0, 0, 0, 0]);
  const first = running;
  for (let step = 0; step < 2; step++) {
    tidy(() => {
      const batch = tensor([1, 2, 3, 4]);
      running = keep(running.mul(0.9).add(batch.mul(0.1)));
    });
  }
  const f = Math.fround;
  const once = [1, 2, 3, 4].map((b) => f(f(0 * f(0.9)) + f(b * f(0.1))));
  const twice = once.map((r, i) => f(f(r * f(0.9)) + f((i + 1) * f(0.1))));
  assertClose(await running.data(), twice, { rtol: 1e-6 });
  first.dispose();
  running.dispose();
});

Deno.test("tidy: a value kept in an inner scope that reads the outer scope's tensor is computed", async () => {
  // the outer scope did not see what inner scopes kept: closing it freed `outer`, which the
  // kept value still read
  let kept: Tensor | null = null;
  tidy(() => {
    const outer = tensor([5, 6]);
    tidy(() => {
      kept = keep(outer.mul(2));
    });
  });
  assertEquals(Array.from(await kept!.data()), [10, 12]);
  kept!.dispose();
  // a loop of kept steps inside one scope: each step reads the last, the disposed drop out
  const start = tensor([0]);
  let running = start;
  tidy(() => {
    const step = tensor([1]);
    for (let i = 0; i < 300; i++) {
      const last = running;
      tidy(() => {
        running = keep(last.add(step));
      });
      if (last !== start) last.dispose(); // a lazy value: its readers recompute it
    }
  });
  assertEquals(Array.from(await running.data()), [300]);
  running.dispose();
  start.dispose();
});

Deno.test("tidy: a throwing fn or result walk still closes the scope, keeping what keep() kept", async () => {
  // a kept lazy tensor reading a tensor of the scope was left unreadable when fn threw
  let kept: Tensor | undefined;
  assertThrows(
    () =>
      tidy(() => {
        kept = keep(tensor([1, 2, 3]).mul(2));
        throw new Error("step failed");
      }),
    Error,
    "step failed",
  );
  assertEquals(Array.from(await kept!.data()), [2, 4, 6]);
  kept!.dispose();
  // a result whose walk throws (a getter) left the scope open, and every scope after it
  // failed to close in order
  const outer = tidy(() => {
    assertThrows(
      () =>
        tidy(() => ({
          get a(): never {
            throw new Error("getter");
          },
        })),
      Error,
      "getter",
    );
    return tensor([7]);
  });
  assertEquals(Array.from(await outer.data()), [7]);
  outer.dispose();
  // a large array of numbers overflowed the call stack (a spread), leaving the scope open too
  assertEquals(tidy(() => new Array(300_000).fill(0)).length, 300_000);
  // a tensor under a symbol key survives, as under any other key of a plain object
  const key = Symbol("out");
  const result = tidy(() => ({ [key]: tensor([1, 2]).add(1) }));
  assertEquals(Array.from(await result[key].data()), [2, 3]);
  result[key].dispose();
});

Deno.test("tidy: results are found in arrays, Maps and Sets whatever their own iterators yield", async () => {
  // a Map subclass iterating its values gave a bare TypeError (destructuring a Tensor); an
  // Array subclass iterating its indices hid its elements, which were disposed
  class ValueMap<K, V> extends Map<K, V> {
    override *[Symbol.iterator](): Generator<[K, V]> {
      yield* this.values() as unknown as Generator<[K, V]>;
    }
  }
  class IndexArray<T> extends Array<T> {
    override *[Symbol.iterator](): Generator<T> {
      for (let i = 0; i < this.length; i++) yield i as T;
    }
  }
  class Empty<T> extends Set<T> {
    override *[Symbol.iterator](): Generator<T> {}
  }
  const x = tensor([1, 2]);
  const map = tidy(() => new ValueMap([["a", x.add(1)]]));
  assertEquals(Array.from(await map.get("a")!.data()), [2, 3]);
  const array = tidy(() => IndexArray.of(x.add(2)));
  assertEquals(Array.from(await array[0].data()), [3, 4]);
  const set = tidy(() => new Empty([x.add(3)]));
  assertEquals(Array.from(await [...Set.prototype.values.call(set)][0].data()), [4, 5]);
  // a Proxy of a Map passes instanceof and has no entries of its own: named, scope closed
  assertThrows(
    () => tidy(() => new Proxy(new Map([["a", x.add(4)]]), {})),
    Error,
    "tidy: fn's result must hold tensors in arrays, plain objects, Maps or Sets",
  );
  assertEquals(Array.from(await tidy(() => x.mul(2)).data()), [2, 4], "still usable");
});

Deno.test("tidy: a result reading storage a read in flight still holds is computed at the close", async () => {
  // the held storage was not counted as freed, so the result stayed lazy, and once the read
  // ended it could not be computed ("input that was disposed")
  for (const device of testDevices) {
    for (const reading of ["data", "to"] as const) {
      let inFlight: Promise<unknown> = Promise.resolve();
      const y = tidy(() => {
        const x = tensor([1, 2, 3], { device });
        inFlight = reading === "data"
          ? x.data()
          : x.to(device === "cpu" && testDevices.length > 1 ? "webgpu" : "cpu").data();
        return x.add(1);
      });
      await inFlight;
      assertEquals(Array.from(await y.data()), [2, 3, 4], `${device}, ${reading} in flight`);
      y.dispose();
    }
  }
  // a view that shares a tensor's value from outside (a same-shape reshape is one) is not freed
  // at the close: a result reading it stays lazy, as README says (it was computed at the close,
  // losing its fusion)
  const w = tensor(Array.from({ length: 64 }, (_, i) => i), { shape: [8, 8] });
  const x2 = tensor(Array.from({ length: 64 }, () => 2), { shape: [8, 8] });
  const lazy = tidy(() => w.reshape([8, 8]).mul(x2).sum());
  assert(!lazy.isRealized, "still lazy");
  assertEquals(await lazy.item(), 2 * 63 * 32);
});

Deno.test("tidy: a disposed tensor still reachable keeps nothing else of its closed scope", async () => {
  // the closed scope's list stayed reachable through each of its tensors: a layer field holding
  // a disposed activation kept the scope's gradient, and the storage it read, after the
  // program dropped it (garbage must be collectable on demand: a child with --expose-gc)
  const program = `
    const { memory, tensor, tidy } = await import(${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  });
    const layer = { last: null };
    const p = tensor([1, 1, 1], { requiresGrad: true });
    const before = memory().cpu.liveTensors;
    for (let i = 0; i < 10; i++) {
      const x = tensor([1, 2, 3]);
      const loss = tidy(() => {
        const h = p.mul(x);
        layer.last = h;
        const l = h.sum();
        l.backward();
        return l;
      });
      await loss.item();
      loss.dispose();
      x.dispose();
      p.grad = null;
    }
    for (let i = 0; i < 10; i++) {
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    console.log(memory().cpu.liveTensors - before);`;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", program],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout).trim();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  assertEquals(out, "0", "tensors left beyond p");
});

Deno.test("tidy: results in another realm's objects, Maps and Sets are kept", async () => {
  // a plain object, Map or Set made in an iframe or a node:vm context failed this realm's
  // prototype and instanceof tests, and the tensors in it were disposed
  const make = () => vm.runInNewContext("({ object: {}, map: new Map(), set: new Set() })");
  const foreign = make();
  const result = tidy(() => {
    foreign.object.y = tensor([1, 2]).add(1);
    foreign.map.set("y", tensor([3]).mul(2));
    foreign.set.add(tensor([5]).neg());
    return foreign;
  });
  assertEquals(Array.from(await result.object.y.data()), [2, 3]);
  assertEquals(Array.from(await result.map.get("y").data()), [6]);
  assertEquals(Array.from(await [...result.set][0].data()), [-5]);
  // by prototype alone, as for this realm's: a record with a Symbol.toStringTag is kept too
  const tagged = tidy(() => {
    const record = vm.runInNewContext("({ [Symbol.toStringTag]: 'Record' })");
    record.y = tensor([7]).add(1);
    return record;
  });
  assertEquals(Array.from(await tagged.y.data()), [8]);
  // Sets and Maps by brand, whatever their tag or prototype (a tag test first missed these)
  const odd = tidy(() => {
    const subclass = vm.runInNewContext(
      "new (class extends Set { get [Symbol.toStringTag]() { return 'Bag'; } })()",
    );
    subclass.add(tensor([1]).add(1));
    const bare = Object.setPrototypeOf(new Map(), null);
    Map.prototype.set.call(bare, "y", tensor([2]).add(1));
    return { subclass, bare };
  });
  assertEquals(Array.from(await [...Set.prototype.values.call(odd.subclass)][0].data()), [2]);
  assertEquals(Array.from(await Map.prototype.get.call(odd.bare, "y").data()), [3]);
  // and a Set given a subclass's prototype is a Set still
  class Bag extends Set {}
  const rehomed = tidy(() => Object.setPrototypeOf(new Set([tensor([4]).add(1)]), Bag.prototype));
  assertEquals(Array.from(await [...Set.prototype.values.call(rehomed)][0].data()), [5]);
  // jit takes such a record as its result too (it was refused as "not an object of Tensors")
  const f = jit((x) => {
    const record = vm.runInNewContext("({})");
    record.twice = x.mul(2);
    return record;
  });
  const out = await f(tensor([4])) as unknown as { twice: Tensor; };
  assertEquals(Array.from(await out.twice.data()), [8]);
});

Deno.test("tidy: a result reading what a disposed, uncomputed assignment replaced is computed first (helper-132)", async () => {
  // disposing the scope's `s`, whose assign was not computed, frees its old value (since
  // 7debc37); the returned s.mul(2) was left lazy and then read a freed value
  for (const device of testDevices) {
    const x = tensor([1, 2, 3], { device });
    const returned = tidy(() => {
      const s = tensor([5, 5, 5], { device });
      s.assign(s.add(x));
      return s.mul(2);
    });
    assertEquals(Array.from(await returned.data()), [12, 14, 16], device);
    let held: Tensor | null = null;
    tidy(() => {
      const s = tensor([5, 5, 5], { device });
      s.assign(s.add(x));
      held = keep(s.mul(2));
    });
    assertEquals(Array.from(await held!.data()), [12, 14, 16], device);
    for (const t of [returned, held!, x]) t.dispose();
  }
});

Deno.test("tidy: the Promise it refuses does not reject unhandled (helper-140)", async () => {
  // the caller caught the refusal, and the process still died when the refused jit call's
  // trace failed: an unhandled rejection
  const f = jit((x) => {
    if (x.shape[0] === 1) throw new Error("fn failed while traced");
    return x.add(1);
  });
  const x = tensor([1]);
  assertThrows(() => tidy(() => f(x)), Error, "tidy: fn must be synchronous");
  assertThrows(() => tidy(() => Promise.reject(new Error("later"))), Error, "tidy: fn must be");
  await new Promise((resolve) => setTimeout(resolve, 20)); // the rejections come meanwhile
  x.dispose();
});
