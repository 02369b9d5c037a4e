// The compiler caches' bound (codegen/cache.ts): the least recently used entry is the one
// dropped, so an entry in use stays however many others come and go.

import { BoundedCache } from "../codegen/cache.ts";
import { assertEquals } from "./assert.ts";

Deno.test("BoundedCache: a full cache drops its least recently used entry", () => {
  const cache = new BoundedCache<string, number>(3);
  cache.set("a", 1);
  cache.set("b", 2);
  cache.set("c", 3);
  assertEquals(cache.get("a"), 1); // a is now the most recently used
  cache.set("d", 4); // drops b, not a (first in, first out dropped a)
  assertEquals([cache.get("b"), cache.get("a"), cache.get("c"), cache.get("d")], [
    undefined,
    1,
    3,
    4,
  ]);
  assertEquals(cache.size, 3);
  // a key used at every step survives any number of others
  for (let i = 0; i < 100; i++) {
    assertEquals(cache.get("a"), 1);
    cache.set(`k${i}`, i);
  }
  assertEquals(cache.get("c"), undefined);
  // set() of a present key replaces its value and makes it the most recently used
  // (now k98, a, k99 from least to most recently used)
  cache.set("k98", -1);
  cache.set("e", 5); // drops a
  assertEquals([cache.get("k98"), cache.get("a"), cache.get("k99"), cache.get("e")], [
    -1,
    undefined,
    99,
    5,
  ]);
  cache.clear();
  assertEquals([cache.size, cache.get("a")], [0, undefined]);
});
