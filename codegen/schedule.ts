// Fusion: the graph below the requested outputs is cut into kernels. A node is either computed
// inline by the kernels that read it, or materialized: computed by a kernel of its own into a
// buffer that later kernels load. Each rule that materializes is a named constant below; all
// other nodes fuse. Kernels come out in an order where every buffer is written before it is read.

import { type Node, numelOf } from "../src/ir/node.ts";
import { isMovement, isReduce } from "../src/ir/ops.ts";
import { topoSort } from "../src/ir/graph.ts";
import { type Expr, ExprBuilder, type Kernel, scalarTypeOf } from "./kernel.ts";
import { linearIndex, lowerKernelValue } from "./lower.ts";

/**
 * Rule RECOMPUTE_BUDGET: a node that fused kernels would compute more often than it has
 * elements (it is read through a broadcasting or windowing view, or by several consumers) is
 * materialized once the extra work, counting everything inlined below it, exceeds this many
 * op-units per element of the node. Cheap elementwise values read by a few neighbours stay
 * fused; a row reduction broadcast over its row (softmax's max) is stored, and so is LRN's
 * backward term g*y/D, which each channel's window reads `size` times.
 */
export const RECOMPUTE_BUDGET = 48;

/**
 * Rule MAX_KERNEL_BUFFERS: a kernel binds at most this many buffers, output included (WebGPU's
 * default maxStorageBuffersPerShaderStage). A kernel that would read more is split by
 * materializing the fused subexpression that reads the most of them.
 */
export const MAX_KERNEL_BUFFERS = 8;

/** Op-units of one evaluation of a node's own op (loads and cheap ALU ops are 1). */
const OP_COST: Partial<Record<string, number>> = {
  exp: 4,
  log: 4,
  pow: 8,
  sigmoid: 5,
  tanh: 5,
  sqrt: 2,
  rsqrt: 2,
  div: 2,
};

/** One kernel of a schedule: what it computes and which nodes its buffers hold. */
export interface ScheduledKernel {
  readonly kernel: Kernel;
  /** The node whose value the kernel writes. */
  readonly output: Node;
  /** The nodes whose buffers the kernel reads, in input-slot order. */
  readonly inputs: readonly Node[];
}

/** Options of {@link scheduleKernels}. */
export interface ScheduleOptions {
  /** False: every op is its own kernel (for comparisons and fused == unfused tests). */
  readonly fusion: boolean;
  /** Whether a node already has a buffer (it is loaded, never recomputed). */
  readonly isRealized: (node: Node) => boolean;
}

/** Cuts the graph below `outputs` into kernels. */
export function scheduleKernels(
  outputs: readonly Node[],
  options: ScheduleOptions,
): ScheduledKernel[] {
  const isSource = (n: Node) => n.op === "buffer" || n.op === "const" || options.isRealized(n);
  const order = topoSortUntil(outputs, isSource);
  // a constant requested as an output still needs a kernel to fill its buffer
  const materialized = new Set<Node>(
    outputs.filter((n) => n.op !== "buffer" && !options.isRealized(n) && n.numel > 0),
  );
  if (!options.fusion) {
    // empty values are never materialized (no kernel writes them; readers loop over nothing)
    for (const n of order) {
      if (!isSource(n) && n.op !== "detach" && n.numel > 0) materialized.add(n);
    }
  } else {
    applyRecomputeBudget(order, materialized, isSource);
  }
  for (;;) {
    const kernels: ScheduledKernel[] = [];
    let split: Node | null = null;
    for (const node of order) {
      if (!materialized.has(node) || node.numel === 0) continue;
      const built = buildKernel(
        node,
        kernels.length,
        (n) => n.op !== "const" && (isSource(n) || (materialized.has(n) && n !== node)),
      );
      if (built.inputs.length + 1 > MAX_KERNEL_BUFFERS) {
        split = pickSplit(node, (n) => n.op !== "const" && (isSource(n) || materialized.has(n)));
        if (split === null) {
          throw new Error(
            `scheduleKernels: a kernel needs ${
              built.inputs.length + 1
            } buffers, more than the limit of ${MAX_KERNEL_BUFFERS}, and cannot be split`,
          );
        }
        break;
      }
      kernels.push(built);
    }
    if (split === null) return kernels;
    materialized.add(split);
  }
}

/** The nodes below `outputs` that are reachable without passing through a source, in order. */
export function topoSortUntil(outputs: readonly Node[], isSource: (n: Node) => boolean): Node[] {
  // never walks behind a source: a realized node's history is not this realization's work
  return topoSort(outputs, isSource);
}

/**
 * Decides RECOMPUTE_BUDGET. Rules, in the order they apply:
 * - `inlineCost(n)`: op-units to compute one element of n with everything below it inlined
 *   (sources cost a load, views nothing, a reduction its extent times its body);
 * - walking consumers before producers, `evaluations(n)` counts how often fused kernels would
 *   compute n (a reduction reads its source extent times per element; views pass counts on);
 * - n is materialized when its evaluations beyond one per element, times its inline cost,
 *   exceed RECOMPUTE_BUDGET per element. Consumers decide first, so the highest expensive
 *   node is stored and everything below it is then computed once per element.
 */
function applyRecomputeBudget(
  order: readonly Node[],
  materialized: Set<Node>,
  isSource: (n: Node) => boolean,
): void {
  // Costs depend on what is stored and what is stored depends on costs: start from "nothing
  // stored", price with the previous pass's choice, and stop when a pass agrees with it.
  let stored = new Set<Node>();
  for (let pass = 0; pass < 4; pass++) {
    const next = chooseStored(order, materialized, isSource, stored);
    const same = next.size === stored.size && [...next].every((n) => stored.has(n));
    stored = next;
    if (same) break;
  }
  for (const n of stored) materialized.add(n);
}

/** One pass of RECOMPUTE_BUDGET, pricing nodes in `pricedAsLoads` as loads. */
function chooseStored(
  order: readonly Node[],
  outputs: ReadonlySet<Node>,
  isSource: (n: Node) => boolean,
  pricedAsLoads: ReadonlySet<Node>,
): Set<Node> {
  const extentOf = (n: Node) =>
    isReduce(n.op) ? numelOf(n.srcs[0].shape) / Math.max(1, n.numel) : 1;
  const inlineCost = new Map<Node, number>();
  const readCost = (n: Node) => (pricedAsLoads.has(n) ? 1 : inlineCost.get(n) ?? 1);
  for (const node of order) {
    if (isSource(node)) {
      inlineCost.set(node, node.op === "const" ? 0 : 1);
      continue;
    }
    const own = isMovement(node.op) || node.op === "detach" ? 0 : OP_COST[node.op] ?? 1;
    const below = [...new Set(node.srcs)].reduce((sum, s) => sum + readCost(s), 0);
    inlineCost.set(node, own + extentOf(node) * below);
  }
  const stored = new Set<Node>();
  const evaluations = new Map<Node, number>();
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (isSource(node)) continue;
    let count = evaluations.get(node) ?? 0;
    const computes = !isMovement(node.op) && node.op !== "detach" && node.op !== "cast";
    if (computes && !outputs.has(node) && node.numel > 0) {
      const extra = count - node.numel;
      if (extra > 0 && extra * inlineCost.get(node)! > RECOMPUTE_BUDGET * node.numel) {
        stored.add(node);
      }
    }
    if (stored.has(node) || outputs.has(node)) count = node.numel;
    for (const src of new Set(node.srcs)) {
      evaluations.set(src, (evaluations.get(src) ?? 0) + count * extentOf(node));
    }
  }
  return stored;
}

/**
 * The fused node below `root` to materialize when `root` reads too many buffers: the one
 * reading the most buffers that still fit in one kernel, so each split removes as many as it
 * can (else the largest proper subexpression, which is split again in turn).
 */
function pickSplit(root: Node, isLoaded: (n: Node) => boolean): Node | null {
  const leaves = new Map<Node, Set<Node>>();
  const leavesOf = (n: Node): Set<Node> => {
    let set = leaves.get(n);
    if (set) return set;
    set = new Set();
    if (n !== root && isLoaded(n)) {
      if (n.op !== "const") set.add(n);
    } else for (const s of n.srcs) for (const l of leavesOf(s)) set.add(l);
    leaves.set(n, set);
    return set;
  };
  const total = leavesOf(root).size;
  const fits = (n: Node) => leaves.get(n)!.size < MAX_KERNEL_BUFFERS;
  let best: Node | null = null;
  for (const [n, set] of leaves) {
    const candidate = n !== root && !isLoaded(n) && !isMovement(n.op) && n.numel > 0 &&
      set.size < total && set.size >= 2;
    if (!candidate) continue;
    const better = best === null ||
      (fits(n) && !fits(best)) ||
      (fits(n) === fits(best) && set.size > leaves.get(best)!.size);
    if (better) best = n;
  }
  return best;
}

/** Builds the kernel computing `node`, loading every node for which `isLoaded` holds. */
export function buildKernel(
  node: Node,
  index: number,
  isLoaded: (n: Node) => boolean,
): ScheduledKernel {
  const builder = new ExprBuilder();
  const inputs: Node[] = [];
  const slots = new Map<Node, number>();
  const outVars = node.shape.map((d) => builder.variable("o", d));
  const value = lowerKernelValue(node, outVars, {
    builder,
    isLoaded,
    slotOf(n) {
      let slot = slots.get(n);
      if (slot === undefined) {
        slot = inputs.length;
        slots.set(n, slot);
        inputs.push(n);
      }
      return slot;
    },
  });
  const outIndex = linearIndex(builder, outVars, node.shape);
  const kernel: Kernel = {
    name: `k${index}_${describeOps(node, isLoaded)}`,
    comment: describeKernel(node, inputs),
    outShape: node.shape,
    outType: scalarTypeOf(node.dtype),
    outVars,
    value,
    outIndex,
    inputs: inputs.map((n) => ({ type: scalarTypeOf(n.dtype), numel: n.numel })),
  };
  return { kernel, output: node, inputs };
}

function fusedRegion(root: Node, isLoaded: (n: Node) => boolean): Node[] {
  const region: Node[] = [];
  const seen = new Set<Node>();
  const walk = (n: Node) => {
    if (seen.has(n) || (n !== root && isLoaded(n)) || n.op === "const") return;
    seen.add(n);
    n.srcs.forEach(walk);
    region.push(n);
  };
  walk(root);
  return region;
}

/** The kernel's name: its computing ops in order (views only when it computes nothing). */
function describeOps(root: Node, isLoaded: (n: Node) => boolean): string {
  const region = fusedRegion(root, isLoaded).filter((n) => n.op !== "detach");
  const computing = region.filter((n) => !isMovement(n.op));
  const ops = [...new Set((computing.length > 0 ? computing : region).map((n) => n.op))];
  const shown = ops.length > 5 ? [...ops.slice(0, 2), ...ops.slice(-3)] : ops;
  return shown.join("_") || "copy";
}

function describeKernel(root: Node, inputs: readonly Node[]): string {
  const expr = (n: Node, depth: number): string => {
    const slot = inputs.indexOf(n);
    if (n !== root && slot >= 0) return `in${slot}`;
    if (n.op === "const") return String(n.arg);
    if (depth > 12) return "...";
    const args = n.srcs.map((s) => expr(s, depth + 1));
    if (n.op === "affine") {
      const [scale, shift] = n.arg as number[];
      args.push(String(scale), String(shift));
    } else if (n.arg !== null && typeof n.arg === "object") {
      args.push(JSON.stringify(n.arg).replace(/"(\w+)":/g, "$1="));
    }
    return `${n.op}(${args.join(", ")})`;
  };
  const inputText = inputs.map((n, i) => `in${i}: ${n.dtype}[${n.shape.join(",")}]`).join(", ");
  return [
    `lucid kernel: out ${root.dtype}[${root.shape.join(",")}] from ${inputText || "no inputs"}`,
    `out = ${expr(root, 0)}`,
  ].join("\n");
}

/** The expressions of a kernel (for tests and debugging): every node reachable from its value. */
export function kernelExprs(kernel: Kernel): Expr[] {
  const seen = new Set<Expr>();
  const walk = (e: Expr) => {
    if (seen.has(e)) return;
    seen.add(e);
    e.srcs.forEach(walk);
    if (e.op === "reduce") walk((e.arg as { v: Expr; }).v);
  };
  walk(kernel.value);
  return [...seen];
}
