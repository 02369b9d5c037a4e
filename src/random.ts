// Seeded random numbers for rand/randn: a 32-bit xorshift-multiply generator (in the style of
// splitmix32) for uniforms and the Box-Muller transform for normals. manualSeed resets it.

import { fail } from "./validate.ts";

/**
 * The generator's state for `seed`: the seed through a 32-bit bijective mix (murmur3's
 * finalizer). The state was the seed itself, and since each draw adds one constant to it, seed
 * s + 227 was seed s shifted by 732,539 draws: two runs with nearby seeds shared a quarter of a
 * million values. Mixed, distinct seeds stay distinct states, far apart along the stream.
 */
function stateOf(seed: number): number {
  let z = seed | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return z ^ (z >>> 16);
}

/** The state; a program that never seeds draws as after manualSeed(0). */
let state = stateOf(0);
let spareNormal: number | null = null;

/** Reseeds the generator: equal seeds give equal random tensors. */
export function manualSeed(seed: number): void {
  // the generator's state is 32 bits: a larger seed was truncated, so 0, 2^32 and 1e300 gave
  // one stream (and -1 the stream of 2^32 - 1)
  if (typeof seed !== "number" || !Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    fail("manualSeed", "seed must be an integer from 0 to 2^32 - 1", seed);
  }
  state = stateOf(seed);
  spareNormal = null;
}

/** A uniform number in [0, 1). */
export function nextUniform(): number {
  state = (state + 0x9e3779b9) | 0;
  return uniformOf(state);
}

/** The uniform number in [0, 1) that a state gives. */
function uniformOf(state: number): number {
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return (z >>> 0) / 4294967296;
}

/**
 * A generator of uniform numbers in [0, 1) of its own, started at `seed`: the same numbers as
 * `manualSeed(seed)` then `rand`, without touching the global stream (gradcheck's weights).
 */
export function privateUniforms(seed: number): () => number {
  let own = stateOf(seed);
  return () => uniformOf(own = (own + 0x9e3779b9) | 0);
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
