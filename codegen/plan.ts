// A plan: one realization as data. Buffers (dtype, shape and role: an input the caller binds,
// a constant bound to the same data at every run (a value a compiled function captured), an
// output it gets back, an intermediate that lives only during the run) and steps (an
// executable, the buffers it reads and the one it writes), in an order where every buffer is
// written before it is read. The runtime runs plans (src/runtime/realize.ts); export writes
// them out as standalone modules. Plans hold no graph nodes and no data, so a plan is reused
// for every graph of the same structure.

import type { Node, Shape } from "../src/ir/node.ts";
import type { DType } from "../src/ir/dtype.ts";
import { scheduleKernels } from "./schedule.ts";
import { compile, type Executable } from "./compile.ts";
import type { Target } from "./targets.ts";
import type { Kernel } from "./kernel.ts";

/**
 * What a plan buffer is for. `buildPlan` makes inputs, outputs and intermediates; a compiled
 * function (src/compile_fn.ts) turns the inputs that are not its arguments into constants.
 */
export type BufferRole = "input" | "constant" | "output" | "intermediate";

/** One buffer of a plan. */
export interface PlanBuffer {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly role: BufferRole;
  /**
   * For inputs and outputs: the position of its node in the graph's structural order (the
   * order `planFor` was given), so a run can bind the graph's own buffers; -1 otherwise.
   */
  readonly node: number;
}

/** One kernel launch of a plan. */
export interface PlanStep {
  readonly executable: Executable;
  /** Buffers read, in the kernel's input-slot order. */
  readonly inputs: readonly number[];
  /** The buffers written, in the kernel's output order (most kernels write one). */
  readonly outputs: readonly number[];
}

/** A realization as data: buffers and steps. */
export interface Plan {
  readonly buffers: readonly PlanBuffer[];
  readonly steps: readonly PlanStep[];
}

/** Options of {@link buildPlan}. */
export interface PlanOptions {
  /** False: every op is its own kernel. */
  readonly fusion: boolean;
  /** Whether a node is loaded as it is (a buffer or a value realized before). */
  readonly isSource: (node: Node) => boolean;
  /** The target whose limits the schedule meets (the device's, for every kernel). */
  readonly target: Target;
  /** The target a kernel compiles for. */
  readonly targetFor: (kernel: Kernel) => Target;
}

/**
 * The plan computing `outputs`. `order` is the structural order of the graph below them (every
 * node reachable without passing a source, sources included); buffers name nodes by their
 * position in it.
 */
export function buildPlan(
  outputs: readonly Node[],
  order: readonly Node[],
  options: PlanOptions,
): Plan {
  const position = new Map<Node, number>(order.map((n, i) => [n, i]));
  const scheduled = scheduleKernels(outputs, {
    fusion: options.fusion,
    isRealized: options.isSource,
    target: options.target,
    targetFor: options.targetFor,
  });
  const buffers: PlanBuffer[] = [];
  const bufferOf = new Map<Node, number>();
  const requested = new Set(outputs);
  const bind = (node: Node, role: BufferRole) => {
    let index = bufferOf.get(node);
    if (index === undefined) {
      index = buffers.length;
      buffers.push({ dtype: node.dtype, shape: node.shape, role, node: position.get(node) ?? -1 });
      bufferOf.set(node, index);
    }
    return index;
  };
  const steps = scheduled.map((s): PlanStep => ({
    executable: compile(s.kernel, options.targetFor(s.kernel)),
    inputs: s.inputs.map((n) => bind(n, "input")),
    outputs: s.outputs.map((n) => bind(n, requested.has(n) ? "output" : "intermediate")),
  }));
  // requested outputs no kernel writes (empty values) still get a buffer
  for (const n of outputs) bind(n, "output");
  return { buffers, steps };
}
