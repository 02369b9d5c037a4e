// compile(kernel, target) -> Executable: decompose what the target lacks, pick the launch mode,
// linearize, check the target's limits, print. Executables are keyed by their content (the
// text, which does not depend on where the kernel sits in a plan), so an identical kernel
// compiles once per target however often and wherever it appears. After jax-js's
// `Executable` (prepareKernel) and tinygrad's program cache keyed by source.

import type { Kernel } from "./kernel.ts";
import { type LaunchMode, linearize, loopWork, type Program } from "./linearize.ts";
import { decompose, JS_BESIDE_WASM_TARGET, type Target } from "./targets.ts";
import { printJs } from "./js.ts";
import { emitWasm } from "./wasm.ts";
import { float64Error, printWgsl, WORKGROUP_SIZE, workgroupGrid } from "./wgsl.ts";
import { BoundedCache } from "./cache.ts";
import { exprsInOrder, kernelRoots } from "./kernel.ts";

/** A kernel compiled for one target: its readable text and how it launches. */
export interface Executable {
  /** A short hash of the target and the text: equal kernels have equal keys. */
  readonly key: string;
  /** The kernel's name (its ops). */
  readonly name: string;
  /** The target it was compiled for. */
  readonly target: Target["name"];
  /** The readable form: JavaScript or WGSL source. */
  readonly text: string;
  /** The linearized program the text was printed from. */
  readonly program: Program;
  /** Workgroups to dispatch, `[x, y]` (GPU targets; `[1, 1]` for loops). */
  readonly workgroups: readonly [number, number];
  /** The binary module (`wasm` target). */
  readonly binary?: Uint8Array;
  /** How many rows a Wasm function's [start, end) counts over (`wasm` target; SPLIT_TWO_AXES). */
  readonly splitExtent?: number;
  /** What the runtime made of it (a compiled function, a module), set on first run. */
  artifact?: unknown;
}

/**
 * Rule WORKGROUP_REDUCE_WORK: on a GPU target, a kernel whose invocations would each loop more
 * than this many times splits its outermost reductions over a workgroup's lanes (launch mode
 * `workgroup`). Measured on llvmpipe (`sum(1)` of [n, e] float32, median of 7 with readback):
 * one invocation per row stays at 12-14 ms up to e = 60000, while 64 lanes per row cost
 * 21 ms at 1024 x 1024 and 16 ms at 64 x 16384 (256 lanes: 70 and 20 ms), because an emulated
 * barrier is expensive; from 16384 on the two agree within noise. Real GPUs favour lanes much
 * earlier, but this is the adapter the project can measure.
 */
export const WORKGROUP_REDUCE_WORK = 16384;

/**
 * Executables kept (by text, per target), and the characters of their keys (the text, or a
 * module's bytes) they may hold together: what a target compiles them to grows with these.
 */
const EXECUTABLE_LIMIT = 1024;
const EXECUTABLE_CHARACTERS = 1 << 20;
const executables = new BoundedCache<string, Executable>(
  EXECUTABLE_LIMIT,
  EXECUTABLE_CHARACTERS,
  (_, key) => key.length,
  8,
);

/** 53-bit string hash (cyrb53), as 14 hex digits: names executables, never identifies them. */
function hash(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

/** Throws if `kernel` cannot be expressed on `target` (float64, indices beyond its integers). */
function checkTarget(kernel: Kernel, target: Target): void {
  const exprs = exprsInOrder(kernelRoots(kernel));
  if (!target.float64) {
    const f64 = kernel.outputs.some((o) => o.type === "f64") ||
      kernel.inputs.some((i) => i.type === "f64") ||
      exprs.some((e) => e.type === "f64");
    if (f64) throw float64Error(kernel.name);
  }
  const total = kernel.outShape.reduce((n, d) => n * d, 1);
  const widest = exprs.reduce(
    (m, e) => (e.type === "index" ? Math.max(m, -e.min, e.max) : m),
    total - 1,
  );
  if (widest > target.maxIndex) {
    // (a kernel may be a stage of a split reduction: its own output says nothing to the program)
    const cause = total - 1 > target.maxIndex
      ? `it writes ${total} elements`
      : `a view or reduction in it spans more than ${target.maxIndex + 1} elements`;
    throw new IndexRangeError(
      `${target.name}: kernel ${kernel.name} needs indices up to ${widest}, beyond the ` +
        `${target.maxIndex} its integers hold (${cause}); run it on the "cpu" device`,
      kernel.name,
      widest,
      target.maxIndex,
    );
  }
}

/**
 * A kernel whose indices pass what its target's integers hold (WGSL's i32): its message advises
 * the cpu device, which an export (which has none) says in its own words.
 */
export class IndexRangeError extends Error {
  constructor(
    message: string,
    /** The kernel's name. */
    readonly kernel: string,
    /** The largest index it computes. */
    readonly widest: number,
    /** The largest its target holds. */
    readonly maxIndex: number,
  ) {
    super(message);
    this.name = "Error"; // printed as the library's other errors are ("Error: wgsl: ...")
  }
}

/** The launch mode for `kernel` on `target` (rule WORKGROUP_REDUCE_WORK), and its program. */
function pickProgram(kernel: Kernel, target: Target): Program {
  const program = linearize(kernel, target.launch);
  if (target.launch !== "grid") return program;
  const splits = program.body.some((s) => s.kind === "acc");
  return splits && loopWork(program) > WORKGROUP_REDUCE_WORK
    ? linearize(kernel, "workgroup", target.lanes)
    : program;
}

/** Whether `kernel`'s invocations stay within `target`'s loop limit (MAX_LOOP_WORK). */
export function fitsLoopWork(kernel: Kernel, target: Target): boolean {
  return loopWork(pickProgram(kernel, target)) <= target.maxLoopWork;
}

/** The program of `kernel` on `target`; throws if its loops pass the target's limit. */
function chooseProgram(kernel: Kernel, target: Target): Program {
  const program = pickProgram(kernel, target);
  const work = loopWork(program);
  if (work > target.maxLoopWork) {
    throw new Error(
      `${target.name}: kernel ${kernel.name} would loop ${work} times in one invocation, ` +
        `above the ${target.maxLoopWork} this target allows (Mesa's llvmpipe stops there)`,
    );
  }
  return program;
}

/** The workgroup grid of a GPU program. */
function gridOf(program: Program, mode: LaunchMode): [number, number] {
  if (mode === "loops") return [1, 1];
  const total = program.kernel.outShape.reduce((n, d) => n * d, 1);
  return workgroupGrid(mode === "workgroup" ? total : Math.ceil(total / WORKGROUP_SIZE));
}

/** `kernel` compiled for `target` (an equal kernel compiled before is returned as is). */
export function compile(kernel: Kernel, target: Target): Executable {
  checkTarget(kernel, target);
  const program = chooseProgram(decompose(kernel, target), target);
  const wasm = target.name === "wasm" ? emitWasm(program, target.sharedMemory ?? true) : null;
  // Rule WASM_FUNCTION_LIMITS: a kernel whose function would pass the engines' limits (50,000
  // locals: a chain of a thousand tanh, each decomposed into a dozen values held in two locals
  // each) is compiled for JavaScript instead, which has none
  if (target.name === "wasm" && wasm === null) return compile(kernel, JS_BESIDE_WASM_TARGET);
  const wasmMath = target.wasmFloat32 !== undefined;
  // a Wasm kernel is keyed by its bytes and names, which determine its text: printing the text
  // and hashing it took 0.5 ms of a 20 ms first call (27,000 characters for LocalResponseNorm)
  const text = wasm === null
    ? (target.name === "wgsl" ? printWgsl(program) : printJs(program, { wasmMath }))
    : undefined;
  const content = text ?? `${wasm!.names}\n${latin1(wasm!.bytes)}`;
  const cacheKey = `${target.name}${target.sharedMemory === false ? " unshared" : ""}\n${content}`;
  const cached = executables.get(cacheKey);
  if (cached !== undefined) return cached;
  let printed: string | undefined;
  const common = {
    key: hash(cacheKey),
    name: kernel.name,
    target: target.name,
    program,
    workgroups: gridOf(program, program.mode),
  };
  const executable: Executable = wasm === null ? { ...common, text: text! } : {
    ...common,
    binary: wasm.bytes,
    splitExtent: wasm.splitExtent,
    get text() {
      return printed ??= wasm.text();
    },
  };
  executables.set(cacheKey, executable);
  return executable;
}

/** `bytes` as a string of one character per byte (a key, never shown). */
function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let at = 0; at < bytes.length; at += 8192) {
    out += String.fromCharCode(...bytes.subarray(at, at + 8192));
  }
  return out;
}

/** Number of distinct executables compiled and kept. */
export function executableCount(): number {
  return executables.size;
}
