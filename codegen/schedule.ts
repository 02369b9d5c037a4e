// Fusion: the graph below the requested outputs is cut into kernels. A node is either computed
// inline by the kernels that read it, or materialized: computed by a kernel into a buffer that
// later kernels load. Each rule is a named constant or function below, in the order they apply:
// - what is stored: the requested values, RECOMPUTE_BUDGET, MAX_INPUT_STORED, and the target's
//   limits (MAX_KERNEL_BUFFERS, LONG_REDUCTION, MAX_LOOP_WORK, MAX_KERNEL_OPS);
// - how kernels combine: MULTI_OUTPUT (kernels of one shape sharing a buffer write their values
//   in one pass), then SHARED_VALUE (a dear value two kernels compute is stored by the first).
// All other nodes fuse. Kernels come out in an order where every buffer is written before it
// is read. After tinygrad's scheduler (its multi-output kernels included).

import * as ir from "../src/ir/node.ts";
import { type Node, numelOf } from "../src/ir/node.ts";
import { isMovement, isReduce, type Op, type ReduceOp } from "../src/ir/ops.ts";
import { INT32_MIN } from "../src/ir/dtype.ts";
import { sameShape } from "../src/ir/hash.ts";
import type { Target } from "./targets.ts";
import { fitsLoopWork } from "./compile.ts";
import { topoSort } from "../src/ir/graph.ts";
import { spellArg } from "../src/ir/print.ts";
import {
  type Expr,
  ExprBuilder,
  exprsInOrder,
  type Kernel,
  kernelRoots,
  mentions,
  outputName,
  scalarTypeOf,
} from "./kernel.ts";
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

/** Op-units of one evaluation of a node's own op (loads and cheap ALU ops are 1). */
const OP_COST: Partial<Record<Op, number>> = {
  exp: 4,
  log: 4,
  pow: 8,
  sigmoid: 5,
  tanh: 5,
  sqrt: 2,
  rsqrt: 2,
  div: 2,
};

/**
 * Rule SHARED_VALUE: a value two kernels of one output shape both compute at their own output
 * index (elementwise from their outputs, not through a view or inside a reduction), costing at
 * least this many op-units per element inlined, is materialized: the first kernel computes it
 * once more as an output of its own (MULTI_OUTPUT merges it in) and the second loads it. Of
 * such values the dearest is taken, one at a time, and kept only if the schedule needs no more
 * kernels with it, and at most MAX_SHARED_VALUES of them per schedule (each try schedules the
 * graph again). LocalResponseNorm's `g / d ** 0.75`, which the y kernel and the dx kernel both
 * computed (a window sum of x, two square roots, a division), is stored by the first.
 */
export const SHARED_VALUE_COST = 16;
/** How many values SHARED_VALUE tries per schedule. */
const MAX_SHARED_VALUES = 4;

/**
 * Rule MAX_INPUT_STORED: the gradient of max compares the max's input with the max for
 * equality (`x == max(x)`, src/autodiff.ts). Where the max is stored, its input is stored too,
 * so the comparison reads the very bits the max was taken of: a kernel recomputing the input
 * may run on another target (JavaScript and Wasm differ in exp, log or a short sum's last
 * bit), and then no element matched and the gradient was 0 / 0.
 */
function storeComparedMaxInputs(
  order: readonly Node[],
  materialized: Set<Node>,
  isSource: (n: Node) => boolean,
): void {
  const stored = (n: Node) => isSource(n) || materialized.has(n);
  // whether reading `n` reads stored bits only: a stored node, or views of stored nodes
  // (a transposed input, or the max of a max, needs no copy)
  const readsStored = (n: Node): boolean =>
    stored(n) || (isMovement(n.op) && n.srcs.every((s) => s.op === "const" || readsStored(s)));
  for (const n of order) {
    if (n.op !== "cmpeq") continue;
    for (const [maybeMax, x] of [n.srcs, [...n.srcs].reverse()]) {
      let max = maybeMax;
      while (max.op === "expand" || max.op === "reshape") max = max.srcs[0];
      if (max.op === "max" && max.srcs[0] === x && stored(max) && x.numel > 0 && !readsStored(x)) {
        materialized.add(x);
      }
    }
  }
}

/** One kernel of a schedule: what it computes and which nodes its buffers hold. */
export interface ScheduledKernel {
  readonly kernel: Kernel;
  /** The nodes whose values the kernel writes, in output order (most kernels write one). */
  readonly outputs: readonly Node[];
  /** The nodes whose buffers the kernel reads, in input-slot order. */
  readonly inputs: readonly Node[];
}

/** Options of {@link scheduleKernels}. */
export interface ScheduleOptions {
  /** False: every op is its own kernel (for comparisons and fused == unfused tests). */
  readonly fusion: boolean;
  /** Whether a node already has a buffer (it is loaded, never recomputed). */
  readonly isRealized: (node: Node) => boolean;
  /**
   * The target the kernels compile for; its limits are rules of the schedule:
   * - MAX_KERNEL_BUFFERS (`maxBuffers`): a kernel binds at most this many buffers, output
   *   included (WebGPU's default maxStorageBuffersPerShaderStage is 8). A kernel that would
   *   read more is split by materializing the fused subexpression that reads the most of them;
   * - LONG_REDUCTION (`maxReduceExtent`): a reduction over more elements per output than this
   *   runs in two kernels (or more), each reducing about the square root of them: one thread
   *   looping a million times is the slow way to reduce on any GPU, and llvmpipe stops it.
   *   Axes the value is broadcast along do not count: they are not looped at all;
   * - MAX_LOOP_WORK (`maxLoopWork`): a kernel whose invocations would loop more often than
   *   this (nested reductions multiply) materializes its largest inner reduction;
   * - MAX_KERNEL_OPS (`maxKernelOps`): a kernel computing more ops than this materializes the
   *   largest fused part that fits (a shader compiler's time grows faster than its input);
   * - MAX_KERNEL_VALUES (`maxKernelValues`): a kernel computing more values (expressions) than
   *   this materializes a fused part of at most half as many ops (a JavaScript function's
   *   frame holds one per value).
   */
  readonly target: Target;
  /**
   * The target each kernel will compile for, where it depends on the kernel (the cpu device
   * runs Wasm kernels and, for what Wasm lacks, JavaScript ones): kernels merge by
   * MULTI_OUTPUT only where the merged kernel compiles for the target each part did.
   */
  readonly targetFor?: (kernel: Kernel) => Target;
}

/** Cuts the graph below `outputs` into kernels. */
export function scheduleKernels(
  outputs: readonly Node[],
  options: ScheduleOptions,
): ScheduledKernel[] {
  const { target } = options;
  const isSource = (n: Node) => n.op === "buffer" || n.op === "const" || options.isRealized(n);
  // never walks behind a source: a realized node's history is not this realization's work
  const order = topoSort(outputs, isSource);
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
    storeComparedMaxInputs(order, materialized, isSource);
  }
  // LONG_REDUCTION: each long reduction is lowered as an equal graph of shorter ones, whose
  // intermediate stages are stored by kernels of their own
  const splits = new Map<Node, { stages: Node[]; value: Node; }>();
  for (const n of order) {
    const split = isSource(n) ? null : splitLongReduction(n, target.maxReduceExtent);
    if (split !== null) splits.set(n, split);
  }
  const stageNodes = new Set([...splits.values()].flatMap((s) => s.stages));
  const substitute = (n: Node) => splits.get(n)?.value;
  // a node the splits made (a stage, or one rebuilt above a split) is computed here even where
  // an equal node was realized before (hash-consing finds it): a plan loads only what the
  // graph's own structure holds, so that it can run again on other data
  const inGraph = new Set(order);
  const isStored = (n: Node) => isSource(n) && inGraph.has(n);
  const loadedHere = (n: Node) =>
    n.op !== "const" && (isStored(n) || materialized.has(n) || stageNodes.has(n));
  // MAX_KERNEL_OPS, before any kernel is built: each split found while building restarted the
  // schedule (a chain of 80,000 additions on webgpu took 12 s, quadratic). Before the buffer
  // cuts, as its cuts add buffers to the kernels above them, and buffer cuts add no ops: a
  // chain reading 7 buffers over and over, cut for its ops, read 8 and was split kernel by
  // kernel while building (4,000 additions on webgpu took 14 s, quadratic)
  if (Number.isFinite(target.maxKernelOps)) {
    for (const node of order) {
      if (!materialized.has(node) || node.numel === 0 || splits.has(node)) continue;
      const weights = opWeights(target.maxKernelOps);
      for (const cut of cutsUnder(node, loadedHere, weights)) materialized.add(cut);
    }
  }
  // MAX_KERNEL_VALUES and MAX_KERNEL_BUFFERS likewise, from one walk of each root's fused nodes
  // (a kernel found too large only while building restarted the schedule, which built every
  // kernel before it again: a chain of 56,000 additions took 40 s on the cpu, quadratic):
  // - where the nodes it computes, each counted once, pass half the values, the root is cut
  //   into parts of at most half, weighed as a tree (a value read through many views counts
  //   once per view, so only kernels already that large are cut this way);
  // - where it reads too many buffers, it is split until it fits.
  for (const node of order) {
    if (!materialized.has(node) || node.numel === 0 || splits.has(node)) continue;
    let size = regionSize(node, loadedHere);
    if (size.computed > target.maxKernelValues / 2) {
      const cuts = cutsUnder(node, loadedHere, opWeights(target.maxKernelValues / 2));
      for (const cut of cuts) materialized.add(cut);
      if (cuts.length > 0) size = regionSize(node, loadedHere);
    }
    if (size.buffers + 1 <= target.maxBuffers) continue;
    const weights = bufferWeights(target.maxBuffers);
    // where leaves weigh once, each policy wins on some graphs: the one that cuts less is kept
    // (fewer kernels than either alone on 1,050 random webgpu graphs)
    let cuts = cutsUnder(node, loadedHere, weights, "deepest");
    if (weights.distinct) {
      const other = cutsUnder(node, loadedHere, weights, "first");
      if (other.length < cuts.length) cuts = other;
    }
    for (const cut of cuts) materialized.add(cut);
  }
  // SHARED_VALUE: the schedule before the last shared value was stored, and the values tried
  let before: { kernels: ScheduledKernel[]; shared: Node; } | null = null;
  const tried = new Set<Node>();
  for (;;) {
    const kernels: ScheduledKernel[] = [];
    let split: Node | null = null;
    const loaded = (n: Node) =>
      n.op !== "const" && (isStored(n) || materialized.has(n) || stageNodes.has(n));
    // (a requested value may also be a LONG_REDUCTION stage: one kernel writes it, once)
    const written = new Set<Node>();
    const add = (node: Node): boolean => {
      if (written.has(node)) return true;
      if (Number.isFinite(target.maxKernelOps)) {
        split = splitBySize(node, (n) => n !== node && loaded(n), target.maxKernelOps);
        if (split !== null) return false;
      }
      const built = buildKernel([node], (n) => n !== node && loaded(n), substitute);
      if (built.inputs.length + 1 > target.maxBuffers) {
        split = pickSplit(node, loaded, target.maxBuffers);
        if (split === null) {
          throw new Error(
            `scheduleKernels: a kernel needs ${
              built.inputs.length + 1
            } buffers, more than the limit of ${target.maxBuffers}, and cannot be split`,
          );
        }
        return false;
      }
      if (
        built.kernel.builder.size > target.maxKernelValues &&
        exprsInOrder(kernelRoots(built.kernel)).length > target.maxKernelValues
      ) {
        // MAX_KERNEL_VALUES: rare (ops and views of a few loads make a value or two each), so
        // it is found here rather than counted before (counted as a tree, as the op limit is, a
        // value read through many views counted once per view and was cut for nothing). The
        // kernel is cut into parts of at most half as many ops, all at once (one at a time,
        // a 50,000-op chain restarted the schedule 12 times: 8 s)
        const weights = opWeights(target.maxKernelValues / 2);
        const cuts = cutsUnder(node, (n) => n !== node && loaded(n), weights);
        if (cuts.length > 0) {
          for (const cut of cuts) materialized.add(cut);
          split = cuts[0];
          return false;
        } // else it stays: compiling it may say why
      }
      if (Number.isFinite(target.maxLoopWork) && !fitsLoopWork(built.kernel, target)) {
        split = largestInnerReduction(node, (n) => n !== node && loaded(n));
        if (split !== null) return false; // else it stays: compiling it says why it cannot run
      }
      // a stage this kernel loads is written first (a graph node equal to a stage, as the
      // user's own sum of a reshape can be, may come before the split that makes it)
      for (const input of built.inputs) {
        if (stageNodes.has(input) && !written.has(input) && !add(input)) return false;
      }
      kernels.push(built);
      written.add(node);
      return true;
    };
    for (const node of order) {
      const stages = splits.get(node)?.stages ?? [];
      if (!stages.every(add)) break;
      if (materialized.has(node) && node.numel > 0 && !add(node)) break;
    }
    if (split === null) {
      if (!options.fusion || kernels.length < 2) return kernels;
      const merged = mergeSiblings(kernels, loaded, target.maxBuffers, (parts) => {
        // (parts cut for MAX_KERNEL_VALUES stay apart, and are not lowered together to see)
        const values = parts.reduce((sum, k) => sum + k.kernel.builder.size, 0);
        if (values > target.maxKernelValues) return null;
        const outputs = parts.flatMap((k) => k.outputs);
        const merged = buildKernel(outputs, (n) => !outputs.includes(n) && loaded(n), substitute);
        const fits = merged.inputs.length + outputs.length <= target.maxBuffers &&
          outputs.reduce((sum, n) => sum + treeOps(n, loaded).get(n)!, 0) <= target.maxKernelOps &&
          (!Number.isFinite(target.maxLoopWork) || fitsLoopWork(merged.kernel, target)) &&
          (options.targetFor === undefined ||
            mayJoin(
              parts.map((k) => options.targetFor!(k.kernel)),
              parts.map((k) => computedBy(k.outputs, loaded)),
              options.targetFor(merged.kernel),
            ));
        return fits ? merged : null;
      });
      if (before !== null && merged.length > before.kernels.length) {
        // the shared value cost a kernel: the schedule without it
        materialized.delete(before.shared);
        return before.kernels;
      }
      const costs = merged.length > 1 && tried.size < MAX_SHARED_VALUES
        ? inlineCosts(order, isSource, loaded)
        : null;
      const shared = costs === null
        ? null
        : sharedValue(merged, loaded, (n) => costs.get(n) ?? 0, tried);
      if (shared === null) return merged;
      tried.add(shared);
      materialized.add(shared);
      before = { kernels: merged, shared };
      continue;
    }
    materialized.add(split);
    scheduleStats.splitsWhileBuilding++;
  }
}

/**
 * For tests: how often a schedule found a split only while building its kernels, which
 * rebuilds every kernel before it (the limits' passes before building should leave none), and
 * how many kernels MULTI_OUTPUT considered merging (those of another shape are not).
 */
export const scheduleStats: { splitsWhileBuilding: number; mergeCandidates: number; } = {
  splitsWhileBuilding: 0,
  mergeCandidates: 0,
};

/**
 * Whether parts compiling for `targets` may merge into one kernel that compiles for `merged`:
 * where each part compiled for that target, or where the merged kernel is a JavaScript one
 * beside Wasm, every part that would have run as Wasm is a trifle (at most JOIN_MAX_OPS
 * elementwise ops, none of them exp, log, tanh, sigmoid, a square root or pow, no reduction),
 * and the parts that are JavaScript anyway hold a reduction (work the trifle is noise beside).
 * LocalResponseNorm forward + backward with a window of 8 or more and a general beta planned 4
 * kernels on the default cpu setting (2 with `cpu.kernels = "js"`): its division after the
 * stored pow compiled for Wasm and never joined it. A wider rule (half the ops) ran Wasm
 * reductions and long float32 chains as one-lane JavaScript, 2-14x slower. The two cpu targets
 * compute the same values, so only speed is at stake.
 */
function mayJoin(
  targets: readonly Target[],
  parts: readonly Computed[],
  merged: Target,
): boolean {
  if (targets.every((t) => t === merged)) return true;
  if (merged.name !== "js" || targets.some((t) => t.name === "wgsl")) return false;
  const joining = parts.filter((_, i) => targets[i] !== merged);
  const native = parts.filter((_, i) => targets[i] === merged);
  const joiningOps = joining.reduce((sum, p) => sum + p.ops, 0);
  // (a reduction of a few terms is no work to hide a trifle behind: beside a sum over an axis
  // of 1 the joined kernel was 1.3-1.45x slower than the two)
  return native.some((p) => p.widestReduction >= 4 * Math.max(1, joiningOps)) &&
    joining.every((p) => p.reductions === 0 && !p.slow && p.ops <= JOIN_MAX_OPS);
}

/** The most elementwise ops a part that would run as Wasm brings into a JavaScript kernel. */
const JOIN_MAX_OPS = 2;

/**
 * What a part computes (each node once): elementwise ops, reductions, the terms of its widest
 * reduction, and whether any op is slow in JavaScript.
 */
interface Computed {
  readonly ops: number;
  readonly reductions: number;
  readonly widestReduction: number;
  readonly slow: boolean;
}

/** Ops a JavaScript kernel computes many times slower than Wasm's lanes (see `mayJoin`). */
const SLOW_IN_JS: ReadonlySet<string> = new Set([
  "exp",
  "log",
  "tanh",
  "sigmoid",
  "sqrt",
  "rsqrt",
  "pow",
]);

/** `Computed` of the fused trees below `outputs` (down to loaded values), each node once. */
function computedBy(outputs: readonly Node[], isLoaded: (n: Node) => boolean): Computed {
  let ops = 0;
  let reductions = 0;
  let widestReduction = 0;
  let slow = false;
  for (const n of topoSort(outputs, (m) => !outputs.includes(m) && isLoaded(m))) {
    if (!outputs.includes(n) && isLoaded(n)) continue;
    if (isReduce(n.op)) {
      reductions++;
      widestReduction = Math.max(widestReduction, n.srcs[0].numel / Math.max(1, n.numel));
    } else if (!isMovement(n.op) && n.op !== "const" && n.op !== "buffer" && n.op !== "detach") {
      ops++;
    }
    slow ||= SLOW_IN_JS.has(n.op);
  }
  return { ops, reductions, widestReduction, slow };
}

/**
 * Rule MULTI_OUTPUT: two kernels that write values of one shape and load a buffer in common
 * (or the later loads what the earlier writes) become one kernel writing both values: one
 * loop nest, each shared load and each subexpression both compute (a window sum) done once.
 * The later may read what the earlier
 * writes only elementwise (at its own index: the merged kernel then uses the value it has just
 * computed instead of loading it) and not through any other kernel. LocalResponseNorm's
 * forward y and the backward's middle term g * y / D (which reads y) share x's window sum this
 * way. `merge` builds the kernel of several parts, or says null where it would pass a target
 * limit (or compile for another target than its parts). Each kernel, in order, merges into the
 * first later one it may; the merged kernel runs where the later part did, which is sound
 * because no kernel between the two reads the earlier one. A kernel writes at most
 * MAX_KERNEL_OUTPUTS values (the merged kernel's size, and the scheduling work, stay bounded).
 */
export const MAX_KERNEL_OUTPUTS = 4;

function mergeSiblings(
  kernels: readonly ScheduledKernel[],
  isLoaded: (n: Node) => boolean,
  maxBuffers: number,
  merge: (parts: readonly ScheduledKernel[]) => ScheduledKernel | null,
): ScheduledKernel[] {
  // merged-away kernels leave a hole (null), so every live kernel keeps its position: each
  // merge renumbering the list made 8,000 outputs of one shared input take 10-19 s to plan
  const list: (ScheduledKernel | null)[] = [...kernels];
  // the kernels reading each buffer (merged-away and earlier ones are dropped as met), and
  // each live kernel's position in the list
  const readers = new Map<Node, ScheduledKernel[]>();
  const noteReads = (k: ScheduledKernel) => {
    for (const n of k.inputs) {
      const list = readers.get(n);
      if (list === undefined) readers.set(n, [k]);
      else list.push(k);
    }
  };
  const position = new Map<ScheduledKernel, number>();
  list.forEach((k, i) => {
    noteReads(k!);
    position.set(k!, i);
  });
  for (let i = 0; i < list.length; i++) {
    if (list[i] === null) continue;
    const merged = mergeIntoLater(list, i, readers, position, isLoaded, maxBuffers, merge);
    if (merged !== null) noteReads(merged);
  }
  return list.filter((k) => k !== null);
}

/**
 * MULTI_OUTPUT for kernel `i` of `list` (`readers`: the kernels reading each buffer;
 * `position`: each live kernel's place in `list`): merges it into the first later kernel it may
 * merge with, which the merged kernel replaces; returns the merged kernel, or null.
 *
 * The merged kernel runs where the later part did, so no kernel between may read `a`: the
 * candidates end at the first kernel that reads what `a` writes (which may still merge, reading
 * it elementwise), and the first kernel to read `a` at all, through others or not, is one that
 * reads it directly. A candidate has a buffer in common with `a` (or reads what `a` writes):
 * only the kernels reading `a`'s buffers are looked at, not every later one (a scan of every
 * later kernel for each made 16,000 unrelated outputs take 14 s to schedule).
 */
function mergeIntoLater(
  list: (ScheduledKernel | null)[],
  i: number,
  readers: ReadonlyMap<Node, ScheduledKernel[]>,
  position: Map<ScheduledKernel, number>,
  isLoaded: (n: Node) => boolean,
  maxBuffers: number,
  merge: (parts: readonly ScheduledKernel[]) => ScheduledKernel | null,
): ScheduledKernel | null {
  const a = list[i]!;
  if (a.outputs.length >= MAX_KERNEL_OUTPUTS) return null;
  const shape = a.outputs[0].shape;
  const written = new Set(a.outputs);
  // the live kernels after `a` reading `nodes`, with their positions (each looked up once); the
  // others are dropped from the lists for good (positions only grow past i, and a merged-away
  // kernel never comes back). Only those that could merge (a's output shape, room for both
  // outputs) are candidates: every reader of a shared input was, and rejected one by one in a
  // scan of them all, planning n outputs of other shapes reading one input took time cubic in
  // n (4,000: 121 s; Adam's first step over 1,600 parameters, which all read the step's scalars:
  // 9 s)
  const found: ScheduledKernel[] = [];
  const at: number[] = [];
  let firstReader = Infinity;
  // and whose buffers together fit, counted before building the merged kernel: it loads what
  // either part loads but the other writes (on webgpu, 8 buffers, Adam's first step over 400
  // parameters built 80,000 merged kernels only to refuse each: 12 of its 14 s)
  const buffersWith = (b: ScheduledKernel) => {
    const most = a.inputs.length + b.inputs.length + a.outputs.length + b.outputs.length;
    if (most <= maxBuffers) return most; // fits without counting what they share
    const loads = new Set([...a.inputs, ...b.inputs]);
    for (const n of [...a.outputs, ...b.outputs]) loads.delete(n);
    return loads.size + a.outputs.length + b.outputs.length;
  };
  const fits = (b: ScheduledKernel) =>
    b.outputs.length + a.outputs.length <= MAX_KERNEL_OUTPUTS &&
    sameShape(b.outputs[0].shape, shape) && buffersWith(b) <= maxBuffers;
  const later = (nodes: readonly Node[], readsOutput: boolean) => {
    for (const n of nodes) {
      const list = readers.get(n);
      if (list === undefined) continue;
      let kept = 0;
      for (const k of list) {
        const p = position.get(k);
        if (p === undefined || p < i) continue;
        list[kept++] = k;
        if (p <= i) continue;
        if (readsOutput) firstReader = Math.min(firstReader, p);
        if (fits(k)) {
          found.push(k);
          at.push(p);
          scheduleStats.mergeCandidates++;
        }
      }
      list.length = kept;
    }
  };
  later(a.outputs, true);
  later(a.inputs, false);
  // tried in list order, the nearest first, picked one at a time (sorting every candidate for
  // each kernel was the other half of the 10-19 s: the first that fits usually merges); a
  // kernel found twice (it reads two of a's buffers) is tried once
  const tried = new Set<number>();
  for (;;) {
    let best = -1;
    for (let j = 0; j < found.length; j++) {
      if (at[j] <= firstReader && !tried.has(at[j]) && (best < 0 || at[j] < at[best])) best = j;
    }
    if (best < 0) return null;
    tried.add(at[best]);
    const b = found[best];
    const elementwise = at[best] < firstReader ||
      b.outputs.every((n) => readsOnlyElementwise(n, written, isLoaded));
    if (!elementwise) continue;
    const merged = merge([a, b]);
    if (merged !== null) {
      const place = at[best];
      list[place] = merged;
      list[i] = null;
      position.delete(a);
      position.delete(b);
      position.set(merged, place);
      return merged;
    }
  }
}

/**
 * SHARED_VALUE: the dearest value (by `cost`, at least SHARED_VALUE_COST) that two kernels of
 * one output shape both compute at their output index, not yet tried; null if there is none.
 */
function sharedValue(
  kernels: readonly ScheduledKernel[],
  isLoaded: (n: Node) => boolean,
  cost: (n: Node) => number,
  tried: ReadonlySet<Node>,
): Node | null {
  // the nodes a kernel computes at its output index: elementwise from an output, down to loads
  const atIndex = (k: ScheduledKernel): Set<Node> => {
    const found = new Set<Node>();
    const stack = [...k.outputs];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (found.has(n)) continue;
      found.add(n);
      if (isMovement(n.op) || isReduce(n.op)) continue;
      for (const s of n.srcs) if (!isLoaded(s) && s.op !== "const") stack.push(s);
    }
    for (const n of k.outputs) found.delete(n);
    return found;
  };
  // (a node computed at a kernel's output index has that kernel's output shape)
  const seen = new Set<Node>();
  let best: Node | null = null;
  for (const k of kernels) {
    for (const n of atIndex(k)) {
      if (!seen.has(n)) {
        seen.add(n);
        continue;
      }
      if (tried.has(n) || cost(n) < SHARED_VALUE_COST) continue;
      if (best === null || cost(n) > cost(best)) best = n;
    }
  }
  return best;
}

/**
 * Whether the fused graph of `root` reaches the nodes of `targets` only through elementwise
 * ops (so it reads them at its own output index), walking no deeper than loaded nodes.
 */
function readsOnlyElementwise(
  root: Node,
  targets: ReadonlySet<Node>,
  isLoaded: (n: Node) => boolean,
): boolean {
  const stop = (n: Node) => n !== root && (targets.has(n) || isLoaded(n));
  for (const n of topoSort([root], stop)) {
    if (stop(n) || !n.srcs.some((s) => targets.has(s))) continue;
    if (isMovement(n.op) || isReduce(n.op)) return false;
  }
  return true;
}

/** The most values a LONG_REDUCTION stage stores where the chunk length allows (16 MiB of float32). */
const MAX_STAGE_ELEMENTS = 2 ** 22;

/**
 * LONG_REDUCTION: `node` as an equal graph whose reductions each cover at most `maxExtent`
 * elements per output, and the intermediate reductions (`stages`, in order) that must be
 * stored for it. The reduced axes are moved last and flattened, padded with the reduction's
 * identity to a multiple of the chunk, and reduced chunk by chunk, then over the chunks.
 */
function splitLongReduction(
  node: Node,
  maxExtent: number,
): { stages: Node[]; value: Node; } | null {
  if (!isReduce(node.op) || node.numel === 0) return null;
  const x = node.srcs[0];
  const axes = node.arg as number[];
  // the axes x is broadcast along loop not at all (a sum is the body times their count,
  // kernel.ts): only the others count. Cut into chunks, a broadcast sum added its chunks in
  // float32 (3 over 16,777,217 elements gave 50334376 on webgpu, not 50331648: helper-165)
  if (numelOf(axes.map((a) => x.shape[a])) <= maxExtent) return null; // (every cpu reduction)
  const along = constantAlong(x);
  const extent = numelOf(axes.filter((a) => !along[a]).map((a) => x.shape[a]));
  if (extent <= maxExtent) return null;
  const op = node.op as ReduceOp;
  const kept = x.shape.flatMap((_, i) => (axes.includes(i) ? [] : [i]));
  const keptShape = kept.map((a) => x.shape[a]);
  // about the square root of the extent, or longer where many values are kept: the stage
  // holds kept * chunks values, and a row sum of 140,000 rows of 65,537 stored 143 MB (past
  // WebGPU's binding limit) for an output of 0.56 MB; many rows are parallel work already
  const keptCount = numelOf(keptShape);
  let chunk = Math.min(maxExtent, Math.ceil(Math.sqrt(extent)));
  let chunks = Math.ceil(extent / chunk);
  if (chunks * keptCount > MAX_STAGE_ELEMENTS) {
    // fewer, longer chunks: as many as the budget holds, none longer than maxExtent
    chunks = Math.max(Math.ceil(extent / maxExtent), Math.floor(MAX_STAGE_ELEMENTS / keptCount));
    chunk = Math.ceil(extent / chunks);
    chunks = Math.ceil(extent / chunk);
  }
  const identity = op === "sum" ? 0 : x.dtype === "int32" ? INT32_MIN : -Infinity;
  const flat = ir.reshape(ir.permute(x, [...kept, ...axes]), [...keptShape, extent]);
  const padded = ir.pad(
    flat,
    [...keptShape.map((): [number, number] => [0, 0]), [0, chunks * chunk - extent]],
    identity,
  );
  const stage = ir.reduce(op, ir.reshape(padded, [...keptShape, chunks, chunk]), [kept.length + 1]);
  const rest = ir.reduce(op, ir.reshape(stage, [...keptShape, chunks]), [kept.length]);
  const inner = splitLongReduction(rest, maxExtent) ?? { stages: [], value: rest };
  return { stages: [stage, ...inner.stages], value: ir.reshape(inner.value, node.shape) };
}

/** How deep `constantAlong` follows a graph before it answers "not known" (false). */
const CONSTANT_ALONG_DEPTH = 64;

/**
 * For each axis of `n`, whether its value is the same all along it: an axis of length 1, an
 * axis expanded from length 1, a constant, and what views that keep the axes apart and
 * elementwise ops make of those. False where not known (a reshape that merges axes, a pad
 * along the axis, a reduction, a stored value whose history is gone).
 */
function constantAlong(n: Node, depth = 0): boolean[] {
  const known = constantAxes.get(n);
  if (known !== undefined) return known;
  const ones = n.shape.map((d) => d === 1);
  let along = ones;
  if (n.op === "const") along = n.shape.map(() => true);
  else if (depth < CONSTANT_ALONG_DEPTH && n.srcs.length > 0) {
    const srcs = n.srcs.map((s) => constantAlong(s, depth + 1));
    const first = srcs[0];
    if (n.op === "expand" || n.op === "shrink") along = first.map((c, i) => c || ones[i]);
    else if (n.op === "permute") along = (n.arg as number[]).map((p) => first[p]);
    else if (n.op === "pad") {
      const { pads } = n.arg as { pads: [number, number][]; };
      along = first.map((c, i) => ones[i] || (c && pads[i][0] === 0 && pads[i][1] === 0));
    } else if (n.op === "reshape") along = reshapedAlong(n.srcs[0].shape, first, n.shape);
    else if (!isReduce(n.op) && !isMovement(n.op)) {
      // elementwise (affine, cast and detach included): operands of the node's shape
      if (n.srcs.every((s) => sameShape(s.shape, n.shape))) {
        along = n.shape.map((_, i) => ones[i] || srcs.every((c) => c[i]));
      }
    }
  }
  constantAxes.set(n, along);
  return along;
}
const constantAxes = new WeakMap<Node, boolean[]>();

/**
 * `constantAlong` through a reshape that only adds or drops axes of length 1 (the others, in
 * order, keep theirs); any other reshape is not followed.
 */
function reshapedAlong(
  from: readonly number[],
  along: boolean[],
  to: readonly number[],
): boolean[] {
  const kept = from.flatMap((d, i) => (d === 1 ? [] : [i]));
  const target = to.flatMap((d, i) => (d === 1 ? [] : [i]));
  const ones = to.map((d) => d === 1);
  if (kept.length !== target.length || kept.some((a, k) => from[a] !== to[target[k]])) return ones;
  const result = [...ones];
  target.forEach((a, k) => result[a] = along[kept[k]]);
  return result;
}

/**
 * MAX_KERNEL_OPS: when the kernel of `root` computes more than `maxOps` ops, the fused node
 * below it with the most ops that still fit (counted as a tree, so shared parts count twice:
 * a cut too early is harmless); else null.
 */
function splitBySize(root: Node, isLoaded: (n: Node) => boolean, maxOps: number): Node | null {
  const ops = treeOps(root, isLoaded);
  if (ops.get(root)! <= maxOps) return null;
  let best: Node | null = null;
  for (const [n, count] of ops) {
    if (n !== root && count <= maxOps && count > (best === null ? 0 : ops.get(best)!)) best = n;
  }
  return best;
}

/**
 * What a node weighs against MAX_KERNEL_OPS: one, and a view as much index arithmetic as it
 * may make (a division and a remainder per axis of a reshape, a test per axis of a pad): 1,500
 * rounds of reshape, permute and reshape, views weighing nothing, fused into a 429 KB shader
 * that llvmpipe took 24 s to compile. Constants and detaches compute nothing.
 */
function opWeight(n: Node): number {
  if (n.op === "detach" || n.op === "const") return 0;
  if (isMovement(n.op) && viewsOfConstant(n)) return 0; // a constant has no index
  if (n.op === "reshape") return n.shape.length + n.srcs[0].shape.length;
  if (n.op === "pad") return n.shape.length;
  return 1;
}

/** viewsOfConstant's answers, by view (a walk to the bottom each time made long chains quadratic). */
const constantViews = new WeakMap<Node, boolean>();

/** Whether `n` is views of a constant (a number broadcast: `x.add(1)`'s 1). */
function viewsOfConstant(n: Node): boolean {
  const chain: Node[] = [];
  let answer: boolean | undefined;
  // down to a known view or the first node that is no view (a realized view has no sources
  // left: its history is dropped)
  for (;;) {
    answer = constantViews.get(n);
    if (answer !== undefined) break;
    if (!isMovement(n.op) || n.srcs.length === 0) {
      answer = n.op === "const";
      break;
    }
    chain.push(n);
    n = n.srcs[0];
  }
  for (const view of chain) constantViews.set(view, answer);
  return answer;
}

/** The ops each fused node below `root` computes, counted as a tree (for MAX_KERNEL_OPS). */
function treeOps(root: Node, isLoaded: (n: Node) => boolean): Map<Node, number> {
  const ops = new Map<Node, number>();
  for (const n of topoSort([root], (m) => m !== root && isLoaded(m))) {
    if (n !== root && isLoaded(n)) continue;
    const own = opWeight(n);
    ops.set(n, own + n.srcs.reduce((sum, s) => sum + (ops.get(s) ?? 0), 0));
  }
  return ops;
}

/** MAX_LOOP_WORK: the fused reduction below `root` with the most elements, if any. */
function largestInnerReduction(root: Node, isLoaded: (n: Node) => boolean): Node | null {
  let best: Node | null = null;
  let bestWork = 0;
  for (const n of topoSort([root], isLoaded)) {
    if (n === root || isLoaded(n) || !isReduce(n.op)) continue;
    const work = n.srcs[0].numel;
    if (work > bestWork) [best, bestWork] = [n, work];
  }
  return best;
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

/** How many elements of its source a node reads per element of its own (1 but for reductions). */
function extentOf(n: Node): number {
  return isReduce(n.op) ? numelOf(n.srcs[0].shape) / Math.max(1, n.numel) : 1;
}

/**
 * Op-units to compute one element of each node of `order` with everything below it inlined:
 * sources cost a load (constants nothing), views nothing, a reduction its extent times its
 * body; a node for which `readAsLoad` holds costs its readers one load.
 */
function inlineCosts(
  order: readonly Node[],
  isSource: (n: Node) => boolean,
  readAsLoad: (n: Node) => boolean,
): Map<Node, number> {
  const cost = new Map<Node, number>();
  const readCost = (n: Node) => (readAsLoad(n) ? 1 : cost.get(n) ?? 1);
  for (const node of order) {
    if (isSource(node)) {
      cost.set(node, node.op === "const" ? 0 : 1);
      continue;
    }
    const own = isMovement(node.op) || node.op === "detach" ? 0 : OP_COST[node.op] ?? 1;
    const below = [...new Set(node.srcs)].reduce((sum, s) => sum + readCost(s), 0);
    cost.set(node, own + extentOf(node) * below);
  }
  return cost;
}

/** One pass of RECOMPUTE_BUDGET, pricing nodes in `pricedAsLoads` as loads. */
function chooseStored(
  order: readonly Node[],
  outputs: ReadonlySet<Node>,
  isSource: (n: Node) => boolean,
  pricedAsLoads: ReadonlySet<Node>,
): Set<Node> {
  const inlineCost = inlineCosts(order, isSource, (n) => pricedAsLoads.has(n));
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
 * The distinct buffers the fused graph of `root` reads (its loaded nodes, constants aside), and
 * the nodes it computes, each once: about the values its kernel names (views are left out: most
 * fold into the indices of their readers; a chain of views that does not is found while
 * building).
 */
function regionSize(
  root: Node,
  isLoaded: (n: Node) => boolean,
): { buffers: number; computed: number; } {
  const below = (n: Node) => n !== root && isLoaded(n);
  let buffers = 0;
  let computed = 0;
  for (const n of topoSort([root], below)) {
    if (below(n)) buffers++;
    else if (!isMovement(n.op) && opWeight(n) > 0) computed++;
  }
  return { buffers, computed };
}

/** Buffer limits up to this are split by exact counts of the buffers each node reads. */
const EXACT_SPLIT_LIMIT = 64;

/** What `cutsUnder` weighs: buffers read (MAX_KERNEL_BUFFERS) or ops computed (MAX_KERNEL_OPS). */
interface CutWeights {
  /** The most a kernel may weigh. */
  readonly limit: number;
  /** What a node loaded from a buffer weighs (`cut`: one materialized here). */
  readonly leaf: (n: Node, cut: boolean) => number;
  /** What a fused node weighs besides its sources. */
  readonly own: (n: Node) => number;
  /**
   * Whether a leaf reached along several paths weighs once (the distinct buffers a kernel
   * binds, counted as sets), not once per path (a bound, never below the truth).
   */
  readonly distinct: boolean;
  /** Whether a view may be cut (stored) where no computing node is left to cut. */
  readonly cutsViews: boolean;
}

/**
 * MAX_KERNEL_BUFFERS's weights: each buffer read counts once per use for large limits (the
 * cpu's: a set per node was quadratic there, a chain of 66,000 additions ran out of memory), and
 * exactly, as sets, for small ones (WebGPU's 8), where counting `x * x + x` as three buffers
 * would split kernels that fit.
 */
function bufferWeights(maxBuffers: number): CutWeights {
  return {
    limit: maxBuffers - 1, // and the output
    leaf: (n, cut) => (cut || n.op !== "const" ? 1 : 0),
    own: () => 0,
    distinct: maxBuffers <= EXACT_SPLIT_LIMIT,
    cutsViews: false,
  };
}

/** MAX_KERNEL_OPS's weights: ops counted as a tree, as `treeOps` does. */
function opWeights(maxOps: number): CutWeights {
  return {
    limit: maxOps,
    leaf: () => 0,
    own: opWeight,
    distinct: false,
    cutsViews: true,
  };
}

/**
 * The fused nodes below `root` to materialize so that no kernel, `root`'s or a cut's own,
 * weighs more than the limit: one walk from the sources up, each node weighing its sources
 * (where leaves weigh once, `distinct`, as the set of them; else once per path, never less
 * than the truth), and a node that would pass the limit cuts its dearest source until it
 * fits. Rules:
 * - a cut goes below the views of a value and below any node all of whose weight comes from one
 *   source (`A.shrink(..).mul(0.5)` cuts A, which its other views share, not each product), as
 *   far as the `policy` says (CutPolicy);
 * - a cut makes the weights above it stale (every view and user of the value cut, not only the
 *   source a node cut it through), and a stale weight is counted again, sources first, when it
 *   is read (updating only the cut's own path made a wide sum read through 200 slices 51
 *   kernels where 2 do).
 * Materializing one cut at a time and counting again walked the region once per cut: a chain
 * reading 100,000 buffers took 12 s to schedule, and 80,000 additions on webgpu, which
 * restarted the schedule for each, 12 s.
 */
function cutsUnder(
  root: Node,
  isLoaded: (n: Node) => boolean,
  weights: CutWeights,
  policy: CutPolicy = "deepest",
): Node[] {
  const { limit, leaf, own, distinct } = weights;
  const cuts = new Set<Node>();
  const isLeaf = (m: Node) => (m !== root && isLoaded(m)) || cuts.has(m);
  // each fused node's weight, with the number of cuts made when it was counted and, where
  // leaves weigh once, the leaves it reads (at most limit + 1: past it, which ones is moot)
  const counted = new Map<Node, Counted>();
  const noLeaves: ReadonlySet<Node> = new Set();
  const fresh = (m: Node) => isLeaf(m) || counted.get(m)!.cuts === cuts.size;
  const countOf = (s: Node): Counted => {
    if (isLeaf(s)) {
      const weight = leaf(s, cuts.has(s));
      return { weight, cuts: cuts.size, leaves: distinct && weight > 0 ? new Set([s]) : noLeaves };
    }
    if (!fresh(s)) {
      for (const m of topoSort([s], fresh)) if (!fresh(m)) counted.set(m, sum(m));
    }
    return counted.get(s)!;
  };
  const weightOf = (s: Node) => countOf(s).weight;
  const sum = (n: Node): Counted => {
    if (!distinct) {
      const weight = n.srcs.reduce((total, s) => total + weightOf(s), own(n));
      return { weight: Math.min(weight, limit + 1), cuts: cuts.size, leaves: noLeaves };
    }
    const leaves = new Set<Node>();
    for (const s of n.srcs) {
      for (const l of countOf(s).leaves) {
        if (leaves.size > limit) break;
        leaves.add(l);
      }
    }
    return { weight: Math.min(leaves.size + own(n), limit + 1), cuts: cuts.size, leaves };
  };
  // what a cut at `s` materializes (see the rules), or null where none would lighten it
  const cutPoint = (s: Node, views: boolean): Node | null => {
    // a view itself, where only views are left (going down them would cut the lowest)
    if (views) return !isLeaf(s) && s.numel > 0 && weightOf(s) > leaf(s, true) ? s : null;
    for (;;) {
      if (isLeaf(s)) return null;
      const weight = weightOf(s);
      // (a view's own weight, its index arithmetic, is its readers' either way)
      const viewOwn = isMovement(s.op) ? own(s) : 0;
      const holder = s.srcs.find((x) => !isLeaf(x) && weightOf(x) + viewOwn === weight);
      if (holder === undefined) break;
      if (policy === "first" && s.srcs.some((x) => x !== holder && weightOf(x) > 0)) break;
      s = holder;
    }
    return !isMovement(s.op) && s.numel > 0 && weightOf(s) > leaf(s, true) ? s : null;
  };
  // the dearest cut point below `n`'s sources, views only where nothing else is left (a chain
  // of views weighs its index arithmetic: it was left whole, then split one kernel at a time
  // while building, quadratic)
  const dearestBelow = (n: Node, views: boolean): Node | null => {
    let dearest: Node | null = null;
    for (const source of n.srcs) {
      const at = cutPoint(source, views);
      if (at !== null && (dearest === null || weightOf(at) > weightOf(dearest))) dearest = at;
    }
    return dearest;
  };
  for (const n of topoSort([root], (m) => m !== root && isLoaded(m))) {
    if (n !== root && isLoaded(n)) continue; // a leaf: countOf weighs it
    let count = sum(n);
    while (count.weight > limit) {
      const dearest = dearestBelow(n, false) ?? (weights.cutsViews ? dearestBelow(n, true) : null);
      if (dearest === null) break; // the schedule's own check says why
      cuts.add(dearest);
      count = sum(n);
    }
    counted.set(n, count);
  }
  return [...cuts];
}

/**
 * Where `cutsUnder` cuts below a source: down the sources that weigh as much as it, at the
 * deepest (the value its views and other readers share), or at the first with another source
 * that weighs (where leaves weigh once, a source of equal weight need not hold all of it:
 * in `t * t.exp() + u` with u reading t's buffers, cutting t leaves u's).
 */
type CutPolicy = "deepest" | "first";

/** A node's weight in `cutsUnder`. */
interface Counted {
  readonly weight: number;
  /** How many cuts had been made when it was counted (more since: stale). */
  readonly cuts: number;
  /** The leaves it reads, where leaves weigh once (else empty). */
  readonly leaves: ReadonlySet<Node>;
}

/**
 * The fused node below `root` to materialize when `root` reads too many buffers: the one
 * reading the most buffers that still fit in one kernel, so each split removes as many as it
 * can (else the largest proper subexpression, which is split again in turn).
 */
function pickSplit(
  root: Node,
  isLoaded: (n: Node) => boolean,
  maxBuffers: number,
): Node | null {
  const order = topoSort([root], (m) => m !== root && isLoaded(m));
  // the buffers each fused node reads, sources before users (a loaded node below the root
  // is a leaf: its own sources are another kernel's business). Counted exactly, as sets, for
  // small limits (WebGPU's 8); for the cpu's (hundreds or thousands) a set per node was
  // quadratic (a chain of 66,000 additions ran out of memory), so there each node counts its
  // sources' leaves again per use: never fewer than it reads, so what fits fits. A set stops
  // growing past the limit: a larger one never fits, and a node that fits always exists below
  // one that does not (each op has at most three sources), so the choice is the same; sets of
  // every leaf below made a chain of 2,000 distinct webgpu inputs take 7.5 s to schedule
  const exact = maxBuffers <= EXACT_SPLIT_LIMIT;
  const leaves = new Map<Node, Set<Node>>();
  const counts = new Map<Node, number>();
  for (const n of order) {
    const leaf = n !== root && isLoaded(n);
    if (exact) {
      const set = new Set<Node>();
      if (leaf) {
        if (n.op !== "const") set.add(n);
      } else {
        for (const s of n.srcs) {
          for (const l of leaves.get(s)!) {
            if (set.size > maxBuffers) break;
            set.add(l);
          }
        }
      }
      leaves.set(n, set);
    } else {
      let count = leaf ? (n.op !== "const" ? 1 : 0) : 0;
      if (!leaf) { for (const s of n.srcs) count = Math.min(count + counts.get(s)!, maxBuffers); }
      counts.set(n, count);
    }
  }
  const sizeOf = (n: Node) => exact ? leaves.get(n)!.size : counts.get(n)!;
  const total = sizeOf(root);
  const fits = (n: Node) => sizeOf(n) < maxBuffers;
  let best: Node | null = null;
  for (const n of order) {
    const candidate = n !== root && !isLoaded(n) && !isMovement(n.op) && n.numel > 0 &&
      (sizeOf(n) < total || !exact) && sizeOf(n) >= 2;
    if (!candidate) continue;
    const better = best === null ||
      (fits(n) && !fits(best)) ||
      (fits(n) === fits(best) && sizeOf(n) > sizeOf(best));
    if (better) best = n;
  }
  return best;
}

/**
 * The fused graph below `root` with every node that has a substitute (an equal graph) replaced
 * by it, and the nodes above rebuilt; loaded nodes end the walk.
 */
function substituted(
  root: Node,
  isLoaded: (n: Node) => boolean,
  substitute: (n: Node) => Node | undefined,
): Node {
  const loadedBelow = (n: Node) => n !== root && isLoaded(n);
  return ir.replaceNodes([root], (n) => loadedBelow(n) ? n : substitute(n), loadedBelow)[0];
}

/**
 * One group per axis of `shape`, except that each length-1 axis is in the group of the next
 * longer axis (trailing ones in the group of the last longer axis); one group if none is longer.
 */
export function groupUnitAxes(shape: readonly number[]): [number, number][] {
  const groups: [number, number][] = [];
  let start = 0;
  for (let axis = 0; axis < shape.length; axis++) {
    if (shape[axis] === 1) continue;
    groups.push([start, axis + 1]);
    start = axis + 1;
  }
  if (groups.length === 0) return shape.length === 0 ? [] : [[0, shape.length]];
  groups[groups.length - 1][1] = shape.length;
  return groups;
}

/**
 * Builds the kernel computing `nodes` (one or more values of one shape, none reading another),
 * loading every node for which `isLoaded` holds and computing `substitute(n)` in place of a
 * node that has one.
 */
export function buildKernel(
  nodes: readonly Node[],
  isLoaded: (n: Node) => boolean,
  substitute: (n: Node) => Node | undefined = () => undefined,
): ScheduledKernel {
  const roots = nodes.map((node) => substituted(node, isLoaded, substitute));
  // Rule MERGE_OUTPUT_AXES: adjacent output axes merge into one loop where every index the
  // kernel computes sees them only as their flat position (a loop over H * W instead of H
  // loops over W: longer vector runs, fewer loop headers), which the index rules reveal by
  // cancelling the division and remainder that split the merged variable. Axes are tried
  // innermost first; a merge that leaves a division of the merged variable is undone.
  // The kernel without merges is lowered only if no merge holds (lowering is most of a first
  // call's scheduling: LocalResponseNorm forward lowers three times instead of four).
  // Length-1 axes first join their neighbours (the group to their right, or to their left at
  // the end), which is where their own attempts would usually put them: their index is 0 in
  // any group, so a tensor of rank 1000 lowers a few times rather than 1000 times. Where that
  // grouping does not lower cleanly, every axis is tried one by one as before.
  const singleAxes = nodes[0].shape.map((_, i): [number, number] => [i, i + 1]);
  let groups = groupUnitAxes(nodes[0].shape);
  let built: ScheduledKernel | null = null;
  if (groups.length < singleAxes.length) {
    built = lowerKernel(nodes, roots, groups, isLoaded);
    if (built === null) groups = singleAxes;
  }
  for (let i = groups.length - 2; i >= 0; i--) {
    const merged = [
      ...groups.slice(0, i),
      [groups[i][0], groups[i + 1][1]] as [number, number],
      ...groups.slice(i + 2),
    ];
    const attempt = lowerKernel(nodes, roots, merged, isLoaded);
    if (attempt === null) continue;
    groups = merged;
    built = attempt;
  }
  return built ?? lowerKernel(nodes, roots, groups, isLoaded)!;
}

/**
 * The kernel of `nodes` (computed as `roots`) with one loop variable per group of output axes;
 * null when a group of several axes is not cleanly merged (a division or remainder of its
 * variable is left in the kernel).
 */
function lowerKernel(
  nodes: readonly Node[],
  roots: readonly Node[],
  groups: readonly (readonly [number, number])[],
  isLoaded: (n: Node) => boolean,
): ScheduledKernel | null {
  const builder = new ExprBuilder();
  const inputs: Node[] = [];
  const slots = new Map<Node, number>();
  const shape = nodes[0].shape;
  const outShape = groups.map(([a, b]) => numelOf(shape.slice(a, b)));
  const outVars = outShape.map((d) => builder.variable("o", d));
  const index: Expr[] = [];
  groups.forEach(([a, b], g) => {
    const v = outVars[g];
    if (b - a === 1) {
      index.push(v);
      return;
    }
    // the axes of a merged group from its variable: (v / stride) % extent, outermost first
    let stride = outShape[g];
    for (let axis = a; axis < b; axis++) {
      if (shape[axis] === 1) {
        index.push(builder.int(0)); // a length-1 axis's index, wherever its group is
        continue;
      }
      stride /= shape[axis];
      const quotient = stride === 1 ? v : builder.binary("idiv", v, builder.int(stride));
      index.push(
        axis === a ? quotient : builder.binary("imod", quotient, builder.int(shape[axis])),
      );
    }
  });
  const slotOf = (n: Node) => {
    let slot = slots.get(n);
    if (slot === undefined) {
      slot = inputs.length;
      slots.set(n, slot);
      inputs.push(n);
    }
    return slot;
  };
  const lowered = new Map<string, Expr>();
  const values = roots.map((root, k) => {
    const value = lowerKernelValue(root, index, {
      builder,
      isLoaded: (n) => n !== nodes[k] && isLoaded(n),
      slotOf,
      lowered,
    });
    builder.opaque.add(value); // later outputs use it as it is (see ExprBuilder.opaque)
    return value;
  });
  const outIndex = linearIndex(builder, outVars, outShape);
  const merged = outVars.filter((_, g) => groups[g][1] - groups[g][0] > 1);
  if (
    merged.length > 0 &&
    exprsInOrder([...values, outIndex]).some((e) =>
      (e.op === "idiv" || e.op === "imod") &&
      merged.some((v) => mentions(e.srcs[0], v))
    )
  ) return null;
  const kernel: Kernel = {
    name: `k_${describeOps(roots, isLoaded)}`,
    comment: describeKernel(roots, inputs),
    outShape,
    outVars,
    outputs: nodes.map((node, k) => ({ type: scalarTypeOf(node.dtype), value: values[k] })),
    outIndex,
    inputs: inputs.map((n) => ({ type: scalarTypeOf(n.dtype), shape: n.shape, numel: n.numel })),
    builder,
  };
  return { kernel, outputs: nodes, inputs };
}

function fusedRegion(root: Node, isLoaded: (n: Node) => boolean): Node[] {
  const inside = (n: Node) => n === root || (!isLoaded(n) && n.op !== "const");
  return topoSort([root], (n) => !inside(n)).filter(inside);
}

/** The kernel's name: its computing ops in order (views only when it computes nothing). */
function describeOps(roots: readonly Node[], isLoaded: (n: Node) => boolean): string {
  const region = roots.flatMap((root) => fusedRegion(root, isLoaded))
    .filter((n) => n.op !== "detach");
  const computing = region.filter((n) => !isMovement(n.op));
  const ops = [...new Set((computing.length > 0 ? computing : region).map((n) => n.op))];
  const shown = ops.length > 5 ? [...ops.slice(0, 2), ...ops.slice(-3)] : ops;
  return shown.join("_") || "copy";
}

function describeKernel(roots: readonly Node[], inputs: readonly Node[]): string {
  const expr = (root: Node, n: Node, depth: number): string => {
    const slot = inputs.indexOf(n);
    if (n !== root && slot >= 0) return `in${slot}`;
    if (n.op === "const") return spellArg(n.arg);
    if (depth > 12) return "...";
    const args = n.srcs.map((s) => expr(root, s, depth + 1));
    if (n.op === "affine") {
      const [scale, shift] = n.arg as number[];
      args.push(spellArg(scale), spellArg(shift));
    } else if (n.arg !== null && typeof n.arg === "object") {
      args.push(spellArg(n.arg)); // NaN, the infinities and -0 as they are (JSON said null, 0)
    }
    return `${n.op}(${args.join(", ")})`;
  };
  const inputText = inputs.map((n, i) => `in${i}: ${n.dtype}[${n.shape.join(",")}]`).join(", ");
  const name = (k: number) => outputName(k, roots.length);
  const outputText = roots.map((r, k) => `${name(k)} ${r.dtype}[${r.shape.join(",")}]`).join(", ");
  return [
    `lucid kernel: ${outputText} from ${inputText || "no inputs"}`,
    ...roots.map((root, k) => `${name(k)} = ${expr(root, root, 0)}`),
  ].join("\n");
}
