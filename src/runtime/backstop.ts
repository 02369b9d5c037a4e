// The garbage-collection backstop. Storage of a tensor that is dropped without dispose() goes
// back to its pool when its node is garbage collected (lifetime.ts), but in V8 that needs a
// macrotask twice over: WeakRef targets (every hash-consed node has one) stay alive until the
// microtask queue drains, and FinalizationRegistry callbacks run as tasks of their own. A loop
// that only awaits already-settled promises (`await y.data()` on the cpu) never gives up the
// macrotask, so without help nothing it drops is ever freed.
//
// So the asynchronous reads yield one macrotask when storage in use has grown enough, or
// enough graph was made, since the last yield. A MessageChannel round trip takes ~15-45 us
// (setTimeout(0) takes ~2.2 ms); a fresh channel per yield, closed at once, so no port keeps
// the process alive (a persistent port does, even unref'd, in Deno 2.9). The thresholds are
// small on purpose: whatever was made since the last yield cannot be collected, so they bound
// the garbage each collection leaves behind; a loop that disposes keeps its storage flat and
// never yields for it. With worker threads alive (cpu.threads > 1, threads.ts) Deno runs
// finalizers only in its timer phase, so growth past BACKSTOP_TIMER_BYTES waits for a timer.

import { nodesMade } from "../ir/node.ts";
import { cpuBackend } from "./cpu.ts";
import { webgpuBackend } from "./webgpu.ts";

/** Growth of storage in use on all devices between two yields. */
export const BACKSTOP_BYTES = 4 * 1024 * 1024;
/**
 * IR nodes made between two yields: graph objects are garbage to collect too, and those kept
 * alive past a young-generation collection only go at the next full one.
 */
export const BACKSTOP_NODES = 1_000;

/** The largest hint of memory pressure given at once (see `backstop`). */
const MAX_PRESSURE_BYTES = 256 * 1024 * 1024;

let baseline = 0;
let timerBaseline = 0;
let nodesAtTimer = 0;
let nodesAtYield = 0;
let yields = 0;
let enabled = true;

/** @internal Turns the backstop off or on (for measuring what it costs; never off in use). */
export function setBackstop(on: boolean): void {
  enabled = on;
}

/** Bytes of storage in use on all devices (released storage not counted). */
function bytesInUse(): number {
  return cpuBackend.storageStats().bytesInUse + webgpuBackend().storageStats().bytesInUse;
}

/**
 * Bytes storage in use may grow between two timer yields while worker threads are alive. Deno
 * then runs finalizers only in its timer phase, which a message does not reach: measured, 400
 * dropped 1 MB tensors left 820 MB in use with message yields alone, 300 MB with a timer every
 * 32 MB. A timer costs about 2.2 ms, so it is kept for growth, never for a loop that disposes.
 */
export const BACKSTOP_TIMER_BYTES = 8 * 1024 * 1024;

/** IR nodes made between two timer yields while worker threads are alive (see above). */
export const BACKSTOP_TIMER_NODES = 16_000;

/** A zero-delay timer: slower than a message, but Deno runs finalizers in its timer phase. */
function yieldTimer(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
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

/**
 * Yields a macrotask if storage in use grew enough, or enough graph was built, since the last
 * yield; else nothing. Growth, not allocation: a loop that disposes what it makes keeps its
 * storage flat and is never slowed.
 */
export function backstop(): Promise<void> | undefined {
  if (!enabled) return undefined;
  const inUse = bytesInUse();
  const nodes = nodesMade();
  baseline = Math.min(baseline, inUse);
  timerBaseline = Math.min(timerBaseline, inUse);
  if (inUse - baseline < BACKSTOP_BYTES && nodes - nodesAtYield < BACKSTOP_NODES) {
    return undefined;
  }
  // cpu storage lives in one WebAssembly.Memory, which the garbage collector does not see: it
  // collects when its own heap or the ArrayBuffers it knows of grow. A never-touched
  // ArrayBuffer as large as the growth since the last yield (zero pages the system does not
  // commit: no resident memory) tells it as much, as a tensor's own ArrayBuffer did when each
  // had one.
  if (inUse > baseline) void new ArrayBuffer(Math.min(8 * (inUse - baseline), MAX_PRESSURE_BYTES));
  baseline = inUse;
  nodesAtYield = nodes;
  yields++;
  const timerDue = inUse - timerBaseline >= BACKSTOP_TIMER_BYTES ||
    nodes - nodesAtTimer >= BACKSTOP_TIMER_NODES;
  if (timerDue && cpuBackend.pool.ready > 1) {
    timerBaseline = inUse;
    nodesAtTimer = nodes;
    return yieldTimer();
  }
  return yieldMacrotask();
}

export function backstopYields(): number {
  return yields;
}
