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
// Growth past COLLECT_WAIT_BYTES over the lowest point waits for a collection (timers until
// storage falls), and reads tell V8 about the host arrays they hand out (`noteHostArray`).

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
let waits = 0;
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

/**
 * How long a yield waits for its message before a timer ends it. Deno once lost the message: a
 * full test run stalled for good in a loop of yields (1 run in 16, the event loop idle with no
 * timer pending), so a lost message must cost a little time, never the program.
 */
export const YIELD_MESSAGE_TIMEOUT_MS = 50;
let lostMessages = 0;

/** @internal How many yields ended by their timer because the message never came. */
export function backstopLostMessages(): number {
  return lostMessages;
}

/** One macrotask: lets the microtask queue drain, then runs pending tasks (finalizers). */
export function yieldMacrotask(): Promise<void> {
  if (typeof MessageChannel !== "function") return yieldTimer();
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    const done = () => {
      clearTimeout(timer);
      port1.close();
      port2.close();
      resolve();
    };
    const timer = setTimeout(() => {
      lostMessages++;
      done();
    }, YIELD_MESSAGE_TIMEOUT_MS);
    port1.onmessage = done;
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
  low = Math.min(low, inUse);
  if (inUse - low > Math.max(COLLECT_WAIT_BYTES, low / 2)) return waitForCollection(inUse);
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

/** Bytes of host arrays handed out by reads between two pressure hints (see `noteHostArray`). */
export const HOST_ARRAY_HINT_EVERY = 4 * 1024 * 1024;
/**
 * For large arrays, a hint every this many arrays of the size just read instead. Each hint costs
 * a full collection (1.4 ms in a small heap, more in a large one): with every 4 MB, LRN forward
 * + backward on (8, 96, 55, 55), reading two 9.3 MB arrays a call, collected twice a call, 2.5
 * of its 14-17 ms; with every four arrays, once every two calls. Small arrays keep the 4 MB.
 */
export const HOST_ARRAY_HINT_ARRAYS = 4;
/**
 * The hint's size: above glibc's largest dynamic mmap threshold (32 MiB), so the allocation is
 * a fresh mapping whose zero pages are never touched, never resident memory.
 */
const HOST_ARRAY_HINT_BYTES = 64 * 1024 * 1024;
let hostBytes = 0;

/**
 * Counts an array a read handed to the caller. V8 collects dead ArrayBuffers only when the
 * bytes it knows of grow about 64 MB past the last collection, so a loop that reads values and
 * drops them (`await y.data()`) piles up 75-120 MB of dead arrays, all resident (a plain
 * JavaScript loop of the same allocations, no library involved, peaked 158 MB above its start).
 * After every 4 MB read, an untouched 64 MB ArrayBuffer tells V8 to collect soon. Measured on
 * 3,000 LRN forward + backward steps on (2, 96, 27, 27) reading y and dx: peak resident 239 MB
 * without hints, 173 MB with one per 16 MB, 132 MB per 4 MB, median step time unchanged
 * (1.14, 1.15, 1.11 ms: collections of a small heap are short).
 */
export function noteHostArray(bytes: number): void {
  if (!enabled) return;
  hostBytes += bytes;
  if (hostBytes < Math.max(HOST_ARRAY_HINT_EVERY, HOST_ARRAY_HINT_ARRAYS * bytes)) return;
  hostBytes = 0;
  hostArrayHints++;
  void new ArrayBuffer(HOST_ARRAY_HINT_BYTES);
}

let hostArrayHints = 0;

/** @internal How many pressure hints reads have given (see `noteHostArray`). */
export function backstopHostArrayHints(): number {
  return hostArrayHints;
}

/**
 * Growth of storage in use over its lowest point (or half that point, if more) past which the
 * backstop waits for a collection. Yields alone let a loop that drops its tensors run ahead of
 * the collector: over 2,000 LRN steps that dispose nothing, 95-240 MB of dropped storage piled
 * up (from one run to the next, as V8's incremental marking happened to finish); waiting here
 * kept it at 64-100 MB, the median step time unchanged.
 */
export const COLLECT_WAIT_BYTES = 32 * 1024 * 1024;
/** At most this many timer yields per wait (about 2 ms each). */
const COLLECT_WAIT_TIMERS = 20;
/**
 * The hint again after this many timers of a wait. One hint's collection sometimes frees too
 * little (finalizers that release storage run after it): the wait then ran out and its growth
 * became the new low, and a loop that never disposes grew past 150 MB in 1 run of 5 (max live
 * buffers 200-285). Hinting again, waits stopped running out (0 of ~900 over 8 runs of 5,000
 * iterations) and the loop grew 80-86 MB in every run.
 */
const COLLECT_REHINT_TIMERS = 5;

/** The lowest storage in use seen since the last wait. */
let low = 0;

/**
 * Tells the collector, then yields timers until half the growth over `low` is freed, or until
 * COLLECT_WAIT_TIMERS passed: the growth was then kept on purpose, and becomes the new low.
 */
async function waitForCollection(inUse: number): Promise<void> {
  void new ArrayBuffer(MAX_PRESSURE_BYTES);
  const target = inUse - (inUse - low) / 2;
  for (let i = 0; i < COLLECT_WAIT_TIMERS && bytesInUse() > target; i++) {
    if (i % COLLECT_REHINT_TIMERS === COLLECT_REHINT_TIMERS - 1) {
      void new ArrayBuffer(MAX_PRESSURE_BYTES);
    }
    await yieldTimer();
  }
  low = bytesInUse();
  baseline = timerBaseline = low;
  waits++;
}

/** How many times the backstop yielded. */
export function backstopYields(): number {
  return yields;
}

/** How many times the backstop waited for a collection (see COLLECT_WAIT_BYTES). */
export function backstopWaits(): number {
  return waits;
}
