// How fast this machine forgets what a process had in its caches: a copy of 560 KB (the size of
// LocalResponseNorm's A input) and a loop of arithmetic on it, each timed after the thread has
// spun for a while touching no memory. Not a tracked suite; the source of README's explanation
// of why every phase of a call is slower when the call follows the bench's hand-written loop.
//
//   deno run bench/probes/cache_decay.ts

import { median } from "../check.ts";

const n = 2 * 96 * 27 * 27;
const target = new Float32Array(n);
const source = new Float32Array(n).fill(1.5);

for (const pauseMs of [0, 0.2, 0.5, 1, 2, 3, 5]) {
  const copies: number[] = [];
  const sums: number[] = [];
  for (let i = 0; i < 600; i++) {
    const until = performance.now() + pauseMs;
    while (performance.now() < until) {
      // spin: no memory traffic
    }
    const start = performance.now();
    target.set(source);
    const copied = performance.now();
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.sqrt(j + 0.5);
    const summed = performance.now();
    target[0] = total;
    if (i >= 100) {
      copies.push(copied - start);
      sums.push(summed - copied);
    }
  }
  console.log(
    `after a ${pauseMs} ms pause: copy ${(median(copies) * 1000).toFixed(1)} us, ` +
      `arithmetic ${(median(sums) * 1000).toFixed(1)} us (medians of 500)`,
  );
}
