// Creating tensors: from data (numbers, nested arrays, typed arrays) and filled ones (zeros,
// ones, full, arange, rand, randn). Data is always copied into new device storage, and the
// tensor made from it is that storage's owner.

import {
  allocArray,
  bytesPerElement,
  type DType,
  isDType,
  isFloat,
  type TypedArray,
} from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import { numelOf, type Shape } from "./ir/node.ts";
import {
  generatorPosition,
  moveGenerator,
  nextNormal,
  nextUniform,
  nextUniformFloat32,
} from "./random.ts";
import { backendFor } from "./runtime/backends.ts";
import { type DeviceBuffer, type DeviceName, DEVICES } from "./runtime/device.ts";
import { trackValue } from "./runtime/lifetime.ts";
import { MAX_TENSOR_BYTES } from "./runtime/heap.ts";
import { createTensor, type NestedInput, type Tensor } from "./tensor.ts";
import {
  checkDeviceDtype,
  checkInt32,
  checkKnownKeys,
  checkOptionsObject,
  checkShape,
  described,
  fail,
  hasMemory,
  isArray,
  shapeArgs,
  typedArrayExtent,
  typedArrayKind,
} from "./validate.ts";

/** Options of tensor creation functions. */
export interface TensorOptions {
  /** Element type; default `"float32"` (or the typed array's own type). */
  dtype?: DType;
  /** Device; default `"cpu"`. */
  device?: DeviceName;
  /** Whether gradients flow to this tensor; default false. */
  requiresGrad?: boolean;
}

/** Options of `tensor()`: creation options plus the shape of flat data. */
export interface TensorDataOptions extends TensorOptions {
  /** The shape of flat data (default: inferred from nesting, or 1-D). */
  shape?: readonly number[];
}

/** The keys of TensorOptions, and of TensorDataOptions. */
const OPTION_KEYS = ["dtype", "device", "requiresGrad"];
const DATA_OPTION_KEYS = [...OPTION_KEYS, "shape"];

/** Validated creation options (an empty object when omitted). */
function checkOptions(fn: string, options: unknown): TensorDataOptions {
  if (options === undefined) return {};
  const o = checkOptionsObject(fn, options) as TensorDataOptions;
  // shape only where data is flat (tensor()); the others take theirs as an argument
  checkKnownKeys(fn, "options", o, fn === "tensor" ? DATA_OPTION_KEYS : OPTION_KEYS);
  // each read once, then checked and kept: a getter read again after its check gave a value
  // never checked (a device "tpu", a requiresGrad "yes"); and own keys (a spread copy kept only
  // the object's own, and settings read through a prototype or a getter were lost)
  const { dtype, device, requiresGrad, shape } = o;
  if (dtype !== undefined && !isDType(dtype)) {
    fail(fn, `dtype must be one of "float32", "float64", "int32"`, dtype);
  }
  if (device !== undefined && !DEVICES.includes(device)) {
    fail(fn, `device must be "cpu" or "webgpu"`, device);
  }
  if (requiresGrad !== undefined && typeof requiresGrad !== "boolean") {
    fail(fn, "requiresGrad must be a boolean", requiresGrad);
  }
  return { dtype, device, requiresGrad, ...(fn === "tensor" ? { shape } : {}) };
}

/**
 * Throws unless a tensor of `shape` and `dtype` fits the cpu memory: past it, made from data,
 * it was the allocator's RangeError, which names no function.
 */
function checkTensorBytes(fn: string, shape: readonly number[], dtype: DType): void {
  const bytes = numelOf(shape) * bytesPerElement(dtype);
  if (!(bytes <= MAX_TENSOR_BYTES)) {
    fail(
      fn,
      "a tensor must fit 4 GiB less 64 bytes (the cpu memory; webgpu buffers hold less)",
      described(`shape [${shape.join(", ")}] of ${dtype} (${bytes} bytes)`),
    );
  }
}

/** A new leaf holding a copy of `data` (a typed array of `options.dtype`, default float32). */
function fromTyped(fn: string, data: TypedArray, shape: number[], options: TensorOptions): Tensor {
  const dtype = options.dtype ?? "float32";
  const device = options.device ?? "cpu";
  if (options.requiresGrad && !isFloat(dtype)) fail(fn, "requiresGrad needs a float dtype", dtype);
  checkDeviceDtype(fn, device, dtype);
  checkTensorBytes(fn, shape, dtype);
  const backend = backendFor(device);
  const buffer = backend.upload(data, dtype);
  const node = ir.buffer(buffer, shape, dtype);
  trackValue(node, buffer);
  return createTensor(node, device, options.requiresGrad ?? false, true);
}

/**
 * @internal A tensor over `buffer`, which it owns (`dispose()` frees it), as tensors made from
 * data do. For storage the library filled itself, e.g. the outputs of a compiled function.
 */
export function tensorFromBuffer(buffer: DeviceBuffer, shape: Shape): Tensor {
  const node = ir.buffer(buffer, shape, buffer.dtype);
  trackValue(node, buffer);
  return createTensor(node, buffer.device, false, true);
}

/**
 * The values and shape of nested arrays, walked with a stack of its own (recursion overflowed
 * the call stack between 1,000 and 2,000 levels, a bare RangeError): the shape is read down the
 * first elements, then every array is checked against it, depth first, in order.
 */
function inferNested(fn: string, data: unknown): { flat: number[]; shape: number[]; } {
  const notNumbers = "data must be a number, a (nested) array of numbers or a typed array";
  const containsItself = () =>
    fail(fn, "data must not contain itself", described("an array that does"));
  /** The shape of `x` read down its first elements. */
  const shapeOf = (x: unknown): number[] => {
    const shape: number[] = [];
    const seen = new Set<unknown>();
    while (isArray(x)) {
      // an array holding itself nests forever
      if (seen.has(x)) containsItself();
      seen.add(x);
      shape.push(x.length);
      if (x.length === 0) break;
      x = x[0];
    }
    return shape;
  };
  const shape = shapeOf(data);
  const ragged = (depth: number, row: unknown) =>
    fail(
      fn,
      `nested arrays must be rectangular (every row of shape [${shape.slice(depth).join(", ")}])`,
      described(`a row of shape [${shapeOf(row).join(", ")}]`),
    );
  const flat: number[] = [];
  if (shape.length === 0) {
    if (typeof data !== "number") fail(fn, notNumbers, data);
    return { flat: [data], shape };
  }
  // the arrays being walked, each with its length (read once, when checked against the shape:
  // an array growing while read gave a shape [2] tensor three values) and the index of its
  // next element: as deep as the nesting, never as long as an array (a stack of every element
  // of `new Array(1e8)` ran out of memory)
  const frames: { array: unknown[]; length: number; next: number; }[] = [];
  const path = new Set<unknown>(); // the same arrays, for an array holding an ancestor
  const enter = (x: unknown, depth: number) => {
    if (typeof x === "number") {
      if (depth !== shape.length) ragged(depth, x);
      flat.push(x);
      return;
    }
    if (!isArray(x)) fail(fn, notNumbers, x);
    if (path.has(x)) containsItself();
    const length = x.length;
    if (depth === shape.length || length !== shape[depth]) ragged(depth, x);
    frames.push({ array: x, length, next: 0 });
    path.add(x);
  };
  enter(data, 0);
  while (frames.length > 0) {
    const top = frames[frames.length - 1];
    if (top.next === top.length) {
      frames.pop();
      path.delete(top.array);
      continue;
    }
    // indexed, not map(): map skips an array's holes (`[1, , 3]`), which read as undefined
    enter(top.array[top.next++], frames.length);
  }
  return { flat, shape };
}

/** The constructors of data arrays, over memory or copying another array. */
interface DataArrayConstructor {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  new (source: TypedArray): TypedArray;
}
const DATA_ARRAYS: Record<string, DataArrayConstructor> = {
  Float32Array,
  Float64Array,
  Int32Array,
};
const DATA_DTYPES: Record<string, DType> = {
  Float32Array: "float32",
  Float64Array: "float64",
  Int32Array: "int32",
};

/**
 * A plain typed array over the same memory as `data`, with its element type, read through the
 * built-in accessors only: a subclass's `length` getter that said 8 over 4 values made an [8]
 * tensor whose last values were another tensor's freed storage. Data in shared memory is
 * copied, so it is checked and stored as one snapshot (another thread writing 3e9 between the
 * int32 check and the copy made a wrapped tensor).
 */
function ownView(data: ArrayBufferView): { view: TypedArray; dtype: DType; } {
  const name = typedArrayKind(data);
  if (name !== "Float32Array" && name !== "Float64Array" && name !== "Int32Array") {
    fail("tensor", "a typed array must be Float32Array, Float64Array or Int32Array", data);
  }
  if (!hasMemory(data)) {
    // the cpu's copy threw a bare TypeError and left its storage behind; webgpu made an empty
    // tensor
    fail(
      "tensor",
      "a typed array whose memory is there (not detached, nor a view past its shrunk buffer)",
      described(`a ${name} over memory gone`),
    );
  }
  const { buffer, byteOffset, length } = typedArrayExtent(data);
  const Plain = DATA_ARRAYS[name];
  const view = new Plain(buffer, byteOffset, length);
  const shared = Object.prototype.toString.call(buffer) === "[object SharedArrayBuffer]";
  return { view: shared ? new Plain(view) : view, dtype: DATA_DTYPES[name] };
}

/**
 * A tensor from data: a number, nested arrays, or a flat array / typed array with
 * `{shape}`. The data is copied; the dtype defaults to the typed array's or float32.
 *
 * @example
 * ```ts
 * import { tensor } from "@lucid/nn";
 * const a = tensor([[1, 2, 3], [4, 5, 6]]); // float32, shape [2, 3]
 * const b = tensor(new Int32Array([1, 2, 3, 4]), { shape: [2, 2] }); // int32
 * const c = tensor(0.5, { dtype: "float64", device: "cpu" }); // 0-D
 * console.log(a.shape, b.dtype, c.ndim); // [ 2, 3 ] int32 0
 * ```
 */
export function tensor(
  data: NestedInput | TypedArray,
  options?: TensorDataOptions,
): Tensor {
  const o = checkOptions("tensor", options);
  // the shape first: its getters run user code, which could free or change the data after
  // the data was checked (a transfer gave a bare TypeError on cpu, an empty tensor on webgpu)
  const given = o.shape === undefined ? undefined : checkShape("tensor", "shape", o.shape);
  let flat: ArrayLike<number>;
  let shape: number[];
  let dtype = o.dtype;
  if (ArrayBuffer.isView(data)) {
    const own = ownView(data);
    flat = own.view;
    shape = [own.view.length];
    dtype ??= own.dtype;
  } else {
    const inferred = inferNested("tensor", data);
    if (!inferred.flat.every((v) => typeof v === "number")) {
      fail("tensor", "data must hold only numbers", data);
    }
    flat = inferred.flat;
    shape = inferred.shape;
  }
  if (given !== undefined) {
    if (numelOf(given) !== flat.length) {
      fail(
        "tensor",
        `data length must equal the product of shape [${given.join(", ")}] = ${numelOf(given)}`,
        described(`${flat.length} elements`),
      );
    }
    shape = given;
  }
  if (dtype === "int32" && !(flat instanceof Int32Array)) {
    for (let i = 0; i < flat.length; i++) checkInt32("tensor", "data", flat[i], "for dtype int32");
  }
  // a typed array goes to the device as it is (its one copy, converting as it stores); nested
  // arrays are flattened into a typed array of the dtype first
  let typed: TypedArray;
  if (ArrayBuffer.isView(flat)) typed = flat as TypedArray;
  else {
    typed = allocArray(dtype ?? "float32", flat.length);
    typed.set(flat);
  }
  return fromTyped("tensor", typed, shape, { ...o, dtype: dtype ?? "float32" });
}

/** Shape arguments: varargs `(2, 3)` or an array with options `([2, 3], {dtype})`. */
export type ShapeAndOptions = number[] | [readonly number[], TensorOptions?];

function splitShapeArgs(fn: string, args: unknown[]): { shape: number[]; options: TensorOptions; } {
  if (args.length > 0 && isArray(args[0])) {
    if (args.length > 2) fail(fn, "takes a shape array and at most an options object", args);
    return { shape: checkShape(fn, "shape", args[0]), options: checkOptions(fn, args[1]) };
  }
  return { shape: shapeArgs(fn, args), options: {} };
}

function filled(
  fn: string,
  shape: number[],
  options: TensorOptions,
  value: (i: number) => number,
): Tensor {
  const dtype = options.dtype ?? "float32";
  checkDeviceDtype(fn, options.device ?? "cpu", dtype); // before the host array is filled
  // refused before the host array, whose allocation would fail naming nothing (on webgpu too:
  // its values are made on the host first, and its buffers are smaller still)
  checkTensorBytes(fn, shape, dtype);
  const data = allocArray(dtype, numelOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = value(i);
  return fromTyped(fn, data, shape, { ...options, dtype });
}

/**
 * A tensor of zeros: `zeros(2, 3)` or `zeros([2, 3], options)`.
 *
 * @example
 * ```ts
 * import { zeros } from "@lucid/nn";
 * const bias = zeros([4], { requiresGrad: true }); // a parameter
 * const counts = zeros([2, 3], { dtype: "int32" });
 * console.log(await counts.toArray()); // [ [ 0, 0, 0 ], [ 0, 0, 0 ] ]
 * ```
 */
export function zeros(...args: ShapeAndOptions): Tensor {
  const { shape, options } = splitShapeArgs("zeros", args);
  return filled("zeros", shape, options, () => 0);
}

/** A tensor of ones: `ones(2, 3)` or `ones([2, 3], options)`. */
export function ones(...args: ShapeAndOptions): Tensor {
  const { shape, options } = splitShapeArgs("ones", args);
  return filled("ones", shape, options, () => 1);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, options?: TensorOptions): Tensor {
  const s = checkShape("full", "shape", shape);
  if (typeof value !== "number") fail("full", "value must be a number", value);
  const o = checkOptions("full", options);
  if (o.dtype === "int32") checkInt32("full", "value", value, "for dtype int32");
  return filled("full", s, o, () => value);
}

/**
 * `[start, start + step, ...)` below `end`; `arange(n)` is `0..n-1`. Without a dtype, whole
 * `start`, `end` and `step` give int32, whole numbers beyond int32's range float64 (cpu only:
 * on webgpu that is an Error asking for a dtype), any other float32.
 *
 * @example
 * ```ts
 * import { arange } from "@lucid/nn";
 * console.log(arange(4).dtype, await arange(4).toArray()); // int32 [ 0, 1, 2, 3 ]
 * console.log(arange(0, 1, 0.25).dtype); // float32
 * const w = arange(3, undefined, 1, { dtype: "float32", requiresGrad: true }); // a float leaf
 * ```
 */
export function arange(start: number, end?: number, step = 1, options?: TensorOptions): Tensor {
  if (end === undefined) [start, end] = [0, start];
  for (const [name, v] of [["start", start], ["end", end], ["step", step]] as const) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      fail("arange", `${name} must be a finite number`, v);
    }
  }
  if (step === 0) fail("arange", "step must not be 0", step);
  const o = checkOptions("arange", options);
  // the span over the step, divided apart where the span overflows (-1.5e308 to 1.5e308 by
  // 1e308: refused as a range of Infinity values, not as what it is, below)
  const span = end - start;
  let n = Math.max(0, Math.ceil(Number.isFinite(span) ? span / step : end / step - start / step));
  if (Number.isFinite(n) && n > 0 && !Number.isFinite(start + (n - 1) * step)) {
    fail(
      "arange",
      "values that are finite numbers",
      described(`${n} values from ${start} by ${step}`),
    );
  }
  // every value below `end` (above it for a negative step), none at it: the quotient rounds up
  // past a whole number (arange(1, 1.3, 0.1) counted 4 values, the last 1.3)
  n = countBelow(n, start, step, end, (v) => v);
  let last = start + (n - 1) * step;
  const fitsInt32 = (v: number) => Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
  // whole numbers that fit int32 give int32; beyond its range float64 keeps them exact
  const ints = [start, step].every(Number.isInteger) && Number.isInteger(end);
  const inferred = !ints ? "float32" : fitsInt32(start) && fitsInt32(last) ? "int32" : "float64";
  // (a range past 4 GiB is refused for its size when the tensor is made, below)
  // and in the dtype's own rounding (0 to 1 by 0.99999999 in float32 ended at 1, and -2.5 to 0
  // by 0.5 in int32 at 0)
  if (o.dtype === undefined && inferred === "float64" && o.device === "webgpu") {
    // (it said webgpu has no float64, a dtype the caller never passed)
    fail(
      "arange",
      'a dtype must be given for whole numbers beyond int32\'s range on "webgpu" (float64 ' +
        'by default, which webgpu does not have: pass { dtype: "float32" } for rounded values, ' +
        "or make them on the cpu)",
      described(`values from ${start} to ${last}`),
    );
  }
  const dtype = o.dtype ?? inferred;
  if (dtype !== "float64") {
    n = countBelow(n, start, step, end, dtype === "float32" ? Math.fround : Math.trunc);
    last = start + (n - 1) * step;
  }
  if (o.dtype === undefined && inferred === "float64" && n * 8 <= 2 ** 32) {
    // past 2^53 float64 holds no longer every whole number: arange(2 ** 53, 2 ** 53 + 4) gave
    // 2^53 twice and skipped 2^53 + 1 (a dtype given says which rounding is wanted)
    const inexact = firstInexact(start, step, n);
    if (inexact !== null) {
      fail(
        "arange",
        "whole numbers float64 holds exactly (pass a dtype for rounded values)",
        described(`${inexact} among the values from ${start} to ${last}`),
      );
    }
  }
  if (
    o.dtype === "int32" && n > 0 && !(fitsInt32(Math.trunc(start)) && fitsInt32(Math.trunc(last)))
  ) {
    fail(
      "arange",
      "values must fit int32 for dtype int32",
      described(`values from ${start} to ${last}`),
    );
  }
  return filled("arange", [n], { ...o, dtype }, (i) => start + i * step);
}

/**
 * How many of the first `n` values `start + i * step`, rounded by `round`, lie below `end` (above
 * it for a negative step): they only grow (shrink) with i, so a binary search finds the last,
 * in about 32 steps (trimming one value at a time walked 2^32 of them for a step of 1e-18). A
 * count no tensor could hold is left as it is, for its size to refuse.
 */
function countBelow(
  n: number,
  start: number,
  step: number,
  end: number,
  round: (v: number) => number,
): number {
  if (!(n <= 2 ** 32)) return n;
  const inRange = (count: number) => {
    const v = round(start + (count - 1) * step);
    return step > 0 ? v < end : v > end;
  };
  let [low, high] = [0, n]; // count `low` is in range (0 always is); beyond `high` none is
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (inRange(middle)) low = middle;
    else high = middle - 1;
  }
  return low;
}

/**
 * The exact value of the first of `start + i * step` (i < n, whole numbers) that float64 rounds,
 * or null: past 2^53 only some whole numbers are floats (2^53 + 2 is, 2^53 + 1 is not). With R
 * the largest magnitude of a value or of `i * step`, every multiple of s up to R is a float when
 * R / s < 2^53, so start and step multiples of that s make every product and sum exact; else
 * each value is checked with BigInt, for up to CHECKED_ARANGE values (checking 2^52 of them took
 * minutes); a longer range is taken as inexact, and said so.
 */
function firstInexact(start: number, step: number, n: number): string | null {
  const last = start + (n - 1) * step;
  if (Number.isSafeInteger(start) && Number.isSafeInteger(last)) return null;
  const largest = Math.max(Math.abs(start), Math.abs(last), Math.abs(last - start));
  let spacing = 1;
  while (largest / spacing >= 2 ** 53) spacing *= 2;
  if (start % spacing === 0 && step % spacing === 0) return null;
  const [first, by] = [BigInt(start), BigInt(step)];
  for (let i = 0; i < Math.min(n, CHECKED_ARANGE); i++) {
    const exact = first + BigInt(i) * by;
    if (BigInt(start + i * step) !== exact) return String(exact);
  }
  return n > CHECKED_ARANGE ? `${n} values past 2^53, too many to check one by one,` : null;
}

/** The most values past 2^53 arange checks one by one (see firstInexact). */
const CHECKED_ARANGE = 1 << 20;

/** Uniform random numbers in [0, 1): `rand(2, 3)` or `rand([2, 3], options)`. */
export function rand(...args: ShapeAndOptions): Tensor {
  const { shape, options } = splitShapeArgs("rand", args);
  if (options.dtype === "int32") fail("rand", "dtype must be a float dtype", options.dtype);
  return drawn(() =>
    filled("rand", shape, options, options.dtype === "float64" ? nextUniform : nextUniformFloat32)
  );
}

/**
 * `make()`, which draws from the global generator; if it throws (the device out of memory once
 * the values were drawn), the generator goes back to where it was: a failed call moved it by as
 * many draws as the tensor had elements, and every seeded number after it shifted.
 */
function drawn(make: () => Tensor): Tensor {
  const before = generatorPosition();
  try {
    return make();
  } catch (e) {
    moveGenerator(before);
    throw e;
  }
}

/**
 * Standard normal random numbers: `randn(2, 3)` or `randn([2, 3], options)`.
 *
 * @example
 * ```ts
 * import { manualSeed, randn } from "@lucid/nn";
 * manualSeed(0); // the same numbers on every run
 * const x = randn(2, 96, 27, 27);
 * const w = randn([3, 4], { requiresGrad: true, dtype: "float64" });
 * console.log(x.numel, w.dtype); // 139968 float64
 * ```
 */
export function randn(...args: ShapeAndOptions): Tensor {
  const { shape, options } = splitShapeArgs("randn", args);
  if (options.dtype === "int32") fail("randn", "dtype must be a float dtype", options.dtype);
  return drawn(() => filled("randn", shape, options, nextNormal));
}
