// The garbage-collection backstop. Storage of a tensor that is dropped without dispose() goes
// back to its pool when its node is garbage collected (lifetime.ts), but in V8 that needs a
// macrotask twice over: WeakRef targets (every hash-consed node has one) stay alive until the
// microtask queue drains, and FinalizationRegistry callbacks run as tasks of their own. A loop
// that only awaits already-settled promises (`await y.data()` on the cpu) never gives up the
// macrotask, so without help nothing it drops is ever freed.
//
// So the asynchronous reads yield one macrotask when enough has been allocated, or enough graph
// made, since the last yield. A MessageChannel round trip takes ~15 us (setTimeout(0) is
// clamped to ~2 ms); a fresh channel per yield, closed at once, so no port keeps the process
// alive (a persistent port does, even unref'd, in Deno 2.9). The thresholds are small on
// purpose: whatever was made since the last yield cannot be collected, so they bound the
// garbage each collection leaves behind. LRN forward + backward on (2, 96, 27, 27) yields every
// second iteration (a 0.2% cost, bench/backstop_bench.ts); with 32 MB instead of 4 MB, the
// resident set of that loop peaked about 30 MB higher (scripts/memory_loops.ts).

import { nodesMade } from "../ir/node.ts";
import { cpuBackend } from "./cpu.ts";
import { webgpuBackend } from "./webgpu.ts";

/** Bytes allocated on all devices (pool reuse included) between two yields. */
export const BACKSTOP_BYTES = 4 * 1024 * 1024;
/**
 * IR nodes made between two yields: graph objects are garbage to collect too, and those kept
 * alive past a young-generation collection only go at the next full one.
 */
export const BACKSTOP_NODES = 1_000;

let bytesAtYield = 0;
let nodesAtYield = 0;
let yields = 0;
let enabled = true;

/** @internal Turns the backstop off or on (for measuring what it costs; never off in use). */
export function setBackstop(on: boolean): void {
  enabled = on;
}

function bytesAllocated(): number {
  return cpuBackend.storageStats().bytesAllocated + webgpuBackend().storageStats().bytesAllocated;
}

/** One macrotask: lets the microtask queue drain, then runs pending tasks (finalizers). */
export function yieldMacrotask(): Promise<void> {
  if (typeof MessageChannel !== "function") {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

/** Yields a macrotask if enough was allocated or built since the last yield; else nothing. */
export function backstop(): Promise<void> | undefined {
  if (!enabled) return undefined;
  const bytes = bytesAllocated();
  const nodes = nodesMade();
  if (bytes - bytesAtYield < BACKSTOP_BYTES && nodes - nodesAtYield < BACKSTOP_NODES) {
    return undefined;
  }
  bytesAtYield = bytes;
  nodesAtYield = nodes;
  yields++;
  return yieldMacrotask();
}

/** How many times the backstop has yielded (for measuring its cost). */
export function backstopYields(): number {
  return yields;
}
