// How a row is benchmarked: `Deno.bench` drives every call; the first call of each row checks
// its outputs against the float64 reference (and a wrong row throws instead of being timed);
// then untimed warm-up calls run (WARMUP) and the last one's outputs are checked too, so the
// calls that are timed (cached plans, pooled buffers, worker threads) are known to be right, and
// every RECHECK_EVERY timed calls one more untimed call is checked, so a fault that appears
// mid-run (a pooled buffer reused too early) fails the row instead of being timed;
// every call after that is timed with explicit timers and also recorded as a sample here, because
// `deno bench --json` reports min, max, avg and percentiles from p75 up but no median, and
// averages on this machine swing with garbage-collection outliers.
//
// Each iteration of a row also runs the group's baseline call (the hand-written loop) just
// before, outside the explicit timers, and records its time as the paired sample: on a machine
// whose load changes from second to second, a row's time over the loop's time measured in the
// same second is a far steadier ratio than two medians taken a minute apart (one run showed
// rows moving by 2x between runs that way, and by a few percent with pairs).
//
// When LUCID_BENCH_SAMPLES names a directory, each bench module writes its samples there at
// unload, as `<module>.samples.json`, for bench/check.ts.

import { type Case, type CaseData, caseData, LRN } from "./cases.ts";
import { referenceLrn, relativeError, RTOL } from "./reference.ts";

/** What a timed call returns: the outputs, read back to the host. */
export interface Outputs {
  readonly y: ArrayLike<number>;
  readonly dx?: ArrayLike<number>;
  /**
   * The time the call measured itself, recorded instead of its wall time: a child process's
   * in-process first call, where the process start is not what the row is about.
   */
  readonly selfTimedMs?: number;
}

/**
 * One call of a row: builds the library's input from the host data, computes, reads every
 * output back to the host and disposes everything it made, so the next call computes again.
 * `forCheck` is set on the calls whose outputs are checked (never timed): a row whose timed
 * calls leave outputs in another layout (tfjs's channels-last) converts them then.
 */
export type Call = (forCheck?: boolean) => Promise<Outputs>;

/** A line of the table: one library on one backend. */
export interface Row {
  /** Shown in the table and used as the key in baseline.json. */
  readonly label: string;
  /** The row every ratio of a group is taken against. */
  readonly baseline?: boolean;
  /** Whether the row does this case (default: every case). onnxruntime has no gradient. */
  supports?(c: Case): boolean;
  /** The call for one case (its setup: sessions, transposed inputs, compiled functions). */
  prepare(c: Case, data: CaseData): Call | Promise<Call>;
}

/** A row that could not be set up: every case fails with `message` instead of being timed. */
export function brokenRow(label: string, message: string): Row {
  return {
    label,
    prepare: () => {
      throw new Error(`${label}: ${message}`);
    },
  };
}

/** A row's samples in ms: its calls, and the baseline call run just before each. */
export interface RowSamples {
  readonly ms: number[];
  readonly baselineMs: number[];
  /** The worst error of the row's checked outputs against the float64 reference. */
  outputError?: number;
}

/**
 * WARMUP: untimed calls after a row's first, before any is sampled: at least WARMUP_MIN_CALLS and
 * until WARMUP_MS have passed, at most WARMUP_MAX_CALLS. With only the first call untimed, the
 * early calls of a row were in its median: on A forward blocks of 25 calls took 1655, 946 and
 * 778 us before settling at 430-600 (Deno's own warm-up iteration is sampled too).
 */
const WARMUP_MS = 300;
const WARMUP_MIN_CALLS = 5;
const WARMUP_MAX_CALLS = 200;

/** Timed calls between two untimed, checked calls of a row. */
const RECHECK_EVERY = 256;

/** Samples by group then row label. */
const samples: Record<string, Record<string, RowSamples>> = {};

/** Registers `rows` on `cases` with Deno.bench, grouped by case, in case-major order. */
export function registerCases(cases: readonly Case[], rows: readonly Row[]): void {
  for (const c of cases) {
    let data: CaseData | null = null;
    let reference: { y: Float64Array; dx?: Float64Array; } | null = null;
    const inputs = () => (data ??= caseData(c.shape));
    const expected = () =>
      reference ??= referenceLrn(
        inputs().x,
        c.shape,
        LRN,
        c.mode === "f+b" ? inputs().g : undefined,
      );
    const baselineRow = rows.find((r) => r.baseline === true);
    let baselineCall: Call | null = null;
    const paired = async () => {
      baselineCall ??= await baselineRow!.prepare(c, inputs());
      await baselineCall();
    };
    for (const row of rows) {
      if (row.supports !== undefined && !row.supports(c)) continue;
      const isBaseline = row === baselineRow;
      const setup = async () => {
        const call = await row.prepare(c, inputs());
        noteOutputError(c.id, row.label, checkOutputs(row.label, c, await call(true), expected()));
        // the calls timed next take other paths than the first (cached plans, pooled buffers,
        // worker threads): the last warm-up call's outputs are checked as well
        const afterWarmUp = await warmUp(call);
        noteOutputError(
          c.id,
          row.label,
          checkOutputs(`${row.label} (after warm-up)`, c, afterWarmUp, expected()),
        );
        return call;
      };
      const recheck = (out: Outputs) =>
        noteOutputError(
          c.id,
          row.label,
          checkOutputs(`${row.label} (while timed)`, c, out, expected()),
        );
      registerRow(
        c.id,
        row.label,
        isBaseline,
        setup,
        isBaseline || !baselineRow ? null : paired,
        recheck,
      );
    }
  }
}

/** Runs `call` untimed as WARMUP says; returns the outputs of one more call, for a check. */
export async function warmUp(call: Call): Promise<Outputs> {
  const start = performance.now();
  for (
    let calls = 0;
    calls < WARMUP_MAX_CALLS &&
    (calls < WARMUP_MIN_CALLS || performance.now() - start < WARMUP_MS);
    calls++
  ) {
    await call();
  }
  return await call(true);
}

/**
 * Registers one timed row. `setup` runs at the row's first call (a warm-up call that is neither
 * measured nor sampled) and returns the checked call; if it throws, the row fails in Deno's
 * report and is never timed. `paired`, when given, is the group's baseline call, run and timed
 * before each call of the row. `recheck`, when given, checks the outputs of an untimed call made
 * after every RECHECK_EVERY timed ones (it throws when they are wrong, failing the row).
 */
export function registerRow(
  group: string,
  label: string,
  baseline: boolean,
  setup: () => Promise<Call>,
  paired: (() => Promise<unknown>) | null,
  recheck?: (out: Outputs) => void,
): void {
  let call: Call | undefined;
  let failure: unknown = null;
  Deno.bench({
    name: label,
    group,
    baseline,
    async fn(b) {
      if (failure !== null) throw failure;
      if (call === undefined) {
        try {
          call = await setup();
        } catch (e) {
          failure = e;
          throw e;
        }
      }
      let baselineMs = NaN;
      if (paired !== null) {
        const pairStart = performance.now();
        await paired();
        baselineMs = performance.now() - pairStart;
      }
      const start = performance.now();
      b.start();
      const out = await call();
      b.end();
      const ms = out.selfTimedMs ?? performance.now() - start;
      const row = samplesOf(group, label);
      row.ms.push(ms);
      if (paired !== null) row.baselineMs.push(baselineMs);
      if (recheck !== undefined && row.ms.length % RECHECK_EVERY === 0) {
        try {
          recheck(await call(true));
        } catch (e) {
          failure = e;
          throw e;
        }
      }
    },
  });
}

/** The samples of one row, made on first use. */
function samplesOf(group: string, label: string): RowSamples {
  return (samples[group] ??= {})[label] ??= { ms: [], baselineMs: [] };
}

/** Records a checked error of a row's outputs (the run keeps each row's worst). */
export function noteOutputError(group: string, label: string, error: number): void {
  const row = samplesOf(group, label);
  row.outputError = Math.max(row.outputError ?? 0, error);
}

/**
 * Throws unless the outputs match the float64 reference (y, and dx for forward + backward);
 * returns the worst of their errors (see `relativeError`).
 */
export function checkOutputs(
  label: string,
  c: Case,
  got: Outputs,
  want: { y: Float64Array; dx?: Float64Array; },
): number {
  const errors: string[] = [];
  const yError = relativeError(got.y, want.y);
  if (!(yError <= RTOL)) errors.push(`y error ${yError.toExponential(2)}`);
  let worst = yError;
  if (want.dx !== undefined) {
    const dxError = got.dx === undefined ? Infinity : relativeError(got.dx, want.dx);
    if (!(dxError <= RTOL)) errors.push(`dx error ${dxError.toExponential(2)}`);
    worst = Math.max(worst, dxError);
  }
  if (errors.length > 0) {
    throw new Error(
      `${label} on ${c.id}: output differs from the float64 reference (${
        errors.join(", ")
      } > ${RTOL}); not timed`,
    );
  }
  return worst;
}

/** Where samples go: LUCID_BENCH_SAMPLES, when set and readable. */
function samplesDir(): string | null {
  try {
    return Deno.env.get("LUCID_BENCH_SAMPLES") ?? null;
  } catch {
    return null; // no --allow-env: nobody is collecting
  }
}

/** Writes this module's samples at unload (call once per bench module). */
export function writeSamplesAtUnload(moduleUrl: string): void {
  const dir = samplesDir();
  if (dir === null) return;
  const name = new URL(moduleUrl).pathname.split("/").pop()!.replace(/\.ts$/, "");
  globalThis.addEventListener("unload", () => {
    Deno.writeTextFileSync(`${dir}/${name}.samples.json`, JSON.stringify(samples));
  });
}
