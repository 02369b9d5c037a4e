// Issue 12's targets, read from every full run in bench/history.jsonl: a verdict is only as good
// as the spread of the runs behind it, so this prints each target in every run and its range,
// instead of one run's figure. Peer quotients are of paired ratios (bench/check.ts's peer table),
// times are our rows' medians. Issue 12's form is the peers as they ship against ours as it ships
// (our default, every core); onnxruntime-web and TensorFlow.js wasm run one thread here, so each
// of their targets is also printed thread for thread, against our 1-thread row.
//
//   deno run --allow-read bench/probes/targets.ts [since]     since: an ISO date, default all

import { type HistoryEntry, median, parseHistory, rowKey } from "../check.ts";

const since = Deno.args[0] ?? "";
const history = parseHistory(
  await Deno.readTextFile(new URL("../history.jsonl", import.meta.url)),
).filter((h) => h.date >= since && Object.keys(h.ratios).length > 50); // full runs only

const OURS = "@lucid/nn fused, wasm, 2 threads";
const OURS_1 = "@lucid/nn fused, wasm, 1 thread";
const JAX = "jax-js 0.1.25 wasm (2 workers)";
const ORT = "onnxruntime-web 1.30.0 wasm, 1 thread";
const TFJS = "tfjs 4.22.0 wasm (1 thread)";

/** Peer time over ours in `group`, of their paired ratios. */
function lead(h: HistoryEntry, group: string, peer: string, ours = OURS): number | undefined {
  const p = h.ratios[rowKey(group, peer)];
  const o = h.ratios[rowKey(group, ours)];
  return p === undefined || o === undefined ? undefined : p / o;
}

/** Our median in ms. */
function ms(h: HistoryEntry, group: string, row = OURS): number | undefined {
  return h.medianMs[rowKey(group, row)];
}

interface Target {
  readonly name: string;
  readonly value: (h: HistoryEntry) => number | undefined;
  /** Whether a value meets the target; none for a figure shown beside the targets. */
  readonly met?: (v: number) => boolean;
}

const targets: Target[] = [
  ...["A fwd", "A f+b", "B fwd", "B f+b", "C fwd", "C f+b"].map((g) => ({
    name: `${g}: jax-js / ours >= 2`,
    value: (h: HistoryEntry) => lead(h, g, JAX),
    met: (v: number) => v >= 2,
  })),
  ...["A fwd", "B fwd", "C fwd"].flatMap((g) => [{
    name: `${g}: onnxruntime-web / ours >= 5`,
    value: (h: HistoryEntry) => lead(h, g, ORT),
    met: (v: number) => v >= 5,
  }, {
    name: `${g}: onnxruntime-web / ours on 1 thread >= 5 (thread for thread)`,
    value: (h: HistoryEntry) => lead(h, g, ORT, OURS_1),
    met: (v: number) => v >= 5,
  }]),
  ...["A fwd", "A f+b", "B fwd", "B f+b", "C fwd", "C f+b"].flatMap((g) => [{
    name: `${g}: tfjs-wasm / ours >= 5`,
    value: (h: HistoryEntry) => lead(h, g, TFJS),
    met: (v: number) => v >= 5,
  }, {
    name: `${g}: tfjs-wasm / ours on 1 thread >= 5 (thread for thread)`,
    value: (h: HistoryEntry) => lead(h, g, TFJS, OURS_1),
    met: (v: number) => v >= 5,
  }]),
  {
    name: "D fwd: onnxruntime-web / ours > 1",
    value: (h) => lead(h, "D fwd", ORT),
    met: (v) => v > 1,
  },
  { name: "B fwd <= 3.5 ms", value: (h) => ms(h, "B fwd"), met: (v) => v <= 3.5 },
  { name: "B f+b <= 8 ms", value: (h) => ms(h, "B f+b"), met: (v) => v <= 8 },
  {
    name: "T fwd (cached tiny call) < 0.030 ms",
    value: (h) => ms(h, "T fwd"),
    met: (v) => v < 0.03,
  },
  {
    name: "first call A fwd, fresh process < 20 ms",
    value: (h) =>
      Object.entries(h.medianMs).find(([k]) =>
        k.startsWith("first call") && k.endsWith("cpu (wasm), fresh process")
      )?.[1],
    met: (v) => v < 20,
  },
  {
    name: "(not a target) import and first call A fwd, fresh process",
    value: (h) =>
      Object.entries(h.medianMs).find(([k]) =>
        k.startsWith("first call") && k.endsWith("fresh process, import and first call")
      )?.[1],
  },
  { name: "stretch: B fwd <= 1.4 ms", value: (h) => ms(h, "B fwd"), met: (v) => v <= 1.4 },
];

const fmt = (v: number | undefined) => v === undefined || !isFinite(v) ? "—" : v.toPrecision(3);
console.log(`${history.length} full runs${since ? ` since ${since}` : ""}:`);
for (const h of history) {
  const load = h.machine.loadAverage === undefined ? "" : `, load ${h.machine.loadAverage}`;
  console.log(`  ${h.date} ${h.commit} (${h.machine.cpu}${load})`);
}
console.log(
  "\n| target | min | median | max | runs meeting it | latest |\n|---|--:|--:|--:|--:|--:|",
);
for (const t of targets) {
  const values = history.map(t.value).filter((v): v is number => v !== undefined && isFinite(v));
  if (values.length === 0) continue;
  const sorted = [...values].sort((a, b) => a - b);
  const met = t.met === undefined ? "—" : `${values.filter(t.met).length} of ${values.length}`;
  console.log(
    `| ${t.name} | ${fmt(sorted[0])} | ${fmt(median(values))} | ${
      fmt(sorted[sorted.length - 1])
    } | ${met} | ${fmt(values[values.length - 1])} |`,
  );
}
