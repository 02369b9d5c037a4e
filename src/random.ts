// Seeded random numbers for rand/randn: xoshiro128** (Blackman and Vigna, "Scrambled linear
// pseudorandom number generators", 2021) for 32-bit words, seeded through splitmix32, and the
// Box-Muller transform for normals. manualSeed resets it.
//
// Rules:
// - The state is 128 bits (period 2^128 - 1). A seed is mixed into the four words, so distinct
//   seeds start at unrelated points of that cycle: two seeded streams overlap with a chance of
//   about (draws / 2^128). The generator before had 32 bits of state that each draw moved by one
//   constant, so every seed was a point on one cycle of 2^32 draws: seed 178's stream was seed
//   15709's 8 draws later, and the whole stream repeated after 2^32 draws.
// - A float32 uniform is the top 24 bits of a word over 2^24: every float32 multiple of 2^-24 in
//   [0, 1) is equally likely and 1 never comes out (no rounding up on the way to float32).
// - A float64 uniform takes 53 bits from two words, as NumPy's and torch's do (32 bits gave only
//   2^32 distinct values, and no normal beyond 6.66 in magnitude).

import { fail } from "./validate.ts";

/** The four 32-bit words of a generator's state. */
export type State = Uint32Array;

/** The state for `seed`: splitmix32 run from the seed, one output per word (never all zero). */
export function stateOf(seed: number): State {
  const state = new Uint32Array(4);
  let z = seed >>> 0;
  for (let i = 0; i < 4; i++) {
    z = (z + 0x9e3779b9) | 0;
    let w = z;
    w = Math.imul(w ^ (w >>> 16), 0x85ebca6b);
    w = Math.imul(w ^ (w >>> 13), 0xc2b2ae35);
    state[i] = w ^ (w >>> 16);
  }
  if (state.every((w) => w === 0)) state[0] = 1; // the one state xoshiro never leaves
  return state;
}

/** The next 32-bit word of `s` (xoshiro128**), as an unsigned number; `s` moves on. */
export function nextWord(s: State): number {
  const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
  const t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 11);
  return result;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A float64 uniform in [0, 1) with 53 random bits. */
function float64Of(s: State): number {
  const high = nextWord(s) >>> 5; // 27 bits
  const low = nextWord(s) >>> 6; // 26 bits
  return (high * 67108864 + low) / 9007199254740992;
}

/** A float32 uniform in [0, 1): 24 random bits, exact in float32. */
function float32Of(s: State): number {
  return (nextWord(s) >>> 8) / 16777216;
}

/** The state; a program that never seeds draws as after manualSeed(0). */
let state = stateOf(0);
let spareNormal: number | null = null;

/** Reseeds the generator: equal seeds give equal random tensors. */
export function manualSeed(seed: number): void {
  // a larger seed was truncated, so 0, 2^32 and 1e300 gave one stream (and -1 that of 2^32 - 1)
  if (typeof seed !== "number" || !Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    fail("manualSeed", "seed must be an integer from 0 to 2^32 - 1", seed);
  }
  state = stateOf(seed);
  spareNormal = null;
}

/** Where the global generator stands (its state and the normal it holds back). */
export interface GeneratorPosition {
  readonly state: State;
  readonly spareNormal: number | null;
}

/** The global generator's position now, to come back to with {@link moveGenerator}. */
export function generatorPosition(): GeneratorPosition {
  return { state: state.slice(), spareNormal };
}

/** Whether two positions are the same (nothing was drawn between them). */
export function samePosition(a: GeneratorPosition, b: GeneratorPosition): boolean {
  return a.spareNormal === b.spareNormal && a.state.every((word, i) => word === b.state[i]);
}

/** Puts the global generator at `position` (a copy: the position can be returned to again). */
export function moveGenerator(position: GeneratorPosition): void {
  state = position.state.slice();
  spareNormal = position.spareNormal;
}

/** A uniform number in [0, 1) with 53 random bits (float64's `rand`, and normals). */
export function nextUniform(): number {
  return float64Of(state);
}

/** A uniform number in [0, 1) exact in float32 (float32's `rand`). */
export function nextUniformFloat32(): number {
  return float32Of(state);
}

/**
 * A generator of float64 uniform numbers in [0, 1) of its own, started at `seed`: the same
 * numbers as `manualSeed(seed)` then float64 `rand`, without touching the global stream
 * (gradcheck's weights).
 */
export function privateUniforms(seed: number): () => number {
  const own = stateOf(seed);
  return () => float64Of(own);
}

/** A standard normal number. */
export function nextNormal(): number {
  if (spareNormal !== null) {
    const v = spareNormal;
    spareNormal = null;
    return v;
  }
  let u = 0;
  while (u === 0) u = nextUniform();
  const v = nextUniform();
  const r = Math.sqrt(-2 * Math.log(u));
  spareNormal = r * Math.sin(2 * Math.PI * v);
  return r * Math.cos(2 * Math.PI * v);
}
