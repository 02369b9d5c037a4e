// The lazy Tensor: a handle on an IR node plus a device and autodiff state. Every op validates
// its arguments (errors name the argument, what was expected and what was received), builds a
// node and returns at once; nothing computes until data(), toArray(), item() or dataSync()
// realizes. The API follows Lucid/PyTorch names in camelCase, like jax-js and tfjs.

import {
  allocArray,
  type DType,
  floatOf,
  isDType,
  isFloat,
  promote,
  type TypedArray,
} from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import { type Node, numelOf, type Shape } from "./ir/node.ts";
import type { BinaryOp, UnaryOp } from "./ir/ops.ts";
import { backendFor } from "./runtime/backends.ts";
import { type DeviceBuffer, type DeviceName, DEVICES } from "./runtime/device.ts";
import { forgetRealized, realizedBuffer, realizeNodes, releaseBuffer } from "./runtime/realize.ts";
import { nextNormal, nextUniform } from "./random.ts";
import { backwardNodes, gradEnabled } from "./autodiff.ts";

/** Nested arrays of numbers, as `toArray()` returns and `tensor()` accepts. */
export type NestedArray = number | NestedArray[];

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

/** A description of a received value, printed as is (plain strings are quoted as values). */
class Described {
  constructor(readonly text: string) {}
}

/** Wraps a description of what was received, e.g. `described("shape [2, 3]")`. */
export function described(text: string): Described {
  return new Described(text);
}

const fmt = (v: unknown): string => {
  if (v instanceof Described) return v.text;
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(fmt).join(", ")}]`;
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return String(v);
};

/** Throws the library's standard Error: `fn: what must hold, got value`. */
export function fail(fn: string, expected: string, got: unknown): never {
  throw new Error(`${fn}: ${expected}, got ${fmt(got)}`);
}

function checkShape(fn: string, name: string, shape: unknown): number[] {
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === "number" && Number.isInteger(d) && d >= 0)
  ) {
    fail(fn, `${name} must be an array of non-negative integers`, shape);
  }
  return [...shape];
}

function checkOptions(fn: string, options: unknown): TensorDataOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    fail(fn, "options must be an object", options);
  }
  const o = options as TensorDataOptions;
  if (o.dtype !== undefined && !isDType(o.dtype)) {
    fail(fn, `dtype must be one of "float32", "float64", "int32"`, o.dtype);
  }
  if (o.device !== undefined && !DEVICES.includes(o.device)) {
    fail(fn, `device must be "cpu" or "webgpu"`, o.device);
  }
  if (o.requiresGrad !== undefined && typeof o.requiresGrad !== "boolean") {
    fail(fn, "requiresGrad must be a boolean", o.requiresGrad);
  }
  return o;
}

function normalizeAxis(fn: string, axis: unknown, ndim: number, name = "axis"): number {
  if (
    typeof axis !== "number" || !Number.isInteger(axis) || axis < -Math.max(ndim, 1) ||
    axis >= Math.max(ndim, 1)
  ) {
    fail(
      fn,
      `${name} must be an integer in [${-Math.max(ndim, 1)}, ${
        Math.max(ndim, 1) - 1
      }] for a ${ndim}-D tensor`,
      axis,
    );
  }
  return axis < 0 ? axis + ndim : axis;
}

/** Shape arguments as varargs `(2, 3)` or one array `([2, 3])`. */
function shapeArgs(fn: string, args: unknown[]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return checkShape(fn, "shape", args[0]);
  return checkShape(fn, "shape", args);
}

/** The NumPy broadcast of two shapes, or an Error naming both. */
function broadcastShapes(fn: string, a: Shape, b: Shape): number[] {
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

function broadcastTo(node: Node, shape: Shape): Node {
  const lifted = ir.reshape(node, [
    ...new Array(shape.length - node.shape.length).fill(1),
    ...node.shape,
  ]);
  return ir.expand(lifted, shape);
}

let inspectSymbol: symbol = Symbol.for("Deno.customInspect");

/** A lazy n-dimensional array. Ops build graph; `data()` and friends compute. */
export class Tensor {
  #node: Node;
  /** The device holding (or going to hold) the data. */
  readonly device: DeviceName;
  #requiresGrad: boolean;
  #isLeaf: boolean;
  /** The accumulated gradient (a lazy Tensor), or null. */
  grad: Tensor | null = null;

  /** @internal Use the creation functions (`tensor`, `zeros`, `randn`, ...) instead. */
  constructor(node: Node, device: DeviceName, requiresGrad: boolean, isLeaf: boolean) {
    this.#node = node;
    this.device = device;
    this.#requiresGrad = requiresGrad;
    this.#isLeaf = isLeaf;
    if (isLeaf && requiresGrad) this.#claimLeaf();
  }

  /** @internal The IR node this tensor evaluates to. */
  get node(): Node {
    return this.#node;
  }

  /**
   * Makes this leaf an autodiff variable. Equal values share a node (hash-consing: `x.detach()`
   * twice, or `noGrad(() => x.mul(2))` twice), but each leaf requiring grad is its own
   * variable: a leaf whose node is computed, or held by another live leaf requiring grad, moves
   * to a fresh node of the same value (a buffer node is unique to its storage already).
   */
  #claimLeaf(): void {
    const holder = leafTensors.get(this.#node)?.deref();
    const shared = holder !== undefined && holder !== this && holder.#requiresGrad;
    if (shared || (this.#node.op !== "buffer" && !isVariable(this.#node))) {
      this.#node = ir.detach(this.#node, true);
    }
    leafTensors.set(this.#node, new WeakRef(this));
  }

  /** Axis lengths. */
  get shape(): number[] {
    return [...this.node.shape];
  }
  /** Element type. */
  get dtype(): DType {
    return this.node.dtype;
  }
  /** Number of axes. */
  get ndim(): number {
    return this.node.shape.length;
  }
  /** Number of elements. */
  get numel(): number {
    return this.node.numel;
  }
  /** Whether the value has been computed (or was given as data). */
  get isRealized(): boolean {
    return realizedBuffer(this.node, this.device) !== undefined;
  }

  /** Whether gradients are computed for this tensor. */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }
  set requiresGrad(value: boolean) {
    if (typeof value !== "boolean") fail("requiresGrad", "must be a boolean", value);
    if (!this.#isLeaf) {
      fail(
        "requiresGrad",
        "can only be set on a leaf tensor (one not computed by an op)",
        described("a computed tensor"),
      );
    }
    if (value && !isFloat(this.dtype)) fail("requiresGrad", "needs a float tensor", this.dtype);
    this.#requiresGrad = value;
    if (value) this.#claimLeaf();
  }
  /** Sets `requiresGrad` in place and returns this tensor. */
  requiresGrad_(value = true): this {
    this.requiresGrad = value;
    return this;
  }
  /** Whether this tensor was created directly (not computed by an op from tensors requiring grad). */
  get isLeaf(): boolean {
    return this.#isLeaf;
  }

  /** Clears the accumulated gradient (`grad` becomes null). */
  zeroGrad(): void {
    this.grad = null;
  }

  /** The same value, cut off from autodiff. */
  detach(): Tensor {
    return new Tensor(ir.detach(this.node), this.device, false, true);
  }

  /**
   * Accumulates d(this)/d(leaf) into the `grad` of every leaf that requires grad. A non-scalar
   * tensor needs `gradient` (same shape). Builds graph only: gradients realize lazily.
   */
  backward(gradient?: Tensor): void {
    if (!this.#requiresGrad) {
      fail(
        "backward",
        "the tensor must require grad (create an input with requiresGrad: true)",
        described("a tensor that does not require grad"),
      );
    }
    let seed: Node;
    if (gradient === undefined) {
      if (this.numel !== 1) {
        fail(
          "backward",
          "a non-scalar tensor needs an explicit gradient of its shape",
          described(`shape [${this.shape.join(", ")}] and no gradient`),
        );
      }
      seed = ir.constant(1, this.node.shape, this.dtype);
    } else {
      if (!(gradient instanceof Tensor)) fail("backward", "gradient must be a Tensor", gradient);
      if (gradient.shape.join() !== this.shape.join()) {
        fail(
          "backward",
          `gradient must have shape [${this.shape.join(", ")}]`,
          described(`shape [${gradient.shape.join(", ")}]`),
        );
      }
      if (gradient.device !== this.device) {
        fail("backward", `gradient must be on device "${this.device}"`, gradient.device);
      }
      seed = ir.castTo(gradient.node, this.dtype);
    }
    for (
      const [node, g] of backwardNodes(this.node, seed, (n) => leafRequiringGrad(n) !== undefined)
    ) {
      const leaf = leafRequiringGrad(node)!;
      const sum = leaf.grad === null
        ? g
        : ir.binary("add", leaf.grad.node, ir.castTo(g, leaf.grad.dtype));
      leaf.grad = new Tensor(sum, leaf.device, false, true);
    }
  }

  // ---- elementwise -------------------------------------------------------------------------

  /** Applies a unary op. */
  private unaryOp(op: UnaryOp): Tensor {
    return this.derive(ir.unary(op, this.node), [this]);
  }
  /** -x */
  neg(): Tensor {
    return this.unaryOp("neg");
  }
  /** e^x */
  exp(): Tensor {
    return this.unaryOp("exp");
  }
  /** Natural logarithm. */
  log(): Tensor {
    return this.unaryOp("log");
  }
  /** Square root. */
  sqrt(): Tensor {
    return this.unaryOp("sqrt");
  }
  /** 1 / sqrt(x). */
  rsqrt(): Tensor {
    return this.unaryOp("rsqrt");
  }
  /** 1 / x. */
  recip(): Tensor {
    return this.unaryOp("recip");
  }
  /** x * x. */
  square(): Tensor {
    return this.unaryOp("square");
  }
  /** |x|. */
  abs(): Tensor {
    return this.unaryOp("abs");
  }
  /** max(x, 0). */
  relu(): Tensor {
    return this.unaryOp("relu");
  }
  /** 1 / (1 + e^-x). */
  sigmoid(): Tensor {
    return this.unaryOp("sigmoid");
  }
  /** Hyperbolic tangent. */
  tanh(): Tensor {
    return this.unaryOp("tanh");
  }
  /** -1, 0 or 1 by the sign of x. */
  sign(): Tensor {
    return this.unaryOp("sign");
  }

  /** Applies a binary op with broadcasting; `fn` names the public method in errors. */
  private binaryOp(fn: string, op: BinaryOp, other: Tensor | number, reversed = false): Tensor {
    let otherNode: Node;
    if (typeof other === "number") {
      const dtype = isFloat(this.dtype) || Number.isInteger(other) ? this.dtype : "float32";
      otherNode = ir.constant(other, [], dtype);
    } else if (other instanceof Tensor) {
      if (other.device !== this.device) {
        fail(
          fn,
          `both operands must be on one device (move one with .to("${this.device}"))`,
          described(`"${this.device}" and "${other.device}"`),
        );
      }
      otherNode = other.node;
    } else {
      fail(fn, "other must be a Tensor or a number", other);
    }
    const shape = broadcastShapes(fn, this.node.shape, otherNode.shape);
    const dtype = promote(this.dtype, otherNode.dtype);
    let a = broadcastTo(ir.castTo(this.node, dtype), shape);
    let b = broadcastTo(ir.castTo(otherNode, dtype), shape);
    if (reversed) [a, b] = [b, a];
    return this.derive(ir.binary(op, a, b), other instanceof Tensor ? [this, other] : [this]);
  }
  /** x + other (broadcasting). */
  add(other: Tensor | number): Tensor {
    return this.binaryOp("add", "add", other);
  }
  /** x - other (broadcasting). */
  sub(other: Tensor | number): Tensor {
    return this.binaryOp("sub", "sub", other);
  }
  /** x * other (broadcasting). */
  mul(other: Tensor | number): Tensor {
    return this.binaryOp("mul", "mul", other);
  }
  /** x / other (broadcasting; true division, int32 promotes to float32). */
  div(other: Tensor | number): Tensor {
    return this.binaryOp("div", "div", other);
  }
  /** x ** other (broadcasting). */
  pow(other: Tensor | number): Tensor {
    return this.binaryOp("pow", "pow", other);
  }
  /** Elementwise maximum (broadcasting). */
  maximum(other: Tensor | number): Tensor {
    return this.binaryOp("maximum", "maximum", other);
  }
  /** Elementwise minimum (broadcasting). */
  minimum(other: Tensor | number): Tensor {
    return this.binaryOp("minimum", "minimum", other);
  }
  /** 1 where x < other, else 0 (no gradient). */
  lt(other: Tensor | number): Tensor {
    return this.binaryOp("lt", "cmplt", other);
  }
  /** 1 where x > other, else 0 (no gradient). */
  gt(other: Tensor | number): Tensor {
    return this.binaryOp("gt", "cmplt", other, true);
  }
  /** 1 where x == other, else 0 (no gradient). */
  eq(other: Tensor | number): Tensor {
    return this.binaryOp("eq", "cmpeq", other);
  }
  /** x * scale + shift with numbers (one fused op). */
  affine(scale: number, shift: number): Tensor {
    if (typeof scale !== "number") fail("affine", "scale must be a number", scale);
    if (typeof shift !== "number") fail("affine", "shift must be a number", shift);
    return this.derive(ir.affine(this.node, scale, shift), [this]);
  }
  /** The same values as `dtype`. */
  cast(dtype: DType): Tensor {
    if (!isDType(dtype)) fail("cast", `dtype must be one of "float32", "float64", "int32"`, dtype);
    return this.derive(ir.castTo(this.node, dtype), [this]);
  }

  // ---- reductions --------------------------------------------------------------------------

  /** The validated, non-negative axes of a reduction (all axes when omitted). */
  private reduceAxes(fn: string, axis: unknown): number[] {
    if (axis === undefined || axis === null) return this.shape.map((_, i) => i);
    const list = Array.isArray(axis) ? axis : [axis];
    const axes = list.map((a) => normalizeAxis(fn, a, this.ndim));
    if (new Set(axes).size !== axes.length) fail(fn, "axes must be distinct", axis);
    return this.ndim === 0 ? [] : axes; // a 0-D tensor accepts axis 0 or -1 and reduces nothing
  }
  /** Applies a reduction over validated axes, dropping them unless `keepdim`. */
  private reduceOp(fn: string, op: "sum" | "max", axis: unknown, keepdim: unknown): Tensor {
    if (typeof keepdim !== "boolean") fail(fn, "keepdim must be a boolean", keepdim);
    const axes = this.reduceAxes(fn, axis);
    if (op === "max" && axes.some((a) => this.shape[a] === 0)) {
      fail(fn, "cannot take the max over an empty axis", described(`axis of length 0`));
    }
    let node = ir.reduce(op, this.node, axes);
    if (!keepdim) node = ir.reshape(node, this.shape.filter((_, i) => !axes.includes(i)));
    return this.derive(node, [this]);
  }
  /** Sum over `axis` (a number, an array, or all axes when omitted). */
  sum(axis?: number | number[] | null, keepdim = false): Tensor {
    return this.reduceOp("sum", "sum", axis, keepdim);
  }
  /** Maximum over `axis` (a number, an array, or all axes when omitted). */
  max(axis?: number | number[] | null, keepdim = false): Tensor {
    return this.reduceOp("max", "max", axis, keepdim);
  }
  /** Mean over `axis` (a number, an array, or all axes when omitted). */
  mean(axis?: number | number[] | null, keepdim = false): Tensor {
    const axes = this.reduceAxes("mean", axis);
    const count = axes.reduce((n, a) => n * this.shape[a], 1);
    const s = this.cast(floatOf(this.dtype)).sum(axes, keepdim);
    return s.mul(1 / count);
  }

  // ---- movement ----------------------------------------------------------------------------

  /** The same elements in a new shape; one axis may be -1 (inferred). */
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    const raw = (shape.length === 1 && Array.isArray(shape[0]) ? shape[0] : shape) as unknown[];
    if (!raw.every((d) => typeof d === "number" && Number.isInteger(d) && d >= -1)) {
      fail("reshape", "shape must hold non-negative integers or one -1", raw);
    }
    const dims = raw as number[];
    const inferred = dims.filter((d) => d === -1).length;
    if (inferred > 1) fail("reshape", "shape may hold at most one -1", dims);
    let out = dims;
    if (inferred === 1) {
      const known = dims.reduce((n, d) => (d === -1 ? n : n * d), 1);
      if (known === 0 || this.numel % known !== 0) {
        fail(
          "reshape",
          `cannot infer -1: ${this.numel} elements are not a multiple of ${known}`,
          dims,
        );
      }
      out = dims.map((d) => (d === -1 ? this.numel / known : d));
    }
    if (numelOf(out) !== this.numel) {
      fail(
        "reshape",
        `shape [${out.join(", ")}] has ${numelOf(out)} elements, the tensor [${
          this.shape.join(", ")
        }] has ${this.numel}`,
        out,
      );
    }
    return this.derive(ir.reshape(this.node, out), [this]);
  }
  /** Axes reordered: output axis i is input axis `dims[i]`. */
  permute(...dims: number[] | [readonly number[]]): Tensor {
    const raw = (dims.length === 1 && Array.isArray(dims[0]) ? dims[0] : dims) as unknown[];
    if (raw.length !== this.ndim) fail("permute", `dims must list all ${this.ndim} axes`, raw);
    const perm = raw.map((d) => normalizeAxis("permute", d, this.ndim, "dims"));
    if (new Set(perm).size !== perm.length) {
      fail("permute", "dims must be a permutation (no repeats)", raw);
    }
    return this.derive(ir.permute(this.node, perm), [this]);
  }
  /** Axes `dim0` and `dim1` swapped. */
  transpose(dim0 = -2, dim1 = -1): Tensor {
    const a = normalizeAxis("transpose", dim0, this.ndim, "dim0");
    const b = normalizeAxis("transpose", dim1, this.ndim, "dim1");
    const perm = this.shape.map((_, i) => (i === a ? b : i === b ? a : i));
    return this.derive(ir.permute(this.node, perm), [this]);
  }
  /** Broadcast to `shape` (new leading axes allowed; -1 keeps an axis). */
  expand(...shape: number[] | [readonly number[]]): Tensor {
    const raw = (shape.length === 1 && Array.isArray(shape[0]) ? shape[0] : shape) as unknown[];
    if (
      !raw.every((d) => typeof d === "number" && Number.isInteger(d) && d >= -1) ||
      raw.length < this.ndim
    ) {
      fail("expand", `shape must be integers, at least ${this.ndim} of them`, raw);
    }
    const lead = raw.length - this.ndim;
    const target = (raw as number[]).map((
      d,
      i,
    ) => (d === -1
      ? (i < lead ? fail("expand", "new leading axes cannot be -1", raw) : this.shape[i - lead])
      : d)
    );
    this.shape.forEach((d, i) => {
      if (d !== 1 && d !== target[i + lead]) {
        fail(
          "expand",
          `axis ${i} of length ${d} can only expand to ${d} (only length-1 axes broadcast)`,
          target,
        );
      }
    });
    return this.derive(broadcastTo(this.node, target), [this]);
  }
  /** Drops length-1 axes (all, or the given one). */
  squeeze(dim?: number): Tensor {
    if (dim === undefined) {
      return this.derive(ir.reshape(this.node, this.shape.filter((d) => d !== 1)), [this]);
    }
    const a = normalizeAxis("squeeze", dim, this.ndim, "dim");
    if (this.shape[a] !== 1) return this;
    return this.derive(ir.reshape(this.node, this.shape.filter((_, i) => i !== a)), [this]);
  }
  /** Inserts a length-1 axis at `dim`. */
  unsqueeze(dim: number): Tensor {
    const a = normalizeAxis("unsqueeze", dim, this.ndim + 1, "dim");
    const shape = [...this.shape];
    shape.splice(a, 0, 1);
    return this.derive(ir.reshape(this.node, shape), [this]);
  }
  /** Axes `startDim..endDim` merged into one. */
  flatten(startDim = 0, endDim = -1): Tensor {
    if (this.ndim === 0) return this.reshape([1]);
    const s = normalizeAxis("flatten", startDim, this.ndim, "startDim");
    const e = normalizeAxis("flatten", endDim, this.ndim, "endDim");
    if (s > e) {
      fail(
        "flatten",
        "startDim must not come after endDim",
        described(`${startDim} and ${endDim}`),
      );
    }
    const shape = [
      ...this.shape.slice(0, s),
      numelOf(this.shape.slice(s, e + 1)),
      ...this.shape.slice(e + 1),
    ];
    return this.derive(ir.reshape(this.node, shape), [this]);
  }
  /**
   * Pads every axis by `[before, after]` elements of `value` (one pair per axis). Negative
   * amounts crop instead.
   */
  pad(pads: readonly (readonly [number, number])[], value = 0): Tensor {
    if (
      !Array.isArray(pads) || pads.length !== this.ndim ||
      !pads.every((p) => Array.isArray(p) && p.length === 2 && p.every((v) => Number.isInteger(v)))
    ) {
      fail(
        "pad",
        `pads must be ${this.ndim} pairs [before, after] of integers, one per axis`,
        pads,
      );
    }
    if (typeof value !== "number") fail("pad", "value must be a number", value);
    pads.forEach(([b, a], i) => {
      if (-Math.min(b, 0) - Math.min(a, 0) > this.shape[i]) {
        fail(
          "pad",
          `negative pads of axis ${i} must not remove more than its ${this.shape[i]} elements`,
          [b, a],
        );
      }
    });
    const cropped = ir.shrink(
      this.node,
      pads.map(([b, a], i) => [Math.max(-b, 0), this.shape[i] - Math.max(-a, 0)]),
    );
    const padded = ir.pad(cropped, pads.map(([b, a]) => [Math.max(b, 0), Math.max(a, 0)]), value);
    return this.derive(padded, [this]);
  }
  /** Each axis cut to `[start, end)` (one pair per axis; null keeps the axis). */
  shrink(ranges: readonly (readonly [number, number] | null)[]): Tensor {
    if (!Array.isArray(ranges) || ranges.length !== this.ndim) {
      fail("shrink", `ranges must have one [start, end] or null per axis (${this.ndim})`, ranges);
    }
    const full = ranges.map((r, i) => {
      if (r === null) return [0, this.shape[i]] as [number, number];
      if (
        !Array.isArray(r) || r.length !== 2 || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) ||
        r[0] < 0 || r[0] > r[1] || r[1] > this.shape[i]
      ) {
        fail("shrink", `range of axis ${i} must satisfy 0 <= start <= end <= ${this.shape[i]}`, r);
      }
      return [r[0], r[1]] as [number, number];
    });
    return this.derive(ir.shrink(this.node, full), [this]);
  }
  /** Elements `start..end` (exclusive, negatives count from the end) of axis `dim`. */
  slice(dim: number, start: number, end?: number): Tensor {
    if (this.ndim === 0) {
      fail("slice", "needs a tensor with at least one axis", described("a 0-D tensor"));
    }
    const a = normalizeAxis("slice", dim, this.ndim, "dim");
    const n = this.shape[a];
    const clampIndex = (v: number, name: string) => {
      if (!Number.isInteger(v)) fail("slice", `${name} must be an integer`, v);
      return Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    };
    const s = clampIndex(start, "start");
    const e = Math.max(s, clampIndex(end ?? n, "end"));
    return this.shrink(this.shape.map((d, i) => (i === a ? [s, e] : [0, d])));
  }
  /**
   * Sliding windows along `dim` as a view: that axis becomes
   * `floor((n - size) / step) + 1` windows and a last axis of length `size` is added.
   */
  unfoldDim(dim: number, size: number, step = 1): Tensor {
    if (this.ndim === 0) {
      fail("unfoldDim", "needs a tensor with at least one axis", described("a 0-D tensor"));
    }
    const a = normalizeAxis("unfoldDim", dim, this.ndim, "dim");
    if (!Number.isInteger(size) || size < 1) {
      fail("unfoldDim", "size must be a positive integer", size);
    }
    if (!Number.isInteger(step) || step < 1) {
      fail("unfoldDim", "step must be a positive integer", step);
    }
    if (size > this.shape[a]) {
      fail("unfoldDim", `size must not exceed the length ${this.shape[a]} of axis ${a}`, size);
    }
    return this.derive(ir.unfoldDim(this.node, a, size, step), [this]);
  }

  // ---- devices and realization -------------------------------------------------------------

  /**
   * This tensor on `device` (the same tensor if it is there already). The copy is a new leaf:
   * gradients do not flow back across devices.
   */
  to(device: DeviceName): Tensor {
    if (!DEVICES.includes(device)) fail("to", `device must be "cpu" or "webgpu"`, device);
    if (device === this.device) return this;
    const fromBackend = backendFor(this.device);
    const toBackend = backendFor(device);
    const node = this.node;
    const data = (async () => {
      await realizeNodes([node], fromBackend);
      return await fromBackend.read(realizedBuffer(node, fromBackend.name)!);
    })();
    const buffer = toBackend.uploadLater(data, node.dtype, node.numel);
    const moved = new Tensor(
      ir.buffer(buffer, node.shape, node.dtype),
      device,
      this.#requiresGrad,
      true,
    );
    dataOwners.add(moved);
    return moved;
  }

  /** Computes the value (if needed) and returns this tensor. */
  async realize(): Promise<this> {
    await realizeTensors([this]);
    return this;
  }

  /** The values as a new typed array (row-major). */
  async data(): Promise<TypedArray> {
    await realizeTensors([this]);
    return await backendFor(this.device).read(realizedBuffer(this.node, this.device)!);
  }

  /** The values as a new typed array, synchronously (cpu tensors only). */
  dataSync(): TypedArray {
    if (this.device !== "cpu") {
      fail("dataSync", `needs a cpu tensor (use await data() on "${this.device}")`, this.device);
    }
    const cpu = backendFor("cpu");
    const ran = realizeNodes([this.node], cpu);
    if (ran instanceof Promise || cpu.pending(realizedBuffer(this.node, "cpu")!) !== null) {
      // a copy from another device is still arriving: only the async path can wait for it
      ran?.catch(() => {});
      fail(
        "dataSync",
        "inputs that are ready now (this tensor depends on data still being copied from another device; use await data())",
        described("a pending copy"),
      );
    }
    return cpu.readSync!(realizedBuffer(this.node, "cpu")!);
  }

  /** The values as nested arrays (a number for a 0-D tensor). */
  async toArray(): Promise<NestedArray> {
    return nest(Array.from(await this.data()), this.shape);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.numel !== 1) {
      fail(
        "item",
        "needs a tensor with exactly one element",
        described(`shape [${this.shape.join(", ")}]`),
      );
    }
    return (await this.data())[0];
  }

  /**
   * Frees the tensor's storage now instead of at garbage collection. A computed tensor stays
   * usable (it recomputes when needed); a tensor made from data cannot be used afterwards.
   */
  dispose(): void {
    const buffer = realizedBuffer(this.node, this.device);
    if (buffer === undefined) return;
    // a computed tensor can be the data of another (a no-op view such as `x.flatten()` of a 1-D
    // x is x's node): only the tensor made from the data frees it
    if (this.node.op === "buffer" && !dataOwners.has(this)) return;
    if (this.node.op !== "buffer") forgetRealized(this.node, this.device);
    releaseBuffer(buffer, backendFor(this.device));
  }

  /** `using t = ...` disposes the tensor at the end of the scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** `Tensor(float32[2, 3], cpu, lazy)`. */
  toString(): string {
    const state = this.isRealized ? "realized" : "lazy";
    const grad = this.#requiresGrad ? ", requiresGrad" : "";
    return `Tensor(${this.dtype}[${this.shape.join(", ")}], ${this.device}, ${state}${grad})`;
  }

  /** Deno's inspect shows the same text as toString(). */
  [inspectSymbol](): string {
    return this.toString();
  }

  /** @internal A new tensor for `node` computed from `inputs` (autodiff bookkeeping). */
  derive(node: Node, inputs: readonly Tensor[]): Tensor {
    const requires = gradEnabled() && inputs.some((t) => t.#requiresGrad);
    if (!requires && inputs.some((t) => t.#requiresGrad)) node = ir.detach(node);
    return new Tensor(node, this.device, requires, !requires);
  }
}

inspectSymbol = Symbol.for("Deno.customInspect");

const leafTensors = new WeakMap<Node, WeakRef<Tensor>>();
/** Tensors made from data (creation functions, `to()`): the ones whose dispose() frees it. */
const dataOwners = new WeakSet<Tensor>();

/** Whether `node` is a fresh autodiff variable node (a tagged detach). */
function isVariable(node: Node): boolean {
  return node.op === "detach" && node.arg !== null;
}

function leafRequiringGrad(node: Node): Tensor | undefined {
  const t = leafTensors.get(node)?.deref();
  return t !== undefined && t.requiresGrad && t.isLeaf && t.node === node ? t : undefined;
}

/**
 * The functional gradient: `grad(f)(x, y)` returns `[df/dx, df/dy]` for a function `f` that
 * returns a one-element tensor. The inputs' own `grad` fields are not touched.
 */
export function grad(fn: (...inputs: Tensor[]) => Tensor): (...inputs: Tensor[]) => Tensor[] {
  if (typeof fn !== "function") fail("grad", "fn must be a function", fn);
  return (...inputs: Tensor[]): Tensor[] => {
    inputs.forEach((t, i) => {
      if (!(t instanceof Tensor)) fail("grad", `input ${i} must be a Tensor`, t);
      if (!isFloat(t.dtype)) fail("grad", `input ${i} must be a float tensor`, t.dtype);
    });
    // fresh variables: grad(f)(x, x) has two inputs, and x.detach() inside f is not one
    const vars = inputs.map((t) => new Tensor(ir.detach(t.node, true), t.device, true, true));
    const out = fn(...vars);
    if (!(out instanceof Tensor)) fail("grad", "fn must return a Tensor", out);
    if (out.numel !== 1) {
      fail(
        "grad",
        "fn must return a one-element tensor",
        described(`shape [${out.shape.join(", ")}]`),
      );
    }
    const targets = new Set(vars.map((v) => v.node));
    const grads = out.requiresGrad
      ? backwardNodes(out.node, ir.constant(1, out.node.shape, out.dtype), (n) => targets.has(n))
      : new Map<Node, Node>();
    return vars.map((v) =>
      new Tensor(grads.get(v.node) ?? ir.constant(0, v.node.shape, v.dtype), v.device, false, true)
    );
  };
}

/** Realizes several tensors together (one schedule per device, shared work). */
export async function realizeTensors(tensors: readonly Tensor[]): Promise<void> {
  for (const device of new Set(tensors.map((t) => t.device))) {
    await realizeNodes(
      tensors.filter((t) => t.device === device).map((t) => t.node),
      backendFor(device),
    );
  }
}

function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const [n, ...rest] = shape;
  const size = numelOf(rest);
  return Array.from({ length: n }, (_, i) => nest(flat.slice(i * size, (i + 1) * size), rest));
}

// ---- creation ----------------------------------------------------------------------------

function fromTyped(fn: string, data: TypedArray, shape: number[], options: TensorOptions): Tensor {
  const dtype = options.dtype ?? "float32";
  const device = options.device ?? "cpu";
  if (options.requiresGrad && !isFloat(dtype)) fail(fn, "requiresGrad needs a float dtype", dtype);
  const backend = backendFor(device);
  const converted = allocArray(dtype, data.length);
  converted.set(data);
  const node = ir.buffer(backend.upload(converted, dtype), shape, dtype);
  const t = new Tensor(node, device, options.requiresGrad ?? false, true);
  dataOwners.add(t);
  return t;
}

/**
 * @internal A tensor over `buffer`, which it owns (`dispose()` frees it), as tensors made from
 * data do. For storage the library filled itself, e.g. the outputs of a compiled function.
 */
export function tensorFromBuffer(buffer: DeviceBuffer, shape: Shape): Tensor {
  const t = new Tensor(ir.buffer(buffer, shape, buffer.dtype), buffer.device, false, true);
  dataOwners.add(t);
  return t;
}

function inferNested(fn: string, data: unknown): { flat: number[]; shape: number[]; } {
  if (typeof data === "number") return { flat: [data], shape: [] };
  if (!Array.isArray(data)) {
    fail(fn, "data must be a number, a (nested) array of numbers or a typed array", data);
  }
  if (data.length === 0) return { flat: [], shape: [0] };
  const parts = data.map((d) => inferNested(fn, d));
  const inner = parts[0].shape;
  for (const p of parts) {
    if (p.shape.join() !== inner.join()) {
      fail(
        fn,
        `nested arrays must be rectangular (every row of shape [${inner.join(", ")}])`,
        described(`a row of shape [${p.shape.join(", ")}]`),
      );
    }
  }
  return { flat: parts.flatMap((p) => p.flat), shape: [data.length, ...inner] };
}

/**
 * A tensor from data: a number, nested arrays, or a flat array / typed array with
 * `{shape}`. The data is copied; the dtype defaults to the typed array's or float32.
 */
export function tensor(
  data: NestedArray | readonly number[] | TypedArray,
  options?: TensorDataOptions,
): Tensor {
  const o = checkOptions("tensor", options);
  let flat: ArrayLike<number>;
  let shape: number[];
  let dtype = o.dtype;
  if (ArrayBuffer.isView(data)) {
    if (
      !(data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array)
    ) fail("tensor", "a typed array must be Float32Array, Float64Array or Int32Array", data);
    flat = data;
    shape = [data.length];
    dtype ??= data instanceof Float64Array
      ? "float64"
      : data instanceof Int32Array
      ? "int32"
      : "float32";
  } else {
    const inferred = inferNested("tensor", data);
    if (!inferred.flat.every((v) => typeof v === "number")) {
      fail("tensor", "data must hold only numbers", data);
    }
    flat = inferred.flat;
    shape = inferred.shape;
  }
  if (o.shape !== undefined) {
    const given = checkShape("tensor", "shape", o.shape);
    if (numelOf(given) !== flat.length) {
      fail(
        "tensor",
        `data length must equal the product of shape [${given.join(", ")}] = ${numelOf(given)}`,
        described(`${flat.length} elements`),
      );
    }
    shape = given;
  }
  const typed = allocArray(dtype ?? "float32", flat.length);
  typed.set(flat as ArrayLike<number>);
  return fromTyped("tensor", typed, shape, { ...o, dtype: dtype ?? "float32" });
}

/** Shape arguments: varargs `(2, 3)` or an array with options `([2, 3], {dtype})`. */
export type ShapeAndOptions = number[] | [readonly number[], TensorOptions?];

function splitShapeArgs(fn: string, args: unknown[]): { shape: number[]; options: TensorOptions; } {
  if (args.length > 0 && Array.isArray(args[0])) {
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
  const data = allocArray(dtype, numelOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = value(i);
  return fromTyped(fn, data, shape, { ...options, dtype });
}

/** A tensor of zeros: `zeros(2, 3)` or `zeros([2, 3], options)`. */
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
  return filled("full", s, checkOptions("full", options), () => value);
}

/** `[start, start + step, ...)` below `end`; `arange(n)` is `0..n-1`. */
export function arange(start: number, end?: number, step = 1, options?: TensorOptions): Tensor {
  if (end === undefined) [start, end] = [0, start];
  for (const [name, v] of [["start", start], ["end", end], ["step", step]] as const) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      fail("arange", `${name} must be a finite number`, v);
    }
  }
  if (step === 0) fail("arange", "step must not be 0", step);
  const o = checkOptions("arange", options);
  const n = Math.max(0, Math.ceil((end - start) / step));
  const last = start + (n - 1) * step;
  const fitsInt32 = (v: number) => Number.isInteger(v) && v >= -2147483648 && v <= 2147483647;
  // whole numbers that fit int32 give int32; beyond its range float64 keeps them exact
  const ints = [start, step].every(Number.isInteger) && Number.isInteger(end);
  const inferred = !ints ? "float32" : fitsInt32(start) && fitsInt32(last) ? "int32" : "float64";
  if (
    o.dtype === "int32" && n > 0 && !(fitsInt32(Math.trunc(start)) && fitsInt32(Math.trunc(last)))
  ) {
    fail(
      "arange",
      "values must fit int32 for dtype int32",
      described(`values from ${start} to ${last}`),
    );
  }
  return filled(
    "arange",
    [n],
    { ...o, dtype: o.dtype ?? inferred },
    (i) => start + i * step,
  );
}

/** Uniform random numbers in [0, 1): `rand(2, 3)` or `rand([2, 3], options)`. */
export function rand(...args: ShapeAndOptions): Tensor {
  const { shape, options } = splitShapeArgs("rand", args);
  if (options.dtype === "int32") fail("rand", "dtype must be a float dtype", options.dtype);
  return filled("rand", shape, options, nextUniform);
}

/** Standard normal random numbers: `randn(2, 3)` or `randn([2, 3], options)`. */
export function randn(...args: ShapeAndOptions): Tensor {
  const { shape, options } = splitShapeArgs("randn", args);
  if (options.dtype === "int32") fail("randn", "dtype must be a float dtype", options.dtype);
  return filled("randn", shape, options, nextNormal);
}
