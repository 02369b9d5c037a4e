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
 * The name `value` prints by, from the class of its prototype chain (the first own
 * `constructor` there that is a function), or `fallback`: not from `value.constructor`, which
 * an own field of that name hides (a module with a field `constructor = null` threw a bare
 * TypeError from every message that named it).
 */
export function classNameOf(value: object, fallback: string): string {
  try {
    // bounded: a Proxy's getPrototypeOf may lead on for ever
    let prototype = Object.getPrototypeOf(value);
    for (let depth = 0; prototype !== null && depth < 1000; depth++) {
      const own = Object.getOwnPropertyDescriptor(prototype, "constructor")?.value;
      if (typeof own === "function") return moduleClassName(own) || fallback;
      prototype = Object.getPrototypeOf(prototype);
    }
    return fallback;
  } catch {
    return fallback; // a revoked Proxy, a trap that throws
  }
}
