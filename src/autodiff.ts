// Reverse-mode autodiff as a transformation of the IR: from a root node and a seed gradient it
// walks the graph in reverse topological order and builds gradient nodes with one vjp rule per
// op (the table below). Gradients are ordinary lazy IR, so they schedule and fuse like forward
// code. Movement ops differentiate to movement ops, and unfoldDim to a gather over the
// transposed window (unfoldTranspose, then a sum), never a scatter. As in JAX, a vjp rule may
// use the node's own output (`out`), which the scheduler inlines or loads.

import * as ir from "./ir/node.ts";
import type { Node, PadArg, UnfoldArg } from "./ir/node.ts";
import { topoSort } from "./ir/graph.ts";
import { fail } from "./validate.ts";

let enabled = true;

/** Whether ops record graph for gradients (false inside `noGrad`). */
export function gradEnabled(): boolean {
  return enabled;
}

/**
 * Runs `fn` with gradient tracking off and returns its result. `fn` must be synchronous: the
 * switch is global, so across an `await` it would either leak into whatever else runs
 * meanwhile or end too early; an async function is refused before it runs (await first, then
 * call noGrad on the synchronous tensor code).
 *
 * @example
 * ```ts
 * import { noGrad, randn } from "@lucid/nn";
 * const w = randn([3], { requiresGrad: true });
 * const y = noGrad(() => w.mul(2)); // not tracked: no gradient flows back to w
 * console.log(y.requiresGrad); // false
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== "function") fail("noGrad", "fn must be a function", fn); // (null: "object")
  if (isAsyncFunction(fn)) {
    throw new Error(
      "noGrad: fn must be synchronous (tracking is switched off only while it runs, and an " +
        "await would switch it back on for the rest); await first, then noGrad the tensor " +
        "code, got an async function",
    );
  }
  const before = enabled;
  enabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    enabled = before;
  }
  if (isPromiseLike(result)) {
    ignoreRejection(result);
    throw new Error(
      "noGrad: fn must be synchronous (everything after its first await ran with tracking " +
        "on); await first, then noGrad the tensor code, got a function returning a Promise",
    );
  }
  return result;
}

/**
 * Runs the synchronous `fn` with gradient tracking on, whatever the enclosing scope says: `grad`
 * differentiates its function even inside `noGrad` (which then only keeps the gradients it
 * returns from being tracked in turn).
 */
export function withGradEnabled<T>(fn: () => T): T {
  const before = enabled;
  enabled = true;
  try {
    return fn();
  } finally {
    enabled = before;
  }
}

/** Whether `fn` is an `async` function (or async generator). */
export function isAsyncFunction(fn: unknown): boolean {
  const tag = Object.prototype.toString.call(fn);
  return tag === "[object AsyncFunction]" || tag === "[object AsyncGeneratorFunction]";
}

/**
 * Marks a Promise that a function refuses (fn returned it where a value was expected) as
 * handled: the caller gets the refusal, and its later rejection (a jit call whose trace threw)
 * ended the process as an unhandled rejection. Other thenables are left alone (calling their
 * `then` is the program's business).
 */
export function ignoreRejection(value: PromiseLike<unknown>): void {
  if (value instanceof Promise) value.catch(() => {});
}

/** Whether `value` is a Promise or another thenable. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown; }).then === "function";
}

const c = (value: number, like: Node) => ir.constant(value, like.shape, like.dtype);
const mul = (a: Node, b: Node) => ir.binary("mul", a, b);
const div = (a: Node, b: Node) => ir.binary("div", a, b);
const sub = (a: Node, b: Node) => ir.binary("sub", a, b);
const neg = (a: Node) => ir.unary("neg", a);

/** The vjp of one node: the gradient of each source (null where none flows). */
type Vjp = (g: Node, node: Node) => (Node | null)[];

/** The value of a constant, or of a view of one (expanded, reshaped...): else undefined. */
function constantValue(node: Node): number | undefined {
  let x = node;
  while (x.op === "expand" || x.op === "reshape" || x.op === "permute" || x.op === "shrink") {
    x = x.srcs[0];
  }
  return x.op === "const" ? (x.arg as number) : undefined;
}

/** One rule per op: given the output gradient `g` and the node, the sources' gradients. */
const VJP: Record<string, Vjp> = {
  // sources and stops: nothing flows further
  buffer: () => [],
  const: () => [],
  detach: () => [null],
  // casts: back to the source's dtype (no gradient to integers)
  cast: (g, n) => [n.srcs[0].dtype === "int32" ? null : ir.castTo(g, n.srcs[0].dtype)],
  // unary
  neg: (g) => [neg(g)],
  exp: (g, n) => [mul(g, n)], // d e^x = e^x
  log: (g, n) => [div(g, n.srcs[0])], // d log x = 1/x
  sqrt: (g, n) => [div(mul(g, c(0.5, n)), n)], // d sqrt x = 0.5 / sqrt x
  rsqrt: (g, n) => [mul(mul(g, c(-0.5, n)), div(n, n.srcs[0]))], // d x^-1/2 = -1/2 x^-1/2 / x
  recip: (g, n) => [neg(mul(g, mul(n, n)))], // d 1/x = -1/x^2
  square: (g, n) => [mul(g, mul(n.srcs[0], c(2, n)))], // d x^2 = 2x
  abs: (g, n) => [mul(g, ir.unary("sign", n.srcs[0]))], // d |x| = sign x
  relu: (g, n) => [mul(g, ir.binary("cmplt", c(0, n), n.srcs[0]))], // d relu x = [x > 0]
  // d s = s (1 - s), as s(x) s(-x): 1 - s cancels to 0 where s rounds to 1 (x > 17 in float32)
  sigmoid: (g, n) => [mul(g, mul(n, ir.unary("sigmoid", neg(n.srcs[0]))))],
  // d tanh = 1 - tanh^2, as 4 s(2x) s(-2x), which does not cancel where tanh rounds to 1
  tanh: (g, n) => {
    const twice = mul(n.srcs[0], c(2, n));
    const product = mul(ir.unary("sigmoid", twice), ir.unary("sigmoid", neg(twice)));
    return [mul(g, mul(product, c(4, n)))];
  },
  sign: () => [null], // piecewise constant
  // binary (operands have equal shapes: broadcasting is an explicit expand)
  add: (g) => [g, g],
  sub: (g) => [g, neg(g)],
  mul: (g, n) => [mul(g, n.srcs[1]), mul(g, n.srcs[0])],
  // d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b, as -(g/b) * (a/b): g/b first keeps the
  // intermediate in range where g * (a/b) would overflow (and shares g/b with da)
  div: (g, n) => [div(g, n.srcs[1]), neg(mul(div(g, n.srcs[1]), n))],
  // d a^b = b a^(b-1) da + a^b log a db. At a = 0 these are 0 * Infinity where b = 0 (the
  // derivative of a^0 is 0) and 0 * -Infinity where b > 0 (that of 0^b is 0): there the base
  // is moved to 1, as PyTorch masks them, so both are 0
  pow: (g, n) => {
    const [a, b] = n.srcs;
    const exponent = constantValue(b);
    if (exponent !== undefined) {
      if (exponent === 0) return [c(0, n), null];
      return [mul(g, mul(b, ir.binary("pow", a, sub(b, c(1, n))))), null];
    }
    const isZero = (x: Node) => ir.binary("cmpeq", x, c(0, n));
    const bothZero = mul(isZero(a), isZero(b));
    const da = mul(g, mul(b, ir.binary("pow", ir.binary("add", a, bothZero), sub(b, c(1, n)))));
    const nonNegative = sub(c(1, n), ir.binary("cmplt", b, c(0, n)));
    const logBase = ir.unary("log", ir.binary("add", a, mul(isZero(a), nonNegative)));
    return [da, mul(g, mul(n, logBase))];
  },
  maximum: (g, n) => {
    // the larger operand takes the gradient; ties split it evenly
    const [a, b] = n.srcs;
    const share = ir.affine(ir.binary("cmplt", b, a), 1, 0);
    const wa = ir.binary("add", share, mul(ir.binary("cmpeq", a, b), c(0.5, n)));
    return [mul(g, wa), mul(g, sub(c(1, n), wa))];
  },
  minimum: (g, n) => {
    const [a, b] = n.srcs;
    const wa = ir.binary("add", ir.binary("cmplt", a, b), mul(ir.binary("cmpeq", a, b), c(0.5, n)));
    return [mul(g, wa), mul(g, sub(c(1, n), wa))];
  },
  cmplt: () => [null, null],
  cmpeq: () => [null, null],
  affine: (g, n) => [mul(g, c((n.arg as number[])[0], n))], // d(x*s + t) = s
  // reductions
  sum: (g, n) => [ir.expand(g, n.srcs[0].shape)],
  max: (g, n) => {
    // the maxima share the gradient evenly
    const x = n.srcs[0];
    const hit = ir.binary("cmpeq", x, ir.expand(n, x.shape));
    const count = ir.expand(ir.reduce("sum", hit, n.arg as number[]), x.shape);
    return [div(mul(ir.expand(g, x.shape), hit), count)];
  },
  // movement: the adjoint view
  reshape: (g, n) => [ir.reshape(g, n.srcs[0].shape)],
  permute: (g, n) => {
    const perm = n.arg as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [ir.permute(g, inverse)];
  },
  expand: (g, n) => {
    const src = n.srcs[0];
    const axes = src.shape.flatMap((d, i) => (d === 1 && n.shape[i] !== 1 ? [i] : []));
    return [ir.reduce("sum", g, axes)];
  },
  pad: (g, n) => {
    const { pads } = n.arg as PadArg;
    return [ir.shrink(g, pads.map(([b], i) => [b, b + n.srcs[0].shape[i]]))];
  },
  shrink: (g, n) => {
    const ranges = n.arg as [number, number][];
    return [ir.pad(g, ranges.map(([s, e], i) => [s, n.srcs[0].shape[i] - e]), 0)];
  },
  unfoldDim: (g, n) => {
    // gather: dx[i] = sum over s of g[(i - s) / step, s], where that window exists
    const { dim, step } = n.arg as UnfoldArg;
    const src = n.srcs[0];
    const gathered = ir.unfoldTranspose(g, dim, src.shape[dim], step);
    const summed = ir.reduce("sum", gathered, [gathered.shape.length - 1]);
    return [ir.reshape(summed, src.shape)];
  },
  unfoldTranspose: () => {
    throw new Error(
      "autodiff: second derivatives through unfoldDim are not supported (nor through " +
        "LocalResponseNorm, which uses it): the gradient of a gradient reached unfoldDim",
    );
  },
};

/**
 * Gradients of `root` (seeded with `seed`, same shape) with respect to every node for which
 * `isTarget` holds and that `root` depends on. The walk never enters a detach (no gradient
 * passes it; autodiff variables are detach nodes, so a parameter's history is never walked) or
 * a settled node (its history is gone); of what remains, only paths that reach a target get
 * gradient nodes.
 */
export function backwardNodes(
  root: Node,
  seed: Node,
  isTarget: (n: Node) => boolean,
): Map<Node, Node> {
  const order = topoSort([root], (n) => n.op === "detach");
  // which nodes lie on a path to a target
  const reaches = new Set<Node>();
  for (const n of order) {
    if (isTarget(n) || (n.op !== "detach" && n.srcs.some((s) => reaches.has(s)))) reaches.add(n);
  }
  const grads = new Map<Node, Node>([[root, seed]]);
  const result = new Map<Node, Node>();
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    const g = grads.get(n);
    if (g === undefined || !reaches.has(n)) continue;
    if (isTarget(n)) result.set(n, g);
    const srcGrads = VJP[n.op](g, n);
    n.srcs.forEach((s, j) => {
      const sg = srcGrads[j];
      if (sg === null || sg === undefined || !reaches.has(s)) return;
      const prev = grads.get(s);
      grads.set(s, prev === undefined ? sg : ir.binary("add", prev, sg));
    });
  }
  return result;
}
