// bench/check.ts on synthetic `deno bench --json` output and samples: medians (not averages),
// ratios to each group's baseline row, the verdict against a baseline (a row made slower by more
// than 25% fails and is named; 20% passes; failed and missing rows), and the history line.

import { assert, assertAlmostEquals, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  collectRows,
  compare,
  confirm,
  type DenoBenchReport,
  formatComparison,
  formatOutputErrors,
  formatPeerTable,
  historyEntry,
  isOurRow,
  limitFor,
  median,
  parseHistory,
  ratios,
  rowKey,
  type Samples,
} from "../bench/check.ts";

const LOOP = "hand-written JS loop (float32)";
const FUSED = "@lucid/nn fused, js";
const PEER = "jax-js 0.1.25 wasm (2 workers)";

/** Deno's JSON for `names` in `groups`; `failed` rows carry Deno's failure text instead. */
function report(groups: string[], names: string[], failed: string[] = []): DenoBenchReport {
  return {
    runtime: "Deno/2.9.6 x86_64-unknown-linux-gnu",
    cpu: "test cpu",
    benches: groups.flatMap((group) =>
      names.map((name) => ({
        group,
        name,
        baseline: name === LOOP,
        // an average that disagrees with the samples: the checker must not use it
        results: [
          failed.includes(name)
            ? {
              // what Deno 2.9.6 writes for a bench that threw
              failed: {
                name: "Error",
                message: "output differs from the float64 reference",
                exceptionMessage: "Uncaught Error: output differs from the float64 reference",
                frames: [],
              },
            }
            : { ok: { n: 5, avg: 999, min: 0, max: 5000 } },
        ],
      }))
    ),
  };
}

/** Samples whose median is `ms` but whose mean is far larger (one garbage-collection outlier). */
function around(ms: number): number[] {
  return [ms * 0.98, ms, ms * 1.01, ms * 0.99, ms * 40];
}

/** Samples of each row, paired (except the loop's own) with loop calls of the group's time. */
function samples(byGroup: Record<string, Record<string, number>>): Samples {
  const out: Samples = {};
  for (const [group, rows] of Object.entries(byGroup)) {
    const loop = rows[LOOP];
    out[group] = Object.fromEntries(
      Object.entries(rows).map((
        [n, ms],
      ) => [n, n === LOOP ? { ms: around(ms) } : { ms: around(ms), baselineMs: around(loop) }]),
    );
  }
  return out;
}

Deno.test("median: middle value, mean of the middle two, order does not matter", () => {
  assertEquals(median([5, 1, 3]), 3);
  assertEquals(median([4, 1, 3, 2]), 2.5);
  assertEquals(median([7]), 7);
  let threw = false;
  try {
    median([]);
  } catch {
    threw = true;
  }
  assert(threw, "median of nothing throws");
});

Deno.test("collectRows and ratios: medians of the samples over the group's baseline row", () => {
  const rows = collectRows(
    report(["A fwd", "B fwd"], [LOOP, FUSED, PEER]),
    samples({
      "A fwd": { [LOOP]: 2, [FUSED]: 1, [PEER]: 3 },
      "B fwd": { [LOOP]: 10, [FUSED]: 25, [PEER]: 5 },
    }),
  );
  assertEquals(rows.length, 6);
  assertEquals(rows[1].medianMs, 1); // not the mean (8.8) nor Deno's avg (999)
  const r = ratios(rows);
  assertAlmostEquals(r[rowKey("A fwd", FUSED)], 0.5, 1e-12);
  assertAlmostEquals(r[rowKey("A fwd", PEER)], 1.5, 1e-12);
  assertAlmostEquals(r[rowKey("B fwd", FUSED)], 2.5, 1e-12);
  assertAlmostEquals(r[rowKey("B fwd", LOOP)], 1, 1e-12);
});

Deno.test("ratios: paired loop calls cancel a load change that unpaired medians do not", () => {
  // the loop row was measured while the machine was quiet; the fused row a minute later, when
  // everything ran twice as slow, its paired loop calls included
  const rows = collectRows(report(["A fwd"], [LOOP, FUSED]), {
    "A fwd": {
      [LOOP]: { ms: [2, 2, 2] },
      [FUSED]: { ms: [2, 2.1, 1.9], baselineMs: [4, 4.2, 3.8] },
    },
  });
  assertAlmostEquals(rows[1].pairedRatio!, 0.5, 1e-12);
  assertAlmostEquals(ratios(rows)[rowKey("A fwd", FUSED)], 0.5, 1e-12);
  // without pairs the same row would read as the loop's equal
  const unpaired = collectRows(report(["A fwd"], [LOOP, FUSED]), {
    "A fwd": { [LOOP]: { ms: [2, 2, 2] }, [FUSED]: { ms: [2, 2.1, 1.9] } },
  });
  assertAlmostEquals(ratios(unpaired)[rowKey("A fwd", FUSED)], 1, 1e-12);
});

Deno.test("compare: a kernel made 30% slower fails and is named; 20% slower passes", () => {
  const groups = ["A fwd", "A f+b"];
  const names = [LOOP, FUSED, PEER];
  const times = { [LOOP]: 4, [FUSED]: 2, [PEER]: 3 };
  const base = collectRows(report(groups, names), samples({ "A fwd": times, "A f+b": times }));
  const baseline = { ratios: ratios(base) };

  // the same run again: passes
  assert(compare(base, baseline).ok);

  // the fused kernel on A fwd made 1.3x slower (the loop unchanged): fails, names that row only
  const slower = collectRows(
    report(groups, names),
    samples({ "A fwd": { ...times, [FUSED]: 2 * 1.3 }, "A f+b": { ...times, [FUSED]: 2 * 1.2 } }),
  );
  const verdict = compare(slower, baseline);
  assert(!verdict.ok);
  assertEquals(verdict.slower.map((s) => s.key), [rowKey("A fwd", FUSED)]);
  assertAlmostEquals(verdict.slower[0].ratio / verdict.slower[0].baseline, 1.3, 1e-9);
  const text = formatComparison(verdict);
  assertStringIncludes(text, `SLOWER  A fwd | ${FUSED}`);
  assertStringIncludes(text, "30% slower");
  assertStringIncludes(text, "FAILED");

  // a machine twice as slow overall (every row, the loop too) is not a regression
  const loaded = collectRows(
    report(groups, names),
    samples({
      "A fwd": { [LOOP]: 8, [FUSED]: 4, [PEER]: 6 },
      "A f+b": { [LOOP]: 8, [FUSED]: 4, [PEER]: 6 },
    }),
  );
  assert(compare(loaded, baseline).ok);
});

Deno.test("compare with isOurRow: a slower peer is drift, a slower @lucid/nn row fails", () => {
  const names = [LOOP, FUSED, PEER];
  const times = { [LOOP]: 4, [FUSED]: 2, [PEER]: 3 };
  const baseline = {
    ratios: ratios(collectRows(report(["A fwd"], names), samples({ "A fwd": times }))),
  };
  const peerSlower = collectRows(
    report(["A fwd"], names),
    samples({ "A fwd": { ...times, [PEER]: 6 } }),
  );
  const verdict = compare(peerSlower, baseline, { gated: isOurRow });
  assert(verdict.ok, formatComparison(verdict));
  assertEquals(verdict.drift.map((d) => d.key), [rowKey("A fwd", PEER)]);
  assertStringIncludes(formatComparison(verdict), `drift   A fwd | ${PEER}`);
  assert(!compare(peerSlower, baseline).ok, "every row gated: the peer fails");
  const oursSlower = collectRows(
    report(["A fwd"], names),
    samples({ "A fwd": { ...times, [FUSED]: 3 } }),
  );
  assert(!compare(oursSlower, baseline, { gated: isOurRow }).ok);
});

Deno.test("confirm: a row fails only if it is slower again when measured a second time", () => {
  const names = [LOOP, FUSED, PEER];
  const times = { [LOOP]: 4, [FUSED]: 2, [PEER]: 3 };
  const baseline = {
    ratios: ratios(collectRows(report(["A fwd"], names), samples({ "A fwd": times }))),
  };
  // first run: both the fused row (a real 2x regression) and the peer (noise) look slower
  const first = compare(
    collectRows(
      report(["A fwd"], names),
      samples({ "A fwd": { ...times, [FUSED]: 4, [PEER]: 6 } }),
    ),
    baseline,
  );
  assertEquals(first.slower.length, 2);
  // second run of the group: the fused row is still slow, the peer is back to normal
  const rerun = collectRows(
    report(["A fwd"], names),
    samples({ "A fwd": { ...times, [FUSED]: 4.1 } }),
  );
  const verdict = confirm(first, rerun);
  assert(!verdict.ok);
  assertEquals(verdict.slower.map((s) => s.key), [rowKey("A fwd", FUSED)]);
  assertAlmostEquals(verdict.slower[0].rerun!, 4.1 / 4, 1e-9);
  assertEquals(verdict.unconfirmed!.map((s) => s.key), [rowKey("A fwd", PEER)]);
  const text = formatComparison(verdict);
  assertStringIncludes(text, `SLOWER  A fwd | ${FUSED}`);
  assertStringIncludes(text, `noise   A fwd | ${PEER}`);
  // noise alone passes
  const quiet = confirm(first, collectRows(report(["A fwd"], names), samples({ "A fwd": times })));
  assert(quiet.ok, formatComparison(quiet));
  // a row that fails in the second run fails the check
  const broken = confirm(
    first,
    collectRows(report(["A fwd"], names, [PEER]), samples({ "A fwd": times })),
  );
  assert(!broken.ok);
  assertEquals(broken.failed.map((f) => f.key), [rowKey("A fwd", PEER)]);
});

Deno.test("compare: a failed row fails the check; missing peers and new peer rows are reported only", () => {
  const times = { [LOOP]: 4, [FUSED]: 2, [PEER]: 3 };
  const baseline = {
    ratios: {
      ...ratios(collectRows(report(["A fwd"], [LOOP, FUSED, PEER]), samples({ "A fwd": times }))),
      [rowKey("A fwd", "gone")]: 1,
    },
  };
  const failed = collectRows(
    report(["A fwd"], [LOOP, FUSED, PEER], [FUSED]),
    samples({ "A fwd": times }),
  );
  assertEquals(failed[1].medianMs, null);
  assertEquals(failed[1].error, "output differs from the float64 reference");
  const verdict = compare(failed, baseline, { gated: isOurRow });
  assert(!verdict.ok);
  assertEquals(verdict.failed.map((f) => f.key), [rowKey("A fwd", FUSED)]);
  assertEquals(verdict.missing, [rowKey("A fwd", "gone")]);

  const added = collectRows(
    report(["A fwd"], [LOOP, FUSED, PEER, "new row"]),
    samples({ "A fwd": { ...times, "new row": 1 } }),
  );
  const v2 = compare(added, baseline, { gated: isOurRow });
  assert(v2.ok, formatComparison(v2));
  assertEquals(v2.added, [rowKey("A fwd", "new row")]);
  assertEquals(v2.lost, []);
  // a row of ours the baseline lacks has nothing to be compared with: ungated, it fails until
  // bench:update records it (a peer's new row does not)
  const ourNewRow = "@lucid/nn jit";
  const v4 = compare(
    collectRows(
      report(["A fwd"], [LOOP, FUSED, PEER, ourNewRow]),
      samples({ "A fwd": { ...times, [ourNewRow]: 10 } }),
    ),
    baseline,
    { gated: isOurRow },
  );
  assert(!v4.ok);
  assertEquals(v4.ungated, [rowKey("A fwd", ourNewRow)]);
  assertStringIncludes(formatComparison(v4), `FAILED  ${rowKey("A fwd", ourNewRow)}: not in the`);
  // a row of ours missing (its suite failed to load and registered nothing) fails the check:
  // it passed on the rows of the suites that loaded
  const withoutOurs = collectRows(report(["A fwd"], [LOOP, PEER]), samples({ "A fwd": times }));
  const v3 = compare(withoutOurs, { ratios: baseline.ratios }, { gated: isOurRow });
  assert(!v3.ok);
  assertEquals(v3.lost, [rowKey("A fwd", FUSED)]);
  assertStringIncludes(formatComparison(v3), `FAILED  ${rowKey("A fwd", FUSED)}: in the baseline`);
});

Deno.test("collectRows: a failure given as coloured text keeps its first line", () => {
  const rows = collectRows({
    benches: [{
      group: "A fwd",
      name: FUSED,
      results: [{ failed: "\x1b[31mError\x1b[0m: output differs\n    at somewhere" }],
    }],
  }, {});
  assertEquals(rows[0].error, "Error: output differs");
});

Deno.test("collectRows: a row that ran but recorded no samples has no time", () => {
  const rows = collectRows(report(["A fwd"], [LOOP, FUSED]), { "A fwd": { [LOOP]: { ms: [1] } } });
  assertEquals(rows[1].medianMs, null);
  assertEquals(rows[1].error, "no samples recorded");
  assert(!compare(rows, { ratios: {} }).ok);
});

Deno.test("historyEntry and parseHistory round-trip through JSON lines", () => {
  const rows = collectRows(
    report(["A fwd"], [LOOP, FUSED]),
    samples({ "A fwd": { [LOOP]: 4, [FUSED]: 1 } }),
  );
  const machine = { cpu: "c", cores: 2, runtime: "Deno/2.9.6", os: "linux" };
  const entry = historyEntry(rows, { date: "2026-01-01T00:00:00Z", commit: "abc", machine });
  assertEquals(entry.ratios[rowKey("A fwd", FUSED)], 0.25);
  assertEquals(entry.medianMs[rowKey("A fwd", LOOP)], 4);
  const text = JSON.stringify(entry) + "\n\n" + JSON.stringify({ ...entry, commit: "def" }) + "\n";
  const parsed = parseHistory(text);
  assertEquals(parsed.map((e) => e.commit), ["abc", "def"]);
  assertEquals(parsed[0], entry);
});

Deno.test("limitFor: 25% for JavaScript rows, 60% for Wasm and webgpu, 100% for first calls", () => {
  assertEquals(limitFor(rowKey("B fwd", FUSED)), 1.25);
  assertEquals(limitFor(rowKey("B fwd", "@lucid/nn fused, wasm, 2 threads")), 1.6);
  assertEquals(limitFor(rowKey("B fwd", "@lucid/nn fused, webgpu (llvmpipe)")), 1.6);
  assertEquals(limitFor(rowKey("first call A fwd", "@lucid/nn fused, js, fresh process")), 2);
  // a webgpu row 50% slower passes, 70% slower fails
  const names = [LOOP, "@lucid/nn fused, webgpu (llvmpipe)"];
  const base = { "B fwd": { [LOOP]: 1, [names[1]]: 10 } };
  const baseline = { ratios: ratios(collectRows(report(["B fwd"], names), samples(base))) };
  const at = (ms: number) =>
    compare(
      collectRows(report(["B fwd"], names), samples({ "B fwd": { [LOOP]: 1, [names[1]]: ms } })),
      baseline,
    ).ok;
  assert(at(15));
  assert(!at(17));
});

Deno.test("formatPeerTable: one-thread peers against our one-thread row and all cores, others against all cores", () => {
  const machine = { cpu: "c", cores: 2, runtime: "Deno/2.9.6", os: "linux" };
  const medianMs = {
    [rowKey("A fwd", LOOP)]: 4,
    [rowKey("A fwd", FUSED)]: 3,
    [rowKey("A fwd", "@lucid/nn fused, wasm, 1 thread")]: 2,
    [rowKey("A fwd", "@lucid/nn fused, wasm, 2 threads")]: 1,
    [rowKey("A fwd", "@lucid/nn fused, webgpu (llvmpipe)")]: 10,
    [rowKey("A fwd", "tfjs wasm (1 thread)")]: 3,
    [rowKey("A fwd", PEER)]: 1.5,
    [rowKey("A fwd", "jax-js webgpu (llvmpipe)")]: 5,
  };
  // ratios as `ratios()` gives them for rows without pairs: medians over the loop's
  const unpaired = Object.fromEntries(Object.entries(medianMs).map(([k, v]) => [k, v / 4]));
  const entry = { date: "d", commit: "c", machine, ratios: unpaired, medianMs };
  const lines = formatPeerTable(entry).split("\n").slice(2);
  assertEquals(lines, [
    "| tfjs wasm (1 thread) vs fused, wasm, 1 thread | 1.50 |",
    "| tfjs wasm (1 thread) vs fused, wasm, 2 threads | 3.00 |",
    `| ${PEER} vs fused, wasm, 2 threads | 1.50 |`,
    "| jax-js webgpu (llvmpipe) vs fused, webgpu (llvmpipe) | 0.50 |",
  ]);
  // with paired ratios, their quotient: a busier minute during one row cancels (here the
  // medians say 3.00, the pairs 2.00)
  const ratios = {
    [rowKey("A fwd", "@lucid/nn fused, wasm, 1 thread")]: 0.5,
    [rowKey("A fwd", "@lucid/nn fused, wasm, 2 threads")]: 0.4,
    [rowKey("A fwd", "tfjs wasm (1 thread)")]: 1,
  };
  const paired = formatPeerTable({ ...entry, ratios: { ...unpaired, ...ratios } }).split("\n")
    .slice(2);
  assertEquals(paired.slice(0, 2), [
    "| tfjs wasm (1 thread) vs fused, wasm, 1 thread | 2.00 |",
    "| tfjs wasm (1 thread) vs fused, wasm, 2 threads | 2.50 |",
  ]);
  // "11 threads" is not one thread
  const eleven = formatPeerTable({
    ...entry,
    medianMs: { ...medianMs, [rowKey("A fwd", "other wasm (11 threads)")]: 4 },
    ratios: { ...unpaired, [rowKey("A fwd", "other wasm (11 threads)")]: 1 },
  });
  assert(eleven.includes("| other wasm (11 threads) vs fused, wasm, 2 threads | 4.00 |"));
  assert(!eleven.includes("other wasm (11 threads) vs fused, wasm, 1 thread"));
});

Deno.test("historyEntry: each timed row's worst checked output error is recorded and reported", () => {
  const recorded = samples({
    "A fwd": { [LOOP]: 4, [FUSED]: 1 },
    "B fwd": { [LOOP]: 8, [FUSED]: 2 },
  });
  recorded["A fwd"][FUSED].outputError = 2.5e-7;
  recorded["B fwd"][FUSED].outputError = 9e-7;
  const rows = collectRows(report(["A fwd", "B fwd"], [LOOP, FUSED], []), recorded);
  assertEquals(rows.find((r) => r.group === "B fwd" && r.name === FUSED)?.outputError, 9e-7);
  const machine = { cpu: "c", cores: 2, runtime: "Deno/2.9.6", os: "linux" };
  const entry = historyEntry(rows, { date: "2026-01-01T00:00:00Z", commit: "abc", machine });
  assertEquals(entry.outputErrors, {
    [rowKey("A fwd", FUSED)]: 2.5e-7,
    [rowKey("B fwd", FUSED)]: 9e-7,
  });
  assertStringIncludes(
    formatOutputErrors(entry),
    `worst error 9.00e-7 (${rowKey("B fwd", FUSED)})`,
  );
  assertStringIncludes(formatOutputErrors({ ...entry, outputErrors: undefined }), "no errors");
  // a row that failed has no time and no error in the history
  const failed = collectRows(report(["A fwd"], [LOOP, FUSED], [FUSED]), recorded);
  const failedEntry = historyEntry(failed, { date: "2026-01-01T00:00:00Z", commit: "d", machine });
  assertEquals(failedEntry.outputErrors, {});
});
