// The memory check of the loops people write (run by .ci/run): LocalResponseNorm forward and
// backward on (2, 96, 27, 27), many iterations, in each style of freeing:
//   none     nothing freed by hand, `await data()` each iteration (the GC backstop's job)
//   using    `using` declarations
//   dispose  explicit dispose() calls
//   tidy     tidy() around the graph, dispose() of what it returned
// Each (device, style) runs in a fresh process, counted from the end of its first iteration
// (which compiles the kernels, and after which the cpu's worker threads start). A leak must
// show in what the process keeps once garbage is collected (a full collection, then its
// finalizers), which does not depend on the collector's timing:
//   - the live buffers of the device: at most 4 after the loop (the upstream gradient, one
//     being read): a buffer kept an iteration would be thousands;
//   - V8's heap in use: at most 8 MB more after the loop than after the first iteration (a
//     kilobyte kept an iteration is 5 MB in 5,000);
//   - the host memory of V8's ArrayBuffers (the arrays `data()` returns, kept by mistake): at
//     most 8 MB more, likewise (they live outside the heap: a loop keeping 40 KB of them an
//     iteration passed the heap check).
// The resident set is bounded too, loosely: on cpu it may grow by at most 250 MB over the loop.
// Its growth before the garbage is collected is dead storage and arrays waiting for the
// collector and what glibc keeps after freeing, so it depends on the collector's timing (78-167
// MB in ten runs of one build) and creeps for thousands of iterations before it levels off; a
// loop past that limit runs again, and only a second time counts. On webgpu the live buffers
// must also stay bounded during the loop (the device's memory is not in the resident set).
// Also printed: the growth from before the first iteration, time per iteration (median of the
// last half) and the backstop's yields, for reading, not for checking.
//
//   deno run --allow-read --allow-env --allow-run scripts/memory_loops.ts [iterations] [devices]
//   e.g. scripts/memory_loops.ts 5000 cpu,webgpu

import { memory, nn, type Tensor, tensor, tidy, webgpu } from "../mod.ts";
import { backstopYields } from "../src/runtime/backstop.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { runChildJson } from "./child_json.ts";

const STYLES = ["none", "using", "dispose", "tidy"] as const;
type Style = (typeof STYLES)[number];
const SHAPE = [2, 96, 27, 27];
/** Allowed growth of the resident set on cpu over a loop. */
const RSS_LIMIT_MB = 250;
/** Allowed growth of V8's heap in use over a loop, both measured after a full collection. */
const HEAP_LIMIT_MB = 8;
/** Allowed growth of V8's ArrayBuffer memory over a loop, both after a full collection. */
const EXTERNAL_LIMIT_MB = 8;
/** Allowed live buffers after the loop, once garbage is collected. */
const RETAINED_BUFFER_LIMIT = 4;
/** Allowed live webgpu buffers at any sample (one iteration needs about 6). */
const WEBGPU_BUFFER_LIMIT = 256;

interface Result {
  device: string;
  style: Style;
  iterations: number;
  rssGrowthMB: number;
  rssGrowthFromStartMB: number;
  heapGrowthMB: number;
  externalGrowthMB: number;
  retainedBuffers: number;
  maxLiveBuffers: number;
  medianMs: number;
  yields: number;
}

async function child(device: "cpu" | "webgpu", style: Style, iterations: number): Promise<Result> {
  const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
  const n = SHAPE.reduce((a, b) => a * b, 1);
  const host = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
  const upstream = tensor(Float32Array.from({ length: n }, (_, i) => Math.cos(i)), {
    shape: SHAPE,
    device,
  });
  const input = () => tensor(host, { shape: SHAPE, device, requiresGrad: true });
  const iteration: Record<Style, () => Promise<void>> = {
    none: async () => {
      const x = input();
      const y = lrn.forward(x);
      y.backward(upstream);
      await y.data();
      await x.grad!.data();
    },
    using: async () => {
      using x = input();
      using y = lrn.forward(x);
      y.backward(upstream);
      using gx = x.grad!;
      await y.data();
      await gx.data();
    },
    dispose: async () => {
      const x = input();
      const y = lrn.forward(x);
      y.backward(upstream);
      const gx = x.grad!;
      await y.data();
      await gx.data();
      y.dispose();
      gx.dispose();
      x.dispose();
    },
    tidy: async () => {
      const [y, gx] = tidy(() => {
        const x = input();
        const out = lrn.forward(x);
        out.backward(upstream);
        return [out, x.grad!] as Tensor[];
      });
      await y.data();
      await gx.data();
      y.dispose();
      gx.dispose();
    },
  };
  const gc = (globalThis as { gc?: () => void; }).gc;
  if (gc === undefined) throw new Error("memory_loops: run with --v8-flags=--expose-gc");
  /**
   * V8's heap in use and the host memory of its ArrayBuffers (the arrays data() returns), once
   * garbage is collected (a full collection, then its finalizers).
   */
  const collected = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const usage = Deno.memoryUsage();
    return { heap: usage.heapUsed, external: usage.external };
  };
  const live = () => device === "webgpu" ? webgpu.liveBuffers() : memory().cpu.liveBuffers;
  const rssStart = Deno.memoryUsage().rss;
  let rss0 = rssStart;
  let maxRss = rss0;
  let maxLive = 0;
  let kept0 = { heap: 0, external: 0 };
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await iteration[style]();
    times.push(performance.now() - t0);
    if (i === 0) {
      // the worker threads of the cpu's Wasm kernels start after the first large kernel, if
      // any: a fixed cost (a Deno isolate each), not growth, so they start before the count
      await cpuBackend.pool.settled();
      kept0 = await collected();
      rss0 = maxRss = Deno.memoryUsage().rss;
    }
    if (i % 25 === 0 || i === iterations - 1) {
      maxRss = Math.max(maxRss, Deno.memoryUsage().rss);
      maxLive = Math.max(maxLive, live());
    }
  }
  const kept = await collected();
  const heapGrowthMB = (kept.heap - kept0.heap) / 1e6;
  const externalGrowthMB = (kept.external - kept0.external) / 1e6;
  const tail = times.slice(Math.floor(times.length / 2)).sort((a, b) => a - b);
  return {
    device,
    style,
    iterations,
    rssGrowthMB: (maxRss - rss0) / 1e6,
    rssGrowthFromStartMB: (maxRss - rssStart) / 1e6,
    heapGrowthMB,
    externalGrowthMB,
    retainedBuffers: live(),
    maxLiveBuffers: maxLive,
    medianMs: tail[Math.floor(tail.length / 2)],
    yields: backstopYields(),
  };
}

async function main(): Promise<void> {
  const [iterationsArg, devicesArg, styleArg] = Deno.args;
  const iterations = Number(iterationsArg ?? 5000);
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new Error(`memory_loops: iterations must be a positive integer, got ${iterationsArg}`);
  }
  if (styleArg !== undefined) {
    // a child: one loop, its result as JSON on the last line
    const result = await child(devicesArg as "cpu" | "webgpu", styleArg as Style, iterations);
    console.log(JSON.stringify(result));
    return;
  }
  const devices = (devicesArg ?? "cpu,webgpu").split(",");
  let failed = false;
  console.log(`LRN (2, 96, 27, 27) forward + backward, ${iterations} iterations per loop`);
  console.log(
    "device  style    rss growth (from start)  heap kept  arrays kept  max live buffers (kept)  ms/iter (median)  backstop yields",
  );
  for (const device of devices) {
    for (const style of STYLES) {
      const run = () =>
        runChildJson<Result>(
          [
            "run",
            "--allow-read",
            "--allow-env",
            "--v8-flags=--expose-gc",
            import.meta.filename!,
            String(iterations),
            device,
            style,
          ],
          `${device} ${style}`,
        );
      let r = await run();
      let grewOnce = "";
      if (r !== null && device === "cpu" && r.rssGrowthMB > RSS_LIMIT_MB) {
        // the growth between collections is the collector's choice and has its outliers
        // (README, Memory): a loop past the limit runs again, and only a second time counts
        grewOnce = `  (${r.rssGrowthMB.toFixed(0)} MB in a first run)`;
        r = await run();
      }
      if (r === null) {
        failed = true;
        continue;
      }
      const problems: string[] = [];
      if (device === "cpu" && r.rssGrowthMB > RSS_LIMIT_MB) {
        problems.push(`resident set grew by more than ${RSS_LIMIT_MB} MB`);
      }
      if (r.heapGrowthMB > HEAP_LIMIT_MB) {
        problems.push(
          `V8's heap kept ${r.heapGrowthMB.toFixed(1)} MB more (limit ${HEAP_LIMIT_MB})`,
        );
      }
      if (r.externalGrowthMB > EXTERNAL_LIMIT_MB) {
        problems.push(
          `ArrayBuffers kept ${r.externalGrowthMB.toFixed(1)} MB more (limit ${EXTERNAL_LIMIT_MB})`,
        );
      }
      if (r.retainedBuffers > RETAINED_BUFFER_LIMIT) {
        problems.push(
          `${r.retainedBuffers} buffers live after collection (limit ${RETAINED_BUFFER_LIMIT})`,
        );
      }
      if (device === "webgpu" && r.maxLiveBuffers > WEBGPU_BUFFER_LIMIT) {
        problems.push(`more than ${WEBGPU_BUFFER_LIMIT} live buffers`);
      }
      failed ||= problems.length > 0;
      console.log(
        `${device.padEnd(7)} ${style.padEnd(8)} ${r.rssGrowthMB.toFixed(0).padStart(7)} MB` +
          ` (${r.rssGrowthFromStartMB.toFixed(0).padStart(4)} MB)   ` +
          `${r.heapGrowthMB.toFixed(1).padStart(6)} MB` +
          `${r.externalGrowthMB.toFixed(1).padStart(9)} MB` +
          `  ${String(r.maxLiveBuffers).padStart(16)} (${r.retainedBuffers})  ${
            r.medianMs.toFixed(2).padStart(16)
          }` +
          `  ${String(r.yields).padStart(15)}${grewOnce}${
            problems.length ? "  FAILED: " + problems.join("; ") : ""
          }`,
      );
    }
  }
  if (failed) Deno.exit(1);
}

await main();
