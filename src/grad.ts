// The autodiff API on tensors: `t.backward(gradient?)`, which accumulates into the `grad` of
// every leaf requiring grad, and the functional `grad(fn)`. Both hand the graph to
// backwardNodes (src/autodiff.ts), which builds gradient graph; nothing computes here.

import { isFloat } from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import type { Node } from "./ir/node.ts";
import { backwardNodes, gradEnabled, withGradEnabled } from "./autodiff.ts";
import { topoSort } from "./ir/graph.ts";
import { noteGradientDetach, settleIfDead } from "./history.ts";
import {
  inheritedByTrace,
  noteDifferentiated,
  noteGradientChange,
  tracing,
  trackCreated,
  trackDropped,
  untracked,
} from "./ownership.ts";
import {
  createTensor,
  gradOf,
  holdGradient,
  isTensor,
  leafRequiringGrad,
  liveNode,
  madeByBackward,
  markBackwardGradient,
  nodeOf,
  setGradOf,
  type Tensor,
} from "./tensor.ts";
import { described, fail } from "./validate.ts";
import { realizeOn } from "./realization.ts";
import { isInFlight, storedAnywhere } from "./runtime/realize.ts";
import { awaitsStoring, withWaitingVariables } from "./pending.ts";
import type { DeviceName } from "./runtime/device.ts";

/** `t.backward(gradient)`: d(t)/d(leaf) added to each leaf's `grad`. */
export function backward(t: Tensor, gradient?: Tensor): void {
  const root = liveNode("backward", t);
  if (!t.requiresGrad) {
    fail(
      "backward",
      "the tensor must require grad (create an input with requiresGrad: true)",
      described("a tensor that does not require grad"),
    );
  }
  let seed: Node;
  if (gradient === undefined) {
    if (t.numel !== 1) {
      fail(
        "backward",
        "a non-scalar tensor needs an explicit gradient of its shape",
        described(`shape [${t.shape.join(", ")}] and no gradient`),
      );
    }
    seed = ir.constant(1, nodeOf(t).shape, t.dtype);
  } else {
    if (!isTensor(gradient)) fail("backward", "gradient must be a Tensor", gradient);
    if (gradient.shape.join() !== t.shape.join()) {
      fail(
        "backward",
        `gradient must have shape [${t.shape.join(", ")}]`,
        described(`shape [${gradient.shape.join(", ")}]`),
      );
    }
    if (gradient.device !== t.device) {
      fail("backward", `gradient must be on device "${t.device}"`, gradient.device);
    }
    seed = ir.castTo(liveNode("backward", gradient), t.dtype);
  }
  const isTarget = (n: Node) => leafRequiringGrad(n) !== undefined;
  const gradients = backwardNodes(root, seed, isTarget);
  // a gradient the program disposed cannot be added to, and taking it for none lost what it
  // held without a word: refused before any leaf changes
  for (const node of gradients.keys()) {
    const leaf = leafRequiringGrad(node)!;
    const held = gradOf(leaf);
    if (held !== null && held.isDisposed && !inheritedByTrace(leaf, held)) {
      fail(
        "backward",
        "the grad of every leaf it reaches must be live or null (set grad to null, or call " +
          "zeroGrad(), to start a leaf's gradient afresh)",
        described(`the disposed grad of a leaf ${leaf.dtype}[${leaf.shape.join(", ")}]`),
      );
    }
  }
  /** The gradient a leaf had before this pass, if it is added to (null in a jit trace). */
  const before = (leaf: Tensor) => inheritedByTrace(leaf, gradOf(leaf)) ? null : gradOf(leaf);
  computeLongSums([...gradients.keys()].map((node) => before(leafRequiringGrad(node)!)));
  for (const [node, g] of gradients) {
    const leaf = leafRequiringGrad(node)!;
    // in a jit trace, a gradient from before the call is not this call's: a traced backward
    // pass starts from none (one inherited was baked into every replay as a constant)
    const held = before(leaf);
    const previous = held === null || held.isDisposed ? null : nodeOf(held);
    if (previous !== null) settleIfDead(previous); // built upon: drop a history no one needs
    // a constant, as it says (requiresGrad false): a later backward pass through it must not
    // reach the graph it was computed from (torch's default, without create_graph)
    const sum = ir.detach(
      previous === null ? g : ir.binary("add", previous, ir.castTo(g, previous.dtype)),
    );
    const lazyBefore = previous === null || !madeByBackward(held!) || !isLazy(previous, leaf.device)
      ? 0
      : lazyPasses.get(previous) ?? 1;
    lazyPasses.set(sum, lazyBefore + 1);
    if (lazyBefore > 0) nextTry.set(sum, nextTry.get(previous!) ?? GRADIENT_SUM_PASSES);
    noteGradientDetach(sum);
    // the leaf owns its gradient: it outlives the tidy() scope the backward pass ran in while
    // the leaf holds it and lives (cleared by zeroGrad, replaced by a later sum, or with its
    // leaf disposed, the scope disposes it), and storage it reads is not freed under it (it is
    // computed first)
    const gradient = untracked(() => createTensor(sum, leaf.device, false, true));
    markBackwardGradient(gradient);
    if (noteGradientChange(leaf)) {
      // a trace: the leaf gets its gradient back when the trace ends, and no scope is involved
      noteDifferentiated(leaf);
      setGradOf(leaf, gradient);
      continue;
    }
    // (weakly: a gradient kept after its leaf is dropped must not keep the leaf's storage)
    const holder = new WeakRef(leaf);
    trackCreated(gradient, () => {
      const held = holder.deref();
      return held !== undefined && gradOf(held) === gradient && !held.isDisposed ? held : null;
    });
    if (held !== null && madeByBackward(held)) trackDropped(held);
    setGradOf(leaf, gradient);
    // the sum reads the gradient before and is protected in its place
    holdGradient(leaf, gradient);
  }
}

/**
 * Rule GRADIENT_SUM_PASSES: a gradient adding up this many backward passes nothing has computed
 * yet is computed at the next pass. Left lazy, the sum read every batch since zeroGrad, and no
 * dropped batch could be collected (a 40 KB batch kept per step over 600 steps, helper-166);
 * computed at every pass, a loop of micro-batches computed each pass's backward graph apart
 * instead of all of them together at the step (a 12-layer MLP, 8 micro-batches a step: 31 ->
 * 108 ms a step, helper-167). So a sum keeps about this many batches, unless computing it
 * would store a value waited for (a pending update, or a computed leaf made to require grad
 * that nothing read yet: computing those early freed what lazy losses read, helper-174) or
 * wait for a webgpu run in flight (a loop that never awaits lets none finish): then it is
 * tried again after twice as many passes.
 */
export const GRADIENT_SUM_PASSES = 8;

/** How many lazy backward passes a gradient sum made by backward() adds up. */
const lazyPasses = new WeakMap<Node, number>();
/**
 * At how many passes a sum is next looked at: GRADIENT_SUM_PASSES, then twice as many each time
 * it could not be computed. Looked at every pass, a sum held back by a pending update had its
 * whole history walked at every pass (4,000 passes: 7 s against 0.12 s, helper-169).
 */
const nextTry = new WeakMap<Node, number>();

function isLazy(node: Node, device: DeviceName): boolean {
  return storedAnywhere(node) === undefined && !isInFlight(node, device);
}

/**
 * Starts computing the gradients in `held` (a leaf's gradient before a backward pass, or null)
 * that add up GRADIENT_SUM_PASSES passes, together on each device (their passes share work);
 * once stored, their histories are dropped (they are built upon). Not in a jit trace, and not
 * a sum whose computing would compute more: a waiting variable (a parameter's pending update,
 * whose storing frees the value lazy losses still read: helper-167) or a value a run in flight
 * is computing (webgpu: recomputed below it, pass after pass). A failure is left to the
 * gradient's reads, which report it.
 */
function computeLongSums(held: readonly (Tensor | null)[]): void {
  if (tracing()) return;
  // (a set: equal gradients are one node, and a duplicate hid a pending update from the count
  // below, helper-170)
  const byDevice = new Map<DeviceName, Set<Node>>();
  for (const t of held) {
    if (t === null || t.isDisposed || !madeByBackward(t)) continue;
    const sum = nodeOf(t);
    const passes = lazyPasses.get(sum) ?? 0;
    if (passes < (nextTry.get(sum) ?? GRADIENT_SUM_PASSES) || !isLazy(sum, t.device)) continue;
    if (!byDevice.has(t.device)) byDevice.set(t.device, new Set());
    byDevice.get(t.device)!.add(sum);
  }
  const backOff = (sums: readonly Node[]) => {
    for (const sum of sums) nextTry.set(sum, 2 * lazyPasses.get(sum)!);
  };
  for (const [device, all] of byDevice) {
    // one walk for every leaf's sum (their passes share the backward graphs), marking what
    // reaches a waiting variable or a run in flight: only those sums are held back (one held
    // back them all, and a leaf that read only stored batches kept every batch, helper-170)
    const isStored = (n: Node) => storedAnywhere(n) !== undefined;
    const reaches = new Set<Node>();
    for (const n of topoSort([...all], isStored)) {
      if (isStored(n)) continue;
      if (isInFlight(n, device) || awaitsStoring(n) || n.srcs.some((x) => reaches.has(x))) {
        reaches.add(n);
      }
    }
    backOff([...all].filter((sum) => reaches.has(sum)));
    const sums = [...all].filter((sum) => !reaches.has(sum));
    // (the same question as the realization's own: it would pull in nothing else)
    if (sums.length === 0) continue;
    if (withWaitingVariables(sums, device).length > sums.length) {
      backOff(sums);
      continue;
    }
    const settle = () => sums.forEach(settleIfDead);
    try {
      const ran = realizeOn(device, sums);
      if (ran instanceof Promise) ran.then(settle, () => backOff(sums));
      else settle();
    } catch {
      // (their reads compute them again and say what is missing; tried again later)
      backOff(sums);
    }
  }
}

/**
 * The functional gradient: `grad(f)(x, y)` returns `[df/dx, df/dy]` for a function `f` that
 * returns a one-element tensor. The inputs' own `grad` fields are not touched.
 *
 * The gradients are functions of the inputs like any other result, so they can be
 * differentiated again: `grad(f)` inside a function given to another `grad`, or a gradient that
 * requires grad (it does when it depends on a leaf that requires grad, `f`'s own inputs
 * included) given to `backward()`. Second derivatives through `unfoldDim` (and so through
 * LocalResponseNorm) throw.
 *
 * @example
 * ```ts
 * import { grad, type Tensor, tensor } from "@lucid/nn";
 * const f = (x: Tensor, y: Tensor) => x.mul(y).sum();
 * const [dx, dy] = grad(f)(tensor([1, 2]), tensor([3, 4]));
 * console.log(await dx.toArray(), await dy.toArray()); // [ 3, 4 ] [ 1, 2 ]
 *
 * // the second derivative of x^3 is 6x
 * const cube = (x: Tensor) => x.mul(x).mul(x).sum();
 * const [d2] = grad((x: Tensor) => grad(cube)(x)[0].sum())(tensor([2]));
 * console.log(await d2.toArray()); // [ 12 ]
 * ```
 */
export function grad(fn: (...inputs: Tensor[]) => Tensor): (...inputs: Tensor[]) => Tensor[] {
  if (typeof fn !== "function") fail("grad", "fn must be a function", fn);
  return (...inputs: Tensor[]): Tensor[] => {
    inputs.forEach((t, i) => {
      if (!isTensor(t)) fail("grad", `input ${i} must be a Tensor`, t);
      if (!isFloat(t.dtype)) fail("grad", `input ${i} must be a float tensor`, t.dtype);
    });
    const inputNodes = inputs.map((t) => liveNode("grad", t));
    // fresh variables: grad(f)(x, x) has two inputs, and x.detach() inside f is not one
    const vars = inputNodes.map((node, i) =>
      createTensor(ir.detach(node, true), inputs[i].device, true, true)
    );
    // the variables as they are now: fn may give one a new value with assign, which no
    // gradient flows through (read after fn, the assigned value was taken for the variable:
    // v.assign([5, 5]); v.square().sum() gave 2 x, not 0)
    const varNodes = vars.map(nodeOf);
    const out = withGradEnabled(() => fn(...vars));
    if (!isTensor(out)) fail("grad", "fn must return a Tensor", out);
    // a disposed result is an Error naming grad (it named "Tensor", and one not requiring grad
    // gave zero gradients)
    const outNode = liveNode("grad", out);
    if (out.numel !== 1) {
      fail(
        "grad",
        "fn must return a one-element tensor",
        described(`shape [${out.shape.join(", ")}]`),
      );
    }
    const targets = new Set(varNodes);
    const grads = out.requiresGrad
      ? backwardNodes(
        outNode,
        ir.constant(1, outNode.shape, out.dtype),
        (n) => targets.has(n),
      )
      : new Map<Node, Node>();
    // each variable stands for its input again, so the gradients are functions of the inputs
    // and a gradient taken around this one flows through them
    const inputOf = new Map(varNodes.map((v, i) => [v, inputNodes[i]]));
    const found = varNodes.map((v) => grads.get(v) ?? ir.constant(0, v.shape, v.dtype));
    const onInputs = ir.replaceNodes(found, (n) => inputOf.get(n), (n) => n.op === "detach");
    const reaching = reachingLeavesRequiringGrad(onInputs);
    return onInputs.map((node, i) => {
      const flows = reaching.has(node);
      const requires = flows && gradEnabled();
      return createTensor(
        flows && !requires ? ir.detach(node) : node,
        vars[i].device,
        requires,
        !requires, // computed, like an op's result (a leaf requiring grad is a new variable)
      );
    });
  };
}

/**
 * Nodes from which no gradient can flow to a live leaf requiring grad, for good: a node a graph
 * was built on never becomes such a leaf (tensor.ts moves a leaf that starts requiring grad to a
 * fresh node), so what is below it can only lose them. Without this, the walk below went
 * through the whole history of a value updated functionally at every call (`w = w.sub(dw...)`
 * with `grad(f)(w)`: 2,000 steps took 2.9 s, growing with every step).
 */
const gradientDead = new WeakSet<Node>();

/** The nodes below `roots` from which a gradient could flow to a live leaf requiring grad. */
function reachingLeavesRequiringGrad(roots: readonly Node[]): Set<Node> {
  const reaching = new Set<Node>();
  for (const n of topoSort(roots, (m) => m.op === "detach" || gradientDead.has(m))) {
    if (gradientDead.has(n)) continue;
    const passes = n.op !== "detach" && n.srcs.some((s) => reaching.has(s));
    if (passes || leafRequiringGrad(n) !== undefined) reaching.add(n);
    else if (n.used) gradientDead.add(n); // (an unused one could still become a leaf)
  }
  return reaching;
}
