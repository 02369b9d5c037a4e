// The bounded cache every compiler cache uses (plans, executables, pipelines, jit's traces): a
// Map that forgets its least recently used entry once it holds `limit` (a Map iterates in
// insertion order, and an entry used is moved to the end), so a program that makes ever new
// graph structures does not grow without bound, and an entry in use is never the one dropped
// (first in, first out dropped a jit signature called at every step once 1,024 others had
// come and gone, and its random numbers were drawn anew).
//
// Entries can also be weighed (a plan by its nodes, a kernel by its text): a program that made
// ever deeper graphs (`w = w.mul(c)` read at every step) kept 1,024 plans of hundreds of nodes
// each, 400 MB after 800 steps, where their number alone looked small. The few entries used
// last are never dropped for their weight (two plans of 20,000 nodes, used in turn, dropped each
// other at every call and were built again: 70 times slower).

/** A Map bounded to `limit` entries and `maxWeight`; the least recently used goes first. */
export class BoundedCache<K, V> {
  readonly #map = new Map<K, V>();
  readonly #weights = new Map<K, number>();
  #weight = 0;
  /** The key used last: using it again moves nothing (a hot loop's common case). */
  #last: K | undefined = undefined;

  /**
   * A cache holding at most `limit` entries, and entries weighing at most `maxWeight` together
   * (by `weigh`), except that the `keep` most recently used stay whatever they weigh.
   */
  constructor(
    readonly limit: number,
    readonly maxWeight: number = Infinity,
    readonly weigh: (value: V, key: K) => number = () => 0,
    readonly keep: number = 1,
  ) {}

  /** The value for `key`, if cached; a hit becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined && key !== this.#last) {
      this.#map.delete(key);
      this.#map.set(key, value);
      this.#last = key;
    }
    return value;
  }

  /** Caches `value` under `key` as the most recently used, dropping the least beyond the limit. */
  set(key: K, value: V): void {
    this.#delete(key);
    const weight = this.weigh(value, key);
    this.#map.set(key, value);
    this.#weights.set(key, weight);
    this.#weight += weight;
    this.#last = key;
    while (
      this.#map.size > this.limit || (this.#map.size > this.keep && this.#weight > this.maxWeight)
    ) {
      this.#delete(this.#map.keys().next().value!);
    }
  }

  #delete(key: K): void {
    if (!this.#map.delete(key)) return;
    this.#weight -= this.#weights.get(key)!;
    this.#weights.delete(key);
  }

  /** Forgets everything. */
  clear(): void {
    this.#map.clear();
    this.#weights.clear();
    this.#weight = 0;
    this.#last = undefined;
  }

  /** The entries' total weight. */
  get weight(): number {
    return this.#weight;
  }

  /** Number of entries. */
  get size(): number {
    return this.#map.size;
  }
}
