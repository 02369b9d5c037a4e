// The elementwise methods of Tensor, generated from the IR's op tables (src/ir/ops.ts): one
// method per unary op (`x.exp()`), and the broadcasting binary methods (`x.add(y)`, `x.lt(2)`),
// installed on Tensor.prototype. Their typed, documented signatures are the `Tensor` interface
// in tensor.ts; a test checks that every table entry has its method.

import { type DType, isDType, isFloat, promote } from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import type { Node, Shape } from "./ir/node.ts";
import { type BinaryOp, UNARY_OPS, type UnaryOp } from "./ir/ops.ts";
import type { Tensor } from "./tensor.ts";
import { broadcastShapes, checkInt32, described, fail, failDisposed } from "./validate.ts";

/** The public binary methods: the IR op each builds, and whether it swaps its operands. */
export const BINARY_METHODS = {
  add: { op: "add", swap: false },
  sub: { op: "sub", swap: false },
  mul: { op: "mul", swap: false },
  div: { op: "div", swap: false },
  pow: { op: "pow", swap: false },
  maximum: { op: "maximum", swap: false },
  minimum: { op: "minimum", swap: false },
  lt: { op: "cmplt", swap: false },
  gt: { op: "cmplt", swap: true }, // a > b is b < a
  eq: { op: "cmpeq", swap: false },
} as const satisfies Record<string, { op: BinaryOp; swap: boolean; }>;

/** A public binary method name. */
export type BinaryMethod = keyof typeof BINARY_METHODS;

/** `node` broadcast to `shape` (leading axes added, length-1 axes repeated). */
export function broadcastTo(node: Node, shape: Shape): Node {
  const lead = shape.length - node.shape.length;
  if (lead === 0) return ir.expand(node, shape);
  const lifted = new Array<number>(lead).fill(1);
  for (let i = 0; i < node.shape.length; i++) lifted.push(node.shape[i]);
  return ir.expand(ir.reshape(node, lifted), shape);
}

/**
 * What the generated methods need of tensor.ts, handed over by its call to installElementwise:
 * with no value import of tensor.ts here, either module may be evaluated first.
 */
export interface TensorAccess {
  /** The class to install on. */
  readonly tensorClass: typeof Tensor;
  /** The IR node of a live tensor. */
  nodeOf(t: Tensor): Node;
  /** The IR node of `t`, or an Error naming `fn` if it is disposed or no tensor the library made. */
  liveNode(fn: string, t: Tensor): Node;
  /** Whether `value` is a tensor the library made (not a Proxy or a copy of one). */
  isTensor(value: unknown): value is Tensor;
  /** A new tensor for `node`, computed by an op from `inputs` (autodiff bookkeeping). */
  derive(from: Tensor, node: Node, inputs: readonly Tensor[]): Tensor;
}

/** `self op other` with NumPy broadcasting and dtype promotion; `fn` names the method. */
function binary(
  { nodeOf, derive, liveNode, isTensor }: TensorAccess,
  fn: string,
  self: Tensor,
  other: Tensor | number,
  op: BinaryOp,
  swap: boolean,
): Tensor {
  liveNode(fn, self);
  let otherNode: Node;
  if (typeof other === "number") {
    // a number keeps an int32 tensor int32 only when it is whole
    const dtype = isFloat(self.dtype) || Number.isInteger(other) ? self.dtype : "float32";
    if (dtype === "int32") checkInt32(fn, "other", other, "for an int32 tensor");
    otherNode = ir.constant(other, [], dtype);
  } else if (isTensor(other)) {
    if (other.device !== self.device) {
      fail(
        fn,
        `both operands must be on one device (move one with .to("${self.device}"))`,
        described(`"${self.device}" and "${other.device}"`),
      );
    }
    if (other.isDisposed) failDisposed(fn, other);
    otherNode = nodeOf(other);
  } else {
    fail(fn, "other must be a Tensor or a number", other);
  }
  const shape = broadcastShapes(fn, nodeOf(self).shape, otherNode.shape);
  const dtype = promote(self.dtype, otherNode.dtype);
  let a = broadcastTo(ir.castTo(nodeOf(self), dtype), shape);
  let b = broadcastTo(ir.castTo(otherNode, dtype), shape);
  if (swap) [a, b] = [b, a];
  return derive(self, ir.binary(op, a, b), typeof other === "number" ? [self] : [self, other]);
}

/** Puts one method per unary op and per binary method, and affine and cast, on the prototype. */
export function installElementwise(access: TensorAccess): void {
  const { tensorClass, nodeOf, derive, liveNode } = access;
  const define = (name: string, method: (this: Tensor, ...args: never[]) => Tensor) =>
    Object.defineProperty(tensorClass.prototype, name, {
      value: method,
      writable: true,
      configurable: true,
    });
  for (const op of Object.keys(UNARY_OPS) as UnaryOp[]) {
    define(op, function (this: Tensor): Tensor {
      return derive(this, ir.unary(op, liveNode(op, this)), [this]);
    });
  }
  for (const [name, { op, swap }] of Object.entries(BINARY_METHODS)) {
    define(name, function (this: Tensor, other: Tensor | number): Tensor {
      return binary(access, name, this, other, op, swap);
    });
  }
  define("affine", function (this: Tensor, scale: number, shift: number): Tensor {
    liveNode("affine", this);
    if (typeof scale !== "number") fail("affine", "scale must be a number", scale);
    if (typeof shift !== "number") fail("affine", "shift must be a number", shift);
    return derive(this, ir.affine(nodeOf(this), scale, shift), [this]);
  });
  define("cast", function (this: Tensor, dtype: DType): Tensor {
    liveNode("cast", this);
    if (!isDType(dtype)) fail("cast", `dtype must be one of "float32", "float64", "int32"`, dtype);
    if (dtype === "float64" && this.device === "webgpu") {
      // refused here, as creation and to() refuse it, not when the value is first read
      fail(
        "cast",
        'dtype "float64" needs the "cpu" device (WGSL has no 64-bit floats)',
        described(`a cast of a webgpu tensor to "float64"`),
      );
    }
    return derive(this, ir.castTo(nodeOf(this), dtype), [this]);
  });
}
