// LocalResponseNorm with Lucid's semantics (README, "LocalResponseNorm semantics"): across
// channels (axis 1) of an (N, C, *) input, y = x / (k + alpha * S) ^ beta where S sums x^2
// over the window [c - floor((size-1)/2), c + floor(size/2)] clipped to the channels. alpha
// is NOT divided by size (unlike PyTorch and ONNX); even sizes put the extra channel after c.
//
// It is written with ordinary IR ops, pad -> unfoldDim -> square -> sum -> affine -> pow -> div
// (the graph the tensor methods of those names build), and nothing LRN-specific exists below
// this file: the compiler fuses it into one kernel, clips the window loop to the valid channels
// and specializes the constant pow, as it would for any graph of this shape. The nodes are made
// directly, one tensor for the result: through the tensor methods each step made a tensor and
// checked arguments LRN computed itself, about 1.5 us a step (measured: 13 us of a 31 us call
// on a (1, 8, 4, 4) input). Autodiff works on the nodes, so the gradient is the same.

import * as ir from "../ir/node.ts";
import { broadcastTo } from "../elementwise.ts";
import { derive, isTensor, liveNode, type Tensor } from "../tensor.ts";
import { fail } from "../validate.ts";
import { Module } from "./module.ts";
import { checkModuleReceiver } from "./receiver.ts";
import { nameModuleClass } from "./names.ts";
import { pythonFloat } from "./format.ts";

function checkParams(fn: string, size: unknown, alpha: unknown, beta: unknown, k: unknown): void {
  if (typeof size !== "number" || !Number.isInteger(size) || size < 1) {
    fail(fn, "size must be a positive integer", size);
  }
  for (const [name, v] of [["alpha", alpha], ["beta", beta], ["k", k]] as const) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      fail(fn, `${name} must be a finite number`, v);
    }
  }
}

/**
 * Local response normalization across channels, functional form. `x` has shape (N, C, *);
 * inputs of rank < 2 are returned unchanged (the same object); int32 input is promoted to
 * float32. Lucid's semantics: alpha is not divided by size.
 *
 * @example
 * ```ts
 * import { nn, tensor } from "@lucid/nn";
 * const x = tensor([1, 2, 3], { shape: [1, 3, 1] }); // 3 channels
 * const y = nn.functional.localResponseNorm(x, 3, 1, 1, 1); // x / (1 + sum of x^2 around c)
 * console.log(await y.toArray()); // [ [ [ 1/6 ], [ 2/15 ], [ 3/14 ] ] ] in float32
 * ```
 */
export function localResponseNorm(
  x: Tensor,
  size: number,
  alpha = 1e-4,
  beta = 0.75,
  k = 1.0,
): Tensor {
  checkParams("localResponseNorm", size, alpha, beta, k);
  if (!isTensor(x)) fail("localResponseNorm", "x must be a Tensor", x);
  const given = liveNode("localResponseNorm", x); // a disposed x is an Error here, not in pad
  if (x.ndim < 2) return x;
  // on nodes, with no tensor in between: a cast tensor the library made and dropped was a
  // handle on its node until garbage collection, and kept an equal cast the program held (and
  // disposed) alive
  const node = x.dtype === "int32" ? ir.castTo(given, "float32") : given;
  const shape = node.shape;
  if (shape[1] === 0) return derive(x, ir.affine(node, 1, 0), [x]); // no channels: no window
  // a window reaching past every channel on a side reaches as far as C - 1 channels would
  // (clipped alike): a size of 10^8 padded 10^8 channels and the backward pass failed on it
  const before = Math.min(Math.floor((size - 1) / 2), shape[1] - 1);
  const after = Math.min(Math.floor(size / 2), shape[1] - 1);
  const pads = shape.map((_, i): [number, number] => (i === 1 ? [before, after] : [0, 0]));
  const windows = ir.unfoldDim(ir.pad(node, pads), 1, before + after + 1, 1); // (N, C, *, window)
  const squares = ir.unary("square", windows);
  const sumSquares = ir.reshape(ir.reduce("sum", squares, [shape.length]), shape); // S
  const exponent = broadcastTo(ir.constant(beta, [], node.dtype), shape);
  // (k + alpha S) ^ beta
  const denominator = ir.binary("pow", ir.affine(sumSquares, alpha, k), exponent);
  return derive(x, ir.binary("div", node, denominator), [x]);
}

/**
 * `nn.LocalResponseNorm(size, alpha = 1e-4, beta = 0.75, k = 1.0)` with Lucid's semantics:
 * `y = x / (k + alpha * S) ^ beta`, S the sum of squares over a window of `size` channels
 * around each (alpha not divided by size). Forward compiles to one kernel, forward and
 * backward together to two.
 *
 * @example
 * ```ts
 * import { kernels, nn, randn } from "@lucid/nn";
 * const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
 * console.log(String(lrn)); // LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=2.0)
 * const x = randn([2, 96, 27, 27], { requiresGrad: true });
 * const y = lrn.forward(x);
 * console.log(kernels(y).length); // 1
 * y.sum().backward();
 * console.log(x.grad!.shape); // [ 2, 96, 27, 27 ]
 * ```
 */
export class LocalResponseNorm extends Module {
  /** Number of channels in each window. */
  readonly size: number;
  /** Scale of the sum of squares (not divided by size). */
  readonly alpha: number;
  /** Exponent of the denominator. */
  readonly beta: number;
  /** Additive constant of the denominator. */
  readonly k: number;

  /** A module normalizing over windows of `size` channels. */
  constructor(size: number, alpha = 1e-4, beta = 0.75, k = 1.0) {
    super();
    checkParams("LocalResponseNorm", size, alpha, beta, k);
    this.size = size;
    this.alpha = alpha;
    this.beta = beta;
    this.k = k;
    // read-only in fact, not only in TypeScript: written, they took any value past the checks
    // above, and toString threw a bare RangeError (helper-161). Data properties, not private
    // fields: a module behind a Proxy reads them.
    const fixed = { writable: false, configurable: false };
    Object.defineProperties(this, { size: fixed, alpha: fixed, beta: fixed, k: fixed });
  }

  /** Normalizes `x` of shape (N, C, *); rank < 2 input is returned unchanged. */
  forward(x: Tensor): Tensor {
    checkModuleReceiver(this, "forward");
    if (!isTensor(x)) fail("LocalResponseNorm.forward", "x must be a Tensor", x);
    liveNode("LocalResponseNorm.forward", x);
    return localResponseNorm(x, this.size, this.alpha, this.beta, this.k);
  }

  /** `size=5, alpha=0.0001, beta=0.75, k=2.0`. */
  override extraRepr(): string {
    checkModuleReceiver(this, "extraRepr");
    // an integer as Python prints one (1e21 printed as `1e+21`)
    return `size=${BigInt(this.size)}, alpha=${pythonFloat(this.alpha)}, beta=${
      pythonFloat(this.beta)
    }, k=${pythonFloat(this.k)}`;
  }
}

nameModuleClass(LocalResponseNorm, "LocalResponseNorm");
