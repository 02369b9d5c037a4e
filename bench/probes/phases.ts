// Where the time of the bench's LocalResponseNorm call goes: the phases of one call, timed
// apart, medians over many calls in one process. Not a tracked suite (its phases are not a
// library's API); the source of README's phase figures ("Why B stops where it does").
//
//   deno run -A bench/probes/phases.ts [shape] [threads] [hand] [fb]
//     shape    A, B, C, D or T (bench/cases.ts), default A
//     threads  cpu.threads, default 1
//     hand     run the hand-written loop before each call, as the bench's pairing does
//     fb       forward + backward (y.backward(g), then y and dx read one after the other)
//
// Phases: upload (`tensor()` from the host array; for fb, x and then g), graph (`lrn.forward`,
// and for fb `backward`), kernel (`realize`: plan lookup and the kernels), read (`data()`, a
// copy into a new array; for fb, y and then dx), dispose.

import { median } from "../check.ts";
import { cpu, nn, realize, tensor } from "../../mod.ts";
import { cpuBackend } from "../../src/runtime/cpu.ts";
import { caseData, LRN, SHAPES } from "../cases.ts";
import { handwrittenForward } from "../handwritten.ts";

const shapeName = Deno.args[0] ?? "A";
const shape = [...SHAPES[shapeName]];
cpu.threads = Number(Deno.args[1] ?? 1);
const hand = Deno.args.includes("hand");
const backward = Deno.args.includes("fb");
await cpuBackend.pool.started();

const data = caseData(shape);
const lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
const phases = backward
  ? ["upload x", "upload g", "graph", "kernel", "read y", "read dx", "dispose", "total"]
  : ["upload", "graph", "kernel", "read", "dispose", "total"];
const samples: number[][] = phases.map(() => []);
const calls = Math.max(40, Math.min(2000, Math.round((backward ? 1e8 : 2e8) / data.x.length)));
for (let i = 0; i < calls; i++) {
  if (hand) handwrittenForward(data.x, shape, LRN);
  const times = [performance.now()];
  const mark = () => times.push(performance.now());
  const x = tensor(data.x, { shape, requiresGrad: backward });
  mark();
  const g = backward ? tensor(data.g, { shape }) : null;
  if (g !== null) mark();
  const y = lrn.forward(x);
  if (g !== null) y.backward(g);
  const dx = x.grad;
  mark();
  await (dx === null ? realize(y) : realize(y, dx));
  mark();
  await y.data();
  mark();
  if (dx !== null) {
    await dx.data();
    mark();
  }
  for (const t of [x, g, y, dx]) t?.dispose();
  mark();
  if (i < calls / 4) continue; // warm-up
  for (let k = 1; k < times.length; k++) samples[k - 1].push(times[k] - times[k - 1]);
  samples[phases.length - 1].push(times[times.length - 1] - times[0]);
}
const show = (ms: number) => ms < 1 ? `${(ms * 1000).toFixed(1)} us` : `${ms.toFixed(2)} ms`;
console.log(
  `LocalResponseNorm ${backward ? "forward + backward" : "forward"} on ${shapeName} [${shape}], ` +
    `${cpu.threads} thread(s)${hand ? ", the hand-written loop before each call" : ""}; ` +
    `medians of ${samples[0].length}`,
);
phases.forEach((name, k) => console.log(`${name.padEnd(9)} ${show(median(samples[k]))}`));
