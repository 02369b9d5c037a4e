// Element types of tensors and the promotion rule between them.
// The rule follows NumPy/PyTorch in spirit: any float beats int32, float64 beats float32.

/** The element type of a tensor: `"float32"` (default), `"float64"` or `"int32"`. */
export type DType = "float32" | "float64" | "int32";

/** Every dtype the library knows, in promotion order. */
export const DTYPES: readonly DType[] = ["int32", "float32", "float64"];

/** A typed array holding tensor data of one of the dtypes. */
export type TypedArray = Float32Array | Float64Array | Int32Array;

/** Whether `value` names a dtype. */
export function isDType(value: unknown): value is DType {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

/** Whether a dtype holds floating point numbers. */
export function isFloat(dtype: DType): boolean {
  return dtype !== "int32";
}

/** The dtype an operation on `a` and `b` computes in. */
export function promote(a: DType, b: DType): DType {
  return DTYPES.indexOf(a) >= DTYPES.indexOf(b) ? a : b;
}

/** The dtype a float-only operation (exp, division, ...) computes in: int32 becomes float32. */
export function floatOf(dtype: DType): DType {
  return dtype === "int32" ? "float32" : dtype;
}

/** The smallest int32 value. */
export const INT32_MIN = -2147483648;

/** The largest int32 value. */
export const INT32_MAX = 2147483647;

/** Bytes per element. */
export function bytesPerElement(dtype: DType): number {
  return dtype === "float64" ? 8 : 4;
}

/** A new zero-filled typed array of `length` elements of `dtype`. */
export function allocArray(dtype: DType, length: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(length);
    case "float64":
      return new Float64Array(length);
    case "int32":
      return new Int32Array(length);
  }
}

/** Rounds a float64 value the way storing it in an array of `dtype` would. */
export function roundTo(dtype: DType, value: number): number {
  switch (dtype) {
    case "float32":
      return Math.fround(value);
    case "float64":
      return value;
    case "int32":
      return value | 0;
  }
}
