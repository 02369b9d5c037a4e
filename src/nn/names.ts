// The names the library's classes print by (`toString()`, errors), spelled out: a bundler's
// minifier renames classes, and `constructor.name` made `LocalResponseNorm(size=5, ...)` print
// as `Wr(size=5, ...)`. A user's class, registered nowhere, prints by its own name.

const names = new WeakMap<object, string>();

/** Registers `name` as what instances of the library's class `cls` print by. */
export function nameModuleClass(cls: object, name: string): void {
  names.set(cls, name);
}

/** The name a module of class `cls` prints by ("" when `cls` is not a class with a name). */
export function moduleClassName(cls: unknown): string {
  if ((typeof cls !== "function" && typeof cls !== "object") || cls === null) return "";
  const registered = names.get(cls);
  if (registered !== undefined) return registered;
  const name = typeof cls === "function" ? cls.name : undefined;
  return typeof name === "string" ? name : "";
}

/**
 * The name `value` prints by, from its prototype's class, or `fallback`: not from
 * `value.constructor`, which an own field of that name hides (a module with a field
 * `constructor = null` threw a bare TypeError from every message that named it).
 */
export function classNameOf(value: object, fallback: string): string {
  try {
    const prototype = Object.getPrototypeOf(value);
    if (prototype === null) return fallback;
    const own = Object.getOwnPropertyDescriptor(prototype, "constructor");
    return moduleClassName(own?.value) || fallback;
  } catch {
    return fallback; // a revoked Proxy, a trap that throws
  }
}
