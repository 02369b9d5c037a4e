// The garbage-collection backstop (src/runtime/backstop.ts): it yields a macrotask only once
// enough was allocated or built since the last yield, and with it a loop that drops its tensors
// without dispose() and only awaits data() stays bounded, where before it grew without limit.

import { memory, tensor } from "../mod.ts";
import {
  backstop,
  BACKSTOP_BYTES,
  backstopHostArrayHints,
  backstopLostMessages,
  backstopWaits,
  backstopYields,
  COLLECT_WAIT_BYTES,
  HOST_ARRAY_HINT_ARRAYS,
  HOST_ARRAY_HINT_EVERY,
  noteHostArray,
  YIELD_MESSAGE_TIMEOUT_MS,
  yieldMacrotask,
} from "../src/runtime/backstop.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { assert, assertEquals } from "./assert.ts";

Deno.test("backstop: yields only after enough allocation", async () => {
  await (backstop() ?? Promise.resolve()); // start from a fresh count
  assertEquals(backstop(), undefined, "nothing allocated since: no yield");
  const yields = backstopYields();
  const big = cpuBackend.allocate("float32", BACKSTOP_BYTES / 4 + 1);
  const pending = backstop();
  assert(pending instanceof Promise);
  await pending;
  assertEquals(backstopYields(), yields + 1);
  cpuBackend.release(big);
  await yieldMacrotask(); // resolves (a macrotask later), and leaves no port open
});

Deno.test("backstop: a yield whose message never comes ends by its timer", async () => {
  const real = globalThis.MessageChannel;
  // a channel that loses every message, as Deno once did (the loop test stalled for good)
  class LosingChannel {
    port1 = { onmessage: null as unknown, close() {} };
    port2 = { postMessage(_message: unknown) {}, close() {} };
  }
  globalThis.MessageChannel = LosingChannel as unknown as typeof MessageChannel;
  const lost = backstopLostMessages();
  try {
    const started = performance.now();
    await yieldMacrotask();
    const waited = performance.now() - started;
    assert(waited >= YIELD_MESSAGE_TIMEOUT_MS - 1, `resolved after ${waited} ms, before its timer`);
    assertEquals(backstopLostMessages(), lost + 1);
  } finally {
    globalThis.MessageChannel = real;
  }
  // a real channel delivers, and its timer is cleared (the test would leak it otherwise)
  await yieldMacrotask();
  assertEquals(backstopLostMessages(), lost + 1);
});

Deno.test("backstop: a loop that never disposes and awaits data() stays bounded", async () => {
  const host = new Float32Array(256 * 1024).fill(2); // 1 MB a tensor
  const start = memory().cpu.bytesInUse;
  let peak = 0;
  for (let i = 0; i < 600; i++) {
    const x = tensor(host);
    const y = x.add(1);
    const v = await y.data(); // settled at once on the cpu: only the backstop yields
    assertEquals(v[0], 3);
    peak = Math.max(peak, memory().cpu.bytesInUse - start);
  }
  // 1.2 GB went through the loop (x and y each iteration); without the backstop nothing is
  // ever collected and all of it stays in use. How much stays between collections is the
  // garbage collector's choice: 100 to 350 MB in most runs of the suite here, 465 MB in one
  // run on a loaded machine, so the bound is half the throughput
  assert(peak < 600e6, `peak ${(peak / 1e6).toFixed(0)} MB in use`);
});

Deno.test("backstop: storage kept on purpose costs one bounded wait, then becomes the floor", async () => {
  await (backstop() ?? Promise.resolve());
  const waits = backstopWaits();
  // the wait starts past COLLECT_WAIT_BYTES over the low point, or half the low point if more:
  // what earlier tests left for the collector may raise it, so keep more than both
  const { cpu, webgpu } = memory();
  const kept = cpuBackend.allocate(
    "float32",
    (COLLECT_WAIT_BYTES + (cpu.bytesInUse + webgpu.bytesInUse) / 2) / 4 + 1024 * 1024,
  );
  try {
    const started = performance.now();
    await backstop();
    assertEquals(backstopWaits(), waits + 1, "growth past COLLECT_WAIT_BYTES waits once");
    assert(performance.now() - started < 2000, "the wait gives up: the storage is kept");
    await (backstop() ?? Promise.resolve());
    assertEquals(backstopWaits(), waits + 1, "the kept storage is the new floor: no second wait");
  } finally {
    cpuBackend.release(kept);
  }
});

Deno.test("backstop: reads hint every 4 MB of small arrays, every four arrays of a large one", () => {
  const small = 256 * 1024;
  const large = 9 * 1024 * 1024;
  // start from a fresh count: small arrays until one hints
  const before = backstopHostArrayHints();
  for (let i = 0; i < HOST_ARRAY_HINT_EVERY / small && backstopHostArrayHints() === before; i++) {
    noteHostArray(small);
  }
  assertEquals(backstopHostArrayHints(), before + 1);
  let hints = backstopHostArrayHints();
  for (let i = 1; i <= (2 * HOST_ARRAY_HINT_EVERY) / small; i++) {
    noteHostArray(small);
    assertEquals(backstopHostArrayHints(), hints + Math.floor((i * small) / HOST_ARRAY_HINT_EVERY));
  }
  hints = backstopHostArrayHints();
  for (let i = 1; i <= 2 * HOST_ARRAY_HINT_ARRAYS; i++) {
    noteHostArray(large);
    assertEquals(backstopHostArrayHints(), hints + Math.floor(i / HOST_ARRAY_HINT_ARRAYS), `${i}`);
  }
});
