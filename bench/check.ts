// Performance tracking: runs the bench suites (`deno bench --json`), turns each row into a ratio
// to the hand-written baseline row of its group in the same run, compares the ratios with
// bench/baseline.json, appends the run to bench/history.jsonl and redraws bench/report.svg.
// A row's ratio is the median, over its calls, of (call time / time of the hand-written loop
// call run just before it): medians, not averages (`deno bench --json` reports no median, so
// harness.ts records per-call samples), and paired, so load changes on a shared machine cancel.
//
//   deno task bench:check    exits 1 naming every @lucid/nn row more than 25% slower than its
//                            baseline ratio (60% for webgpu rows, 100% for first calls: see
//                            limitFor), and every row that failed (wrong output, error);
//                            a row that looks slower is measured again (its groups only, in a
//                            second `deno bench`) and counts only if it is slower in both runs;
//                            peer rows beyond the limit are listed as drift (`-- --all-rows`
//                            fails on them too, see isOurRow)
//   deno task bench:update   the same run, then rewrites bench/baseline.json from it
//
// Ratios within one run are what is tracked: absolute times on a shared 2-core machine move with
// its load, ratios much less. The logic is exported for tests/bench_check_test.ts.

import { drawReport } from "./report_svg.ts";
import { RTOL } from "./reference.ts";

/** A row more than this factor above its baseline ratio is a regression. */
export const SLOWDOWN_LIMIT = 1.25;

/**
 * The limit of a row. Steady-state JavaScript rows: {@link SLOWDOWN_LIMIT}. Three kinds of rows
 * spread more between identical runs on this shared 2-core machine (largest / smallest ratio
 * over runs of the same code): Wasm rows, whose copies and threads slow with the other core's
 * load where the scalar loop they are paired with hardly does (1.38 and 1.54 between two runs
 * of one commit in bench/history.jsonl, and a gate of 1.25 failed the baseline's own code on a
 * busy hour), get 1.6; webgpu rows, whose software adapter runs on several threads, get 1.6
 * too (D forward + backward, about one read-back timer of 12 ms, gave paired ratios of 22.0 and
 * 34.2 in runs of unchanged webgpu code, 1.55x, its medians 12.2-13.2 ms); first-call rows
 * (compiling, collecting garbage of earlier structures; up to 2.28) get 2. So the gate catches a Wasm row 1.6x slower; smaller moves show in the history and in
 * bench/report.svg, not as a failure.
 */
export function limitFor(key: string): number {
  const name = key.slice(key.indexOf(" | ") + 3);
  if (key.startsWith("first call")) return 2;
  if (name.includes("wasm") || name.includes("webgpu")) return WASM_SLOWDOWN_LIMIT;
  return SLOWDOWN_LIMIT;
}

/** The limit of Wasm rows (see {@link limitFor}). */
export const WASM_SLOWDOWN_LIMIT = 1.6;

/** One row of one run. */
export interface RowResult {
  readonly group: string;
  readonly name: string;
  readonly baseline: boolean;
  /** Median ms per call, from the samples; null when the row failed. */
  readonly medianMs: number | null;
  /** Number of samples behind the median. */
  readonly samples: number;
  /** Median of (call / paired baseline call), when the row has paired samples. */
  readonly pairedRatio?: number;
  /** The worst error of the row's checked outputs against the float64 reference. */
  readonly outputError?: number;
  /** Why the row has no time (wrong output, an error, no samples). */
  readonly error?: string;
}

/** The parts of `deno bench --json` output the checker reads. */
export interface DenoBenchReport {
  readonly runtime?: string;
  readonly cpu?: string;
  readonly benches: readonly {
    readonly group?: string | null;
    readonly name: string;
    readonly baseline?: boolean;
    readonly results: readonly Record<string, unknown>[];
  }[];
}

/** Per-call samples in ms, by group then row name (what harness.ts writes). */
export type Samples = Record<
  string,
  Record<string, { ms: number[]; baselineMs?: number[]; outputError?: number; }>
>;

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median: no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The rows of a run: Deno's report says which ran and which failed, the samples give medians. */
export function collectRows(report: DenoBenchReport, samples: Samples): RowResult[] {
  return report.benches.map((bench) => {
    const group = bench.group ?? "";
    const base = { group, name: bench.name, baseline: bench.baseline === true };
    const result = bench.results[0] ?? {};
    if (!("ok" in result)) {
      const why = "failed" in result ? failureText(result.failed) : JSON.stringify(result);
      return { ...base, medianMs: null, samples: 0, error: firstLine(why) };
    }
    const recorded = samples[group]?.[bench.name];
    const values = recorded?.ms ?? [];
    if (values.length === 0) {
      return { ...base, medianMs: null, samples: 0, error: "no samples recorded" };
    }
    const checked = recorded?.outputError;
    const row = {
      ...base,
      medianMs: median(values),
      samples: values.length,
      ...(checked === undefined ? {} : { outputError: checked }),
    };
    const paired = recorded?.baselineMs ?? [];
    if (paired.length !== values.length) return row;
    return { ...row, pairedRatio: median(values.map((ms, i) => ms / paired[i])) };
  });
}

/** Deno reports a failure as a string or as a JS error object (`{ jsError: { message } }`). */
function failureText(failed: unknown): string {
  if (typeof failed === "string") return failed;
  const find = (v: unknown, depth: number): string | null => {
    if (v === null || typeof v !== "object" || depth > 3) return null;
    const o = v as Record<string, unknown>;
    if (typeof o.message === "string") return o.message;
    if (typeof o.exceptionMessage === "string") return o.exceptionMessage;
    for (const inner of Object.values(o)) {
      const m = find(inner, depth + 1);
      if (m !== null) return m;
    }
    return null;
  };
  return find(failed, 0) ?? JSON.stringify(failed).slice(0, 300);
}

function firstLine(text: string): string {
  // Deno's failure text carries ANSI colours and a stack; the first line says what went wrong
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  return plain.split("\n").find((l) => l.trim() !== "")?.trim() ?? plain;
}

/** The key of a row in baseline.json and history.jsonl. */
export function rowKey(group: string, name: string): string {
  return `${group} | ${name}`;
}

/**
 * Each timed row's ratio to its group's baseline row: the paired ratio when the row has one,
 * else its median over the baseline row's median.
 */
export function ratios(rows: readonly RowResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const row of rows) {
    if (row.medianMs === null) continue;
    if (row.pairedRatio !== undefined) {
      out[rowKey(row.group, row.name)] = row.pairedRatio;
      continue;
    }
    const base = rows.find((r) => r.group === row.group && r.baseline);
    if (base === undefined || base.medianMs === null || base.medianMs <= 0) continue;
    out[rowKey(row.group, row.name)] = row.medianMs / base.medianMs;
  }
  return out;
}

/** What bench/baseline.json holds: the history entry of the run that made it. */
export type Baseline = HistoryEntry;

/** Where a run happened. */
export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly runtime: string;
  readonly os: string;
  /** The 1-minute load average when the run started (runs before 2026-12-07 have none). */
  readonly loadAverage?: number;
}

/** The verdict on one run against a baseline. */
export interface Comparison {
  /** Rows more than {@link SLOWDOWN_LIMIT} times their baseline ratio, with both ratios. */
  readonly slower: { key: string; ratio: number; baseline: number; rerun?: number; }[];
  /** Rows beyond the limit that do not fail the check (peers, unless every row is gated). */
  readonly drift: { key: string; ratio: number; baseline: number; }[];
  /** Rows slower in the first run but not when measured again (see {@link confirm}). */
  readonly unconfirmed?: { key: string; ratio: number; baseline: number; rerun: number; }[];
  /** Rows that ran but have no time: wrong output or an error. */
  readonly failed: { key: string; error: string; }[];
  /** Rows in the baseline that this run did not have (a peer missing, a subset run). */
  readonly missing: string[];
  /**
   * The missing rows that are gated (`options.gated`: every row by default; the command gates
   * ours, and every row with `--all-rows`, where a peer not installed then fails too): a suite
   * that failed to load registered none of its rows, and the check passed on the others.
   */
  readonly lost: string[];
  /** Rows of this run that the baseline does not have. */
  readonly added: string[];
  /**
   * The added rows that are gated: a row of ours the baseline lacks has no ratio to be slower
   * than, so it fails the check until `bench:update` records one (the jit rows sat printed as
   * "new" for a day while README called them tracked).
   */
  readonly ungated: string[];
  readonly ok: boolean;
}

/** Compares a run's rows with the baseline's ratios. */
export function compare(
  rows: readonly RowResult[],
  baseline: Pick<Baseline, "ratios">,
  options: { limit?: (key: string) => number; gated?: (key: string) => boolean; } = {},
): Comparison {
  const limit = options.limit ?? limitFor;
  const gated = options.gated ?? (() => true);
  const current = ratios(rows);
  const beyond = Object.entries(current)
    .filter(([key, ratio]) => key in baseline.ratios && ratio > baseline.ratios[key] * limit(key))
    .map(([key, ratio]) => ({ key, ratio, baseline: baseline.ratios[key] }));
  const slower = beyond.filter((s) => gated(s.key));
  const drift = beyond.filter((s) => !gated(s.key));
  const failed = rows
    .filter((r) => r.medianMs === null)
    .map((r) => ({ key: rowKey(r.group, r.name), error: r.error ?? "no time" }));
  const ran = new Set(rows.map((r) => rowKey(r.group, r.name)));
  const missing = Object.keys(baseline.ratios).filter((key) => !ran.has(key));
  const added = Object.keys(current).filter((key) => !(key in baseline.ratios));
  const lost = missing.filter(gated);
  const ungated = added.filter(gated);
  return {
    slower,
    drift,
    failed,
    missing,
    lost,
    added,
    ungated,
    ok: slower.length === 0 && failed.length === 0 && lost.length === 0 && ungated.length === 0,
  };
}

/**
 * The rows bench:check fails on by default: @lucid/nn's. A peer's ratio moving says the peer or
 * the machine changed, not that our code did, and the multi-threaded peers (jax-js's workers, the
 * software WebGPU adapter's threads) move with the load of a shared 2-core machine in ways the
 * paired loop calls cannot cancel: they are reported as drift; `--all-rows` fails on them too.
 */
export function isOurRow(key: string): boolean {
  return key.slice(key.indexOf(" | ") + 3).startsWith("@lucid/nn");
}

/**
 * The verdict once the groups of the slower rows were measured again (`rerun`): a row is slower
 * only if it is slower in both runs, so one noisy stretch on a shared machine fails nothing.
 * Failures of either run count; a slower row that has no time in the rerun stays slower.
 */
export function confirm(
  first: Comparison,
  rerun: readonly RowResult[],
  limit: (key: string) => number = limitFor,
): Comparison {
  const again = ratios(rerun);
  const stillSlower = (s: { key: string; baseline: number; }) =>
    !(s.key in again) || again[s.key] > s.baseline * limit(s.key);
  const slower = first.slower.filter(stillSlower).map((s) => ({ ...s, rerun: again[s.key] }));
  const unconfirmed = first.slower
    .filter((s) => !stillSlower(s))
    .map((s) => ({ ...s, rerun: again[s.key] }));
  const failedKeys = new Set(first.failed.map((f) => f.key));
  const failedAgain = rerun
    .filter((r) => r.medianMs === null && !failedKeys.has(rowKey(r.group, r.name)))
    .map((r) => ({ key: rowKey(r.group, r.name), error: r.error ?? "no time" }));
  const failed = [...first.failed, ...failedAgain];
  const ok = slower.length === 0 && failed.length === 0 && first.lost.length === 0 &&
    first.ungated.length === 0;
  return { ...first, slower, unconfirmed, failed, ok };
}

/** The verdict as text: one line per regression or failure, then what was missing or new. */
export function formatComparison(
  c: Comparison,
  limit: (key: string) => number = limitFor,
): string {
  const lines: string[] = [];
  for (const s of c.slower) {
    lines.push(
      `SLOWER  ${s.key}: ${s.ratio.toFixed(3)}x the hand-written loop, baseline ${
        s.baseline.toFixed(3)
      }x (${((s.ratio / s.baseline - 1) * 100).toFixed(0)}% slower, limit ${
        ((limit(s.key) - 1) * 100).toFixed(0)
      }%)${s.rerun === undefined ? "" : `; measured again: ${s.rerun.toFixed(3)}x`}`,
    );
  }
  for (const s of c.unconfirmed ?? []) {
    lines.push(
      `noise   ${s.key}: ${s.ratio.toFixed(3)}x against ${
        s.baseline.toFixed(3)
      }x in the first run, ${s.rerun.toFixed(3)}x when measured again (within the limit)`,
    );
  }
  for (const d of c.drift) {
    lines.push(
      `drift   ${d.key}: ${d.ratio.toFixed(3)}x against ${
        d.baseline.toFixed(3)
      }x (a peer: reported, does not fail the check without --all-rows)`,
    );
  }
  for (const f of c.failed) lines.push(`FAILED  ${f.key}: ${f.error}`);
  for (const m of c.missing) {
    lines.push(
      c.lost.includes(m)
        ? `FAILED  ${m}: in the baseline, not in this run (its suite failed to load?)`
        : `missing ${m} (in the baseline, not in this run)`,
    );
  }
  for (const a of c.added) {
    lines.push(
      c.ungated.includes(a)
        ? `FAILED  ${a}: not in the baseline, so not gated (deno task bench:update records it)`
        : `new     ${a} (not in the baseline)`,
    );
  }
  lines.push(
    c.ok
      ? "bench:check passed: no checked row is slower than its baseline ratio beyond its limit"
      : `bench:check FAILED: ${c.slower.length} row(s) slower, ${c.failed.length} failed, ` +
        `${c.lost.length} missing, ${c.ungated.length} not in the baseline`,
  );
  return lines.join("\n");
}

/** One line of bench/history.jsonl. */
export interface HistoryEntry {
  readonly date: string;
  readonly commit: string;
  readonly machine: Machine;
  readonly ratios: Record<string, number>;
  readonly medianMs: Record<string, number>;
  /**
   * Each timed row's worst output error against the float64 reference (`relativeError`'s
   * units; a row is timed only at RTOL or less). Runs before 2026-12-07 did not record it.
   */
  readonly outputErrors?: Record<string, number>;
}

/** The history entry of a run. */
export function historyEntry(
  rows: readonly RowResult[],
  meta: { date: string; commit: string; machine: Machine; },
): HistoryEntry {
  const medianMs: Record<string, number> = {};
  const outputErrors: Record<string, number> = {};
  for (const r of rows) {
    if (r.medianMs === null) continue;
    medianMs[rowKey(r.group, r.name)] = r.medianMs;
    if (r.outputError !== undefined) outputErrors[rowKey(r.group, r.name)] = r.outputError;
  }
  return { ...meta, ratios: ratios(rows), medianMs, outputErrors };
}

/** Parses bench/history.jsonl (blank lines skipped). */
export function parseHistory(text: string): HistoryEntry[] {
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

// ---- running it --------------------------------------------------------------------------

const BENCH_DIR = new URL("./", import.meta.url);
const file = (name: string) => new URL(name, BENCH_DIR);

async function output(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return r.success ? new TextDecoder().decode(r.stdout).trim() : "";
  } catch {
    return "";
  }
}

async function commitId(): Promise<string> {
  const root = new URL("../", BENCH_DIR).pathname;
  const head = await output("git", ["-C", root, "rev-parse", "--short", "HEAD"]);
  if (head === "") return "unknown";
  const dirty = await output("git", [
    "-C",
    root,
    "status",
    "--porcelain",
    "--",
    "src",
    "codegen",
    "mod.ts",
    "bench", // a changed row or peer is a change too
    ":!bench/history.jsonl",
    ":!bench/report.svg",
    ":!bench/baseline.json",
  ]);
  return dirty === "" ? head : `${head}+changes`;
}

/**
 * The suites whose rows are tracked: they record every call's time through bench/harness.ts.
 * The other file in bench/ (backstop_bench.ts) is a comparison within one run, read from
 * `deno task bench`'s table.
 */
export const TRACKED_SUITES = ["lrn_bench.ts", "first_call_bench.ts", "jit_bench.ts"] as const;

/** Runs the tracked suites and returns Deno's report and the samples. */
async function runSuites(
  groups: readonly string[] | null = null,
): Promise<{ report: DenoBenchReport; samples: Samples; exitCode: number; }> {
  const dir = await Deno.makeTempDir({ dir: BENCH_DIR.pathname, prefix: ".samples-" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "bench",
        "--json",
        "--allow-env",
        "--allow-read",
        `--allow-write=${dir}`,
        "--allow-run",
        ...TRACKED_SUITES.map((file) => new URL(`../bench/${file}`, BENCH_DIR).pathname),
      ],
      env: groups === null
        ? { LUCID_BENCH_SAMPLES: dir }
        : { LUCID_BENCH_SAMPLES: dir, LUCID_BENCH_CASES: groups.join(",") },
      stdout: "piped",
      stderr: "inherit",
    });
    const result = await child.output();
    const text = new TextDecoder().decode(result.stdout);
    const start = text.indexOf("{");
    if (start < 0) throw new Error(`deno bench printed no JSON (exit code ${result.code})`);
    const report = JSON.parse(text.slice(start)) as DenoBenchReport;
    const samples: Samples = {};
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.name.endsWith(".samples.json")) continue;
      const part = JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}`)) as Samples;
      for (const [group, byName] of Object.entries(part)) {
        Object.assign(samples[group] ??= {}, byName);
      }
    }
    return { report, samples, exitCode: result.code };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A table of the run for the terminal and README: median ms and ratio per row. */
export function formatTable(rows: readonly RowResult[]): string {
  const r = ratios(rows);
  const lines = ["| group | row | median | x loop | samples |", "|---|---|--:|--:|--:|"];
  for (const row of rows) {
    const key = rowKey(row.group, row.name);
    const time = row.medianMs === null ? `FAILED: ${row.error}` : formatMs(row.medianMs);
    const ratio = key in r ? r[key].toFixed(2) : "";
    lines.push(`| ${row.group} | ${row.name} | ${time} | ${ratio} | ${row.samples} |`);
  }
  return lines.join("\n");
}

/**
 * A history entry as README's table: one line per row, one column per group, each cell the
 * median and, below it, the ratio to the hand-written loop.
 */
export function formatWideTable(
  entry: HistoryEntry,
  groupFilter: (group: string) => boolean = () => true,
): string {
  const keys = Object.keys(entry.medianMs).filter((k) => groupFilter(k.slice(0, k.indexOf(" | "))));
  const groups = [...new Set(keys.map((k) => k.slice(0, k.indexOf(" | "))))];
  const names = [...new Set(keys.map((k) => k.slice(k.indexOf(" | ") + 3)))];
  const lines = [
    `| row | ${groups.join(" | ")} |`,
    `|---|${groups.map(() => "--:").join("|")}|`,
  ];
  for (const name of names) {
    const cells = groups.map((g) => {
      const key = rowKey(g, name);
      if (!(key in entry.medianMs)) return "—";
      const ratio = entry.ratios[key];
      return `${formatMs(entry.medianMs[key])}${
        ratio === undefined ? "" : ` (${ratio.toFixed(2)})`
      }`;
    });
    lines.push(`| ${name} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/**
 * @lucid/nn against each peer: per group, the peer's time over ours (above 1: we are faster),
 * on cpu against our fused Wasm row with the peer's threads (one thread against one-thread peers,
 * every core against the others), on webgpu against our webgpu row. A one-thread peer gets a
 * second line against our row on every core, the library's default (and the form issue 12's
 * targets take: the peers as they ship against ours as it ships). The quotient is of the two
 * rows' paired ratios (each call over the hand-written loop's call just before it), so a busier
 * minute during one row cancels as it does in the regression check (quotients of medians taken
 * minutes apart overstated our lead on C forward against onnxruntime-web by 1.5x in one run:
 * 8.59 where the pairs gave 5.78). Every timed row but a group's baseline has pairs; a row
 * without (an entry written by hand) has its median over the baseline's there (`ratios`).
 */
export function formatPeerTable(entry: HistoryEntry): string {
  const split = (k: string) => [k.slice(0, k.indexOf(" | ")), k.slice(k.indexOf(" | ") + 3)];
  const keys = Object.keys(entry.medianMs).filter((k) =>
    !split(k)[0].startsWith("first") && !split(k)[0].startsWith("jit")
  );
  const groups = [...new Set(keys.map((k) => split(k)[0]))];
  const names = [...new Set(keys.map((k) => split(k)[1]))];
  const isPeer = (n: string) => !n.startsWith("@lucid/nn") && !n.startsWith("hand-written");
  const fused = names.filter((n) => n.startsWith("@lucid/nn fused"));
  const cpuRows = fused.filter((n) => !n.includes("webgpu"));
  // " 1 thread", not "1 thread": "11 threads" holds that too
  const oneThread = (n: string) => /(^|[^0-9])1 thread\b/.test(n);
  const wasmRow = (one: boolean) =>
    cpuRows.find((n) => n.includes("wasm") && oneThread(n) === one) ?? cpuRows[0];
  const ours = (peer: string): (string | undefined)[] => {
    if (peer.includes("webgpu")) return [fused.find((n) => n.includes("webgpu"))];
    if (!oneThread(peer)) return [wasmRow(false)];
    const everyCore = wasmRow(false);
    return [wasmRow(true), ...(everyCore === wasmRow(true) ? [] : [everyCore])];
  };
  /** Row `a`'s time over row `b`'s in group `g`, of their ratios (see {@link ratios}). */
  const quotient = (g: string, a: string, b: string): number | undefined => {
    const [ra, rb] = [entry.ratios[rowKey(g, a)], entry.ratios[rowKey(g, b)]];
    return ra === undefined || rb === undefined ? undefined : ra / rb;
  };
  const lines = [
    `| peer / @lucid/nn (paired) | ${groups.join(" | ")} |`,
    `|---|${groups.map(() => "--:").join("|")}|`,
  ];
  for (const peer of names.filter(isPeer)) {
    for (const mine of ours(peer)) {
      if (mine === undefined) continue;
      const cells = groups.map((g) => {
        const q = quotient(g, peer, mine);
        return q === undefined ? "—" : q.toFixed(2);
      });
      lines.push(`| ${peer} vs ${mine.replace("@lucid/nn ", "")} | ${cells.join(" | ")} |`);
    }
  }
  return lines.join("\n");
}

/** `ms` with three significant digits, in us below 1 ms. */
export function formatMs(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toPrecision(3)} us`;
  return `${ms.toPrecision(3)} ms`;
}

/** One line: the worst checked output error of a run, and which row it was. */
export function formatOutputErrors(entry: HistoryEntry): string {
  const errors = Object.entries(entry.outputErrors ?? {});
  if (errors.length === 0) return "outputs checked against float64: no errors recorded";
  const [key, worst] = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
  return `outputs checked against float64 (${errors.length} rows): worst error ` +
    `${worst.toExponential(2)} (${key}), tolerance ${RTOL}`;
}

async function main(update: boolean): Promise<number> {
  const loadAtStart = Deno.loadavg()[0];
  if (loadAtStart > 0.5) {
    console.log(
      `note: the 1-minute load average is ${loadAtStart.toFixed(2)}: other work shares the ` +
        "cores, and the Wasm rows slow with it more than their pairing cancels",
    );
  }
  const { report, samples, exitCode } = await runSuites();
  const rows = collectRows(report, samples);
  const machine: Machine = {
    cpu: report.cpu ?? "unknown",
    cores: navigator.hardwareConcurrency,
    runtime: report.runtime ?? `Deno/${Deno.version.deno}`,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    loadAverage: loadAtStart,
  };
  const entry = historyEntry(rows, {
    date: new Date().toISOString(),
    commit: await commitId(),
    machine,
  });
  console.log(formatTable(rows));
  console.log(formatOutputErrors(entry));
  await Deno.writeTextFile(file("history.jsonl"), JSON.stringify(entry) + "\n", { append: true });
  const history = parseHistory(await Deno.readTextFile(file("history.jsonl")));
  await Deno.writeTextFile(file("report.svg"), drawReport(history));
  if (update) {
    const baseline: Baseline = entry;
    await Deno.writeTextFile(file("baseline.json"), JSON.stringify(baseline, null, 2) + "\n");
    const failed = rows.filter((r) => r.medianMs === null);
    for (const f of failed) console.log(`FAILED  ${rowKey(f.group, f.name)}: ${f.error}`);
    console.log(
      `bench:update wrote bench/baseline.json (${Object.keys(entry.ratios).length} rows)`,
    );
    if (exitCode !== 0) console.log(`FAILED  deno bench exited with code ${exitCode}`);
    return failed.length === 0 && exitCode === 0 ? 0 : 1;
  }
  let baseline: Baseline;
  try {
    baseline = JSON.parse(await Deno.readTextFile(file("baseline.json")));
  } catch (e) {
    console.log(`no usable bench/baseline.json (${e}); run deno task bench:update`);
    return 1;
  }
  if (baseline.machine.cpu !== machine.cpu || baseline.machine.cores !== machine.cores) {
    console.log(
      `note: bench/baseline.json comes from another machine (${baseline.machine.cpu}, ` +
        `${baseline.machine.cores} cores; this one: ${machine.cpu}, ${machine.cores} cores): ` +
        "the ratios compare machines as well as code",
    );
  }
  const gated = Deno.args.includes("--all-rows") ? () => true : isOurRow;
  let verdict = compare(rows, baseline, { gated });
  if (verdict.slower.length > 0) {
    const groups = [...new Set(verdict.slower.map((s) => s.key.slice(0, s.key.indexOf(" | "))))];
    console.log(
      `${verdict.slower.length} row(s) looked slower; measuring ${groups.join(", ")} again`,
    );
    const again = await runSuites(groups);
    verdict = confirm(verdict, collectRows(again.report, again.samples));
  }
  console.log(formatComparison(verdict));
  if (exitCode !== 0 && verdict.ok) {
    // every row it registered passed, yet deno bench failed: a module threw outside its rows
    console.log(
      `bench:check FAILED: deno bench exited with code ${exitCode} (see its errors above)`,
    );
    return 1;
  }
  return verdict.ok ? 0 : 1;
}

if (import.meta.main) {
  if (Deno.args.includes("--table")) {
    // README's table, from the latest line of bench/history.jsonl (no benchmark is run)
    const history = parseHistory(await Deno.readTextFile(file("history.jsonl")));
    const latest = history[history.length - 1];
    console.log(`${latest.date} ${latest.commit} ${JSON.stringify(latest.machine)}`);
    const firstCall = (g: string) => g.startsWith("first call");
    const jitGroup = (g: string) => g.startsWith("jit");
    console.log(formatWideTable(latest, (g) => !firstCall(g) && !jitGroup(g)));
    console.log();
    console.log(formatWideTable(latest, firstCall));
    console.log();
    console.log(formatWideTable(latest, jitGroup));
    console.log();
    console.log(formatPeerTable(latest));
  } else {
    Deno.exit(await main(Deno.args.includes("--update")));
  }
}
