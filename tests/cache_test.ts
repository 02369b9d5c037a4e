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

Deno.test("BoundedCache: weighed entries are dropped past the weight limit, the newest never", () => {
  const cache = new BoundedCache<string, string>(100, 10, (value) => value.length);
  cache.set("a", "xxxx");
  cache.set("b", "xxxx");
  assertEquals([cache.size, cache.weight], [2, 8]);
  assertEquals(cache.get("a"), "xxxx"); // a is now the most recently used
  cache.set("c", "xxxx"); // 12 > 10: drops b, the least recently used
  assertEquals([cache.get("b"), cache.size, cache.weight], [undefined, 2, 8]);
  cache.set("a", "x"); // replacing a value replaces its weight
  assertEquals([cache.size, cache.weight], [2, 5]);
  cache.set("d", "x".repeat(50)); // heavier than the limit alone: kept, every other dropped
  assertEquals([cache.get("a"), cache.get("c"), cache.get("d")?.length], [
    undefined,
    undefined,
    50,
  ]);
  assertEquals([cache.size, cache.weight], [1, 50]);
  cache.set("e", "xx"); // and dropped in turn once something else comes
  assertEquals([cache.get("d"), cache.size, cache.weight], [undefined, 1, 2]);
  cache.clear();
  assertEquals([cache.size, cache.weight], [0, 0]);
});

Deno.test("BoundedCache: the entries used last are kept whatever they weigh", () => {
  const cache = new BoundedCache<string, string>(100, 10, (value) => value.length, 2);
  cache.set("a", "x".repeat(20));
  cache.set("b", "x".repeat(20)); // 40 > 10, but two are kept
  assertEquals([cache.size, cache.weight], [2, 40]);
  cache.get("a");
  cache.set("c", "x"); // a and c are the last used: b goes, and 21 > 10 keeps both
  assertEquals([cache.get("b"), cache.size, cache.weight], [undefined, 2, 21]);
  cache.set("d", "x"); // c and d: a goes
  assertEquals([cache.get("a"), cache.size, cache.weight], [undefined, 2, 2]);
  cache.set("e", "x"); // 3 <= 10: all stay
  assertEquals([cache.size, cache.weight], [3, 3]);
});
