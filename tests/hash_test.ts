// Structural hashes (src/ir/hash.ts): what sameArg tells apart, the hashes tell apart too, and
// what it calls equal hashes equally, for every kind of op arg.

import { HASH_SEED, mixArg, mixNumber, sameArg, sameShape } from "../src/ir/hash.ts";
import { assert, assertEquals } from "./assert.ts";

const hashOf = (arg: unknown) => mixArg(HASH_SEED, arg);

/** Args the IR uses, and near misses of each: every pair is told apart. */
const DISTINCT: unknown[] = [
  0,
  -0,
  1,
  -1,
  0.75,
  1e-4,
  2 ** 31,
  -(2 ** 31),
  2 ** 53,
  Infinity,
  -Infinity,
  NaN,
  "0",
  "",
  "a",
  undefined,
  null,
  { id: 1 },
  { id: 2 },
  [],
  [0],
  [[0]],
  [0, 0],
  [[0, 0], [2, 2]],
  [[0, 0], [2, 3]],
  {},
  { dim: 1, size: 5, step: 1 },
  { dim: 1, size: 5, step: 2 },
  { size: 5, dim: 1, step: 1 }, // key order is part of the spelling
  { pads: [[0, 0], [2, 2]], value: 0 },
  { pads: [[0, 0], [2, 2]], value: -0 },
  { pads: [[0, 0], [2, 2]], value: NaN },
  { value: undefined },
];

Deno.test("hash: distinct args are unequal and hash apart; each equals a copy of itself", () => {
  for (let i = 0; i < DISTINCT.length; i++) {
    const a = DISTINCT[i];
    const copy = structuredClone(a);
    assert(sameArg(a, copy), `${String(a)} equals its copy`);
    assertEquals(hashOf(a), hashOf(copy), `${String(a)} hashes as its copy`);
    for (let j = 0; j < DISTINCT.length; j++) {
      if (i === j) continue;
      const b = DISTINCT[j];
      assert(!sameArg(a, b), `${JSON.stringify(a)} != ${JSON.stringify(b)} (${i}, ${j})`);
      assert(hashOf(a) !== hashOf(b), `hashes of ${i} and ${j} differ`);
    }
  }
});

Deno.test("hash: every NaN is one value; buffers are told apart by id alone", () => {
  const otherNaN = new Float64Array(new Uint32Array([1, 0x7ff00000]).buffer)[0];
  assert(Number.isNaN(otherNaN));
  assert(sameArg(NaN, otherNaN));
  assertEquals(mixNumber(HASH_SEED, NaN), mixNumber(HASH_SEED, otherNaN));
  const buffer = { id: 7, device: "cpu", length: 3 };
  assert(sameArg(buffer, { id: 7 }));
  assertEquals(hashOf(buffer), hashOf({ id: 7 }));
});

Deno.test("hash: shapes", () => {
  assert(sameShape([2, 3], [2, 3]));
  assert(sameShape([], []));
  assert(!sameShape([2, 3], [3, 2]));
  assert(!sameShape([2, 3], [2, 3, 1]));
  assert(!sameShape([6], [2, 3]));
});
