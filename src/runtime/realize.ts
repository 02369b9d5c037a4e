// realize(): schedule -> compile -> run. The graph below the requested nodes is reduced to a
// structural key (ops, shapes, dtypes, constants, and which source sits where, but not the
// data), so every later call with the same structure skips scheduling and printing and reuses
// the plan and its compiled kernels. Realized values are remembered per node in a WeakMap: a
// node realized once is loaded, not recomputed, for as long as anything references it.

import type { Node } from "../ir/node.ts";
import { printGraph } from "../ir/print.ts";
import type { Kernel } from "../../codegen/kernel.ts";
import { scheduleKernels, topoSortUntil } from "../../codegen/schedule.ts";
import type { Backend, DeviceBuffer, Launch } from "./device.ts";
import { debugLevel, debugLog } from "./debug.ts";
import { holdBuffers, releaseBuffer, releaseReason, trackValue } from "./lifetime.ts";

const realized = new WeakMap<Node, DeviceBuffer>();
const inFlight = new WeakMap<Node, Promise<void>>();

/** The buffer holding `node`'s value, if it has been realized. */
export function realizedBuffer(node: Node): DeviceBuffer | undefined {
  return node.op === "buffer" ? (node.arg as DeviceBuffer) : realized.get(node);
}

/** Forgets `node`'s realized value (the caller releases the buffer). */
export function forgetRealized(node: Node): void {
  realized.delete(node);
}

const isSourceNode = (n: Node) => n.op === "buffer" || realized.has(n);

/** Whether kernels fuse (false: one kernel per op). */
let fusionEnabled = true;

/** Turns fusion on or off (off: every op is its own kernel). */
export function setFusion(enabled: boolean): void {
  fusionEnabled = enabled;
}

/** Whether fusion is on. */
export function fusionIsEnabled(): boolean {
  return fusionEnabled;
}

/** A planned kernel, described for users (`lucid.kernels`). */
export interface KernelInfo {
  /** The kernel's function name. */
  readonly name: string;
  /** The language: `"js"` or `"wgsl"`. */
  readonly target: string;
  /** The generated source. */
  readonly source: string;
  /** The kernel IR it was printed from. */
  readonly kernel: Kernel;
}

interface PlanStep {
  readonly info: KernelInfo;
  /** Local index (in the structural order) of the node written, and of the nodes read. */
  readonly output: number;
  readonly inputs: readonly number[];
}

interface Plan {
  readonly steps: readonly PlanStep[];
}

/** Plans kept for reuse; a program with more distinct graph structures rebuilds the oldest. */
const PLAN_CACHE_LIMIT = 1024;
const plans = new Map<string, Plan>();
let planHits = 0;
let planMisses = 0;

/** Plan cache statistics: how many realizations reused a plan and how many built one. */
export function planCacheStats(): { hits: number; misses: number; size: number; } {
  return { hits: planHits, misses: planMisses, size: plans.size };
}

/** The structure of the graph below `outputs`: local order, key, and the sources. */
function structureOf(outputs: readonly Node[], backend: Backend): { order: Node[]; key: string; } {
  const order = topoSortUntil(outputs, isSourceNode);
  const local = new Map<Node, number>(order.map((n, i) => [n, i]));
  const lines = order.map((n) => {
    if (isSourceNode(n)) return `src ${n.dtype}[${n.shape}]`;
    // a detach node's tag only makes a fresh autodiff variable unique: not structure
    const argKey = n.op === "detach" ? "" : n.key.split("|")[3];
    return `${n.op} ${n.dtype}[${n.shape}] ${argKey} ${n.srcs.map((s) => local.get(s)).join(",")}`;
  });
  const head = `${backend.name} fusion=${fusionEnabled} out=${
    outputs.map((o) => local.get(o)).join(",")
  }`;
  return { order, key: [head, ...lines].join("\n") };
}

function buildPlan(outputs: readonly Node[], order: readonly Node[], backend: Backend): Plan {
  const local = new Map<Node, number>(order.map((n, i) => [n, i]));
  const scheduled = scheduleKernels(outputs, {
    fusion: fusionEnabled,
    isRealized: (n) => realized.has(n),
  });
  const steps = scheduled.map((s): PlanStep => ({
    info: {
      name: s.kernel.name,
      target: backend.target,
      source: backend.print(s.kernel),
      kernel: s.kernel,
    },
    output: local.get(s.output)!,
    inputs: s.inputs.map((n) => local.get(n)!),
  }));
  return { steps };
}

function planFor(outputs: readonly Node[], backend: Backend): { plan: Plan; order: Node[]; } {
  const { order, key } = structureOf(outputs, backend);
  let plan = plans.get(key);
  if (plan === undefined) {
    planMisses++;
    plan = buildPlan(outputs, order, backend);
    plans.set(key, plan);
    // bounded: the oldest plan goes first (Map iterates in insertion order)
    if (plans.size > PLAN_CACHE_LIMIT) plans.delete(plans.keys().next().value!);
    if (debugLevel() >= 2) debugLog(`IR:\n${printGraph(outputs)}`);
    if (debugLevel() >= 3) { for (const s of plan.steps) debugLog(s.info.source); }
  } else {
    planHits++;
  }
  return { plan, order };
}

/** The kernels that realizing `outputs` would run (nothing runs). */
export function plannedKernels(outputs: readonly Node[], backend: Backend): KernelInfo[] {
  const pending = outputs.filter((n) => !isSourceNode(n));
  if (pending.length === 0) return [];
  return planFor(pending, backend).plan.steps.map((s) => s.info);
}

/**
 * Computes every node of `outputs` that is not yet realized, on `backend`, and records the
 * results. Intermediate buffers return to the pool once the kernels have run.
 */
export function realizeNodes(outputs: readonly Node[], backend: Backend): void | Promise<void> {
  const pending = [...new Set(outputs.filter((n) => !isSourceNode(n)))];
  if (pending.length === 0) return;
  // a node already being computed (an asynchronous run in flight) is waited for, not redone
  const busy = pending.flatMap((n) => inFlight.get(n) ?? []);
  if (busy.length > 0) {
    // a pending realization holds its inputs: a dispose meanwhile waits for it
    const sources = topoSortUntil(pending, isSourceNode).flatMap((n) => realizedBuffer(n) ?? []);
    return holdUntilSettled(sources, Promise.all(busy).then(() => realizeNodes(outputs, backend)));
  }
  const { plan, order } = planFor(pending, backend);
  const buffers = new Map<number, DeviceBuffer>();
  const waits: Promise<void>[] = [];
  order.forEach((n, i) => {
    const b = realizedBuffer(n);
    if (b === undefined) return;
    const gone = releaseReason(b);
    if (gone !== undefined) {
      throw new Error(
        `realize: a ${n.dtype}[${n.shape}] input was ${gone}; create it again before using it`,
      );
    }
    const wait = backend.pending(b);
    if (wait) waits.push(wait);
    buffers.set(i, b);
  });
  if (waits.length > 0) {
    const retry = Promise.all(waits).then(() => realizeNodes(outputs, backend));
    return holdUntilSettled(buffers.values(), retry);
  }
  const inputs = [...buffers.values()];
  const outputSet = new Set(pending.map((n) => order.indexOf(n)));
  const temporaries: DeviceBuffer[] = [];
  const allocated: DeviceBuffer[] = [];
  const fail = (e: unknown) => {
    for (const b of allocated) releaseBuffer(b, backend);
    throw e;
  };
  const launches: Launch[] = [];
  try {
    // inside the try: an allocation failing halfway releases the outputs allocated before it
    for (const step of plan.steps) {
      const node = order[step.output];
      const out = backend.allocate(node.dtype, node.numel);
      allocated.push(out);
      if (!outputSet.has(step.output)) temporaries.push(out);
      buffers.set(step.output, out);
      launches.push({
        kernel: step.info.kernel,
        source: step.info.source,
        output: out,
        inputs: step.inputs.map((i) => buffers.get(i)!),
      });
      if (debugLevel() >= 1) debugLog(`launch ${step.info.name} -> ${node.dtype}[${node.shape}]`);
    }
  } catch (e) {
    return fail(e);
  }
  const finish = () => {
    for (const i of outputSet) {
      const b = buffers.get(i);
      const value = b ?? backend.allocate(order[i].dtype, 0); // empty: no kernel ran
      realized.set(order[i], value);
      trackValue(order[i], value);
    }
    for (const t of temporaries) releaseBuffer(t, backend);
  };
  let ran: void | Promise<void>;
  try {
    ran = backend.run(launches);
  } catch (e) {
    return fail(e);
  }
  if (ran instanceof Promise) {
    const done = holdUntilSettled(inputs, ran.then(finish, fail));
    const settled = done.then(() => {}, () => {});
    for (const n of pending) inFlight.set(n, settled);
    settled.then(() => pending.forEach((n) => inFlight.delete(n)));
    return done;
  }
  finish();
}

/** `work`, with `buffers` held (kept from the pool) until it settles. */
function holdUntilSettled<T>(buffers: Iterable<DeviceBuffer>, work: Promise<T>): Promise<T> {
  const unhold = holdBuffers(buffers);
  return work.finally(unhold);
}
