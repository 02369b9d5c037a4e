// What a realized value keeps of its history. A node holds its sources, so a value computed
// step by step (`total = total.add(loss)`, a parameter updated as `p.sub(...).detach()`) would
// keep every earlier step alive. Once a node's value is stored and no gradient can flow through
// it to a live leaf requiring grad, its history is of no further use: the node is settled (its
// sources dropped, src/ir/node.ts) and the graph behind it can be collected.
//
// A node is checked when it is used again (as the input of a new op or a gradient sum), not when
// it is realized: a value that is read and never built upon keeps its graph for `graph()` and
// the tests' reference evaluator. Detached values (a `detach` node, including every autodiff
// variable) pass no gradient at all and are settled as soon as they are realized.

import { isSettled, type Node, settle } from "./ir/node.ts";
import { storedAnywhere } from "./runtime/realize.ts";
import { leafRequiringGrad } from "./tensor.ts";
import { tracing } from "./ownership.ts";

/** Nodes found to lead to a leaf requiring grad, with the generation they were checked in. */
const live = new WeakMap<Node, number>();
let generation = 0;

/**
 * The detach nodes of gradients (`backward()`'s, which are constants to later passes). Stored,
 * they keep their history until built upon, as the gradient nodes they wrap would: a settled
 * node matches no equal graph made later, so an identical backward pass (same leaves, same
 * data) would compute its gradient anew into a new buffer every time, instead of finding the
 * stored one, while the last one waited for the garbage collector.
 */
const gradientDetaches = new WeakSet<Node>();

/** Marks `node` (a detach) as a gradient's: see {@link settleStoredDetach}. */
export function noteGradientDetach(node: Node): void {
  gradientDetaches.add(node);
}

/**
 * Settles a detach node just stored if its history is dead (no gradient passes a detach), but
 * not a gradient's (kept shareable until built upon).
 */
export function settleStoredDetach(node: Node): void {
  if (!gradientDetaches.has(node)) settleIfDead(node);
}

/** Says that some leaf stopped requiring grad or changed its node: liveness is checked anew. */
export function gradientTargetsChanged(): void {
  generation++;
}

/**
 * Settles `node` if its value is stored, no gradient can flow through it, and it is bound to
 * a device (it reads stored data: a graph of constants alone can be computed on any device and
 * is cheap to keep).
 */
export function settleIfDead(node: Node): void {
  if (node.srcs.length === 0 || live.get(node) === generation) return;
  // not while jit traces: fn built upon a stored value it computed itself (equal to one the
  // caller had computed), and settled, the value looked captured and was bound for good
  if (tracing()) return;
  if (node.op === "buffer" || storedAnywhere(node) === undefined) return;
  // [node, whether a gradient could flow from the root to it]
  const stack: [Node, boolean][] = node.srcs.map((s) => [s, node.op !== "detach"]);
  const seenOnPath = new Set<Node>();
  const seenOffPath = new Set<Node>();
  let bound = false;
  while (stack.length > 0) {
    const [n, onGradientPath] = stack.pop()!;
    if (seenOnPath.has(n) || (!onGradientPath && seenOffPath.has(n))) continue;
    (onGradientPath ? seenOnPath : seenOffPath).add(n);
    if (onGradientPath && leafRequiringGrad(n) !== undefined) {
      live.set(node, generation);
      return;
    }
    // off the gradient path only whether it reads stored data matters: any stored value says so
    // (walked through, a stored gradient accumulated over unread steps led every step's storing
    // through all the steps before: 4,000 steps, 56 million nodes visited)
    if (n.op === "buffer" || isSettled(n) || (!onGradientPath && storedAnywhere(n) !== undefined)) {
      bound = true;
      continue;
    }
    if (!onGradientPath && bound) continue;
    const passes = onGradientPath && n.op !== "detach";
    for (const s of n.srcs) stack.push([s, passes]);
  }
  if (bound) settle(node);
}
