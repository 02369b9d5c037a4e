// Where the time of the bench's LocalResponseNorm call goes: the phases of one call, timed
// apart, medians over many calls in one process. Not a tracked suite (its phases are not a
// library's API); the source of README's phase figures ("Why B stops where it does").
//
//   deno run -A bench/probes/phases.ts [shape] [threads] [hand]
//     shape    A, B, C, D or T (bench/cases.ts), default A
//     threads  cpu.threads, default 1
//     hand     run the hand-written loop before each call, as the bench's pairing does
//
// Phases: upload (`tensor()` from the host array), graph (`lrn.forward`), kernel (`realize`:
// plan lookup and the kernel), read (`data()`, a copy into a new array), dispose.

import { cpu, nn, realize, tensor } from "../../mod.ts";
import { cpuBackend } from "../../src/runtime/cpu.ts";
import { caseData, LRN, SHAPES } from "../cases.ts";
import { handwrittenForward } from "../handwritten.ts";

const shapeName = Deno.args[0] ?? "A";
const shape = [...SHAPES[shapeName]];
cpu.threads = Number(Deno.args[1] ?? 1);
const hand = Deno.args[2] === "hand";
await cpuBackend.pool.started();

const data = caseData(shape);
const lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
const phases = ["upload", "graph", "kernel", "read", "dispose", "total"] as const;
const samples: number[][] = phases.map(() => []);
const calls = Math.max(40, Math.min(2000, Math.round(2e8 / data.x.length)));
for (let i = 0; i < calls; i++) {
  if (hand) handwrittenForward(data.x, shape, LRN);
  const t0 = performance.now();
  const x = tensor(data.x, { shape });
  const t1 = performance.now();
  const y = lrn.forward(x);
  const t2 = performance.now();
  await realize(y);
  const t3 = performance.now();
  await y.data();
  const t4 = performance.now();
  x.dispose();
  y.dispose();
  const t5 = performance.now();
  if (i < calls / 4) continue; // warm-up
  [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0].forEach((t, k) => samples[k].push(t));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const show = (ms: number) => ms < 1 ? `${(ms * 1000).toFixed(1)} us` : `${ms.toFixed(2)} ms`;
console.log(
  `LocalResponseNorm forward on ${shapeName} [${shape}], ${cpu.threads} thread(s)` +
    `${hand ? ", the hand-written loop before each call" : ""}; medians of ${samples[0].length}`,
);
phases.forEach((name, k) => console.log(`${name.padEnd(8)} ${show(median(samples[k]))}`));
