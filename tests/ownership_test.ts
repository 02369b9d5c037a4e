// Ownership on the Tensor side (src/ownership.ts): handles counted per node, storage freed with
// the last handle, what freeing does to buffer, settled and recomputable nodes, and the order of
// tidy scopes.

import { grad, memory, realize, tensor } from "../mod.ts";
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
import { assert, assertEquals, assertStrictEquals, assertThrows } from "./assert.ts";
import { webgpuAvailable } from "./helpers.ts";
import { nodeOf } from "../src/tensor.ts";

Deno.test("ownership: one count per handle; the last release says so", () => {
  const node = ir.constant(1, [2], "float32");
  const base = handleCount(node);
  acquireHandle(node, "cpu");
  acquireHandle(node, "cpu");
  assertEquals(handleCount(node), base + 2);
  assertEquals(releaseHandle(node, "cpu"), base + 1 === 0);
  assertEquals(releaseHandle(node, "cpu"), base === 0);
});

Deno.test("ownership: handles are counted per device; each device's last frees its value", async () => {
  const node = ir.constant(1, [2], "float32");
  acquireHandle(node, "cpu");
  acquireHandle(node, "webgpu");
  assertEquals(handleCount(node), 2);
  assertEquals(releaseHandle(node, "cpu"), true, "the cpu's last, the webgpu's still there");
  assertEquals(releaseHandle(node, "webgpu"), true);
  if (!webgpuAvailable) return;
  // a node of constants only (a sum's gradient) is one node on both devices: disposing the cpu
  // tensor freed nothing while the webgpu one lived, and the last dispose only its own value
  const sumGrad = grad((v) => v.sum());
  const [onCpu] = sumGrad(tensor([1, 2, 3, 4]));
  const [onGpu] = sumGrad(tensor([5, 6, 7, 8], { device: "webgpu" }));
  assertStrictEquals(nodeOf(onCpu), nodeOf(onGpu));
  await realize(onCpu, onGpu);
  const live = () => [memory().cpu.liveBuffers, memory().webgpu.liveBuffers];
  const [cpu, webgpu] = live();
  onCpu.dispose();
  assertEquals(live(), [cpu - 1, webgpu]);
  assertEquals(Array.from(await onGpu.data()), [1, 1, 1, 1]);
  onGpu.dispose();
  assertEquals(live(), [cpu - 1, webgpu - 1]);
});

Deno.test("ownership: twins share a count; storage goes with the last of them", async () => {
  const x = tensor([1, 2]);
  const a = x.exp();
  const b = x.exp(); // the same node
  assert(nodeOf(a) === nodeOf(b));
  await a.realize();
  const buffer = realizedBuffer(nodeOf(a), "cpu")!;
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
  freeValue(nodeOf(y), cpuBackend, "disposed");
  assertEquals(realizedBuffer(nodeOf(y), "cpu"), undefined, "forgotten: graphs recompute it");
  assertEquals(Array.from(await y.add(0).data()), [2, 3]);
  const data = tensor([4]);
  const buffer = realizedBuffer(nodeOf(data), "cpu")!;
  freeValue(nodeOf(data), cpuBackend, "disposed");
  assert(realizedBuffer(nodeOf(data), "cpu") === buffer, "a buffer node keeps its released buffer");
  assertEquals(releaseReason(buffer), "disposed");
});

Deno.test("ownership: scopes close innermost first", () => {
  const closeOuter = openScope();
  const closeInner = openScope();
  assertThrows(() => closeOuter(new Set()), Error, "scopes must close in the order they opened");
  closeInner(new Set());
  closeOuter(new Set());
});
