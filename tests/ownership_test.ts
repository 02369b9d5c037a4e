// Ownership on the Tensor side (src/ownership.ts): handles counted per node, storage freed with
// the last handle, what freeing does to buffer, settled and recomputable nodes, and the order of
// tidy scopes.

import { tensor } from "../mod.ts";
import {
  acquireHandle,
  freeValue,
  handleCount,
  openScope,
  releaseHandle,
} from "../src/ownership.ts";
import * as ir from "../src/ir/node.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { releaseReason } from "../src/runtime/lifetime.ts";
import { realizedBuffer } from "../src/runtime/realize.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

Deno.test("ownership: one count per handle; the last release says so", () => {
  const node = ir.constant(1, [2], "float32");
  const base = handleCount(node);
  acquireHandle(node);
  acquireHandle(node);
  assertEquals(handleCount(node), base + 2);
  assertEquals(releaseHandle(node), base + 1 === 0);
  assertEquals(releaseHandle(node), base === 0);
});

Deno.test("ownership: twins share a count; storage goes with the last of them", async () => {
  const x = tensor([1, 2]);
  const a = x.exp();
  const b = x.exp(); // the same node
  assert(a.node === b.node);
  await a.realize();
  const buffer = realizedBuffer(a.node, "cpu")!;
  a.dispose();
  assert(b.isRealized, "b still holds the value");
  assertEquals(releaseReason(buffer), undefined);
  b.dispose();
  assertEquals(releaseReason(buffer), "disposed");
});

Deno.test("ownership: freeing a recomputable node forgets it; a buffer node keeps its reason", async () => {
  const x = tensor([1, 2]);
  const y = x.add(1);
  await y.realize();
  freeValue(y.node, cpuBackend, "disposed");
  assertEquals(realizedBuffer(y.node, "cpu"), undefined, "forgotten: graphs recompute it");
  assertEquals(Array.from(await y.add(0).data()), [2, 3]);
  const data = tensor([4]);
  const buffer = realizedBuffer(data.node, "cpu")!;
  freeValue(data.node, cpuBackend, "disposed");
  assert(realizedBuffer(data.node, "cpu") === buffer, "a buffer node keeps its released buffer");
  assertEquals(releaseReason(buffer), "disposed");
});

Deno.test("ownership: scopes close innermost first", () => {
  const closeOuter = openScope();
  const closeInner = openScope();
  assertThrows(() => closeOuter(new Set()), Error, "scopes must close in the order they opened");
  closeInner(new Set());
  closeOuter(new Set());
});
