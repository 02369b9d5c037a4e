// The bounded cache every compiler cache uses (plans, executables, pipelines, jit's traces): a
// Map that forgets its least recently used entry once it holds `limit` (a Map iterates in
// insertion order, and an entry used is moved to the end), so a program that makes ever new
// graph structures does not grow without bound, and an entry in use is never the one dropped
// (first in, first out dropped a jit signature called at every step once 1,024 others had
// come and gone, and its random numbers were drawn anew).

/** A Map bounded to `limit` entries; the least recently used goes first. */
export class BoundedCache<K, V> {
  readonly #map = new Map<K, V>();
  /** The key used last: using it again moves nothing (a hot loop's common case). */
  #last: K | undefined = undefined;

  /** A cache holding at most `limit` entries. */
  constructor(readonly limit: number) {}

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
    this.#map.delete(key);
    this.#map.set(key, value);
    this.#last = key;
    if (this.#map.size > this.limit) this.#map.delete(this.#map.keys().next().value!);
  }

  /** Forgets everything. */
  clear(): void {
    this.#map.clear();
    this.#last = undefined;
  }

  /** Number of entries. */
  get size(): number {
    return this.#map.size;
  }
}
