// Structural hashes of IR nodes and graphs: 32-bit FNV-style mixing of numbers, strings and op
// args. The hash-consing table (node.ts) and the plan cache (runtime/realize.ts) are keyed by
// these numbers and confirm a match by comparing the parts, because a string key built and
// hashed per node or per graph cost more than the work it looked up (measured on a small eager
// LocalResponseNorm call). The args follow node.ts's argKey: what it spells apart, these tell
// apart too.

import type { BufferRef } from "./node.ts";

/** The hash of nothing mixed in yet. */
export const HASH_SEED = 0x811c9dc5;

const float64 = new Float64Array(1);
const float64Words = new Int32Array(float64.buffer);

/** `hash` with the 32-bit integer `value` mixed in. */
export function mix(hash: number, value: number): number {
  return Math.imul(hash ^ value, 0x01000193);
}

/** Integers as themselves; other numbers by their bits (-0 apart from 0, every NaN as one). */
export function mixNumber(hash: number, value: number): number {
  if ((value | 0) === value && !Object.is(value, -0)) return mix(hash, value);
  if (value !== value) return mix(hash, 0x7ff80000);
  float64[0] = value;
  return mix(mix(hash, float64Words[0]), float64Words[1]);
}

/** `hash` with the characters of `text` mixed in. */
export function mixText(hash: number, text: string): number {
  for (let i = 0; i < text.length; i++) hash = mix(hash, text.charCodeAt(i));
  return mix(hash, text.length);
}

/** The hash of each key name an object arg has (a handful: `pads`, `dim`, ...), computed once. */
const keyHashes = new Map<string, number>();
function keyHash(key: string): number {
  let h = keyHashes.get(key);
  if (h !== undefined) return h;
  h = mixText(HASH_SEED, key);
  if (keyHashes.size < 256) keyHashes.set(key, h); // op args have a few names; stay bounded
  return h;
}

/** Mixes an op arg: values, buffers by id, arrays and objects recursively. */
export function mixArg(hash: number, arg: unknown): number {
  switch (typeof arg) {
    case "number":
      return mixNumber(mix(hash, 1), arg);
    case "string":
      return mixText(mix(hash, 2), arg);
    case "undefined":
      return mix(hash, 3);
    case "object": {
      if (arg === null) return mix(hash, 4);
      if ("id" in arg) return mixNumber(mix(hash, 5), (arg as BufferRef).id);
      if (Array.isArray(arg)) {
        hash = mix(hash, 6);
        for (let i = 0; i < arg.length; i++) hash = mixArg(hash, arg[i]);
        return mix(hash, arg.length);
      }
      hash = mix(hash, 7);
      for (const k of Object.keys(arg)) {
        hash = mixArg(mix(hash, keyHash(k)), (arg as Record<string, unknown>)[k]);
      }
      return hash;
    }
    default:
      return mixText(mix(hash, 8), String(arg));
  }
}

/** Whether two op args are equal as their hashes and argKey tell them apart. */
export function sameArg(a: unknown, b: unknown): boolean {
  if (a === b) return a !== 0 || Object.is(a, b); // one object, or equal values but 0 and -0
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) {
    return Object.is(a, b) || (typeof a === "number" && a !== a && b !== b);
  }
  if ("id" in a || "id" in b) {
    return "id" in a && "id" in b && (a as BufferRef).id === (b as BufferRef).id;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    if (a.length !== other.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameArg(a[i], other[i])) return false;
    return true;
  }
  const aKeys = Object.keys(a);
  const bKeys = Object.keys(b);
  if (aKeys.length !== bKeys.length) return false;
  for (let i = 0; i < aKeys.length; i++) {
    const k = aKeys[i];
    if (k !== bKeys[i]) return false;
    if (!sameArg((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) {
      return false;
    }
  }
  return true;
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
