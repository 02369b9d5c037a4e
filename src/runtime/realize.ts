// realize(): schedule -> compile -> run. The graph below the requested nodes is reduced to a
// structural key (ops, shapes, dtypes, constants, and which source sits where, but not the
// data), so every later call with the same structure skips scheduling and printing and reuses
// the plan and its compiled kernels. Realized values are remembered per device and node in
// WeakMaps: a node realized once is loaded, not recomputed, for as long as anything references
// it. Nodes carry no device (hash-consing shares a node between devices), so everything
// remembered about a node's value is kept per device.
//
// What the structural key holds must be exactly what the code depends on: a source (a buffer,
// or a node realized on this device) is keyed by dtype and shape only and always loaded, while
// a constant is never a source, whether realized or not: lowering bakes its value into the
// kernel, so its value is part of the key.

import { type Node, numelOf, type Shape } from "../ir/node.ts";
import { HASH_SEED, mix, mixNumber, mixText, sameArg, sameShape } from "../ir/hash.ts";
import type { Op } from "../ir/ops.ts";
import type { DType } from "../ir/dtype.ts";
import { printGraph } from "../ir/print.ts";
import { topoSort } from "../ir/graph.ts";
import { buildPlan, type Plan } from "../../codegen/plan.ts";
import { BoundedCache } from "../../codegen/cache.ts";
import type { Backend, DeviceBuffer, DeviceName, Launch } from "./device.ts";
import { debugLevel, debugLog } from "./debug.ts";
import {
  holdBuffers,
  onReleaseRequested,
  releaseBuffer,
  releaseReason,
  trackValue,
} from "./lifetime.ts";
import {
  checkpointBuffer,
  checkpointRoots,
  chooseCheckpoints,
  dropCheckpointsFrom,
  keepCheckpoint,
  rootsOf,
  takeCheckpoint,
  touchCheckpoint,
} from "./checkpoint.ts";

/** What is remembered per device: realized values, and runs still in flight. */
interface DeviceState {
  readonly realized: WeakMap<Node, DeviceBuffer>;
  readonly inFlight: WeakMap<Node, Promise<void>>;
}
const states = new Map<DeviceName, DeviceState>();
function stateOf(device: DeviceName): DeviceState {
  let state = states.get(device);
  if (state === undefined) {
    state = { realized: new WeakMap(), inFlight: new WeakMap() };
    states.set(device, state);
  }
  return state;
}

/** The buffer holding `node`'s value on `device`, if it has been realized there. */
export function realizedBuffer(node: Node, device: DeviceName): DeviceBuffer | undefined {
  return node.op === "buffer" ? (node.arg as DeviceBuffer) : stateOf(device).realized.get(node);
}

/** The buffer of `node`'s value on whichever device holds it (buffer nodes: their own). */
export function storedAnywhere(node: Node): DeviceBuffer | undefined {
  if (node.op === "buffer") return node.arg as DeviceBuffer;
  for (const state of states.values()) {
    const b = state.realized.get(node);
    if (b !== undefined) return b;
  }
  return undefined;
}

/** Whether a run in flight on `device` is computing `node` (it is stored when the run ends). */
export function isInFlight(node: Node, device: DeviceName): boolean {
  return stateOf(device).inFlight.has(node);
}

/** Forgets `node`'s realized value on `device` (the caller releases the buffer). */
export function forgetRealized(node: Node, device: DeviceName): void {
  stateOf(device).realized.delete(node);
}

/**
 * Whether `node` is loaded by the kernels realizing on `device` rather than computed: buffers,
 * realized values and checkpoints (checkpoint.ts), never constants (their values are inlined
 * and keyed).
 */
function sourceTest(device: DeviceName): (n: Node) => boolean {
  const { realized } = stateOf(device);
  return (n) =>
    n.op === "buffer" ||
    (n.op !== "const" && (realized.has(n) || checkpointBuffer(n, device) !== undefined));
}

/** The buffer a realization on `device` loads for the source `node`. */
function sourceBuffer(node: Node, device: DeviceName): DeviceBuffer | undefined {
  return realizedBuffer(node, device) ?? checkpointBuffer(node, device);
}

/** Whether `node`'s value is ready on `device` (a buffer, or realized there). */
function isReady(node: Node, device: DeviceName): boolean {
  return node.op === "buffer" || stateOf(device).realized.has(node);
}

/** Whether kernels fuse (false: one kernel per op). */
let fusionEnabled = true;

/** Turns fusion on or off (off: every op is its own kernel). */
export function setFusion(enabled: boolean): void {
  fusionEnabled = enabled;
}

/** Whether kernels fuse now (see {@link setFusion}). */
export function fusionIsEnabled(): boolean {
  return fusionEnabled;
}

/** A planned kernel, described for users by {@link kernels}. */
export interface KernelInfo {
  /** The kernel's name: the ops it computes. */
  readonly name: string;
  /** The target it runs as: `"js"`, `"wasm"` (cpu) or `"wgsl"` (webgpu). */
  readonly target: string;
  /** A hash of the target and the source: equal kernels have equal keys. */
  readonly key: string;
  /** The generated source. */
  readonly source: string;
  /** The buffers it reads, in its input order (`in0`, `in1`, ...). */
  readonly inputs: readonly BufferInfo[];
  /**
   * The buffers it writes, in its output order (`out`, or `out0`, `out1`, ... for a kernel
   * that computes several values in one pass: rule MULTI_OUTPUT).
   */
  readonly outputs: readonly BufferInfo[];
}

/** A buffer a kernel reads or writes. */
export interface BufferInfo {
  /** Element type. */
  readonly dtype: DType;
  /** Shape of the tensor it holds. */
  readonly shape: readonly number[];
  /**
   * `input`: data the realization starts from; `constant`: data a compiled function captured;
   * `output`: a requested value, or one a realization keeps unasked because it computes it
   * again and again (see README, "Deep values read only through results"); `intermediate`.
   */
  readonly role: "input" | "constant" | "output" | "intermediate";
}

/**
 * Plans kept for reuse, and the nodes they may describe together (a plan's memory grows with
 * its graph: about two kilobytes a node with its kernels), except the PLAN_CACHE_KEEP used last,
 * whatever their size; a program with more distinct graph structures rebuilds the least
 * recently used.
 */
const PLAN_CACHE_LIMIT = 1024;
export const PLAN_CACHE_NODES = 1 << 16;
export const PLAN_CACHE_KEEP = 8;
const plans = new BoundedCache<number, CachedPlan[]>(
  PLAN_CACHE_LIMIT,
  PLAN_CACHE_NODES,
  (bucket) => bucket.reduce((n, cached) => n + cached.nodes.length, 0),
  PLAN_CACHE_KEEP,
);
let planHits = 0;
let planMisses = 0;

/**
 * Plan cache statistics: how many realizations reused a plan and how many built one, how many
 * structures are cached and the nodes they describe.
 */
export function planCacheStats(): { hits: number; misses: number; size: number; nodes: number; } {
  return { hits: planHits, misses: planMisses, size: plans.size, nodes: plans.weight };
}

/**
 * The structure of the graph below `outputs`, as plans are cached by: each node's op, dtype,
 * shape and arg (a source's dtype and shape only) and its sources' places in the local order,
 * plus the device, its kernel targets, the fusion setting and the outputs' places.
 */
interface Structure {
  readonly order: readonly Node[];
  readonly isSource: readonly boolean[];
  /** The walk that placed `order` (Node.walk): a node's place is `node.place` while it holds. */
  readonly walk: number;
  readonly head: string;
  readonly hash: number;
}

/** A cached plan with the structure it was built for (hashes can collide: this confirms). */
interface CachedPlan {
  readonly plan: Plan;
  readonly head: string;
  readonly nodes: readonly StructureNode[];
}

/** One node of a cached plan's structure: what two graphs must agree on, node by node. */
interface StructureNode {
  readonly op: Op;
  readonly dtype: DType;
  readonly shape: Shape;
  /** The op's arg; undefined for a source (its dtype and shape are all that count). */
  readonly arg: unknown;
  readonly isSource: boolean;
  readonly srcs: readonly number[];
}

let walks = 0;

/**
 * The nodes below `outputs`, each after its sources, the sources of those `isSource` holds for
 * not walked: graph.ts's topoSort, in the same order, with each node's place stamped on the
 * node (Node.walk and Node.place) instead of kept in a Map.
 */
function placeNodes(outputs: readonly Node[], isSource: (n: Node) => boolean): {
  order: Node[];
  walk: number;
} {
  const walk = ++walks;
  const order: Node[] = [];
  const stack: Node[] = [];
  const expanded: boolean[] = [];
  for (let i = 0; i < outputs.length; i++) {
    stack.push(outputs[i]);
    expanded.push(false);
  }
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (expanded.pop()) {
      node.place = order.length;
      order.push(node);
      continue;
    }
    if (node.walk === walk) continue;
    node.walk = walk;
    node.place = -1;
    stack.push(node);
    expanded.push(true);
    if (isSource(node)) continue;
    for (let i = node.srcs.length - 1; i >= 0; i--) {
      if (node.srcs[i].walk !== walk) {
        stack.push(node.srcs[i]);
        expanded.push(false);
      }
    }
  }
  return { order, walk };
}

function structureOf(outputs: readonly Node[], backend: Backend): Structure {
  const sourceOf = sourceTest(backend.name);
  const { order, walk } = placeNodes(outputs, sourceOf);
  const head = `${backend.name} ${backend.planKey ?? ""} fusion=${fusionEnabled} out=${
    outputs.map((o) => o.place).join(",")
  }`;
  const isSource = order.map(sourceOf);
  let hash = mixText(HASH_SEED, head);
  for (let i = 0; i < order.length; i++) {
    const n = order[i];
    if (isSource[i]) {
      hash = mixText(mix(hash, -1), n.dtype);
      for (let j = 0; j < n.shape.length; j++) hash = mixNumber(hash, n.shape[j]);
      continue;
    }
    hash = mix(hash, n.structureHash);
    for (let j = 0; j < n.srcs.length; j++) hash = mix(hash, n.srcs[j].place);
  }
  return { order, isSource, walk, head, hash };
}

/** Whether `cached` was built for `structure` (the same hash is not proof). */
function sameStructure(cached: CachedPlan, structure: Structure): boolean {
  const { order, isSource } = structure;
  if (cached.head !== structure.head || cached.nodes.length !== order.length) return false;
  for (let i = 0; i < order.length; i++) {
    const want = cached.nodes[i];
    const n = order[i];
    if (want.isSource !== isSource[i]) return false;
    if (n.dtype !== want.dtype || !sameShape(n.shape, want.shape)) return false;
    if (isSource[i]) continue;
    if (n.op !== want.op || n.srcs.length !== want.srcs.length) return false;
    if (n.op !== "detach" && !sameArg(n.arg, want.arg)) return false;
    for (let j = 0; j < want.srcs.length; j++) {
      if (n.srcs[j].place !== want.srcs[j]) return false;
    }
  }
  return true;
}

/**
 * What a cached plan remembers of its structure: each node's parts, not the node (so the cache
 * holds no graph, buffer or value alive).
 */
function rememberStructure(structure: Structure): Omit<CachedPlan, "plan"> {
  const { order, isSource, head } = structure;
  const nodes = order.map((n, i): StructureNode => ({
    op: n.op,
    dtype: n.dtype,
    shape: n.shape,
    arg: isSource[i] ? undefined : n.arg,
    isSource: isSource[i],
    srcs: isSource[i] ? [] : n.srcs.map((s) => s.place),
  }));
  return { head, nodes };
}

/**
 * The plan realizing `outputs` on `backend`, the structural order of its graph, and the values
 * it stores unasked (rule CHECKPOINT, checkpoint.ts), which come last among its outputs.
 */
function planFor(
  outputs: readonly Node[],
  backend: Backend,
): { plan: Plan; order: Node[]; checkpoints: readonly Node[]; } {
  const structure = structureOf(outputs, backend);
  const deep = chooseCheckpoints(structure.order, structure.isSource, outputs);
  if (deep.length > 0) {
    const all = [...outputs, ...deep];
    return { ...cachedPlanFor(all, structureOf(all, backend), backend), checkpoints: deep };
  }
  return { ...cachedPlanFor(outputs, structure, backend), checkpoints: [] };
}

function cachedPlanFor(
  outputs: readonly Node[],
  structure: Structure,
  backend: Backend,
): { plan: Plan; order: Node[]; } {
  const order = structure.order as Node[];
  const bucket = plans.get(structure.hash);
  for (let i = 0; bucket !== undefined && i < bucket.length; i++) {
    if (!sameStructure(bucket[i], structure)) continue;
    planHits++;
    return { plan: bucket[i].plan, order };
  }
  planMisses++;
  // taken before planning, while the nodes' places are this walk's (planning walks again)
  const remembered = rememberStructure(structure);
  const plan = buildPlan(outputs, order, {
    fusion: fusionEnabled,
    isSource: sourceTest(backend.name),
    target: backend.limits,
    targetFor: (kernel) => backend.targetFor(kernel),
  });
  const entry = { plan, ...remembered };
  plans.set(structure.hash, [...bucket ?? [], entry]); // set again: the bucket weighs more
  debugPlan(outputs, plan, sourceTest(backend.name));
  return { plan, order };
}

/**
 * Debug levels 2 and 3: a new plan's IR (its part of the graph, down to stored values: the
 * whole history printed with nothing to say where the plan began) and its kernels' source.
 * Plans `jit` makes print here too.
 */
export function debugPlan(
  outputs: readonly Node[],
  plan: Plan,
  isStored: (n: Node) => boolean,
): void {
  if (debugLevel() >= 2) debugLog(`IR:\n${printGraph(outputs, isStored)}`);
  if (debugLevel() >= 3) { for (const s of plan.steps) debugLog(s.executable.text); }
}

/** The plan that realizing `outputs` on `backend` would run, if anything needs computing. */
export function plannedSteps(outputs: readonly Node[], backend: Backend): Plan | null {
  const pending = outputs.filter((n) => !isReady(n, backend.name));
  if (pending.length === 0) return null;
  return planFor(pending, backend).plan;
}

/** The kernels that realizing `outputs` would run (nothing runs). */
export function plannedKernels(outputs: readonly Node[], backend: Backend): KernelInfo[] {
  const plan = plannedSteps(outputs, backend);
  if (plan === null) return [];
  const describe = (i: number): BufferInfo => {
    const { dtype, shape, role } = plan.buffers[i];
    return { dtype, shape: [...shape], role };
  };
  return plan.steps.map(({ executable: e, inputs, outputs }) => ({
    name: e.name,
    target: e.target,
    key: e.key,
    source: e.text,
    inputs: inputs.map(describe),
    outputs: outputs.map(describe),
  }));
}

/** Whether `buffer` went back to its device (a disposed tensor's storage). */
export function wasReleased(buffer: DeviceBuffer): boolean {
  return releaseReason(buffer) !== undefined;
}

/** The storage of one plan run: every buffer of the plan, and the run itself. */
export interface PlanRun {
  /** Buffer i of the plan; the outputs are the caller's (intermediates go back to the pool). */
  readonly buffers: readonly DeviceBuffer[];
  /** Settles when the kernels have run (undefined when they ran synchronously). */
  readonly ran: void | Promise<void>;
}

/**
 * Runs `plan` on `backend` with `bound[i]` as buffer i for every buffer the caller provides
 * (its inputs, ready to read); the others are allocated here. Intermediates return to the
 * pool once the kernels have run; if the run fails, every buffer allocated here is released
 * and the error is thrown (or rejects `ran`).
 */
export function runPlan(
  plan: Plan,
  bound: readonly (DeviceBuffer | undefined)[],
  backend: Backend,
): PlanRun {
  const buffers: DeviceBuffer[] = [];
  const temporaries: DeviceBuffer[] = [];
  const allocated: DeviceBuffer[] = [];
  const fail = (e: unknown): never => {
    for (const b of allocated) releaseBuffer(b, backend);
    throw e;
  };
  try {
    // an allocation failing halfway releases those made before it
    plan.buffers.forEach((pb, i) => {
      const given = bound[i];
      if (given !== undefined) {
        buffers[i] = given;
        return;
      }
      const b = backend.allocate(pb.dtype, numelOf(pb.shape));
      allocated.push(b);
      if (pb.role === "intermediate") temporaries.push(b);
      buffers[i] = b;
    });
  } catch (e) {
    return fail(e);
  }
  const launches: Launch[] = plan.steps.map((step) => {
    if (debugLevel() >= 1) {
      const outs = step.outputs.map((i) => plan.buffers[i]);
      debugLog(
        `launch ${step.executable.name} -> ${outs.map((o) => `${o.dtype}[${o.shape}]`).join(", ")}`,
      );
    }
    return {
      executable: step.executable,
      outputs: step.outputs.map((i) => buffers[i]),
      inputs: step.inputs.map((i) => buffers[i]),
    };
  });
  const finish = () => {
    for (const t of temporaries) releaseBuffer(t, backend);
  };
  let ran: void | Promise<void>;
  try {
    ran = backend.run(launches);
  } catch (e) {
    return fail(e);
  }
  if (ran instanceof Promise) return { buffers, ran: ran.then(finish, fail) };
  finish();
  return { buffers, ran };
}

/**
 * A realization needs storage that is gone (disposed, or overwritten by `assign`): the
 * caller's Error names the function the program called (`data`, `realize`, a jit call...).
 */
export class InputGoneError extends Error {
  constructor(readonly input: string) {
    super(`realize: ${input}`);
  }
}

/**
 * Computes every node of `outputs` that is not yet realized, on `backend`, and records the
 * results. Intermediate buffers return to the pool once the kernels have run. Called through
 * realization.ts's realizeOn only, which adds the variables waiting for a value that the graph
 * reaches: rule CHECKPOINT relies on it (no variable waits below a checkpoint).
 */
export function realizeNodes(outputs: readonly Node[], backend: Backend): void | Promise<void> {
  return realizeOrWait(outputs, backend, undefined);
}

/**
 * A place in a device's line of realizations waiting for runs in flight (see realizeOrWait):
 * the next in line tries again once this one is released.
 */
interface Place {
  readonly released: Promise<void>;
  release(): void;
}

/** The last place in each device's line. */
const lastPlace = new Map<DeviceName, Place>();
let attempts = 0;

/** How many devices' lines of waiting realizations hold a place now (for tests). */
export function linesHeld(): number {
  return lastPlace.size;
}

/** How many times realizations have tried to run so far, waits included (for tests). */
export function realizeAttempts(): number {
  return attempts;
}

/**
 * realizeNodes. A realization that finds a value it computes being computed by a run in flight
 * waits for that run, and takes a place in the device's line: it tries again once the runs it
 * waits for have settled and the realization before it in line has released its place. A
 * place is released when its realization has nothing left to wait for but its own run (it ran,
 * or failed), or waits for something other than runs (a copy arriving, whose source may be a
 * realization behind it in line: holding the place then closed a cycle, helper-158). A retry
 * that finds other runs in flight waits for those, keeping its place.
 *
 * Without the line, every run that settled woke every realization still waiting, all but one
 * of which found the next run in flight and waited again: a webgpu training loop that read a
 * weight after 100 unread Adam steps made 4,852 attempts for the read (1.4 s; 200 steps 11 s),
 * now two a step (0.29 s; 200 steps 0.87 s).
 */
function realizeOrWait(
  outputs: readonly Node[],
  backend: Backend,
  place: Place | undefined,
): void | Promise<void> {
  attempts++;
  try {
    const ran = attemptRealization(outputs, backend, place);
    if (place === undefined) return ran;
    if (!(ran instanceof Promise)) place.release();
    else if (!keepsPlace.has(ran)) ran.then(place.release, place.release);
    return ran;
  } catch (e) {
    place?.release();
    throw e;
  }
}

/** The promises of attempts that keep their place in line (they wait for runs again). */
const keepsPlace = new WeakSet<Promise<void>>();

/** One attempt of realizeOrWait. */
function attemptRealization(
  outputs: readonly Node[],
  backend: Backend,
  place: Place | undefined,
): void | Promise<void> {
  const { realized, inFlight } = stateOf(backend.name);
  for (let i = 0; i < outputs.length; i++) {
    // a checkpoint asked for is an ordinary stored value from now on (rule CHECKPOINT)
    const kept = takeCheckpoint(outputs[i], backend.name);
    if (kept === undefined) continue;
    realized.set(outputs[i], kept);
    trackValue(outputs[i], kept);
  }
  const pending = outputs.length === 1
    ? (isReady(outputs[0], backend.name) ? [] : [outputs[0]]) // the common case, without a Set
    : [...new Set(outputs.filter((n) => !isReady(n, backend.name)))];
  if (pending.length === 0) return;
  // a node already being computed (an asynchronous run in flight) is waited for, not redone
  const busy = pending.flatMap((n) => inFlight.get(n) ?? []);
  if (busy.length > 0) {
    // a pending realization holds its inputs: a dispose meanwhile waits for it
    const sources = () => storedSources(pending, backend.name);
    const runs = Promise.all(busy);
    if (place !== undefined) {
      const again = holdUntilSettled(
        sources(),
        runs.then(() => realizeOrWait(outputs, backend, place)),
      );
      keepsPlace.add(again);
      return again;
    }
    const before = lastPlace.get(backend.name);
    let resolve!: () => void;
    const released = new Promise<void>((r) => resolve = r);
    // the line forgets a released place that is still its last: kept, its promise chain held
    // what the realization read for good (a failed read after a device loss kept a 4 MB batch,
    // helper-163)
    const release = () => {
      resolve();
      if (lastPlace.get(backend.name) === mine) lastPlace.delete(backend.name);
    };
    const mine: Place = { released, release };
    lastPlace.set(backend.name, mine);
    const again = runs.then(() => {
      // what the runs stored is held until the retry has run: waiting in line, the program
      // could dispose it meanwhile (a read issued before a dispose then failed, helper-158)
      const unhold = holdBuffers(sources());
      const turn = before === undefined ? Promise.resolve() : before.released;
      return turn.then(() => realizeOrWait(outputs, backend, mine)).finally(unhold);
    });
    // (failing before its turn, it still lets the next one go)
    again.catch(release);
    return holdUntilSettled(sources(), again);
  }
  const { plan, order, checkpoints: deep } = planFor(pending, backend);
  const bound: (DeviceBuffer | undefined)[] = [];
  const waits: Promise<void>[] = [];
  plan.buffers.forEach((pb, i) => {
    if (pb.role !== "input") return;
    const n = order[pb.node];
    const b = sourceBuffer(n, backend.name)!;
    touchCheckpoint(n, backend.name);
    const gone = releaseReason(b);
    if (gone !== undefined) {
      throw new InputGoneError(`a ${n.dtype}[${n.shape}] input that was ${gone}`);
    }
    const copy = backend.failedCopy(b);
    if (copy !== null) throw copy.error; // as the awaited copy rejects: it will never arrive
    const wait = backend.pending(b);
    if (wait) waits.push(wait);
    bound[i] = b;
  });
  const inputs = bound.filter((b): b is DeviceBuffer => b !== undefined);
  if (waits.length > 0) {
    // planning again after the wait, it needs what a checkpoint it loads was computed from, if
    // that goes meanwhile (and takes the checkpoint along): held too (helper-152)
    const roots = plan.buffers.flatMap((pb) =>
      pb.role === "input" ? checkpointRoots(order[pb.node], backend.name) : []
    );
    // (its place in line goes: the copies' sources may be behind it)
    place?.release();
    const replan = Promise.all(waits).then(() => realizeOrWait(outputs, backend, undefined));
    return holdUntilSettled([...inputs, ...roots], replan);
  }
  const { buffers, ran } = runPlan(plan, bound, backend);
  let roots: Map<Node, DeviceBuffer[]> | undefined; // of the checkpoints it stores
  const finish = () => {
    for (let i = 0; i < order.length; i++) order[i].computed = true;
    plan.buffers.forEach((pb, i) => {
      if (pb.role !== "output") return;
      const node = order[pb.node];
      if (!deep.includes(node)) {
        realized.set(node, buffers[i]);
        trackValue(node, buffers[i]);
      } else if (isReady(node, backend.name) || checkpointBuffer(node, backend.name)) {
        releaseBuffer(buffers[i], backend); // stored meanwhile by another run (asynchronous)
      } else {
        roots ??= rootsOfCheckpoints(deep, plan, order, buffers, backend.name);
        keepCheckpoint(node, buffers[i], roots.get(node)!, backend);
      }
    });
  };
  if (ran instanceof Promise) {
    const done = holdUntilSettled(inputs, ran.then(finish));
    const settled = done.then(() => {}, () => {});
    const computing = [...pending, ...deep];
    for (const n of computing) inFlight.set(n, settled);
    settled.then(() => computing.forEach((n) => inFlight.delete(n)));
    return done;
  }
  finish();
}

/**
 * The stored values realizing `pending` on `device` would load (and what the checkpoints among
 * them were computed from: see the wait for copies in attemptRealization).
 */
function storedSources(pending: readonly Node[], device: DeviceName): DeviceBuffer[] {
  const isSource = sourceTest(device);
  return topoSort(pending, isSource).flatMap((n) => {
    if (!isSource(n)) return [];
    const b = sourceBuffer(n, device);
    return [...checkpointRoots(n, device), ...(b === undefined ? [] : [b])];
  });
}

/**
 * The roots of each checkpoint `deep` a run of `plan` computes (checkpoint.ts): the stored values
 * it loads below it (a loaded checkpoint's own roots for it). Only those below: the run's other
 * inputs (a batch read beside a parameter updated step by step) were held by checkpoints that
 * did not need them, and a batch dropped at every step was never freed (helper-150).
 */
function rootsOfCheckpoints(
  deep: readonly Node[],
  plan: Plan,
  order: readonly Node[],
  buffers: readonly DeviceBuffer[],
  device: DeviceName,
): Map<Node, DeviceBuffer[]> {
  const loaded = new Map<Node, DeviceBuffer>();
  plan.buffers.forEach((pb, i) => {
    if (pb.role === "input") loaded.set(order[pb.node], buffers[i]);
  });
  const found = new Map<Node, DeviceBuffer[]>();
  // sources first (deep is in the graph's order): each walk stops at the checkpoints before it
  for (const c of deep) {
    const below = new Set<DeviceBuffer>();
    for (const m of topoSort([c], (m) => m !== c && (loaded.has(m) || found.has(m)))) {
      const before = m === c ? undefined : found.get(m);
      const inputs = loaded.has(m) ? rootsOf([{ node: m, buffer: loaded.get(m)! }], device) : [];
      for (const b of before ?? inputs) below.add(b);
    }
    found.set(c, [...below]);
  }
  return found;
}

// A stored value being freed takes the checkpoints computed from it along (rule CHECKPOINT).
onReleaseRequested(dropCheckpointsFrom);

/** `work`, with `buffers` held (kept from the pool) until it settles. */
function holdUntilSettled<T>(buffers: Iterable<DeviceBuffer>, work: Promise<T>): Promise<T> {
  const unhold = holdBuffers(buffers);
  return work.finally(unhold);
}
