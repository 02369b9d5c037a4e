// The bounded cache every compiler cache uses (plans, executables, pipelines): a Map that
// forgets its oldest entry once it holds `limit` (Map iterates in insertion order), so a
// program that makes ever new graph structures does not grow without bound.

/** A Map bounded to `limit` entries; the oldest inserted goes first. */
export class BoundedCache<K, V> {
  readonly #map = new Map<K, V>();

  /** A cache holding at most `limit` entries. */
  constructor(readonly limit: number) {}

  /** The value for `key`, if cached. */
  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Caches `value` under `key`, dropping the oldest entry beyond the limit. */
  set(key: K, value: V): void {
    this.#map.set(key, value);
    if (this.#map.size > this.limit) this.#map.delete(this.#map.keys().next().value!);
  }

  /** Forgets everything. */
  clear(): void {
    this.#map.clear();
  }

  /** Number of entries. */
  get size(): number {
    return this.#map.size;
  }
}
