// Seeing what the compiler does: the IR as text or DOT, the kernels a realization would run
// (with their generated source), and the switches for fusion and debug output.

import { graphToDot, printGraph } from "./ir/print.ts";
import { backendFor } from "./runtime/backends.ts";
import { type KernelInfo, plannedKernels, setFusion as setFusionFlag } from "./runtime/realize.ts";
import { withWaitingVariables } from "./pending.ts";
import { realizeTensors } from "./realization.ts";
import { isTensor, liveNode, nodeOf, type Tensor } from "./tensor.ts";
import { fail } from "./validate.ts";

export type { BufferInfo, KernelInfo } from "./runtime/realize.ts";
export { setDebug } from "./runtime/debug.ts";

function checkTensors(fn: string, tensors: readonly unknown[]): Tensor[] {
  tensors.forEach((t, i) => {
    if (!isTensor(t)) fail(fn, `argument ${i} must be a Tensor`, t);
    liveNode(fn, t);
  });
  return tensors as Tensor[];
}

/**
 * The IR below the tensors as text, one node per line with op, arguments, dtype and shape.
 *
 * @example
 * ```ts
 * import { graph, randn } from "@lucid/nn";
 * console.log(graph(randn(3).exp().sum()));
 * ```
 */
export function graph(...tensors: Tensor[]): string {
  return printGraph(checkTensors("graph", tensors).map(nodeOf));
}

/** The IR below the tensors in Graphviz DOT. */
export function graphDot(...tensors: Tensor[]): string {
  return graphToDot(checkTensors("graphDot", tensors).map(nodeOf));
}

/**
 * The kernels that realizing these tensors together would run, in order, each with its name,
 * target (`"js"`, `"wasm"` or `"wgsl"`), content key, generated source, and the buffers it
 * reads and writes. Nothing runs; the plan is cached, so a later realization reuses it.
 *
 * @example
 * ```ts
 * import { kernels, randn } from "@lucid/nn";
 * const y = randn(64, 64).mul(2).relu().sum(1); // elementwise ops fuse into the reduction
 * const plan = kernels(y);
 * console.log(plan.length); // 1
 * console.log(plan[0].source); // the generated kernel, readable
 * ```
 */
export function kernels(...tensors: Tensor[]): KernelInfo[] {
  const list = checkTensors("kernels", tensors);
  const out: KernelInfo[] = [];
  for (const device of new Set(list.map((t) => t.device))) {
    out.push(
      // with the variables a realization computes with them (an assigned value that storing
      // these would free what it reads): what realize() then runs
      ...plannedKernels(
        withWaitingVariables(list.filter((t) => t.device === device).map(nodeOf), device),
        backendFor(device),
      ),
    );
  }
  return out;
}

/**
 * Computes several tensors in one schedule (shared work is done once).
 *
 * @example
 * ```ts
 * import { randn, realize } from "@lucid/nn";
 * const x = randn(1000);
 * const e = x.exp();
 * const total = e.sum(); // reads e: one schedule computes both
 * await realize(e, total);
 * console.log(e.isRealized, total.isRealized); // true true
 * ```
 */
export async function realize(...tensors: Tensor[]): Promise<void> {
  await realizeTensors("realize", checkTensors("realize", tensors));
}

/** Turns kernel fusion on (default) or off (every op its own kernel, for comparison). */
export function setFusion(enabled: boolean): void {
  if (typeof enabled !== "boolean") fail("setFusion", "enabled must be a boolean", enabled);
  setFusionFlag(enabled);
}
