// The lazy Tensor: a handle on an IR node plus a device and autodiff state. Every op validates
// its arguments (errors name the argument, what was expected and what was received), builds a
// node and returns at once; nothing computes until data(), toArray(), item() or dataSync()
// realizes. The API follows Lucid/PyTorch names in camelCase, like jax-js and tfjs.
//
// The class holds identity and state; each family of methods lives with its rules: views in
// movement.ts, reductions in reduction.ts, the autodiff API in grad.ts, realization in
// realization.ts, and the elementwise methods are generated from the IR's op tables by
// elementwise.ts (their signatures are the `Tensor` interface at the end of this file).
// The library's own modules make tensors and read their nodes through `createTensor`, `nodeOf`
// and `derive` at the end of this file, so the constructor and the IR stay out of the public
// type (and out of the documentation).

import { type DType, isFloat, type TypedArray } from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import { Node, type Shape } from "./ir/node.ts";
import type { DeviceName } from "./runtime/device.ts";
import { realizedBuffer } from "./runtime/realize.ts";
import { backendFor } from "./runtime/backends.ts";
import { gradEnabled } from "./autodiff.ts";
import { installElementwise } from "./elementwise.ts";
import { backward } from "./grad.ts";
import { gradientTargetsChanged, settleIfDead } from "./history.ts";
import * as movement from "./movement.ts";
import {
  acquireHandle,
  isStandIn,
  noteGradientChange,
  noteHolder,
  releaseHandle,
  setGradientRestorer,
  tracing,
  trackCreated,
  trackDropped,
} from "./ownership.ts";
import { awaitValue, protectReader, replaceWhenStored, unprotectReader } from "./pending.ts";
import {
  moveTo,
  nest,
  readData,
  readDataSync,
  realizeTensors,
  refuseReadWhileTracing,
  releaseValue,
} from "./realization.ts";
import { mean, reduce } from "./reduction.ts";
import { checkInt32, described, fail, failDisposed, fmt, registerTensorClass } from "./validate.ts";

/** The most elements a JavaScript array holds. */
const MAX_ARRAY_LENGTH = 2 ** 32 - 1;

/** The most arrays toArray() builds for an empty tensor (its rows hold no data to bound them). */
const MAX_EMPTY_ROWS = 2 ** 24;

/** How many arrays `toArray()` nests for `shape`: one per index of each leading axis. */
function nestedArrayCount(shape: readonly number[]): number {
  let count = 0;
  let level = 1;
  for (let axis = 0; axis < shape.length && level > 0; axis++) {
    count += level;
    level *= shape[axis];
  }
  return count;
}

/** Nested arrays of numbers, as `toArray()` returns them. */
export type NestedArray = number | NestedArray[];

/**
 * Nested arrays of numbers, as `tensor()` accepts them: readonly at every level (`tensor()`
 * never changes its input; `[[1, 2], [3, 4]] as const` was a type error).
 */
export type NestedInput = number | readonly NestedInput[];

const inspectSymbol = Symbol.for("Deno.customInspect");

/** What the class hands the functions at the end of this file (its private state). */
let privateAccess: {
  create(node: Node, device: DeviceName, requiresGrad: boolean, isLeaf: boolean): Tensor;
  node(t: Tensor): Node;
  grad(t: Tensor): Tensor | null;
  setGrad(t: Tensor, grad: Tensor | null): void;
  serial(t: Tensor): number;
  isTensor(value: unknown): boolean;
};

let nextSerial = 1;

/** The serial the next tensor made gets (tensors made before have smaller ones). */
export function nextTensorSerial(): number {
  return nextSerial;
}

/** `t`'s serial: tensors made later have larger ones. */
export function tensorSerial(t: Tensor): number {
  return privateAccess.serial(t);
}

/**
 * A lazy n-dimensional array. Ops build graph; `data()` and friends compute. A tensor owns its
 * storage until `dispose()` (or `using`, or `tidy`), or until it is garbage collected. Made by
 * the creation functions ({@link tensor}, {@link zeros}, {@link randn}, ...), never with `new`.
 *
 * @example
 * ```ts
 * import { tensor } from "@lucid/nn";
 * const x = tensor([[1, 2], [3, 4]]);
 * const y = x.mul(2).add(1).sum(1); // graph only: nothing has run yet
 * console.log(await y.toArray()); // [ 8, 16 ]
 * console.log(String(y)); // Tensor(float32[2], cpu, realized)
 * ```
 */
export class Tensor {
  #node: Node;
  // a getter, not a readonly field: `x.device = "webgpu"` changed the field at run time (the
  // readonly is TypeScript's only), and every later op on x failed inside
  readonly #device: DeviceName;
  #requiresGrad: boolean;
  #isLeaf: boolean;
  #disposed = false;
  /** Unique, increasing: which tensors existed before a jit trace began (src/jit.ts). */
  readonly #serial = nextSerial++;
  #grad: Tensor | null = null;
  /**
   * Whether the program has seen `grad` (read or set it) since the library last set it. One it
   * never saw, no one else holds: zeroGrad() frees it at once.
   */
  #gradSeen = false;

  /** @ignore Use the creation functions (`tensor`, `zeros`, `randn`, ...) instead. */
  private constructor(node: Node, device: DeviceName, requiresGrad: boolean, isLeaf: boolean) {
    if (!(node instanceof Node)) {
      // `new Tensor()` from JavaScript (TypeScript refuses it): a TypeError from deep inside
      fail(
        "Tensor",
        "tensors are made by tensor(), zeros(), randn() or another creation function",
        described("new Tensor()"),
      );
    }
    this.#node = node;
    this.#device = device;
    this.#requiresGrad = requiresGrad;
    this.#isLeaf = isLeaf;
    acquireHandle(node, device);
    trackCreated(this);
    if (isLeaf && requiresGrad) this.#claimLeaf();
  }

  /** Moves this tensor to `node`, carrying its handle. */
  #moveTo(node: Node): void {
    releaseHandle(this.#node, this.#device);
    acquireHandle(node, this.#device);
    this.#node = node;
  }

  /**
   * Makes this leaf an autodiff variable. Equal values share a node (hash-consing: `x.detach()`
   * twice, or `noGrad(() => x.mul(2))` twice), but each leaf requiring grad is its own
   * variable: a leaf moves to a fresh node of the same value unless its node is a buffer or
   * variable that no other handle holds and no graph was built from. Otherwise a view that
   * changes nothing (`x.reshape(x.shape)`, a cast to its own dtype), which shares its input's
   * node, made every use of the input a use of the new leaf, and graphs built while a leaf did
   * not require grad led to it once it did.
   */
  #claimLeaf(): void {
    const holder = leafTensors.get(this.#node)?.deref();
    const shared = (holder !== undefined && holder !== this && holder.#requiresGrad) ||
      this.#node.handles > 1 || this.#node.used;
    if (shared || (this.#node.op !== "buffer" && !isVariable(this.#node))) {
      this.#moveTo(ir.detach(this.#node, true));
    }
    if (this.#node.op !== "buffer") awaitValue(this.#node, this.device);
    leafTensors.set(this.#node, new WeakRef(this));
  }

  /** The device holding (or going to hold) the data. */
  get device(): DeviceName {
    Tensor.#own(this, "device");
    return this.#device;
  }

  /** Axis lengths. */
  get shape(): number[] {
    Tensor.#own(this, "shape");
    return this.#node.shape.slice();
  }
  /** Element type. */
  get dtype(): DType {
    Tensor.#own(this, "dtype");
    return this.#node.dtype;
  }
  /** Number of axes. */
  get ndim(): number {
    Tensor.#own(this, "ndim");
    return this.#node.shape.length;
  }
  /** Number of elements. */
  get numel(): number {
    Tensor.#own(this, "numel");
    return this.#node.numel;
  }
  /** Whether the value has been computed (or was given as data) and not disposed. */
  get isRealized(): boolean {
    Tensor.#own(this, "isRealized");
    if (this.#disposed) return false;
    const stored = realizedBuffer(this.#node, this.device);
    if (stored === undefined) return false;
    // a copy from another device still on its way holds no value yet (it printed "realized",
    // and dataSync() refused it); a jit stand-in is left alone (asking it counts as a read)
    return stored.standIn === true || backendFor(this.device).pending(stored) === null;
  }
  /** Whether `dispose()` freed this tensor (it can no longer be read or used in an op). */
  get isDisposed(): boolean {
    Tensor.#own(this, "isDisposed");
    return this.#disposed;
  }

  /** The accumulated gradient (a lazy Tensor), or null. */
  get grad(): Tensor | null {
    Tensor.#own(this, "grad");
    this.#gradSeen = true;
    return this.#grad;
  }
  set grad(value: Tensor | null) {
    Tensor.#own(this, "grad");
    // the next backward() adds into it: an int32, float64, string or misshapen value there
    // truncated, widened or broke that sum
    if (value !== null) {
      if (!isTensor(value)) fail("grad", "must be a Tensor or null", value);
      if (value.isDisposed) failDisposed("grad", value);
      // as the requiresGrad setter: a disposed tensor took a gradient and held it for good
      if (this.isDisposed) failDisposed("grad", this);
      const [got, want] = [value.#node.shape, this.#node.shape];
      if (
        value.dtype !== this.dtype || value.device !== this.device ||
        got.length !== want.length || got.some((n, i) => n !== want[i])
      ) {
        fail(
          "grad",
          `must be a ${this.dtype}[${this.shape.join(", ")}] tensor on "${this.device}" (this ` +
            `tensor's dtype, shape and device)`,
          described(`a ${value.dtype}[${value.shape.join(", ")}] tensor on "${value.device}"`),
        );
      }
    }
    // in a jit trace, undone when it ends; else the library holds the new gradient as one
    // backward() stored (computed before storage it reads is freed: an optimizer's update
    // reading a clipped gradient was otherwise left lazy, step after step, until read) and
    // lets go of the old one
    const same = value === this.#grad;
    if (!noteGradientChange(this) && !same) holdGradient(this, value);
    this.#gradSeen = true;
    this.#grad = value;
    if (value !== null && !same) {
      // held by this leaf: a tidy() scope keeps it while the leaf does (weakly: a gradient
      // kept after its leaf is dropped must not keep the leaf)
      const holder = new WeakRef<Tensor>(this);
      noteHolder(value, () => {
        const leaf = holder.deref();
        return leaf !== undefined && !leaf.#disposed && leaf.#grad === value ? leaf : null;
      });
    }
  }

  /** Whether gradients are computed for this tensor. */
  get requiresGrad(): boolean {
    Tensor.#own(this, "requiresGrad");
    return this.#requiresGrad;
  }
  set requiresGrad(value: boolean) {
    Tensor.#own(this, "requiresGrad");
    if (this.#disposed) failDisposed("requiresGrad", this);
    if (typeof value !== "boolean") fail("requiresGrad", "must be a boolean", value);
    if (!this.#isLeaf) {
      fail(
        "requiresGrad",
        "can only be set on a leaf tensor (one not computed by an op)",
        described("a computed tensor"),
      );
    }
    if (value && !isFloat(this.dtype)) fail("requiresGrad", "needs a float tensor", this.dtype);
    const was = this.#requiresGrad;
    this.#requiresGrad = value;
    // on a change only: a second requiresGrad_() must not cut the graphs built since the first
    if (value && !was) this.#claimLeaf();
    else if (!value) gradientTargetsChanged();
  }
  /** Sets `requiresGrad` in place and returns this tensor. */
  requiresGrad_(value = true): this {
    Tensor.#own(this, "requiresGrad_"); // (called on {}, it wrote requiresGrad there)
    this.requiresGrad = value;
    return this;
  }
  /** Whether this tensor was created directly (not computed by an op from tensors requiring grad). */
  get isLeaf(): boolean {
    Tensor.#own(this, "isLeaf");
    return this.#isLeaf;
  }

  /**
   * Clears the accumulated gradient (`grad` becomes null). Inside `tidy`, the cleared gradient
   * is disposed when the scope closes (unless it is returned or kept); outside, it is left to
   * garbage collection.
   */
  zeroGrad(): void {
    Tensor.#own(this, "zeroGrad");
    const grad = this.#grad;
    // in a jit trace the gradient comes back when the trace ends
    if (!noteGradientChange(this)) {
      // no longer the library's: what it reads may be freed under it
      releaseGradient(this);
      // one the program never saw is freed now: an assignment that frees a value it reads
      // computes it first (an accumulated gradient reads old parameters), and a loop that
      // read its parameters after each step kept every step's gradient until collected
      if (grad !== null && !grad.isDisposed) {
        if (!this.#gradSeen) grad.dispose();
        else if (madeByBackward(grad)) trackDropped(grad);
        // (a gradient set by hand is the program's: the scope that made it, if any, has it;
        // one made outside every scope was disposed by the scope that cleared it, and the next
        // step reusing it threw)
      }
    }
    this.#grad = null;
  }

  /** The same value, cut off from autodiff for good (its history is dropped once computed). */
  detach(): Tensor {
    return new Tensor(ir.detach(liveNode("detach", this)), this.device, false, true);
  }

  /**
   * Gives this leaf the value of `value` (a tensor of the same shape, dtype and device, or a
   * number) and returns it. The tensor stays the same object, keeps `requiresGrad` and its graph
   * does not grow: the new value is computed with the next realization that needs it, stored,
   * and the old value's storage is freed then (a graph that still reads the old value gets an
   * Error). No gradient flows through an assignment. Optimizers update parameters this way.
   */
  assign(value: Tensor | number): this {
    const old = liveNode("assign", this);
    if (tracing()) {
      // the new value would be graph over the trace's stand-ins, left on this tensor for good
      fail(
        "assign",
        "a tensor not assigned inside a function jit traces (return the new value and assign " +
          "it after the call; step optimizers outside)",
        described("an assign while tracing"),
      );
    }
    const next = ir.detach(assignedValue(this, value), true); // fresh: a value of its own
    this.#moveTo(next);
    replaceWhenStored(next, old);
    awaitValue(next, this.device);
    if (this.#requiresGrad) leafTensors.set(next, new WeakRef(this));
    gradientTargetsChanged();
    return this;
  }

  /**
   * Accumulates d(this)/d(leaf) into the `grad` of every leaf that requires grad. A non-scalar
   * tensor needs `gradient` (same shape). Builds graph only: gradients realize lazily.
   */
  backward(gradient?: Tensor): void {
    backward(this, gradient);
  }

  // ---- reductions (reduction.ts) ---------------------------------------------------------

  /** Sum over `axis` (a number, an array, or all axes when omitted). */
  sum(axis?: number | number[] | null, keepdim = false): Tensor {
    return reduce("sum", this, "sum", axis, keepdim);
  }
  /** Maximum over `axis` (a number, an array, or all axes when omitted). */
  max(axis?: number | number[] | null, keepdim = false): Tensor {
    return reduce("max", this, "max", axis, keepdim);
  }
  /** Mean over `axis` (a number, an array, or all axes when omitted). */
  mean(axis?: number | number[] | null, keepdim = false): Tensor {
    return mean(this, axis, keepdim);
  }

  // ---- views (movement.ts) ---------------------------------------------------------------

  /** The same elements in a new shape; one axis may be -1 (inferred). */
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return movement.reshape(this, shape);
  }
  /** Axes reordered: output axis i is input axis `dims[i]`. */
  permute(...dims: number[] | [readonly number[]]): Tensor {
    return movement.permute(this, dims);
  }
  /** Axes `dim0` and `dim1` swapped. */
  transpose(dim0 = -2, dim1 = -1): Tensor {
    return movement.transpose(this, dim0, dim1);
  }
  /** Broadcast to `shape` (new leading axes allowed; -1 keeps an axis). */
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return movement.expand(this, shape);
  }
  /** Drops length-1 axes (all, or the given one). */
  squeeze(dim?: number): Tensor {
    return movement.squeeze(this, dim);
  }
  /** Inserts a length-1 axis at `dim`. */
  unsqueeze(dim: number): Tensor {
    return movement.unsqueeze(this, dim);
  }
  /** Axes `startDim..endDim` merged into one. */
  flatten(startDim = 0, endDim = -1): Tensor {
    return movement.flatten(this, startDim, endDim);
  }
  /**
   * Pads every axis by `[before, after]` elements of `value` (one pair per axis). Negative
   * amounts crop instead.
   */
  pad(pads: readonly (readonly [number, number])[], value = 0): Tensor {
    return movement.pad(this, pads, value);
  }
  /** Each axis cut to `[start, end)` (one pair per axis; null keeps the axis). */
  shrink(ranges: readonly (readonly [number, number] | null)[]): Tensor {
    return movement.shrink(this, ranges);
  }
  /** Elements `start..end` (exclusive, negatives count from the end) of axis `dim`. */
  slice(dim: number, start: number, end?: number): Tensor {
    return movement.slice(this, dim, start, end);
  }
  /**
   * Sliding windows along `dim` as a view: that axis becomes
   * `floor((n - size) / step) + 1` windows and a last axis of length `size` is added.
   */
  unfoldDim(dim: number, size: number, step = 1): Tensor {
    return movement.unfoldDim(this, dim, size, step);
  }

  // ---- devices and realization (realization.ts) ------------------------------------------

  /**
   * This tensor on `device` (the same tensor if it is there already). The copy is a new leaf:
   * gradients do not flow back across devices.
   */
  to(device: DeviceName): Tensor {
    return moveTo(this, device);
  }
  /** Computes the value (if needed) and returns this tensor. */
  async realize(): Promise<this> {
    await realizeTensors("realize", [this]);
    return this;
  }
  /** The values as a new typed array (row-major). */
  data(): Promise<TypedArray> {
    refuseReadWhileTracing("data", this);
    return readData("data", this);
  }
  /** The values as a new typed array, synchronously (cpu tensors only). */
  dataSync(): TypedArray {
    refuseReadWhileTracing("dataSync", this);
    return readDataSync(this);
  }
  /** The values as nested arrays (a number for a 0-D tensor). */
  toArray(): Promise<NestedArray> {
    // a receiver that is no tensor rejects, as the method did when it was async (a Proxy's
    // call of #toArray threw a TypeError); a read refused while tracing throws, since fn
    // cannot await a rejection
    if (!Tensor.#isOwn(this)) return Promise.reject(Tensor.#notOwn(this, "toArray"));
    refuseReadWhileTracing("toArray", this);
    return this.#toArray();
  }
  async #toArray(): Promise<NestedArray> {
    // an empty tensor may have an axis longer than an array can be ([2 ** 32, 0]): a bare
    // RangeError named nothing
    if (this.shape.some((n) => n > MAX_ARRAY_LENGTH)) {
      fail(
        "toArray",
        `axes of at most ${MAX_ARRAY_LENGTH} (the longest JavaScript array)`,
        described(`shape [${this.shape.join(", ")}]`),
      );
    }
    // and the rows of an empty tensor are arrays too: [2 ** 32 - 1, 0] built 4 billion empty
    // arrays for 52 s before a bare RangeError
    const rows = nestedArrayCount(this.shape);
    if (this.numel === 0 && rows > MAX_EMPTY_ROWS) {
      fail(
        "toArray",
        `an empty tensor of at most ${MAX_EMPTY_ROWS} nested arrays`,
        described(`shape [${this.shape.join(", ")}] (${rows} arrays)`),
      );
    }
    return nest(Array.from(await readData("toArray", this)), this.shape);
  }
  /** The single value of a one-element tensor. */
  item(): Promise<number> {
    if (!Tensor.#isOwn(this)) return Promise.reject(Tensor.#notOwn(this, "item"));
    refuseReadWhileTracing("item", this);
    return this.#item();
  }
  async #item(): Promise<number> {
    Tensor.#own(this, "item");
    if (this.#disposed) failDisposed("item", this); // before its shape: "needs one element"
    if (this.numel !== 1) {
      fail(
        "item",
        "needs a tensor with exactly one element",
        described(`shape [${this.shape.join(", ")}]`),
      );
    }
    return (await readData("item", this))[0];
  }

  /**
   * Frees the tensor now instead of at garbage collection: reading it or using it in an op
   * afterwards is an Error. Its storage goes back to the device's pool once no other tensor
   * shares it (a no-op view, or an equal computation, shares its input's value) and no pending
   * computation or copy still reads it. Disposing twice does nothing.
   */
  dispose(): void {
    Tensor.#own(this, "dispose");
    if (this.#disposed) return;
    if (isStandIn(this) && tracing()) {
      // a stand-in has no storage: its release reached the allocator, which threw a TypeError
      // and counted storage never allocated (memory() went negative for good); a view of it
      // (`x.reshape(x.shape)` shares its node) is fn's own to dispose
      fail(
        "dispose",
        "a tensor fn made, not one of its arguments, while jit traces fn (an argument is the " +
          "caller's: dispose it after the call)",
        described("a jit argument"),
      );
    }
    this.#disposed = true;
    // a gradient it held is the library's no more (it stayed protected, and a loop of leaves
    // disposed with their gradients piled up protected readers, each step slower)
    releaseGradient(this);
    const node = this.#node;
    // keep shape and dtype, drop the history: a constant of the same type stands in
    this.#node = ir.constant(0, node.shape, node.dtype);
    releaseValue(node, this.device);
  }
  /** `using t = ...` disposes the tensor at the end of the scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Throws unless `t` is a tensor the library made: a Proxy of one, or an object made from
   * `Tensor.prototype`, has none of its state (a member read a private field: a TypeError).
   */
  static #own(t: Tensor, fn: string): void {
    // (a method called without its tensor, `queueMicrotask(t.dispose)`, has an undefined
    // receiver: `in` threw a bare TypeError)
    if (!Tensor.#isOwn(t)) throw Tensor.#notOwn(t, fn);
  }

  /** Whether `t` is a tensor the library made (not undefined: a method called without one). */
  static #isOwn(t: unknown): t is Tensor {
    return typeof t === "object" && t !== null && #node in t;
  }

  /** The Error for `t`, a receiver that is not a tensor the library made. */
  static #notOwn(t: unknown, fn: string): Error {
    return new Error(`${fn}: the tensor must be one the library made, got ${fmt(t)}`);
  }

  /** `Tensor(float32[2, 3], cpu, lazy)`; the state is `lazy`, `realized` or `disposed`. */
  toString(): string {
    // (a Proxy of a tensor, or a copy of one, has none of its state: printing it threw)
    if (!Tensor.#isOwn(this)) return "an imitation of a Tensor (a Proxy or a copy of one)";
    const state = this.#disposed ? "disposed" : this.isRealized ? "realized" : "lazy";
    const grad = this.#requiresGrad ? ", requiresGrad" : "";
    return `Tensor(${this.dtype}[${this.shape.join(", ")}], ${this.device}, ${state}${grad})`;
  }
  /** @ignore Deno's inspect shows the same text as toString(). */
  [inspectSymbol](): string {
    return this.toString();
  }

  static {
    // the library's own modules reach the constructor and the node through the functions at
    // the end of this file, so neither is part of the public type
    privateAccess = {
      create: (node, device, requiresGrad, isLeaf) =>
        new Tensor(node, device, requiresGrad, isLeaf),
      node: (t) => t.#node,
      grad: (t) => t.#grad,
      serial: (t) => t.#serial,
      isTensor: (value) => typeof value === "object" && value !== null && #node in value,
      setGrad: (t, grad) => {
        t.#grad = grad;
        t.#gradSeen = false;
      },
    };
    setGradientRestorer((leaf, grad) => {
      const t = leaf as Tensor;
      noteGradientChange(t); // an enclosing trace undoes it in turn
      t.#gradSeen = true;
      t.#grad = grad as Tensor | null;
    });
  }
}

// Node's inspect (console.log there printed `_Tensor {}`): `toString()`, as Deno's shows.
// Defined outside the class: not part of its documented members.
Object.defineProperty(Tensor.prototype, Symbol.for("nodejs.util.inspect.custom"), {
  value(this: Tensor): string {
    return this.toString();
  },
});

/** The elementwise methods, installed from the op tables by elementwise.ts. */
export interface Tensor {
  /** x * scale + shift with numbers (one fused op). */
  affine(scale: number, shift: number): Tensor;
  /** The same values as `dtype`. */
  cast(dtype: DType): Tensor;
  /** -x */
  neg(): Tensor;
  /** e^x */
  exp(): Tensor;
  /** Natural logarithm. */
  log(): Tensor;
  /** Square root. */
  sqrt(): Tensor;
  /** 1 / sqrt(x). */
  rsqrt(): Tensor;
  /** 1 / x. */
  recip(): Tensor;
  /** x * x. */
  square(): Tensor;
  /** |x|. */
  abs(): Tensor;
  /** max(x, 0). */
  relu(): Tensor;
  /** 1 / (1 + e^-x). */
  sigmoid(): Tensor;
  /** Hyperbolic tangent. */
  tanh(): Tensor;
  /** -1, 0 or 1 by the sign of x. */
  sign(): Tensor;
  /** x + other (broadcasting). */
  add(other: Tensor | number): Tensor;
  /** x - other (broadcasting). */
  sub(other: Tensor | number): Tensor;
  /** x * other (broadcasting). */
  mul(other: Tensor | number): Tensor;
  /** x / other (broadcasting; true division, int32 promotes to float32). */
  div(other: Tensor | number): Tensor;
  /** x ** other (broadcasting). */
  pow(other: Tensor | number): Tensor;
  /** Elementwise maximum (broadcasting). */
  maximum(other: Tensor | number): Tensor;
  /** Elementwise minimum (broadcasting). */
  minimum(other: Tensor | number): Tensor;
  /** 1 where x < other, else 0 (no gradient). */
  lt(other: Tensor | number): Tensor;
  /** 1 where x > other, else 0 (no gradient). */
  gt(other: Tensor | number): Tensor;
  /** 1 where x == other, else 0 (no gradient). */
  eq(other: Tensor | number): Tensor;
}

installElementwise({ tensorClass: Tensor, nodeOf, derive, liveNode, isTensor });
registerTensorClass(Tensor.prototype, isTensor);

const leafTensors = new WeakMap<Node, WeakRef<Tensor>>();

// ---- for the library's modules (not exported from mod.ts) ---------------------------------

/** While `readingNodes` runs its function: told of every tensor whose node is read. */
let nodeReader: ((t: Tensor) => void) | null = null;

/**
 * Runs `fn`, telling `reader` of every tensor whose node is read meanwhile (every op
 * reads its operands' nodes): how jit learns which tensors a function captures.
 */
export function readingNodes<T>(reader: (t: Tensor) => void, fn: () => T): T {
  const outer = nodeReader;
  nodeReader = reader;
  try {
    return fn();
  } finally {
    nodeReader = outer;
  }
}

/** A new tensor; users call the creation functions (`tensor`, `zeros`, `randn`, ...). */
export function createTensor(
  node: Node,
  device: DeviceName,
  requiresGrad: boolean,
  isLeaf: boolean,
): Tensor {
  return privateAccess.create(node, device, requiresGrad, isLeaf);
}

/** `t.grad` for the library's own reads (the program has not seen it; see zeroGrad). */
export function gradOf(t: Tensor): Tensor | null {
  return privateAccess.grad(t);
}

/** The gradients backward() made: the library's to free once no leaf holds them. */
const backwardGradients = new WeakSet<Tensor>();

/** Records that backward() made `t` (see {@link madeByBackward}). */
export function markBackwardGradient(t: Tensor): void {
  backwardGradients.add(t);
}

/**
 * Whether backward() made `t`: a gradient the library let go of goes to the innermost scope
 * only then (one set by hand belongs to the program, and to the scope that made it, if any).
 */
export function madeByBackward(t: Tensor): boolean {
  return backwardGradients.has(t);
}

/**
 * The node each leaf's gradient was protected as (the node, not the tensor: `assign` moves a
 * tensor to another node, and giving back the protection of its new node took away one an
 * `assign` had made, so that pending value could no longer be computed).
 */
const gradientProtections = new WeakMap<Tensor, Node>();

/**
 * The library holds `grad` as `leaf`'s gradient: computed before storage it reads is freed,
 * until {@link releaseGradient} (the gradient it held before is released first).
 */
export function holdGradient(leaf: Tensor, grad: Tensor | null): void {
  releaseGradient(leaf);
  if (!isTensor(grad) || grad.isDisposed) return;
  const node = nodeOf(grad);
  if (protectReader(node, grad.device)) gradientProtections.set(leaf, node);
}

/** `leaf`'s gradient is the library's no more (see {@link holdGradient}). */
export function releaseGradient(leaf: Tensor): void {
  const node = gradientProtections.get(leaf);
  if (node === undefined) return;
  gradientProtections.delete(leaf);
  unprotectReader(node);
}

/** Sets `t.grad` as the library (a gradient the program has not seen yet). */
export function setGradOf(t: Tensor, grad: Tensor | null): void {
  privateAccess.setGrad(t, grad);
}

/** The IR node `t` evaluates to (an Error once it was disposed). */
export function nodeOf(t: Tensor): Node {
  return liveNode("Tensor", t);
}

/**
 * `t`'s shape without the copy the `shape` getter makes for users (read-only: the node's own,
 * frozen array): for the ops' own checks, which read it several times per call.
 */
export function shapeOf(t: Tensor): Shape {
  return privateAccess.node(t).shape;
}

/**
 * Whether `value` is a tensor the library made. `instanceof` is not enough: a Proxy of a tensor
 * and an object made from `Tensor.prototype` pass it and have none of its private state (every
 * use was a TypeError naming a private field).
 */
export function isTensor(value: unknown): value is Tensor {
  return privateAccess.isTensor(value);
}

/** Whether `value` passes for a Tensor (`instanceof`) without being one: see {@link isTensor}. */
export function isImitationTensor(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    Object.prototype.isPrototypeOf.call(Tensor.prototype, value) && !isTensor(value);
}

/** `t`'s node, or an Error naming `fn` if `t` was disposed or is no tensor the library made. */
export function liveNode(fn: string, t: Tensor): Node {
  if (!privateAccess.isTensor(t)) {
    fail(fn, "the tensor must be one the library made", t);
  }
  if (t.isDisposed) failDisposed(fn, t);
  nodeReader?.(t);
  return privateAccess.node(t);
}

/** Ops whose results pass no gradient to their sources (piecewise constant). */
const NO_GRADIENT_OPS = new Set(["cmplt", "cmpeq", "sign"]);

/**
 * A new tensor on `from`'s device for `node`, computed by an op from `inputs`: it requires grad
 * when one of them does and gradients are on (autodiff bookkeeping).
 */
export function derive(from: Tensor, node: Node, inputs: readonly Tensor[]): Tensor {
  // built upon: drop a history no one needs
  for (const t of inputs) settleIfDead(privateAccess.node(t));
  // a result no gradient flows through never requires grad, as torch's: an int32 one (a float
  // cast to int32 passed its gradient straight through: x.cast("int32").sum() gave x a
  // gradient of 1), and a comparison's or a sign's mask (it required grad, and its backward()
  // quietly gave its inputs none)
  const flows = node.dtype !== "int32" && !NO_GRADIENT_OPS.has(node.op);
  const requires = gradEnabled() && flows && inputs.some((t) => t.requiresGrad);
  if (!requires && inputs.some((t) => t.requiresGrad)) node = ir.detach(node);
  return createTensor(node, from.device, requires, !requires);
}

/** The node of `value` for `target.assign(value)`, validated. */
function assignedValue(target: Tensor, value: unknown): Node {
  if (!target.isLeaf) {
    fail(
      "assign",
      "needs a leaf tensor (one not computed by an op)",
      described("a computed tensor"),
    );
  }
  if (typeof value === "number") {
    if (target.dtype === "int32") checkInt32("assign", "value", value, "for dtype int32");
    return ir.constant(value, target.shape, target.dtype);
  }
  if (!isTensor(value)) fail("assign", "value must be a Tensor or a number", value);
  const node = liveNode("assign", value);
  const want = `${target.dtype}[${target.shape.join(", ")}] on "${target.device}"`;
  const got = `${value.dtype}[${value.shape.join(", ")}] on "${value.device}"`;
  if (want !== got) fail("assign", `value must be ${want}`, described(got));
  return node;
}

/** Whether `node` is a fresh autodiff variable node (a tagged detach). */
function isVariable(node: Node): boolean {
  return node.op === "detach" && node.arg !== null;
}

/** The live leaf tensor requiring grad whose variable `node` is, if any. */
export function leafRequiringGrad(node: Node): Tensor | undefined {
  const t = leafTensors.get(node)?.deref();
  return t !== undefined && !t.isDisposed && t.requiresGrad && t.isLeaf &&
      privateAccess.node(t) === node
    ? t
    : undefined;
}
