// Argument checking shared by every public entry point: the library's one Error format
// (`fn: what must hold, got value`), and the shape, axis and broadcasting rules whose
// violations it words. Nothing here builds graph.

import { INT32_MAX, INT32_MIN } from "./ir/dtype.ts";
import type { Shape } from "./ir/node.ts";

/** A description of a received value, printed as is (plain strings are quoted as values). */
class Described {
  constructor(readonly text: string) {}
}

/** Wraps a description of what was received, e.g. `described("shape [2, 3]")`. */
export function described(text: string): Described {
  return new Described(text);
}

import { classNameOf } from "./nn/names.ts";

/** Tensor.prototype and the brand check, as tensor.ts registers them (it imports this module). */
let tensors: { readonly prototype: object; isTensor(v: unknown): boolean; } | null = null;

/** @internal Tells `fmt` what a Tensor is, so it can tell a tensor from an imitation of one. */
export function registerTensorClass(prototype: object, isTensor: (v: unknown) => boolean): void {
  tensors = { prototype, isTensor };
}

const isPrototypeOf = (prototype: object, v: object) =>
  Object.prototype.isPrototypeOf.call(prototype, v);
const typedArrayPrototype: object = Object.getPrototypeOf(Int8Array.prototype);

/** A received value as the library's messages print it: strings quoted, BigInts with `n`. */
export const fmt = (v: unknown): string => printed(v, new Set(), { left: PRINTED_TOTAL });

/** Elements of an array a message prints at most. */
const PRINTED_ELEMENTS = 20;
/** Arrays nested in one another a message prints at most. */
const PRINTED_DEPTH = 8;
/**
 * Array elements a message prints at most, all arrays together: an array sharing one sub-array
 * twenty times per level printed 20^depth of them (16 M characters at six levels).
 */
const PRINTED_TOTAL = 200;

/**
 * `fmt` within the arrays `above` (an array holding itself prints as `[...]`), printing at most
 * `budget.left` more array elements.
 */
function printed(v: unknown, above: Set<unknown>, budget: { left: number; }): string {
  if (isRevokedProxy(v)) return "a revoked Proxy";
  if (v instanceof Described) return v.text;
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`; // 1n is not the number 1 it would print as
  if (isArray(v)) {
    // holes print as empty (map() kept them, and join() hid them); a cycle overflowed the stack,
    // and so did arrays nested 20,000 deep: past PRINTED_DEPTH an array prints as [...]
    if (above.has(v) || above.size >= PRINTED_DEPTH || budget.left <= 0) return "[...]";
    above.add(v);
    const count = Math.min(v.length, PRINTED_ELEMENTS, budget.left);
    budget.left -= count;
    const shown: string[] = [];
    for (let i = 0; i < count; i++) shown.push(i in v ? printed(v[i], above, budget) : "<empty>");
    above.delete(v);
    const more = v.length > count ? `, ... (${v.length} elements)` : "";
    return `[${shown.join(", ")}${more}]`;
  }
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object" && tensors !== null && isPrototypeOf(tensors.prototype, v)) {
    // a Proxy of a tensor, or an object made from Tensor.prototype, passes instanceof and has
    // none of a tensor's state ("x must be a Tensor, got Tensor" said nothing)
    return tensors.isTensor(v) ? "Tensor" : "an imitation of a Tensor (a Proxy or a copy of one)";
  }
  if (typeof v === "object" && !ArrayBuffer.isView(v) && isPrototypeOf(typedArrayPrototype, v)) {
    // a Proxy of a typed array (a reactive store's) passes instanceof, but the built-ins refuse
    // it: "must be a typed array, got Float32Array" said nothing
    const name = classNameOf(v, "typed array");
    return `an imitation of a ${name} (a Proxy or a copy of one: pass the array itself)`;
  }
  // an instance of an anonymous class has a constructor named ""; the library's modules by the
  // names they print by (a minifier renames classes)
  if (typeof v === "object") return classNameOf(v, "an object");
  return String(v);
}

/**
 * Whether `v` is a Proxy whose handler was revoked: every question asked of it (is it an
 * array, its prototype, its keys) throws V8's bare TypeError, so checks ask this first.
 */
export function isRevokedProxy(v: unknown): boolean {
  if ((typeof v !== "object" && typeof v !== "function") || v === null) return false;
  try {
    Array.isArray(v);
    return false;
  } catch {
    return true;
  }
}

/** `Array.isArray(v)`, false for a revoked Proxy (which it would throw for). */
// (any[], as Array.isArray's own guard: callers narrow from their own types)
// deno-lint-ignore no-explicit-any
export function isArray(v: unknown): v is any[] {
  return !isRevokedProxy(v) && Array.isArray(v);
}

/** Throws the library's standard Error: `fn: what must hold, got value`. */
export function fail(fn: string, expected: string, got: unknown): never {
  throw new Error(`${fn}: ${expected}, got ${fmt(got)}`);
}

/**
 * Throws unless `options` is an options object (not null, an array or a primitive): `[]` was
 * taken for an object without keys, every setting its default.
 */
export function checkOptionsObject(fn: string, options: unknown, expected = "an object"): object {
  const refused = options === null || typeof options !== "object" || isArray(options) ||
    isRevokedProxy(options);
  if (refused) fail(fn, `options must be ${expected}`, options);
  if (notOptions(options as object)) {
    fail(fn, `options must be ${expected} (not a tensor, a Map or another built-in)`, options);
  }
  return options as object;
}

/**
 * Whether `value` is a tensor or a built-in object (a Map, a Date, a typed array, an Error, an
 * arguments object...), not options: their getters and entries are not settings (`zeros([2,
 * 3], t)` read t's dtype and requiresGrad as options; Adam given a Map of its lr ran at 0.001).
 * A plain object, the common case, is asked only whether it is an arguments object. Others by
 * prototype (this realm's built-ins, through Proxies too) and by brand (other realms': a Map
 * from a node:vm context), not by Object.prototype.toString, which a class of the program's
 * with a Symbol.toStringTag, or a module namespace, sets as it likes; the brand answer is kept
 * per prototype (each failed brand test throws: 45 us per call for a class's instance).
 */
function notOptions(value: object): boolean {
  if (isPlainObject(value)) return isArguments(value);
  if (tensors !== null && isPrototypeOf(tensors.prototype, value)) return true;
  if (BUILT_IN_PROTOTYPES.some((p) => isPrototypeOf(p, value))) return true;
  const prototype = Object.getPrototypeOf(value);
  let builtIn = prototype === null ? undefined : brandedPrototypes.get(prototype);
  if (builtIn === undefined) {
    builtIn = hasBrand(value);
    if (prototype !== null) brandedPrototypes.set(prototype, builtIn);
  }
  return builtIn;
}

/** An arguments object: its own callee and, as its iterator, Array.prototype.values. */
function isArguments(value: object): boolean {
  return Object.hasOwn(value, "callee") &&
    Object.getOwnPropertyDescriptor(value, Symbol.iterator)?.value === Array.prototype.values;
}

/** Prototypes of this realm's built-in objects that are not options objects. */
const BUILT_IN_PROTOTYPES: readonly object[] = [
  Map.prototype,
  Set.prototype,
  WeakMap.prototype,
  WeakSet.prototype,
  Date.prototype,
  RegExp.prototype,
  Promise.prototype,
  Error.prototype,
  ArrayBuffer.prototype,
  Object.getPrototypeOf(Int8Array.prototype), // every typed array's
  DataView.prototype,
  Number.prototype,
  Boolean.prototype,
  String.prototype,
  WeakRef.prototype,
  Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())), // %IteratorPrototype%
  ...(typeof SharedArrayBuffer === "function" ? [SharedArrayBuffer.prototype] : []),
];

/** Getters and methods that throw unless called on their built-in kind (of any realm). */
const BRANDS: readonly ((this: unknown, arg: never) => unknown)[] = [
  Map.prototype.has,
  Set.prototype.has,
  WeakMap.prototype.has,
  WeakSet.prototype.has,
  Date.prototype.getTime,
  // (source, not flags: the flags getter reads any object's properties)
  Object.getOwnPropertyDescriptor(RegExp.prototype, "source")!.get!,
  Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength")!.get!,
  Number.prototype.valueOf,
  Boolean.prototype.valueOf,
  String.prototype.valueOf,
  WeakRef.prototype.deref,
];

/** The answer of `hasBrand` per prototype (see notOptions). */
const brandedPrototypes = new WeakMap<object, boolean>();

/** Whether `value` is a built-in of another realm, by its internal slots. */
function hasBrand(value: object): boolean {
  if (ArrayBuffer.isView(value)) return true;
  const isError = (Error as { isError?: (v: unknown) => boolean; }).isError;
  if (isError !== undefined && isError(value)) return true;
  for (const brand of BRANDS) {
    try {
      brand.call(value, undefined as never);
      return true;
    } catch {
      // not of this kind
    }
  }
  return false;
}

/**
 * Throws unless every own key of the options object `value` is one of `known`: a misspelled
 * option (`momentun`, `dtyp`, `requiresgrad`) was ignored, and its setting silently lost.
 */
export function checkKnownKeys(
  fn: string,
  name: string,
  value: object,
  known: readonly string[],
): void {
  // inherited keys too (Object.create({lr, momentun})): the options are read through them
  for (const key in value) {
    if (!known.includes(key)) {
      fail(
        fn,
        `${name} may hold ${known.join(", ")}`,
        described(`an unknown key ${JSON.stringify(key)}`),
      );
    }
  }
}

/** Throws the Error for a tensor used by `fn` after it was disposed. */
export function failDisposed(fn: string, tensor: unknown): never {
  fail(
    fn,
    "the tensor was disposed (by dispose(), using or tidy) and cannot be read or used in an op",
    described(String(tensor)),
  );
}

/** Arrays up to this length are copied whole by {@link dense}, holes and all. */
const DENSE_WHOLE = 1024;

/**
 * A copy of `array`, each element read once, holes as undefined: checks see the holes (every()
 * and map() skip them), and what was checked is what is used (an element behind a getter, read
 * again after its check, gave an axis of -3 to expand). Past `DENSE_WHOLE` elements the copy
 * ends at the first hole, which every caller refuses: `[2, 3]` with its length set to 1.4e8 was
 * copied whole first (5 s, 1.1 GB, then V8's bare RangeError); a shorter array is copied whole,
 * so that an Error shows what was given. A loop: Array.from cost a microsecond of a small eager
 * call.
 */
export function dense<T>(array: readonly T[]): (T | undefined)[] {
  const copy: (T | undefined)[] = [];
  const length = array.length;
  for (let i = 0; i < length; i++) {
    const value = array[i];
    copy.push(value);
    if (value === undefined && length > DENSE_WHOLE && !(i in array)) break;
  }
  return copy;
}

/** The built-in accessors of typed arrays, which a subclass or an own property cannot change. */
const TYPED_ARRAY_PROTOTYPE = Object.getPrototypeOf(Int8Array.prototype);
const intrinsicGetter = (key: PropertyKey) =>
  Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTOTYPE, key)!.get!;
const typedArrayTag = intrinsicGetter(Symbol.toStringTag);
const typedArrayBuffer = intrinsicGetter("buffer");
const typedArrayByteOffset = intrinsicGetter("byteOffset");
const typedArrayLength = intrinsicGetter("length");
const typedArrayAt = TYPED_ARRAY_PROTOTYPE.at as (this: unknown, index: number) => unknown;

/** The memory a typed array views, read by the built-in accessors. */
export function typedArrayExtent(
  x: ArrayBufferView,
): { buffer: ArrayBufferLike; byteOffset: number; length: number; } {
  return {
    buffer: typedArrayBuffer.call(x),
    byteOffset: typedArrayByteOffset.call(x),
    length: typedArrayLength.call(x),
  };
}

/**
 * The kind of typed array `x` is (`"Float32Array"`, ...), read by the built-in accessor (a
 * subclass or an object over a typed array's prototype cannot claim another), or undefined.
 */
export function typedArrayKind(x: unknown): string | undefined {
  return typedArrayTag.call(x) as string | undefined;
}

/**
 * Whether the typed array `x` still has its memory: false where its buffer was detached
 * (transferred), or shrunk under a fixed-length view, whose length then reads 0 and whose
 * reads throw (the built-in at() validates the view).
 */
export function hasMemory(x: ArrayBufferView): boolean {
  try {
    typedArrayAt.call(x, 0);
    return true;
  } catch {
    return false;
  }
}

/** `shape` as a fresh array of non-negative integers, or an Error naming `name`. */
export function checkShape(fn: string, name: string, given: unknown): number[] {
  // a copy (holes as undefined: every() skips them, and a shape with one passed as NaN
  // elements); errors show what was given
  const shape = isArray(given) ? dense(given) : given;
  if (
    !isArray(shape) ||
    !shape.every((d) => typeof d === "number" && Number.isInteger(d) && d >= 0)
  ) {
    fail(fn, `${name} must be an array of non-negative integers`, given);
  }
  if (!shape.every(Number.isSafeInteger)) {
    // named here, not by the op node made later ("buffer: ... would have 0 elements")
    fail(fn, `${name} must be an array of non-negative integers, each at most 2^53 - 1`, given);
  }
  // -0 is 0 (a shape of [-0] compared unequal to [0] under Object.is); `shape` is a copy
  for (let i = 0; i < shape.length; i++) shape[i] += 0;
  return shape as number[];
}

/**
 * Throws unless `value` fits int32 storage once truncated toward zero (as a cast truncates):
 * Int32Array and the kernels' int32 constants would silently wrap it. `what` ends the
 * expectation, e.g. `for dtype int32`.
 */
export function checkInt32(fn: string, name: string, value: number, what: string): void {
  const whole = Math.trunc(value);
  if (!(whole >= INT32_MIN && whole <= INT32_MAX)) {
    fail(fn, `${name} must be within int32 [${INT32_MIN}, ${INT32_MAX}] ${what}`, value);
  }
}

/** `axis` in `[-ndim, ndim)` made non-negative (a 0-D tensor accepts 0 and -1). */
export function normalizeAxis(fn: string, axis: unknown, ndim: number, name = "axis"): number {
  const n = Math.max(ndim, 1);
  if (typeof axis !== "number" || !Number.isInteger(axis) || axis < -n || axis >= n) {
    fail(fn, `${name} must be an integer in [${-n}, ${n - 1}] for a ${ndim}-D tensor`, axis);
  }
  // (+ 0: an axis of -0 is 0; kept, `sum(-0)` and `permute([1, -0])` made nodes, and plans,
  // apart from those of 0)
  return (axis < 0 ? axis + ndim : axis) + 0;
}

/** Shape arguments as varargs `(2, 3)` or one array `([2, 3])`. */
export function shapeArgs(fn: string, args: unknown[]): number[] {
  if (args.length === 1 && isArray(args[0])) return checkShape(fn, "shape", args[0]);
  return checkShape(fn, "shape", args);
}

/** The NumPy broadcast of two shapes, or an Error naming both. */
export function broadcastShapes(fn: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      fail(
        fn,
        `shapes [${a.join(", ")}] and [${
          b.join(", ")
        }] must broadcast (equal or 1 in each trailing axis)`,
        described(`[${a.join(", ")}] and [${b.join(", ")}]`),
      );
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** `value` if it is a finite number in [0, max] (a rate, a decay), else an Error naming `name`. */
export function checkRate(fn: string, name: string, value: unknown, max = Infinity): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    fail(fn, `${name} must be a finite number in [0, ${max}]`, value);
  }
  return value;
}

/**
 * Throws, naming `fn`, when `dtype` cannot live on `device` (WGSL has no 64-bit floats): the
 * backend's own Error named "webgpu" and no value.
 */
export function checkDeviceDtype(fn: string, device: string, dtype: string): void {
  if (device === "webgpu" && dtype === "float64") {
    fail(
      fn,
      'dtype must be "float32" or "int32" on "webgpu" (WGSL has no 64-bit floats; float64 lives ' +
        'on "cpu")',
      dtype,
    );
  }
}

/**
 * Whether `v` is a plain object of any realm: its prototype is null or an `Object.prototype`
 * (one whose own prototype is null and that has `hasOwnProperty`), by its prototype alone, as
 * for this realm's (a foreign realm's `{}` failed `proto === Object.prototype`, and its tensors
 * were disposed; a tag test besides refused a record with a `Symbol.toStringTag`, and ran it).
 */
export function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return true;
  return Object.getPrototypeOf(proto) === null &&
    typeof Object.getOwnPropertyDescriptor(proto, "hasOwnProperty")?.value === "function";
}

/**
 * `target`, a namespace of settings (`cpu`, `webgpu`), behind a Proxy that refuses by name what
 * it does not have: a misspelled setting (`cpu.thread = 1`) was stored beside the real one and
 * changed nothing, `delete cpu.kernels` removed the setting, `Object.defineProperty` could make
 * `cpu.threads` read 99 while the pool kept 2 threads, and setting a read-only one was V8's
 * bare TypeError. Reads pass through. A Proxy cannot be cloned (`structuredClone`, a worker's
 * postMessage): copy its fields (`{ ...cpu }`).
 */
export function settingsObject<T extends object>(
  name: string,
  target: T,
  writable: readonly string[],
): T {
  const known = () => {
    const readOnly = Reflect.ownKeys(target).filter((k) => !writable.includes(String(k)));
    const list = readOnly.map(String).join(", ");
    if (writable.length === 0) return `${name} has nothing to set: ${list} are read-only`;
    return `${name}'s settings are ${writable.join(", ")}; ${list} ${
      readOnly.length === 1 ? "is" : "are"
    } read-only`;
  };
  const refuse = (key: PropertyKey, what: string, value?: unknown): never =>
    fail(`${name}.${String(key)}`, `${what} (${known()})`, value);
  // its properties fixed and no new ones, so Object.freeze and Object.seal of it hold (they
  // threw "set by assignment, not defined") while changing nothing
  for (const key of Reflect.ownKeys(target)) {
    Object.defineProperty(target, key, { configurable: false });
  }
  Object.preventExtensions(target);
  return new Proxy(target, {
    set(t, key, value) {
      if (typeof key === "string" && writable.includes(key)) return Reflect.set(t, key, value);
      return refuse(key, "a setting that can be set", value);
    },
    defineProperty(t, key, descriptor) {
      const fixing = Object.keys(descriptor).every((k) =>
        (k === "configurable" || k === "writable") && descriptor[k] === false
      );
      if (fixing && Object.hasOwn(t, key) && Reflect.defineProperty(t, key, descriptor)) {
        return true;
      }
      return refuse(key, "set by assignment, not defined", described("Object.defineProperty"));
    },
    deleteProperty(_t, key) {
      return refuse(key, "a setting to keep, not delete", described("delete"));
    },
    setPrototypeOf() {
      return fail(name, `its prototype kept (${known()})`, described("Object.setPrototypeOf"));
    },
  });
}
