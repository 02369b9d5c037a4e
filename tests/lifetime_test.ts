// Storage lifetimes (src/runtime/lifetime.ts): a release is idempotent; a held buffer keeps its
// data until the last hold ends and is released then; the reason is reported afterwards; values
// are counted until released.

import { cpuBackend } from "../src/runtime/cpu.ts";
import {
  holdBuffers,
  liveValues,
  releaseBuffer,
  releaseReason,
  trackValue,
} from "../src/runtime/lifetime.ts";
import * as ir from "../src/ir/node.ts";
import { assertEquals, assertStrictEquals } from "./assert.ts";

Deno.test("lifetime: release is idempotent and says why", () => {
  const before = cpuBackend.liveBuffers();
  const b = cpuBackend.upload(Float32Array.from([1, 2]), "float32");
  assertEquals(releaseReason(b), undefined);
  releaseBuffer(b, cpuBackend, "overwritten by assign()");
  releaseBuffer(b, cpuBackend); // a second request does nothing
  assertEquals(releaseReason(b), "overwritten by assign()");
  assertEquals(cpuBackend.liveBuffers(), before);
});

Deno.test("lifetime: a held buffer keeps its data and is released when the last hold ends", () => {
  const b = cpuBackend.upload(Float32Array.from([5, 6, 7]), "float32");
  const storage = b.block.offset;
  const first = holdBuffers([b]);
  const second = holdBuffers([b, b]); // one hold however often listed
  releaseBuffer(b, cpuBackend);
  assertEquals(releaseReason(b), undefined, "still held: not released yet");
  // nothing can take the storage meanwhile
  const other = cpuBackend.allocate("float32", 3);
  assertEquals(other.block.offset === storage, false);
  assertEquals(Array.from(cpuBackend.readSync(b)), [5, 6, 7]);
  first();
  first(); // ending a hold twice does nothing
  assertEquals(releaseReason(b), undefined);
  second();
  assertEquals(releaseReason(b), "disposed");
  // now the pool hands the storage out again, under a new handle
  const next = cpuBackend.allocate("float32", 3);
  assertStrictEquals(next.block.offset, storage);
  cpuBackend.release(next);
  cpuBackend.release(other);
});

Deno.test("lifetime: values are counted until released", () => {
  const before = liveValues("cpu");
  const b = cpuBackend.upload(Float32Array.from([1]), "float32");
  const node = ir.buffer(b, [1], "float32");
  trackValue(node, b);
  trackValue(node, b); // counted once
  assertEquals(liveValues("cpu"), before + 1);
  releaseBuffer(b, cpuBackend);
  assertEquals(liveValues("cpu"), before);
});

Deno.test("lifetime: onRelease runs as the storage goes back, for every request, never before", () => {
  const calls: string[] = [];
  const note = (what: string) => () => void calls.push(`${what}, released: ${releaseReason(b)}`);
  const b = cpuBackend.upload(Float32Array.from([1, 2]), "float32");
  const unhold = holdBuffers([b]);
  releaseBuffer(b, cpuBackend, "disposed", note("first"));
  releaseBuffer(b, cpuBackend, "disposed", note("second")); // requested again while held
  assertEquals(calls, [], "held: nothing yet");
  unhold();
  // each is told just before the storage goes back
  assertEquals(calls, ["first, released: undefined", "second, released: undefined"]);
  assertEquals(releaseReason(b), "disposed");
  releaseBuffer(b, cpuBackend, "disposed", note("late")); // back already: told at once
  assertEquals(calls.at(-1), "late, released: disposed");
  const free = cpuBackend.upload(Float32Array.from([3]), "float32");
  releaseBuffer(free, cpuBackend, "disposed", () => calls.push("unheld"));
  assertEquals(calls.at(-1), "unheld", "not held: at once");
});
