// Graph walks (src/ir/graph.ts): topological order, each node once, and the stop predicate
// that keeps a walk out of a boundary node's history.

import * as ir from "../src/ir/node.ts";
import { topoPlaces, topoSort } from "../src/ir/graph.ts";
import { assert, assertEquals } from "./assert.ts";

let nextRef = 3_000_000;
const buf = (shape: number[]) => ir.buffer({ id: nextRef++ }, shape, "float32");

Deno.test("topoSort: every node after its sources, each once", () => {
  const x = buf([1]);
  const e = ir.unary("exp", x);
  const y = ir.binary("add", e, ir.binary("mul", e, x));
  const order = topoSort([y]);
  assertEquals(order.length, new Set(order).size);
  assertEquals(order.length, 4);
  for (const n of order) for (const s of n.srcs) assert(order.indexOf(s) < order.indexOf(n));
  assertEquals(order[order.length - 1], y);
});

Deno.test("topoSort: a stop node is included but its sources are not walked", () => {
  const x = buf([2]);
  const behind = ir.unary("exp", x);
  const stop = ir.unary("log", behind);
  const y = ir.binary("add", stop, x);
  const order = topoSort([y], (n) => n === stop);
  assertEquals(order.includes(stop), true);
  assertEquals(order.includes(behind), false);
  // x is still reached through the other operand of y
  assertEquals(order.includes(x), true);
  assertEquals(order.length, 3);
});

Deno.test("topoPlaces: topoSort's order, and each node's place in it", () => {
  const x = buf([3]);
  const stop = ir.unary("log", ir.unary("exp", x));
  const e = ir.unary("neg", x);
  const y = ir.binary("add", ir.binary("mul", e, stop), e);
  const z = ir.binary("sub", y, x);
  const roots = [z, y];
  const { order, places } = topoPlaces(roots, (n) => n === stop);
  assertEquals(order, topoSort(roots, (n) => n === stop));
  assertEquals(places.size, order.length); // every node seen is placed, none left at -1
  order.forEach((n, i) => assertEquals(places.get(n), i));
});

Deno.test("topoSort: a 100,000-op chain does not overflow the call stack", () => {
  let n = buf([1]);
  for (let i = 0; i < 100_000; i++) n = ir.unary("neg", n);
  const order = topoSort([n]);
  assertEquals(order.length, 100_001);
  assertEquals(order[0].op, "buffer");
});

Deno.test("topoSort: walks any vertices with sources; the last root's graph comes first", () => {
  type Vertex = { name: string; srcs: Vertex[]; };
  const leaf: Vertex = { name: "leaf", srcs: [] };
  const a: Vertex = { name: "a", srcs: [leaf] };
  const b: Vertex = { name: "b", srcs: [] };
  assertEquals(topoSort([a, b]).map((v) => v.name), ["b", "leaf", "a"]);
  assertEquals(topoSort([b, a]).map((v) => v.name), ["leaf", "a", "b"]);
});

Deno.test("topoSort: IR nodes stamped on themselves walk as the Map does, nested walks too", () => {
  // IR nodes are marked seen on a field of their own (a Map per walk was a seventh of an
  // optimizer step); a walk started from inside another (its stop predicate) must not disturb
  // the outer walk's marks, and every walk must give topoPlaces' order
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const leaves = [buf([3]), buf([3]), buf([3])];
  const nodes: ir.Node[] = [...leaves];
  const ops = ["add", "mul", "sub"] as const;
  for (let i = 0; i < 60; i++) {
    const a = nodes[Math.floor(random() * nodes.length)];
    const b = nodes[Math.floor(random() * nodes.length)];
    nodes.push(random() < 0.3 ? ir.unary("exp", a) : ir.binary(ops[i % 3], a, b));
  }
  const roots = [nodes[nodes.length - 1], nodes[nodes.length - 7], nodes[20]];
  const boundary = new Set(nodes.filter(() => random() < 0.15));
  const stop = (n: ir.Node) => boundary.has(n);
  assertEquals(topoSort(roots, stop), topoPlaces(roots, stop).order);
  assertEquals(topoSort(roots), topoPlaces(roots).order);
  // a stop predicate that walks (as the realization's bookkeeping may): same orders, inner and
  // outer
  const inner: ir.Node[][] = [];
  const walkingStop = (n: ir.Node) => {
    inner.push(topoSort([n], stop));
    return stop(n);
  };
  assertEquals(topoSort(roots, walkingStop), topoPlaces(roots, stop).order);
  assert(inner.length > 0);
  for (const order of inner) assertEquals(order, topoPlaces([order[order.length - 1]], stop).order);
  // and a walk that threw leaves the next one whole
  let calls = 0;
  try {
    topoSort(roots, () => {
      if (++calls === 5) throw new Error("stop predicate failed");
      return false;
    });
  } catch {
    // expected
  }
  assertEquals(topoSort(roots, stop), topoPlaces(roots, stop).order);
});
