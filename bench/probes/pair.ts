// Two versions of the library in one process, called in alternating blocks: whether a change
// moved the time of a LocalResponseNorm forward call, with the machine's drift cancelled (runs
// minutes apart differ by more than most changes do). The other version is a checkout of an
// older commit; each call builds its input, computes, reads back and disposes, as the bench's.
//
//   git worktree add /tmp/old <commit>
//   deno run -A bench/probes/pair.ts /tmp/old [A|T|D] [threads]
//
// Read it against a control: a checkout of the current commit measured as "other" (here the
// current copy, imported first, took 1.03-1.06x of an identical checkout's time on A).

import * as current from "../../mod.ts";
import { median } from "../check.ts";
import { caseData, LRN, SHAPES } from "../cases.ts";

type Library = typeof current;
const [otherDir, shapeName = "A", threadsArg = "1"] = Deno.args;
if (otherDir === undefined) {
  console.error("usage: pair.ts <checkout of the other version> [A|T|D] [threads]");
  Deno.exit(2);
}
const other: Library = await import(new URL(`file://${otherDir}/mod.ts`).href);
const shape = [...SHAPES[shapeName as keyof typeof SHAPES]];
const { x } = caseData(shape);
const threads = Number(threadsArg);

function callOf(lib: Library): () => Promise<unknown> {
  lib.cpu.threads = threads;
  const lrn = new lib.nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
  return async () => {
    const input = lib.tensor(x, { shape });
    const y = lrn.forward(input);
    const values = await y.data();
    y.dispose();
    input.dispose();
    return values;
  };
}

const calls = { other: callOf(other), current: callOf(current) };
const times: Record<keyof typeof calls, number[]> = { other: [], current: [] };
const BLOCKS = 200;
const WARMUP_BLOCKS = 20;
for (let block = 0; block < BLOCKS; block++) {
  const order = block % 2 === 0 ? ["current", "other"] as const : ["other", "current"] as const;
  for (const which of order) {
    for (let i = 0; i < 10; i++) {
      const start = performance.now();
      await calls[which]();
      if (block >= WARMUP_BLOCKS) times[which].push(performance.now() - start);
    }
  }
}
const [a, b] = [median(times.other), median(times.current)];
console.log(
  `${shapeName} forward, ${threads} thread(s): other ${a.toFixed(4)} ms, current ${
    b.toFixed(4)
  } ms, current/other ${(b / a).toFixed(3)}`,
);
