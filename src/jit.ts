// jit(fn): a function of tensors compiled once per input signature. The first call with a
// signature (the arguments' shapes, dtypes, devices and requiresGrad) traces `fn`: it runs on
// stand-ins whose data does not exist (buffer nodes with no storage), and the graph it
// returns is scheduled and compiled into a plan (codegen/plan.ts). Later calls with that
// signature skip tracing, scheduling and printing: they bind the arguments' storage to the
// plan's input buffers and run it. After jax's `jit` (trace with abstract values, cache per
// signature) and tinygrad's TinyJit (capture the kernels once, replay them).
//
// - Tensors `fn` reads without receiving them (weights in a closure, tensors it creates) are
//   the plan's constants, embedded in exports. A call binds each captured tensor's value as it
//   is then: a leaf given a new value by `assign` (an optimizer step) since is read anew.
// - `backward()` and `grad()` work inside `fn`: their gradients are graph like any other, so a
//   whole training step compiles to one plan.
// - A traced function must not read values (data(), dataSync(), item(), toArray(), to()): the
//   stand-ins have none, and reading one makes the trace fail with a clear Error; a captured
//   tensor's value read then would be a constant of every call, so that read throws at once
//   (realization.ts's refuseReadWhileTracing; an export's trace may: it embeds them anyway).
//   Nor may it
//   `assign` (an optimizer step): the new value would be graph over the stand-ins, so that is an
//   Error too; gradients that backward() sets during the trace are given back when it ends.
// - Results are new tensors that own their storage, cut off from autodiff; a result that is an
//   argument or a captured tensor, or equal to another result, is a new handle on that value
//   (disposing one handle leaves the others readable, as in eager code).

import type { DType } from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import type { Node, Shape } from "./ir/node.ts";
import { topoSort } from "./ir/graph.ts";
import { buildPlan, type Plan, type PlanBuffer } from "../codegen/plan.ts";
import type { Target } from "../codegen/targets.ts";
import type { Kernel } from "../codegen/kernel.ts";
import { BoundedCache } from "../codegen/cache.ts";
import { backendFor } from "./runtime/backends.ts";
import { type Backend, type DeviceBuffer, type DeviceName, newBufferId } from "./runtime/device.ts";
import {
  debugPlan,
  fusionIsEnabled,
  realizedBuffer,
  runPlan,
  wasReleased,
} from "./runtime/realize.ts";
import { releaseBuffer } from "./runtime/lifetime.ts";
import { backstop } from "./runtime/backstop.ts";
import {
  acquireHold,
  endHold,
  type GradientHolder,
  markStandIn,
  untracked,
  withGradientsRestored,
} from "./ownership.ts";
import {
  createTensor,
  isTensor,
  leafRequiringGrad,
  nextTensorSerial,
  nodeOf,
  readingNodes,
  type Tensor,
  tensorSerial,
} from "./tensor.ts";
import { realizeOn, releaseValue } from "./realization.ts";
import {
  checkKnownKeys,
  checkOptionsObject,
  dense,
  described,
  fail,
  isArray,
  isPlainObject,
} from "./validate.ts";
import { ignoreRejection } from "./autodiff.ts";
import { tensorFromBuffer } from "./creation.ts";
import {
  type GeneratorPosition,
  generatorPosition,
  moveGenerator,
  samePosition,
} from "./random.ts";

/** What a function given to {@link jit} returns: a tensor, an array or a record of tensors. */
export type JitResult = Tensor | readonly Tensor[] | { readonly [name: string]: Tensor; };

/** Options of {@link jit}. */
export interface JitOptions {
  /**
   * Names of the arguments, in order: they name the inputs of exported modules and appear in
   * errors. Default: `x` for a one-argument call, else `x0`, `x1`, ...
   */
  readonly inputNames?: readonly string[];
}

/** A function compiled by {@link jit}: call it with tensors; it resolves to fresh results. */
export interface CompiledFunction<R extends JitResult = JitResult> {
  /** Runs the compiled plan (tracing `fn` first for a new signature). */
  (...args: Tensor[]): Promise<R>;
  /** The function that was compiled. */
  readonly fn: (...args: Tensor[]) => R;
  /** The argument names given to {@link jit}, if any. */
  readonly inputNames: readonly string[] | undefined;
  /** How many times `fn` has been traced (once per signature, and once per export target). */
  readonly traceCount: number;
}

/** What one argument of a trace is: everything its signature holds. */
export interface InputSpec {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly device: DeviceName;
  readonly requiresGrad: boolean;
  /**
   * The earlier argument that is the same autodiff variable (a leaf requiring grad passed
   * twice): both get one stand-in, so that a gradient through either reaches it whole.
   */
  readonly sameAs?: number;
}

/** A traced function: its plan, and how arguments, captured values and results map onto it. */
export interface Trace {
  /** The device every argument and result lives on. */
  readonly device: DeviceName;
  /** Buffers with roles input (arguments), constant (captured), output and intermediate. */
  readonly plan: Plan;
  /** The plan buffer of each argument (used or not, every argument has one). */
  readonly inputs: readonly number[];
  /** The plan buffer of each result, in order. */
  readonly outputs: readonly number[];
  /** The names of the results: `y`, `y0`..., or the keys of a returned record. */
  readonly outputNames: readonly string[];
  /** How `fn` returned its results. */
  readonly resultKind: "tensor" | "array" | "record";
  /** The captured value behind each constant buffer. */
  readonly constants: ReadonlyMap<number, Node>;
  /** The leaf tensors that held each constant's value when traced (`assign` moves them). */
  readonly holders: ReadonlyMap<number, readonly WeakRef<Tensor>[]>;
  /** Captured values `fn` may have computed itself as well (see `shadowsOf`). */
  readonly shadows: readonly Shadow[];
  /**
   * What backward() inside `fn` gave a gradient while traced: the arguments (by position) and
   * the captured leaves.
   */
  readonly differentiated: {
    readonly arguments: ReadonlySet<number>;
    readonly captured: readonly WeakRef<Tensor>[];
  };
  /**
   * The captured leaves `fn` read and whether each required grad when traced: a backward()
   * inside `fn` gives gradients by it, so a leaf frozen or unfrozen since is a new trace (the
   * plan went on giving a frozen weight its gradient).
   */
  readonly requiresGrad: readonly { readonly leaf: WeakRef<Tensor>; readonly was: boolean; }[];
}

/**
 * A captured lazy value (`h = w.mul(2)` made before the trace) computed from other captured
 * values (`w`): `fn`'s own `w.mul(2)` is the same node, so the plan reads it from `h` too. That
 * holds while `w` keeps its traced value; once `w` is assigned (or `h` assigned or disposed)
 * `fn` is traced again, and its `w.mul(2)` is then a node of its own.
 */
interface Shadow {
  /** The captured value. */
  readonly node: WeakRef<Node>;
  /** The holders of the captured value. */
  readonly holders: readonly WeakRef<Tensor>[];
  /** The captured values below it, and their holders when traced. */
  readonly below: readonly { node: WeakRef<Node>; holders: readonly WeakRef<Tensor>[]; }[];
}

/**
 * Signatures (and export targets) whose traces a compiled function keeps, the most recently
 * used: a step whose batch size cycled through 65 values retraced at every call with 64 (3.6x
 * slower than eager code). A trace holds its plan; its kernels are shared with every other.
 */
const TRACE_LIMIT = 256;
/** Traces remembered per signature (for captured values since changed; the newest first). */
const TRACE_VARIANTS = 4;
/**
 * Signatures whose random draws a compiled function remembers, the most recently used of those
 * that drew (a position is 20 bytes: more than its traces, so a signature whose trace was
 * dropped draws its numbers again alike).
 */
const DRAWS_LIMIT = 1024;

/** State shared by the stand-ins of one trace. */
interface TraceState {
  /** Whether `fn` is running. */
  tracing: boolean;
  /** The argument whose value something tried to read, if any. */
  read: string | null;
}

/**
 * A traced argument's storage: it has no data. Backends wait on `pending` before reading a
 * buffer. While `fn` runs, a stand-in's never settles (a read inside `fn` is noted, and the
 * trace fails once `fn` returns: a promise rejected now could not be handled by anyone, since
 * `fn` cannot await it); afterwards, for a stand-in that escaped `fn`, it rejects.
 */
class TracedInput implements DeviceBuffer {
  readonly id: number = newBufferId();
  readonly standIn = true;
  constructor(
    readonly device: DeviceName,
    readonly dtype: DType,
    readonly length: number,
    private readonly state: TraceState,
    private readonly name: string,
  ) {}

  get pending(): Promise<void> {
    if (this.state.tracing) {
      this.state.read ??= this.name;
      return new Promise<void>(() => {});
    }
    // a tensor built on it kept past the trace: read now, no trace is running to blame
    const rejected = Promise.reject(keptError(this.name));
    rejected.catch(() => {}); // whoever waits sees it; nobody else must
    return rejected;
  }
}

function readError(name: string): Error {
  return new Error(
    `jit: fn read the value of its argument ${name} (or of a tensor computed from it) while ` +
      "being traced; a compiled function must build its results with tensor ops only, without " +
      "data(), dataSync(), item(), toArray() or to() on values that depend on its arguments",
  );
}

function keptError(name: string): Error {
  return new Error(
    `jit: a tensor built from fn's argument ${name} while fn was traced, and kept past the ` +
      "trace (a closure, a global), has no value: the argument had none then; return the " +
      "tensor from fn instead",
  );
}

/** The default name of argument `i` of `count`. */
export function defaultInputName(i: number, count: number): string {
  return count === 1 ? "x" : `x${i}`;
}

/** The signature of `specs`: what a trace depends on. */
function signatureOf(specs: readonly InputSpec[]): string {
  return specs
    .map((s) =>
      `${s.device} ${s.dtype}[${s.shape}]${s.requiresGrad ? " grad" : ""}` +
      (s.sameAs === undefined ? "" : ` =${s.sameAs}`)
    )
    .join("; ");
}

/** The results of `fn` as a list, with their names and how they were returned. */
function flattenResult(
  result: unknown,
): { tensors: Tensor[]; names: string[]; kind: Trace["resultKind"]; } {
  const expected = "fn must return a Tensor, an array of Tensors or an object of Tensors";
  if (isTensor(result)) return { tensors: [result], names: ["y"], kind: "tensor" };
  let entries: [string, unknown][];
  let kind: Trace["resultKind"];
  if (isArray(result)) {
    // dense: map() skips holes (`[a, , b]` destructured an empty slot, a bare TypeError)
    entries = dense(result).map((t, i) => [`y${i}`, t]);
    kind = "array";
  } else if (
    result !== null && typeof result === "object" && isPlainObject(result) // of any realm
  ) {
    entries = Object.entries(result);
    kind = "record";
  } else {
    fail("jit", expected, result);
  }
  if (entries.length === 0) fail("jit", `${expected} (at least one)`, result);
  for (const [name, t] of entries) {
    if (!isTensor(t)) fail("jit", `fn's result ${name} must be a Tensor`, t);
  }
  return { tensors: entries.map(([, t]) => t as Tensor), names: entries.map(([n]) => n), kind };
}

/**
 * What an export compiles a trace for, instead of what the device runs: the limits the
 * schedule meets and the target of each kernel (one target for all, or a choice per kernel,
 * as the `wasm` export keeps kernels Wasm cannot run on JavaScript).
 */
export interface TraceTargets {
  /** Tells this choice from others among a function's remembered traces. */
  readonly key: string;
  /** The target whose limits the schedule meets. */
  readonly limits: Target;
  /** The target a kernel compiles for. */
  readonly targetFor: (kernel: Kernel) => Target;
}

/**
 * Traces `fn` on stand-ins for `specs` and plans its results. `targets` chooses every
 * kernel's target (exports); by default each kernel compiles for what its device runs.
 */
function traceFunction(
  fn: (...args: Tensor[]) => unknown,
  specs: readonly InputSpec[],
  names: readonly string[],
  targets?: TraceTargets,
): Trace {
  const state: TraceState = { tracing: true, read: null };
  // tensors made from here on are the trace's: an older one read by fn is captured (not nodes:
  // fn's own w.mul(2) is an older node when one equal was made before, by the caller or an
  // earlier trace, and was frozen at its value)
  const firstTraced = nextTensorSerial();
  // the trace's own tensors: no tidy scope of the caller's may dispose them (their buffers
  // hold no storage to give back)
  // (a leaf passed twice has one stand-in: its specs say sameAs)
  const standIns: Tensor[] = untracked(() => {
    const made: Tensor[] = [];
    specs.forEach((s, i) => {
      if (s.sameAs !== undefined) {
        made.push(made[s.sameAs]);
        return;
      }
      const buffer = new TracedInput(s.device, s.dtype, ir.numelOf(s.shape), state, names[i]);
      const standIn = createTensor(
        ir.buffer(buffer, s.shape, s.dtype),
        s.device,
        s.requiresGrad,
        true,
      );
      markStandIn(standIn);
      made.push(standIn);
    });
    return made;
  });
  const reached: { leaves: GradientHolder[]; } = { leaves: [] };
  let result: unknown;
  const read = new Set<Tensor>();
  try {
    // untracked: what fn makes belongs to the trace (its constants to the plan), not to a tidy
    // scope of the caller's, which disposed them when it closed and broke every later call
    result = untracked(() =>
      readingNodes(
        (t) => read.add(t),
        () => withGradientsRestored(() => fn(...standIns), reached, targets === undefined),
      )
    );
  } catch (e) {
    if (state.read !== null) throw readError(state.read);
    throw e;
  } finally {
    state.tracing = false;
  }
  if (result instanceof Promise) {
    ignoreRejection(result); // its failure is reported below, not as an unhandled rejection
    fail("jit", "fn must return its results synchronously (not a Promise)", result);
  }
  if (state.read !== null) throw readError(state.read);
  const { tensors, names: outputNames, kind } = flattenResult(result);
  const device = specs[0]?.device ?? tensors[0].device;
  for (const [i, t] of tensors.entries()) {
    if (t.device !== device) {
      fail("jit", `fn's result ${outputNames[i]} must be on device "${device}"`, t.device);
    }
  }
  const backend = backendFor(device);
  // a captured tensor returned as it is, read by no op, is captured too (its value at the trace
  // was returned by every call: after its assign, and after its dispose)
  for (const t of tensors) if (tensorSerial(t) < firstTraced) read.add(t);
  const holders = captureHolders(read, device, firstTraced);
  const requiresGrad = [...read]
    .filter((t) => tensorSerial(t) < firstTraced && !t.isDisposed && t.isLeaf)
    .map((t) => ({ leaf: new WeakRef(t), was: t.requiresGrad }));
  // a stored value no capture holds, with its history, is fn's own computation (fn's w.mul(2)
  // is the node of an equal value the caller computed before): computed from its sources at
  // every call, not bound as stored, which kept w's traced value after w.assign
  const isSource = (n: Node) =>
    n.op === "buffer" || holders.has(n) ||
    (n.op !== "const" && n.srcs.length === 0 && realizedBuffer(n, device) !== undefined);
  const nodes = tensors.map(nodeOf);
  const computed = [...new Set(nodes.filter((n) => !isSource(n)))];
  const order = topoSort(computed, isSource);
  const planned = computed.length === 0 ? { buffers: [], steps: [] } : buildPlan(computed, order, {
    fusion: fusionIsEnabled(),
    isSource,
    target: targets?.limits ?? backend.limits,
    targetFor: (kernel) => targets?.targetFor(kernel) ?? backend.targetFor(kernel),
  });
  if (computed.length > 0) debugPlan(computed, planned, isSource);
  return bindTrace(
    planned,
    order,
    standIns.map(nodeOf),
    nodes,
    device,
    outputNames,
    kind,
    holders,
    {
      arguments: new Set(standIns.flatMap((t, i) => reached.leaves.includes(t) ? [i] : [])),
      captured: reached.leaves.filter((t) => isTensor(t) && !standIns.includes(t))
        .map((t) => new WeakRef(t as Tensor)),
    },
    requiresGrad,
  );
}

/**
 * The tensors among `read` that hold captured values, by value: every tensor made before the
 * trace (`firstTraced` and on are the trace's own, stand-ins included). Leaves holding stored
 * values or values assigned but not yet computed, views of leaves, lazy values: their values
 * are constants of the plan, computed before each call where need be, since a leaf may move on
 * to another value before the next.
 */
function captureHolders(
  read: ReadonlySet<Tensor>,
  device: DeviceName,
  firstTraced: number,
): Map<Node, Tensor[]> {
  const holders = new Map<Node, Tensor[]>();
  for (const t of read) {
    // not fn's own: a view of w made inside fn diverged from w at every step (a trace a call),
    // and fn's w.mul(2), a leaf when nothing requires grad, on the node of an equal value the
    // caller had computed, bound that stored value for good. Non-leaves made before count
    // (w0 = w.reshape(w.shape) of a w requiring grad is w's node: it never moves, but it holds
    // the value, and holdersDiverged must see it), and so do lazy values (h = w.mul(2), traced
    // inline over w's node, was computed from w's new value after w.assign)
    if (tensorSerial(t) >= firstTraced || t.isDisposed || t.device !== device) continue;
    const n = nodeOf(t);
    // a constant is the same at every call (inlined, unless stored)
    if (n.op === "const" && realizedBuffer(n, device) === undefined) continue;
    holders.set(n, [...holders.get(n) ?? [], t]);
  }
  return holders;
}

/**
 * The captured values among `holders` that other captured values are computed from. Each
 * notes the captured values nearest below it only: one further down that moves is noted by
 * the one above it (a chain of 1,000 captures, each noting all below, cost 48 ms a call).
 */
function shadowsOf(holders: ReadonlyMap<Node, readonly Tensor[]>): Shadow[] {
  const shadows: Shadow[] = [];
  const weak = (ts: readonly Tensor[]) => ts.map((t) => new WeakRef(t));
  for (const [node, tensors] of holders) {
    const below: Shadow["below"][number][] = [];
    const seen = new Set<Node>([node]);
    const stack = [...node.srcs];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      const held = holders.get(n);
      if (held !== undefined) below.push({ node: new WeakRef(n), holders: weak(held) });
      else stack.push(...n.srcs);
    }
    if (below.length > 0) {
      shadows.push({ node: new WeakRef(node), holders: weak(tensors), below });
    }
  }
  return shadows;
}

/** Whether a tensor among `refs` is alive and no longer on `node`. */
function moved(refs: readonly WeakRef<Tensor>[], node: Node | undefined): boolean {
  return refs.some((ref) => {
    const t = ref.deref();
    return t !== undefined && !t.isDisposed && nodeOf(t) !== node;
  });
}

/**
 * Whether `fn` must be traced again: the tensors holding one captured value now hold different
 * values (`w` assigned and `w0 = w.reshape(w.shape)`, which was the same node, not: the plan
 * has one buffer for them, and bound both to `w`'s new value, wrong for `w0`), or a captured
 * value `fn` may compute itself no longer is what `fn` would compute (see `Shadow`).
 */
function mustRetrace(trace: Trace): boolean {
  for (const { leaf, was } of trace.requiresGrad) {
    const t = leaf.deref();
    if (t !== undefined && !t.isDisposed && t.requiresGrad !== was) return true;
  }
  for (const { node, holders, below } of trace.shadows) {
    const alive = holders.map((ref) => ref.deref()).filter((t) => t !== undefined);
    if (alive.length > 0 && alive.every((t) => t.isDisposed)) return true;
    // h itself assigned: fn's own w.mul(2) read h's new value
    if (moved(holders, node.deref())) return true;
    if (below.some(({ node, holders }) => moved(holders, node.deref()))) return true;
  }
  return holdersDiverged(trace);
}

/** Whether the tensors holding one captured value now hold different values. */
function holdersDiverged(trace: Trace): boolean {
  for (const index of trace.constants.keys()) {
    const nodes = new Set<Node>();
    for (const ref of trace.holders.get(index) ?? []) {
      const t = ref.deref();
      if (t !== undefined && !t.isDisposed) nodes.add(nodeOf(t));
    }
    if (nodes.size > 1) return true;
  }
  return false;
}

/**
 * The value each constant of `trace` reads now: the node of a holder that `assign` has moved
 * since the trace, else the captured node.
 */
export function currentConstants(trace: Trace): Map<number, Node> {
  const current = new Map<number, Node>();
  for (const [index, node] of trace.constants) {
    const moved = (trace.holders.get(index) ?? [])
      .map((ref) => ref.deref())
      .find((t) => t !== undefined && !t.isDisposed && nodeOf(t) !== node);
    current.set(index, moved === undefined ? node : nodeOf(moved));
  }
  return current;
}

/** The trace of a plan: arguments, captured values and results located among its buffers. */
function bindTrace(
  planned: Plan,
  order: readonly Node[],
  argumentNodes: readonly Node[],
  resultNodes: readonly Node[],
  device: DeviceName,
  outputNames: readonly string[],
  resultKind: Trace["resultKind"],
  holdersByNode: ReadonlyMap<Node, readonly Tensor[]>,
  differentiated: Trace["differentiated"],
  requiresGrad: Trace["requiresGrad"],
): Trace {
  const argumentOf = new Map(argumentNodes.map((n, i) => [n, i]));
  const buffers: PlanBuffer[] = [];
  const bufferOf = new Map<Node, number>();
  const constants = new Map<number, Node>();
  const add = (node: Node, buffer: PlanBuffer) => {
    const index = buffers.length;
    buffers.push(buffer);
    bufferOf.set(node, index);
    if (buffer.role === "constant") constants.set(index, node);
    return index;
  };
  for (const pb of planned.buffers) {
    const node = order[pb.node];
    const captured = pb.role === "input" && !argumentOf.has(node);
    add(node, captured ? { ...pb, role: "constant" } : pb);
  }
  const sourceBuffer = (node: Node, role: "input" | "constant") =>
    bufferOf.get(node) ?? add(node, { dtype: node.dtype, shape: node.shape, role, node: -1 });
  const inputs = argumentNodes.map((n) => sourceBuffer(n, "input"));
  const outputs = resultNodes.map((n) => sourceBuffer(n, "constant"));
  const holders = new Map<number, WeakRef<Tensor>[]>();
  for (const [index, node] of constants) {
    const held = holdersByNode.get(node);
    if (held !== undefined) holders.set(index, held.map((t) => new WeakRef(t)));
  }
  return {
    device,
    plan: { buffers, steps: planned.steps },
    inputs,
    outputs,
    outputNames,
    resultKind,
    constants,
    holders,
    shadows: shadowsOf(holdersByNode),
    differentiated,
    requiresGrad,
  };
}

// A result whose storage the library allocated goes back to its device when its node is
// collected, as realized values do (dispose() releases it earlier).
const resultFinalizer = new FinalizationRegistry<{ buffer: DeviceBuffer; backend: Backend; }>(
  ({ buffer, backend }) => releaseBuffer(buffer, backend),
);

/** Runs `trace` on `args` and resolves to its results, shaped as `fn` returned them. */
async function runTrace(
  trace: Trace,
  args: readonly Tensor[],
  names: readonly string[],
): Promise<JitResult> {
  const backend = backendFor(trace.device);
  // the call holds its arguments, as a pending data() holds its tensor: disposing one after the
  // call and before it settles frees it only then (this part runs before the caller goes on)
  const argNodes = args.map(nodeOf);
  checkCapturesAlive(trace, "jit");
  // and the captured values as they are now: a captured tensor assigned while the call was in
  // flight freed the value the call was to read ("must stay alive", though nothing was disposed)
  const captured = currentConstants(trace);
  if (trace.differentiated.captured.length > 0) {
    checkNotDifferentiated(trace, args, argNodes, names);
  }
  const held = [...argNodes, ...captured.values()];
  for (const node of held) acquireHold(node, trace.device);
  let results: JitResult;
  try {
    results = await runHeld(trace, argNodes, captured, names, backend);
  } finally {
    for (const node of held) {
      endHold(node, trace.device);
      releaseValue(node, trace.device);
    }
  }
  // as every asynchronous read does: a loop of calls that drops its results must let the
  // garbage collector in (1,023 dropped 4 MB results ran the cpu out of memory)
  await backstop();
  return results;
}

/**
 * Throws if a captured tensor of `trace` is gone: all its holders disposed, even where its
 * value could be computed again (a lazy capture, a computed one): dispose() is final. `fn` is
 * the function called (an export read the freed storage: "read of a buffer that was released").
 */
export function checkCapturesAlive(trace: Trace, fn: string): void {
  for (const [index, refs] of trace.holders) {
    const holders = refs.map((ref) => ref.deref()).filter((t) => t !== undefined);
    if (holders.length > 0 && holders.every((t) => t.isDisposed)) {
      failCapturedDisposed(trace, index, fn);
    }
  }
}

/** The Error for a call of `trace` whose captured value `index` was disposed. */
function failCapturedDisposed(trace: Trace, index: number, fn: string): never {
  const { dtype, shape } = trace.plan.buffers[index];
  fail(
    fn,
    "the tensors fn captured must stay alive while the compiled function is used (or be " +
      "passed as arguments)",
    described(`a ${dtype}[${shape.join(", ")}] tensor captured by fn, disposed`),
  );
}

/** runTrace with the arguments' and captured values' nodes (taken at the call) held. */
async function runHeld(
  trace: Trace,
  argNodes: readonly Node[],
  captured: ReadonlyMap<number, Node>,
  names: readonly string[],
  backend: Backend,
): Promise<JitResult> {
  // lazy arguments (and captured values assigned since) are computed first
  // (through realizeOn: an argument assigned since is stored with its bookkeeping, so the value
  // it replaces is freed; realizing it directly leaked the old value of every step)
  await realizeOn(trace.device, [...argNodes, ...captured.values()], "jit");
  const bound: DeviceBuffer[] = [];
  const bind = () => {
    trace.inputs.forEach((index, i) => {
      bound[index] = realizedBuffer(argNodes[i], trace.device)!;
      if (wasReleased(bound[index])) {
        fail("jit", `argument ${names[i]} must not be disposed`, described("a disposed tensor"));
      }
    });
    for (const [index, node] of captured) {
      bound[index] = realizedBuffer(node, trace.device)!;
      if (wasReleased(bound[index])) failCapturedDisposed(trace, index, "jit");
    }
  };
  bind();
  const waits = bound.flatMap((b) => backend.pending(b) ?? []);
  if (waits.length > 0) {
    await Promise.all(waits); // copies from another device still arriving
    bind(); // something may have been disposed meanwhile
  }
  const { buffers, ran } = runPlan(trace.plan, bound, backend);
  await ran;
  // every result is a handle of its own, as in eager code: disposing one (or the argument it
  // equals) leaves the others readable
  const owned = new Map<number, Node>();
  // a result equal to an argument or a captured tensor that requires grad is a copy, computed
  // now: on the tensor's own node it was that autodiff variable, and a gradient flowed
  // through a result that said requiresGrad false
  const copies = new Map<Node, Node>();
  for (const index of trace.outputs) {
    const argument = trace.inputs.indexOf(index);
    const node = argument >= 0 ? argNodes[argument] : captured.get(index);
    // (a node with a history may lead to one too: x = p.mul(2), returned as it was passed)
    if (node !== undefined && (node.srcs.length > 0 || leafRequiringGrad(node) !== undefined)) {
      copies.set(node, ir.detach(node, true));
    }
  }
  if (copies.size > 0) await realizeOn(trace.device, [...copies.values()], "jit");
  const constant = (node: Node) =>
    createTensor(copies.get(node) ?? node, trace.device, false, true);
  const results = trace.outputs.map((index) => {
    const argument = trace.inputs.indexOf(index);
    // the node taken at the call: the tensor may have been disposed or assigned since
    if (argument >= 0) return constant(argNodes[argument]);
    const node = captured.get(index);
    if (node !== undefined) return constant(node);
    const stored = owned.get(index);
    if (stored !== undefined) return createTensor(stored, trace.device, false, true);
    const pb = trace.plan.buffers[index];
    const t = tensorFromBuffer(buffers[index], pb.shape);
    resultFinalizer.register(nodeOf(t), { buffer: buffers[index], backend });
    owned.set(index, nodeOf(t));
    return t;
  });
  if (trace.resultKind === "tensor") return results[0];
  if (trace.resultKind === "array") return results;
  return Object.fromEntries(trace.outputNames.map((name, i) => [name, results[i]]));
}

/** The specs of `args`, validated (errors name the argument). */
function specsOf(fn: string, args: readonly unknown[]): InputSpec[] {
  const variables = new Map<Node, number>();
  return args.map((t, i) => {
    if (!isTensor(t)) fail(fn, `argument ${i} must be a Tensor`, t);
    return tensorSpec(t, i, variables);
  });
}

/**
 * The spec of tensor argument `i` (on `device`). One variable passed twice is one stand-in
 * (`sameAs` the first): eager code sums the gradients of its uses. `variables` holds the
 * earlier arguments' variables; exports build their specs here too (they traced a signature
 * of their own, with a stand-in per use, and the gradient split between them).
 */
export function tensorSpec(
  t: Tensor,
  i: number,
  variables: Map<Node, number>,
  device: DeviceName = t.device,
): InputSpec {
  const spec = { shape: t.shape, dtype: t.dtype, device, requiresGrad: t.requiresGrad };
  if (!t.requiresGrad) return spec;
  const node = nodeOf(t);
  const sameAs = variables.get(node);
  if (sameAs !== undefined) return { ...spec, sameAs };
  variables.set(node, i);
  return spec;
}

/**
 * Throws if an argument requiring grad is also a captured tensor, and backward() inside `fn`
 * reached both: the trace has a stand-in for the argument and the captured tensor apart, so
 * each would get only its own share of the gradient that eager code gives them whole.
 */
function checkNotDifferentiated(
  trace: Trace,
  args: readonly Tensor[],
  argNodes: readonly Node[],
  names: readonly string[],
): void {
  const { arguments: reached, captured } = trace.differentiated;
  // (a disposed one is no argument: arguments are live)
  const leaves = captured.map((ref) => ref.deref()).filter((t): t is Tensor =>
    t !== undefined && !t.isDisposed
  );
  const nodes = new Set(leaves.map(nodeOf));
  args.forEach((t, i) => {
    if (reached.has(i) && t.requiresGrad && (leaves.includes(t) || nodes.has(argNodes[i]))) {
      fail(
        "jit",
        `argument ${names[i]} must not also be a tensor fn uses without receiving it, when ` +
          "backward() inside fn reaches both (each would get only its share of the gradient): " +
          "pass it only as an argument, or only capture it",
        described("a tensor fn captures"),
      );
    }
  });
}

/** The tracing entry of a compiled function: its trace for `specs`, made once. */
export type TraceEntry = (specs: readonly InputSpec[], targets?: TraceTargets) => Trace;

/** How exports reach the traces of the functions {@link jit} made. */
const traceEntries = new WeakMap<object, TraceEntry>();

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Throws unless `names` are distinct JavaScript identifiers (`what` says whose, for errors). */
export function checkIdentifiers(fn: string, what: string, names: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (typeof name !== "string" || !IDENTIFIER.test(name) || RESERVED_WORDS.has(name)) {
      fail(fn, `${what} must be JavaScript identifiers (they name variables of exports)`, name);
    }
    if (seen.has(name)) fail(fn, `${what} must be distinct`, name);
    seen.add(name);
  }
}

/** Words a JavaScript module cannot use as variable names. */
export const RESERVED_WORDS: ReadonlySet<string> = new Set(
  ("arguments await break case catch class const continue debugger default delete do else " +
    "enum eval export extends false finally for function if implements import in instanceof " +
    "interface let new null package private protected public return static super switch this " +
    "throw true try typeof undefined var void while with yield NaN Infinity").split(" "),
);

/**
 * Compiles `fn`, a function of tensors returning a tensor, an array or a record of tensors.
 * The first call with each input signature (shapes, dtypes, devices, requiresGrad) traces `fn`
 * and plans its kernels; later calls run the plan directly. `fn` may call `backward()` or
 * `grad()`, so a training step compiles too. Tensors `fn` uses without receiving them are
 * captured as constants, read as they are at each call (a weight `assign`ed a new value, as
 * optimizers do, is seen by the next call); random data `fn` draws is drawn once per input
 * signature, at its first trace. `fn` must not read values (data(), item(), ...): it runs on
 * stand-ins that have none. `backward()` inside `fn` accumulates into the `grad` of every leaf
 * requiring grad it reaches, captured ones too, during tracing only: return the gradients.
 *
 * @example
 * ```ts
 * import { jit, nn, randn } from "@lucid/nn";
 * const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
 * const step = jit((x, dy) => {
 *   const y = lrn.forward(x);
 *   y.backward(dy);
 *   return { y, dx: x.grad! };
 * }, { inputNames: ["x", "dy"] });
 * const x = randn([2, 96, 27, 27], { requiresGrad: true });
 * const { y, dx } = await step(x, randn(2, 96, 27, 27)); // traced once, then replayed
 * ```
 */
export function jit<R extends JitResult>(
  fn: (...args: Tensor[]) => R,
  options: JitOptions = {},
): CompiledFunction<R> {
  if (typeof fn !== "function") fail("jit", "fn must be a function", fn);
  checkOptionsObject("jit", options);
  checkKnownKeys("jit", "options", options, ["inputNames"]);
  // read once, then checked and copied (a getter read again after its check gave a number)
  const givenNames: unknown = options.inputNames;
  if (givenNames !== undefined && !isArray(givenNames)) {
    fail("jit", "options.inputNames must be an array of strings", givenNames);
  }
  const inputNames = givenNames === undefined ? undefined : dense(givenNames) as string[];
  if (inputNames !== undefined) {
    checkIdentifiers("jit", "options.inputNames", inputNames);
    // frozen: `compiled.inputNames` is this copy, and a name written there after the check
    // went into an export's code as it was (helper-161)
    Object.freeze(inputNames);
  }
  // several traces per key, each kept while it may serve again: one made for other
  // requiresGrad settings of captured leaves (a GAN's step freezing either network in turn
  // traced at every call with one)
  const traces = new BoundedCache<string, Trace[]>(TRACE_LIMIT);
  /** Where the generator stood at each signature's first trace. */
  const draws = new BoundedCache<string, GeneratorPosition>(DRAWS_LIMIT);
  let traceCount = 0;
  const namesFor = (count: number) => {
    if (inputNames !== undefined && inputNames.length !== count) {
      fail(
        "jit",
        `the function takes ${inputNames.length} arguments (${inputNames.join(", ")})`,
        described(`${count}`),
      );
    }
    return inputNames ?? Array.from({ length: count }, (_, i) => defaultInputName(i, count));
  };
  const traceFor: TraceEntry = (specs, targets) => {
    // what a plan depends on besides the graph: the fusion setting, and the kernels the cpu
    // runs (`cpu.kernels`); a trace made under other settings kept them (fusion switched back
    // on still ran one kernel per op, "js" asked for still ran Wasm)
    // (a function of webgpu arguments keeps its traces when the cpu's kernels change)
    const onCpu = targets === undefined && specs[0]?.device !== "webgpu";
    const settings = `fusion=${fusionIsEnabled()}` +
      (onCpu ? ` cpu=${backendFor("cpu").planKey ?? ""}` : "");
    const signature = signatureOf(specs);
    const key = `${targets?.key ?? "device"} ${settings} | ${signature}`;
    // looked up at every call, so the draws of a signature in use stay the most recently used
    const drawnFrom = draws.get(signature);
    const kept = traces.get(key) ?? [];
    let trace = kept.find((t) => !mustRetrace(t));
    if (trace === undefined) {
      // random data fn makes is drawn at the first trace of a signature; a trace made again
      // (other settings, an export's targets, a captured value moved) draws the same numbers
      // and leaves the generator where it was, so every plan of one signature computes alike
      const now = generatorPosition();
      if (drawnFrom !== undefined) moveGenerator(drawnFrom);
      try {
        trace = traceFunction(fn, specs, namesFor(specs.length), targets);
      } finally {
        if (drawnFrom !== undefined) moveGenerator(now);
      }
      // remembered only where fn drew: a signature drawing nothing takes no place from one
      // that did
      if (drawnFrom === undefined && !samePosition(now, generatorPosition())) {
        draws.set(signature, now);
      }
      traceCount++;
      traces.set(key, [trace, ...kept].slice(0, TRACE_VARIANTS));
    }
    return trace;
  };
  const compiled = async (...args: Tensor[]): Promise<R> => {
    const specs = specsOf("jit", args);
    const names = namesFor(args.length);
    args.forEach((t, i) => {
      if (t.isDisposed) {
        fail("jit", `argument ${names[i]} must not be disposed`, described("a disposed tensor"));
      }
    });
    const devices = new Set(specs.map((s) => s.device));
    if (devices.size > 1) {
      fail("jit", "every argument must be on one device", described([...devices].join(", ")));
    }
    return await runTrace(traceFor(specs), args, names) as R;
  };
  Object.defineProperties(compiled, {
    fn: { value: fn },
    inputNames: { value: inputNames },
    traceCount: { get: () => traceCount },
  });
  traceEntries.set(compiled, traceFor);
  return compiled as unknown as CompiledFunction<R>;
}

/** The tracing entry of `compiled`, or undefined if {@link jit} did not make it. */
export function traceEntryOf(compiled: unknown): TraceEntry | undefined {
  return typeof compiled === "function" ? traceEntries.get(compiled) : undefined;
}
