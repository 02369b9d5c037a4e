// The names the library's own modules print by (`toString()`, errors), spelled out: a bundler's
// minifier renames classes, and `constructor.name` made `LocalResponseNorm(size=5, ...)` print
// as `Wr(size=5, ...)`. A user's class, registered nowhere, prints by its own name.

const names = new WeakMap<object, string>();

/** Registers `name` as what instances of the library's class `cls` print by. */
export function nameModuleClass(cls: object, name: string): void {
  names.set(cls, name);
}

/** The name a module of class `cls` prints by. */
export function moduleClassName(cls: { readonly name: string; }): string {
  return names.get(cls) ?? cls.name;
}
