// What the LocalResponseNorm suites measure: the shapes (issue 14's A-D, plus a tiny input for
// the per-call overhead), the LRN parameters in Lucid's semantics, and the seeded input data
// every row of a run shares. The data is scaled so that the normalization term matters (with
// unit inputs alpha * S is ~1e-3 of k, and a wrong window or an alpha divided by size would pass
// a check at float32 tolerance).

/** LocalResponseNorm parameters, Lucid semantics: alpha is NOT divided by size. */
export const LRN = { size: 5, alpha: 1e-4, beta: 0.75, k: 2 } as const;

/** The shapes, channels on axis 1. */
export const SHAPES: Readonly<Record<string, readonly number[]>> = {
  A: [2, 96, 27, 27],
  B: [8, 96, 55, 55],
  C: [32, 256, 13, 13],
  D: [4, 32, 64],
  T: [1, 8, 4, 4],
};

/** Forward alone, or forward and the gradient of `sum(y * g)` (both y and dx computed). */
export type Mode = "fwd" | "f+b";

/** One benchmark group: a shape and a mode. */
export interface Case {
  /** Group name, e.g. `A fwd`. */
  readonly id: string;
  readonly shapeName: string;
  readonly shape: readonly number[];
  readonly mode: Mode;
}

/** The groups of `lrn_bench.ts`, in the order they run. */
export const CASES: readonly Case[] = [
  ...["A", "B", "C", "D"].flatMap((s) => (["fwd", "f+b"] as const).map((m) => makeCase(s, m))),
  makeCase("T", "fwd"),
];

/** The group of first_call_bench.ts. */
export const FIRST_CALL_GROUP = "first call A fwd";

/** The groups of jit_bench.ts: a training step eager, by jit and by the exported module. */
export const JIT_GROUPS: readonly string[] = ["jit T f+b", "jit A f+b"];

/**
 * The groups to run: null for all, or those named in LUCID_BENCH_CASES (comma-separated ids such
 * as `A fwd,T fwd,first call A fwd`), for a quicker look and for bench/check.ts's second run of
 * the groups where a row looked slower.
 */
export function selectedGroups(): ReadonlySet<string> | null {
  let wanted: string | undefined;
  try {
    wanted = Deno.env.get("LUCID_BENCH_CASES");
  } catch {
    wanted = undefined; // no --allow-env
  }
  if (!wanted) return null;
  const ids = wanted.split(",").map((s) => s.trim());
  const known = [...CASES.map((c) => c.id), FIRST_CALL_GROUP, ...JIT_GROUPS];
  const unknown = ids.filter((id) => !known.includes(id));
  if (unknown.length > 0) {
    throw new Error(
      `LUCID_BENCH_CASES: unknown group ${unknown.join(", ")}; expected ids among ${
        known.join(", ")
      }`,
    );
  }
  return new Set(ids);
}

/** The cases of lrn_bench.ts to run (see {@link selectedGroups}). */
export function selectedCases(): readonly Case[] {
  const groups = selectedGroups();
  return groups === null ? CASES : CASES.filter((c) => groups.has(c.id));
}

export function makeCase(shapeName: string, mode: Mode): Case {
  const shape = SHAPES[shapeName];
  return { id: `${shapeName} ${mode}`, shapeName, shape, mode };
}

/** Standard deviation of the inputs: alpha * S is then ~0.2, a tenth of k. */
export const INPUT_SCALE = 20;

/** The inputs of one case: x and the output gradient g, float32, channels on axis 1. */
export interface CaseData {
  readonly x: Float32Array<ArrayBuffer>;
  readonly g: Float32Array<ArrayBuffer>;
}

/** Seeded normal data (mulberry32 and Box-Muller): the same in every run and every row. */
export function caseData(shape: readonly number[], seed = 1): CaseData {
  const n = shape.reduce((a, b) => a * b, 1);
  const next = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const x = new Float32Array(n);
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = INPUT_SCALE * normal();
  for (let i = 0; i < n; i++) g[i] = normal();
  return { x, g };
}

/** A small seeded generator of floats in [0, 1) (mulberry32), independent of the library's. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `data` of shape `[n, c, ...rest]` as `[n, ...rest, c]` (channels last, for TensorFlow.js). */
export function toChannelsLast(data: ArrayLike<number>, shape: readonly number[]): Float32Array {
  return moveChannels(data, shape, true);
}

/** The inverse of {@link toChannelsLast}: `[n, ...rest, c]` back to `[n, c, ...rest]`. */
export function fromChannelsLast(data: ArrayLike<number>, shape: readonly number[]): Float32Array {
  return moveChannels(data, shape, false);
}

function moveChannels(
  data: ArrayLike<number>,
  shape: readonly number[],
  toLast: boolean,
): Float32Array<ArrayBuffer> {
  const [n, c] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < inner; i++) {
        const first = (b * c + ch) * inner + i;
        const last = (b * inner + i) * c + ch;
        if (toLast) out[last] = data[first];
        else out[first] = data[last];
      }
    }
  }
  return out;
}
