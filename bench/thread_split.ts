// Whether splitting a kernel over threads pays, for rule THREAD_MIN_ELEMENTS (src/runtime/cpu.ts),
// and whether waking the workers on a large upload does (`ThreadPool.prewake`): LocalResponseNorm
// calls in one process, in blocks of calls alternating between two settings (so a slow minute of
// a shared machine slows both alike), reporting each setting's median call and the median ratio
// of the blocks' medians (second / first).
// Run: deno run -A bench/thread_split.ts [shape] [fwd|fb] [hand] [prewake]
//   shape: A, B, C, D (bench/cases.ts) or E = (1, 96, 110, 110); thresholds from
//   LUCID_SPLIT_THRESHOLDS (default "262144,65536"); `hand` runs the hand-written loop before each
//   call, as `deno bench` does (caches cold, workers asleep); `prewake` compares uploads that
//   do not wake the workers with uploads that do, at the first threshold.

import { median } from "./check.ts";
import { cpu, nn, tensor } from "../mod.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { caseData, LRN, SHAPES } from "./cases.ts";
import { handwrittenForward } from "./handwritten.ts";

const shapeName = Deno.args[0] ?? "A";
const shape = shapeName === "E" ? [1, 96, 110, 110] : [...SHAPES[shapeName]];
const backward = Deno.args[1] === "fb";
const hand = Deno.args.includes("hand");
const comparePrewake = Deno.args.includes("prewake");
const thresholds = (Deno.env.get("LUCID_SPLIT_THRESHOLDS") ?? "262144,65536").split(",").map(
  Number,
);
const BLOCKS = 40;
const CALLS_PER_BLOCK = 20;
const WARM_CALLS = 2;

const data = caseData(shape);
const lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
cpu.threads = 2;
await cpuBackend.pool.started();

/** One call as the bench times it: upload, forward (and backward), read back, dispose. */
async function call(): Promise<number> {
  if (hand) handwrittenForward(data.x, shape, LRN);
  const start = performance.now();
  const x = tensor(data.x, { shape, requiresGrad: backward });
  const y = lrn.forward(x);
  if (backward) {
    const g = tensor(data.g, { shape });
    y.backward(g);
    await x.grad!.data();
    x.grad!.dispose();
    g.dispose();
  }
  await y.data();
  x.dispose();
  y.dispose();
  return performance.now() - start;
}

const pool = cpuBackend.pool;
const prewake = pool.prewake;
/** The two settings compared, each applied before its block of calls. */
const settings: { label: string; apply: () => void; }[] = comparePrewake
  ? [false, true].map((wakes) => ({
    label: wakes ? "prewake" : "no prewake",
    apply: () => {
      cpuBackend.threadMinElements = thresholds[0];
      pool.prewake = wakes ? prewake : () => {};
    },
  }))
  : thresholds.map((t) => ({
    label: `threshold ${t}`,
    apply: () => cpuBackend.threadMinElements = t,
  }));
const calls: number[][] = settings.map(() => []);
const ratios: number[] = [];
for (let b = 0; b < BLOCKS; b++) {
  const blockMedians: number[] = [];
  for (let t = 0; t < settings.length; t++) {
    settings[t].apply();
    const times: number[] = [];
    for (let c = 0; c < CALLS_PER_BLOCK; c++) {
      const ms = await call();
      if (c >= WARM_CALLS) times.push(ms);
    }
    calls[t].push(...times);
    blockMedians.push(median(times));
  }
  if (b > 0) ratios.push(blockMedians[1] / blockMedians[0]);
}
const sorted = [...ratios].sort((a, b) => a - b);
console.log(
  `${shapeName} ${backward ? "f+b" : "fwd"}${hand ? " after the hand-written loop" : ""}: ` +
    settings.map((s, i) => `${s.label} ${(median(calls[i]) * 1000).toFixed(0)} us`).join(", ") +
    `; ratio ${median(ratios).toFixed(3)} (quartiles ${sorted[sorted.length >> 2].toFixed(3)}-${
      sorted[(3 * sorted.length) >> 2].toFixed(3)
    })`,
);
