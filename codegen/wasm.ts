// The WebAssembly backend: a linearized program (launch mode `loops`) as one exported Wasm
// function `name(out, in0, ..., start, end)` (`out0, out1, ...` first when a kernel writes
// several outputs) over the cpu's shared memory, where buffers are byte offsets and
// [start, end) is the part of the outer rows to run, so threads can split them (the rows of
// the first output axis, or of the first two: rule SPLIT_TWO_AXES; groups of four elements
// where the first is the vectorized one: SPLIT_WHOLE_VECTORS). Float32 kernels only:
// float64 and int32 data stay on the JavaScript backend.
//
// Rules of the vectorizer (after jax-js's tilePlan: contiguous / broadcast / gather):
// - the innermost output loop runs four elements at a time in f32x4 lanes, then a scalar tail;
//   everything outside it is scalar;
// - inside it, a value that does not depend on the loop variable is scalar (splat where a
//   vector needs it); an index that is affine in the variable (base + c * lane) keeps only its
//   lane-0 base; every other value is a v128;
// - a load at an index with c = 1 is one v128.load; with any other index, four scalar loads
//   (a gather); a store likewise;
// - Wasm evaluates both sides of a select, so a load that only a select's value reads (one a
//   padding predicate guards) may be asked for an element outside its buffer: where such a
//   load's index range is not inside the buffer, the index is clamped to it (the value read is
//   then discarded). Every other load reads what the program reads, always in its buffer (a
//   window whose predicate became loop bounds included);
// - the loop is vectorized only when every op in it has a lane form here, and every loop
//   nested in it has bounds that do not depend on the variable;
// - WHOLE_WINDOWS: a short window unrolled inside it whose bounds do not change along it (a
//   padded window over an outer axis, as LocalResponseNorm's over the channels) is tested
//   once, before the loop, which then runs in one of two copies: the windows' trips untested,
//   or (one window) each trip testing its bounds. Measured, LocalResponseNorm forward kernel
//   on one thread, four processes each alternating: (2, 96, 27, 27) 165-167 -> 160-161 us,
//   (8, 96, 55, 55) 2.7-3.2 -> 2.6-2.9 ms; on a busy machine 282-286 -> 256-267 us.

import {
  type Expr,
  exprsInOrder,
  kernelRoots,
  mentions,
  outputName,
  type ReduceArg,
  reduceBody,
  type VarArg,
} from "./kernel.ts";
import { type LoopStmt, type Program, type Stmt, unrollable } from "./linearize.ts";
import { FunctionBuilder, type Mnemonic, ModuleBuilder, type ValType } from "./wasm_module.ts";
import { expFunction, logFunction } from "./wasm_math.ts";

/** The vector functions a kernel may call, made on first use (function 0 is the kernel). */
const MATH: Record<"exp" | "log", () => FunctionBuilder> = { exp: expFunction, log: logFunction };

/** Lanes of a vector (f32x4). */
export const LANES = 4;

/**
 * Reductions of at most this many trips (a small window) are unrolled: each trip a copy of the
 * body, which lets the processor overlap trips. Where the window is whole (away from padded
 * edges) one test selects copies without tests; at the edges each trip tests its bounds.
 */
const UNROLL_MAX_TRIPS = 8;

/**
 * A float32 sum over more trips than this accumulates in float64 (then rounds once, as the
 * JavaScript kernels do): a float32 accumulator's rounding error grows with the length (0.1
 * summed 2^20 times came to 105891.8, not 104857.6). Shorter sums, windows among them, stay in
 * float32 lanes (within about 4e-6 relative).
 */
const WIDE_SUM_MIN_TRIPS = 64;
/** `i8x16.shuffle` bytes: lanes 2-3 of the first operand moved to lanes 0-1. */
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** `i8x16.shuffle` bytes: lanes 0-1 of each operand, side by side. */
const LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

const scalarType = (e: Expr): ValType => (e.type === "f32" ? "f32" : "i32");

/** Scalar instructions of binary ops by operand kind. */
const SCALAR_BINARY: Record<string, { f32?: Mnemonic; i32?: Mnemonic; }> = {
  add: { f32: "f32.add", i32: "i32.add" },
  sub: { f32: "f32.sub", i32: "i32.sub" },
  mul: { f32: "f32.mul", i32: "i32.mul" },
  div: { f32: "f32.div" },
  max: { f32: "f32.max" },
  min: { f32: "f32.min" },
  fmax: { f32: "f32.max" },
  fmin: { f32: "f32.min" },
  tdiv: { i32: "i32.div_s" },
  tmod: { i32: "i32.rem_s" },
  lt: { f32: "f32.lt", i32: "i32.lt_s" },
  le: { f32: "f32.le", i32: "i32.le_s" },
  eq: { f32: "f32.eq", i32: "i32.eq" },
  and: { i32: "i32.and" },
};

/** Lane instructions of binary ops by lane kind (integer ops without one go lane by lane). */
const VECTOR_BINARY: Record<string, { f32?: Mnemonic; i32?: Mnemonic; }> = {
  add: { f32: "f32x4.add", i32: "i32x4.add" },
  sub: { f32: "f32x4.sub", i32: "i32x4.sub" },
  mul: { f32: "f32x4.mul", i32: "i32x4.mul" },
  div: { f32: "f32x4.div" },
  max: { f32: "f32x4.max", i32: "i32x4.max_s" },
  min: { f32: "f32x4.min", i32: "i32x4.min_s" },
  fmax: { f32: "f32x4.max" },
  fmin: { f32: "f32x4.min" },
  lt: { f32: "f32x4.lt", i32: "i32x4.lt_s" },
  le: { f32: "f32x4.le", i32: "i32x4.le_s" },
  eq: { f32: "f32x4.eq", i32: "i32x4.eq" },
  and: { i32: "v128.and" },
};

/** Ops the Wasm backend has, scalar and in lanes. */
export const WASM_OPS: ReadonlySet<string> = new Set([
  ...Object.keys(SCALAR_BINARY),
  "max",
  "min",
  "neg",
  "abs",
  "sqrt",
  "rsqrt",
  "recip",
  "trunc",
  "exp",
  "log",
  "not",
  "select",
  "cast",
  "load",
  "reduce",
  "const",
  "var",
  "acc",
]);

/** How a value inside the vectorized loop is held. */
type Held = "scalar" | "affine" | "vector";

/** Emits one kernel function. */
class KernelEmitter {
  readonly fn: FunctionBuilder;
  readonly #program: Program;
  /** Outputs of the kernel: its first parameters, the inputs' follow. */
  readonly #outputs: number;
  readonly #start: number;
  readonly #end: number;
  /** Scalar locals of named values, loop variables and accumulators. */
  readonly #scalar = new Map<Expr, number>();
  /** v128 locals of values and accumulators held in lanes. */
  readonly #vector = new Map<Expr, number>();
  /** Float64 sums (see WIDE_SUM_MIN_TRIPS): in lanes, lanes 0-1 in `#vector`, 2-3 here. */
  readonly #wide: ReadonlySet<Expr>;
  readonly #vectorHigh = new Map<Expr, number>();
  /** The vectorized loop's variable, while its vector body is emitted. */
  #laneVar: Expr | null = null;
  /** Windows known whole, or known not whole, in the copy of the vectorized loop being emitted. */
  #knownWindows: ReadonlyMap<LoopStmt, "whole" | "edge"> = new Map();
  /** How each value of the vectorized loop is held (and an affine index's coefficient). */
  #held = new Map<Expr, Held>();
  #coef = new Map<Expr, number>();
  readonly #vectorLoop: LoopStmt | null;
  /**
   * The second output loop when [start, end) counts rows of the first two output axes together
   * (see `splitLoops`), with its extent; else null and 0.
   */
  readonly #splitInner: LoopStmt | null;
  readonly #splitUnit: number;
  /** How many rows [start, end) counts over: the extent of the range threads split. */
  readonly splitExtent: number;
  /** Each accumulator's reduction: they share a local. */
  readonly #owner = new Map<Expr, Expr>();
  /** Loads only a select's value reads (see the file header). */
  readonly #speculative: ReadonlySet<Expr>;
  /** The math functions called, in the order of their function indices (from 1). */
  readonly math: FunctionBuilder[] = [];
  readonly #mathIndex = new Map<string, number>();

  /** Calls the vector function `op` (exp, log) on the v128 on the stack. */
  #callMath(op: "exp" | "log"): void {
    let index = this.#mathIndex.get(op);
    if (index === undefined) {
      this.math.push(MATH[op]());
      index = this.math.length;
      this.#mathIndex.set(op, index);
    }
    this.fn.call(index, `${op}_f32x4`);
  }

  constructor(program: Program) {
    this.#program = program;
    const { kernel } = program;
    const outputs = kernel.outputs.length;
    const params = [
      ...kernel.outputs.map((_, k) => ({ name: outputName(k, outputs), type: "i32" as const })),
      ...kernel.inputs.map((_, i) => ({ name: `in${i}`, type: "i32" as const })),
      { name: "start", type: "i32" as const },
      { name: "end", type: "i32" as const },
    ];
    this.fn = new FunctionBuilder(kernel.name, params);
    this.#outputs = outputs;
    this.#start = params.length - 2;
    this.#end = params.length - 1;
    this.#vectorLoop = vectorizableLoop(program);
    const split = splitLoops(program, this.#vectorLoop);
    this.#splitInner = split.length === 2 ? split[1] : null;
    this.#splitUnit = split.length === 2 ? (split[1].v.arg as VarArg).extent : 0;
    // rule SPLIT_WHOLE_VECTORS: a split vectorized loop counts groups of four
    const extent = split.reduce((n, l) => n * (l.v.arg as VarArg).extent, 1);
    this.splitExtent = split[0] === this.#vectorLoop ? Math.ceil(extent / LANES) : extent;
    const roots = kernelRoots(kernel);
    for (const e of exprsInOrder(roots)) {
      if (e.op === "reduce") this.#owner.set((e.arg as ReduceArg).acc, e);
    }
    this.#speculative = speculativeLoads(roots);
    this.#wide = wideSums(roots);
  }

  emit(): void {
    this.#stmts(this.#program.body, false, true);
  }

  /** The scalar local of `e`, made on first use. */
  #scalarLocal(expr: Expr): number {
    const e = this.#owner.get(expr) ?? expr;
    let local = this.#scalar.get(e);
    if (local === undefined) {
      local = this.fn.local(this.#wide.has(e) ? "f64" : scalarType(e), this.#label(e));
      this.#scalar.set(e, local);
    }
    return local;
  }

  /** The v128 local of `e` (of a float64 sum, its lanes 0-1), made on first use. */
  #vectorLocal(expr: Expr): number {
    const e = this.#owner.get(expr) ?? expr;
    let local = this.#vector.get(e);
    if (local === undefined) {
      local = this.fn.local("v128", `${this.#label(e)}_${this.#wide.has(e) ? "01" : "x4"}`);
      this.#vector.set(e, local);
    }
    return local;
  }

  /** The v128 local of lanes 2-3 of a float64 sum held in lanes. */
  #vectorHighLocal(reduce: Expr): number {
    let local = this.#vectorHigh.get(reduce);
    if (local === undefined) {
      local = this.fn.local("v128", `${this.#label(reduce)}_23`);
      this.#vectorHigh.set(reduce, local);
    }
    return local;
  }

  #label(e: Expr): string {
    if (e.op === "var") return (e.arg as VarArg).name;
    return this.#program.names.get(e) ?? `t${e.id}`;
  }

  #stmts(stmts: readonly Stmt[], vector: boolean, outermost: boolean): void {
    for (const s of stmts) {
      switch (s.kind) {
        case "let":
          this.#let(s.expr, vector);
          break;
        case "acc":
          if (vector && this.#held.get(s.reduce) === "vector") {
            this.fn.v128([s.identity, s.identity, s.identity, s.identity]);
            this.fn.set(this.#vectorLocal(s.reduce));
            // a float64 sum starts at 0, whose float64 bits are 0 too
            if (this.#wide.has(s.reduce)) {
              this.fn.v128([0, 0, 0, 0]).set(this.#vectorHighLocal(s.reduce));
            }
          } else if (this.#wide.has(s.reduce)) {
            this.fn.f64(s.identity).set(this.#scalarLocal(s.reduce));
          } else {
            this.#const(s.identity, s.reduce).set(this.#scalarLocal(s.reduce));
          }
          break;
        case "loop":
          if (s === this.#vectorLoop && !vector) this.#vectorized(s, outermost);
          else this.#loop(s, vector, outermost && s.role === "output");
          break;
        case "update": {
          const combine = s.reduce.srcs[0];
          if (this.#wide.has(s.reduce)) {
            this.#wideUpdate(s.reduce, vector && this.#held.get(s.reduce) === "vector");
          } else if (vector && this.#held.get(s.reduce) === "vector") {
            this.#pushVector(combine);
            this.fn.set(this.#vectorLocal(s.reduce));
          } else {
            this.#pushScalar(combine, true);
            this.fn.set(this.#scalarLocal(s.reduce));
          }
          break;
        }
        case "store":
          this.#store(s.output, s.index, s.value, vector);
          break;
        case "combine":
          throw new Error("wasm: workgroup launches have no cpu form");
      }
    }
  }

  /** Adds a float64 sum's term (its float32 body, widened) to the accumulator. */
  #wideUpdate(reduce: Expr, inLanes: boolean): void {
    const { acc } = reduce.arg as ReduceArg;
    const term = reduce.srcs[0].srcs.find((x) => x !== acc)!;
    if (!inLanes) {
      const local = this.#scalarLocal(reduce);
      this.fn.get(local);
      this.#pushScalar(term);
      this.fn.op("f64.promote_f32", "f64.add").set(local);
      return;
    }
    const [low, high] = [this.#vectorLocal(reduce), this.#vectorHighLocal(reduce)];
    const terms = this.#termLocal();
    this.#pushVector(term);
    this.fn.set(terms);
    this.fn.get(low).get(terms).op("f64x2.promote_low_f32x4", "f64x2.add").set(low);
    // lanes 2-3 moved to 0-1, then widened
    this.fn.get(high).get(terms).get(terms).shuffle(HIGH_HALF);
    this.fn.op("f64x2.promote_low_f32x4", "f64x2.add").set(high);
  }

  #termLocalIndex = -1;
  #termLocal(): number {
    if (this.#termLocalIndex < 0) this.#termLocalIndex = this.fn.local("v128", "terms");
    return this.#termLocalIndex;
  }

  /** A scalar loop; the split output loops run the part [start, end) of their rows. */
  #loop(s: LoopStmt, vector: boolean, splitByThreads: boolean): void {
    const v = this.#scalarLocal(s.v);
    const extent = (s.v.arg as VarArg).extent;
    if (unrollable(s, UNROLL_MAX_TRIPS) && !splitByThreads) {
      // short reduction: one copy of the body per possible trip, no loop
      const trips = (guarded: boolean) => {
        for (let k = 0; k < extent; k++) {
          if (guarded) {
            this.#pushScalar(s.lo);
            this.fn.i32(k).op("i32.le_s");
            this.#pushScalar(s.hi);
            this.fn.i32(k).op("i32.gt_s", "i32.and").open("if");
          }
          this.fn.i32(k).set(v);
          this.#stmts(s.body, vector, false);
          if (guarded) this.fn.op("end");
        }
      };
      const known = this.#knownWindows.get(s);
      if ((s.lo.isConst(0) && s.hi.isConst(extent)) || known !== undefined) {
        trips(known === "edge");
        return;
      }
      // a window away from the edges has every trip: one test, then none per trip (measured,
      // LocalResponseNorm forward + backward on (8, 96, 55, 55), one thread: 12.9 -> 9.4 ms)
      this.#pushScalar(s.lo);
      this.fn.i32(0).op("i32.le_s");
      this.#pushScalar(s.hi);
      this.fn.i32(extent).op("i32.ge_s", "i32.and").open("if");
      trips(false);
      this.fn.op("else");
      trips(true);
      this.fn.op("end");
      return;
    }
    const pushHi = this.#loopBounds(s, v, splitByThreads);
    this.fn.open("block").open("loop");
    this.fn.get(v);
    pushHi();
    this.fn.op("i32.ge_s").branch("br_if", 1);
    this.#stmts(s.body, vector, false);
    this.fn.get(v).i32(1).op("i32.add").set(v).branch("br", 0);
    this.fn.op("end", "end");
  }

  /**
   * Sets the loop variable of `s` to its first value and returns what pushes its bound: its own
   * bounds, or the part of [start, end) it runs. When [start, end) counts rows of two loops
   * (`#splitInner`, of extent u), the outer runs v0 from start / u while v0 * u < end, and the
   * inner from max(0, start - v0 * u) to min(u, end - v0 * u).
   */
  #loopBounds(s: LoopStmt, v: number, splitByThreads: boolean): () => void {
    const unit = this.#splitUnit;
    if (splitByThreads && this.#splitInner !== null) {
      const hi = this.fn.local("i32", `${(s.v.arg as VarArg).name}_end`);
      this.fn.get(this.#start).i32(unit).op("i32.div_s").set(v);
      // ceil(end / u)
      this.fn.get(this.#end).i32(unit - 1).op("i32.add").i32(unit).op("i32.div_s").set(hi);
      return () => this.fn.get(hi);
    }
    if (splitByThreads) {
      this.fn.get(this.#start).set(v);
      return () => this.fn.get(this.#end);
    }
    if (s === this.#splitInner) {
      const outer = this.#scalarLocal(this.#program.kernel.outVars[0]);
      const hi = this.fn.local("i32", `${(s.v.arg as VarArg).name}_end`);
      const offset = () => this.fn.get(outer).i32(unit).op("i32.mul");
      // v = max(0, start - v0 * u)
      this.fn.get(this.#start);
      offset();
      this.fn.op("i32.sub").set(v);
      this.fn.get(v).i32(0).get(v).i32(0).op("i32.gt_s", "select").set(v);
      // hi = min(u, end - v0 * u)
      this.fn.get(this.#end);
      offset();
      this.fn.op("i32.sub").set(hi);
      this.fn.i32(unit).get(hi).get(hi).i32(unit).op("i32.gt_s", "select").set(hi);
      return () => this.fn.get(hi);
    }
    this.#pushScalar(s.lo);
    this.fn.set(v);
    return () => this.#pushScalar(s.hi);
  }

  /** The innermost output loop: four elements at a time, then one at a time. */
  #vectorized(s: LoopStmt, splitByThreads: boolean): void {
    this.#classify(s);
    const v = this.#scalarLocal(s.v);
    const { name, extent } = s.v.arg as VarArg;
    const vectorEnd = this.fn.local("i32", `${name}_end4`);
    let pushHi = () => this.#pushScalar(s.hi);
    if (splitByThreads) {
      // rule SPLIT_WHOLE_VECTORS: [start, end) counts groups of four lanes, so each element
      // takes the vector path or the tail whatever the threads (f32x4.max and f32.max give
      // NaNs of other signs: a chunk edge moved with the thread count changed the results)
      const hi = this.fn.local("i32", `${name}_hi`);
      this.fn.get(this.#end).i32(LANES).op("i32.mul").set(hi);
      // hi = min(end * 4, extent)
      this.fn.i32(extent).get(hi).get(hi).i32(extent).op("i32.gt_s", "select").set(hi);
      this.fn.get(this.#start).i32(LANES).op("i32.mul").set(v);
      pushHi = () => this.fn.get(hi);
    } else {
      this.#pushScalar(s.lo);
      this.fn.set(v);
    }
    // vectorEnd = lo + ((hi - lo) & -4)
    pushHi();
    this.fn.get(v).op("i32.sub").i32(-LANES).op("i32.and").get(v).op("i32.add").set(vectorEnd);
    const vectorLoop = () => {
      this.fn.open("block").open("loop");
      this.fn.get(v).get(vectorEnd).op("i32.ge_s").branch("br_if", 1);
      this.#laneVar = s.v;
      this.#stmts(s.body, true, false);
      this.#laneVar = null;
      this.fn.get(v).i32(LANES).op("i32.add").set(v).branch("br", 0);
      this.fn.op("end", "end");
    };
    const windows = invariantWindows(s);
    if (windows.length === 0) vectorLoop();
    else {
      // rule WHOLE_WINDOWS: one test before the loop, then a copy of it whose windows have no
      // tests, or one whose window (if one) tests each trip
      for (const [i, w] of windows.entries()) {
        this.#pushScalar(w.lo);
        this.fn.i32(0).op("i32.le_s");
        this.#pushScalar(w.hi);
        this.fn.i32((w.v.arg as VarArg).extent).op("i32.ge_s", "i32.and");
        if (i > 0) this.fn.op("i32.and");
      }
      this.fn.open("if");
      this.#knownWindows = new Map(windows.map((w) => [w, "whole"]));
      vectorLoop();
      this.#knownWindows = new Map(windows.length === 1 ? [[windows[0], "edge"]] : []);
      this.fn.op("else");
      vectorLoop();
      this.#knownWindows = new Map();
      this.fn.op("end");
    }
    // the tail, scalar
    this.fn.open("block").open("loop");
    this.fn.get(v);
    pushHi();
    this.fn.op("i32.ge_s").branch("br_if", 1);
    this.#stmts(s.body, false, false);
    this.fn.get(v).i32(1).op("i32.add").set(v).branch("br", 0);
    this.fn.op("end", "end");
  }

  /** How each value of the vectorized loop is held (see the file header). */
  #classify(loop: LoopStmt): void {
    const v = loop.v;
    const roots: Expr[] = [];
    const collect = (stmts: readonly Stmt[]) => {
      for (const s of stmts) {
        if (s.kind === "let") roots.push(s.expr);
        else if (s.kind === "acc" || s.kind === "update") roots.push(s.reduce);
        else if (s.kind === "store") roots.push(s.index, s.value);
        else if (s.kind === "loop") collect(s.body);
      }
    };
    collect(loop.body);
    for (const e of exprsInOrder(roots)) {
      let held: Held;
      let coef = 0;
      if (e === v) [held, coef] = ["affine", 1];
      else if (e.op === "acc") {
        held = "scalar"; // set with its reduction below
      } else if (e.srcs.every((s) => this.#held.get(s) === "scalar" || !this.#held.has(s))) {
        held = "scalar";
      } else if (e.type === "index") {
        const [a, b] = e.srcs.map((s) => (this.#held.get(s) === "affine" ? this.#coef.get(s)! : 0));
        const affine = e.srcs.every((s) => this.#held.get(s) !== "vector");
        if (affine && e.op === "add") [held, coef] = ["affine", a + b];
        else if (affine && e.op === "sub") [held, coef] = ["affine", a - b];
        else if (affine && e.op === "neg") [held, coef] = ["affine", -a];
        else if (affine && e.op === "mul" && e.srcs[1].isConst()) {
          [held, coef] = ["affine", a * e.srcs[1].value];
        } else held = "vector";
      } else held = "vector";
      if (e.op === "reduce") {
        // a reduction is held in lanes when its combine is; its accumulator with it
        held = this.#held.get(e.srcs[0]) === "vector" ? "vector" : "scalar";
        this.#held.set((e.arg as ReduceArg).acc, held);
      }
      if (e.op === "acc" && this.#held.has(e)) continue;
      this.#held.set(e, held);
      if (held === "affine") this.#coef.set(e, coef);
    }
    // a combine reading an accumulator held in lanes is in lanes too (fixed point over loops)
    for (let changed = true; changed;) {
      changed = false;
      for (const e of exprsInOrder(roots)) {
        if (
          e.op === "reduce" && this.#held.get(e) === "scalar" && this.#dependsOnLanes(e.srcs[0])
        ) {
          this.#held.set(e, "vector");
          this.#held.set((e.arg as ReduceArg).acc, "vector");
          changed = true;
        } else if (
          this.#held.get(e) === "scalar" && e.srcs.some((s) => this.#held.get(s) === "vector")
        ) {
          this.#held.set(e, "vector");
          changed = true;
        }
      }
    }
  }

  #dependsOnLanes(e: Expr): boolean {
    return exprsInOrder([e]).some((x) => this.#held.get(x) === "vector");
  }

  /** Is `e` held in lanes (in the vector body)? */
  #inLanes(e: Expr): boolean {
    return this.#laneVar !== null && this.#held.get(e) === "vector";
  }

  #let(e: Expr, vector: boolean): void {
    if (vector && this.#inLanes(e)) {
      this.#vectorOp(e);
      this.fn.set(this.#vectorLocal(e));
    } else {
      this.#scalarOp(e);
      this.fn.set(this.#scalarLocal(e));
    }
  }

  #const(value: number, like: Expr): FunctionBuilder {
    return like.type === "f32" ? this.fn.f32(value) : this.fn.i32(value);
  }

  /** Pushes the scalar value of `e` (a named value, a constant, a variable). */
  #pushScalar(e: Expr, compute = false): void {
    if (e.op === "const") this.#const(e.value, e);
    else if (compute || (!this.#scalar.has(e) && e.op !== "var" && e.op !== "acc")) {
      this.#scalarOp(e);
    } else {
      this.fn.get(this.#scalarLocal(e));
      if (this.#wide.has(e)) this.fn.op("f32.demote_f64"); // a float64 sum, rounded once
    }
  }

  /** Pushes `e` as a v128 (splatting scalars, spreading affine indices over the lanes). */
  #pushVector(e: Expr, compute = false): void {
    const held = this.#held.get(e) ?? "scalar";
    if (held === "vector" && (compute || !this.#vector.has(e)) && e.op !== "acc") {
      this.#vectorOp(e);
      return;
    }
    if (held === "vector" && this.#wide.has(e)) {
      // a float64 sum, rounded once: lanes 0-1 and 2-3 narrowed, then joined
      this.fn.get(this.#vectorLocal(e)).op("f32x4.demote_f64x2_zero");
      this.fn.get(this.#vectorHighLocal(e)).op("f32x4.demote_f64x2_zero");
      this.fn.shuffle(LOW_HALVES);
      return;
    }
    if (held === "vector") {
      this.fn.get(this.#vectorLocal(e));
      return;
    }
    this.#pushScalar(e);
    if (e.type === "f32") this.fn.op("f32x4.splat");
    else if (e.type === "bool") this.fn.op("i32x4.splat", "i32x4.neg"); // 0 / 1 to a 0 / -1 mask
    else this.fn.op("i32x4.splat");
    if (held === "affine") {
      const c = this.#coef.get(e)!;
      this.fn.v128([0, c, 2 * c, 3 * c], "i32").op("i32x4.add");
    }
  }

  /** Pushes the byte address of element `index` of the buffer that parameter `param` holds. */
  #address(param: number, pushIndex: () => void): void {
    this.fn.get(param);
    pushIndex();
    this.fn.i32(2).op("i32.shl", "i32.add");
  }

  /** Whether load `load`, at index `e` of input `slot`, reads inside its buffer. */
  #inBounds(load: Expr, e: Expr, slot: number): boolean {
    if (!this.#speculative.has(load)) return true;
    return e.min >= 0 && e.max < this.#program.kernel.inputs[slot].numel;
  }

  /** Clamps the index on the stack to [0, numel) of input `slot` (to 0 when it is empty). */
  #clamp(slot: number): void {
    const last = this.#program.kernel.inputs[slot].numel - 1;
    const t = this.#temp();
    // min(index, last), then max(that, 0)
    this.fn.set(t).get(t).i32(last).get(t).i32(last).op("i32.lt_s", "select");
    this.fn.set(t).get(t).i32(0).get(t).i32(0).op("i32.gt_s", "select");
  }

  #tempLocal = -1;
  #temp(): number {
    if (this.#tempLocal < 0) this.#tempLocal = this.fn.local("i32", "clamped");
    return this.#tempLocal;
  }

  /**
   * Computes `e` as a scalar (its operands named or constant). `#vectorOp` below is its lane
   * twin: the two switches stay parallel on purpose, one spelling of each op per form.
   */
  #scalarOp(e: Expr): void {
    const [a, b, c] = e.srcs;
    const kind = a !== undefined && a.type === "f32" ? "f32" : "i32";
    switch (e.op) {
      case "load": {
        const slot = e.arg as number;
        this.#address(this.#outputs + slot, () => {
          this.#pushScalar(a);
          if (!this.#inBounds(e, a, slot)) this.#clamp(slot);
        });
        this.fn.memory("f32.load", 2);
        return;
      }
      case "select":
        this.#pushScalar(b);
        this.#pushScalar(c);
        this.#pushScalar(a);
        this.fn.op("select");
        return;
      case "cast":
        this.#pushScalar(a);
        if (e.type === "f32" && a.type !== "f32") this.fn.op("f32.convert_i32_s");
        else if (e.type !== "f32" && a.type === "f32") this.fn.op("i32.trunc_sat_f32_s");
        return;
      case "neg":
        if (kind === "f32") {
          this.#pushScalar(a);
          this.fn.op("f32.neg");
        } else {
          this.fn.i32(0);
          this.#pushScalar(a);
          this.fn.op("i32.sub");
        }
        return;
      case "abs":
      case "sqrt":
      case "trunc":
        this.#pushScalar(a);
        this.fn.op(`f32.${e.op}` as Mnemonic);
        return;
      case "exp":
      case "log":
        // the vector function on lane 0
        this.#pushScalar(a);
        this.fn.op("f32x4.splat");
        this.#callMath(e.op);
        this.fn.lane("f32x4.extract_lane", 0);
        return;
      case "rsqrt":
        this.fn.f32(1);
        this.#pushScalar(a);
        this.fn.op("f32.sqrt", "f32.div");
        return;
      case "recip":
        this.fn.f32(1);
        this.#pushScalar(a);
        this.fn.op("f32.div");
        return;
      case "not":
        this.#pushScalar(a);
        this.fn.op("i32.eqz");
        return;
      case "max":
      case "min":
        if (kind === "i32") {
          // integers: a if a > b (max) or a < b (min), else b
          this.#pushScalar(a);
          this.#pushScalar(b);
          this.#pushScalar(a);
          this.#pushScalar(b);
          this.fn.op(e.op === "max" ? "i32.gt_s" : "i32.lt_s", "select");
          return;
        }
        break;
    }
    const op = SCALAR_BINARY[e.op]?.[kind];
    if (op === undefined) throw new Error(`wasm: no scalar form of ${e.op} on ${kind}`);
    this.#pushScalar(a);
    this.#pushScalar(b);
    this.fn.op(op);
  }

  /** Computes `e` in lanes (its operands named, constant or affine). */
  #vectorOp(e: Expr): void {
    const [a, b, c] = e.srcs;
    const kind = a !== undefined && a.type === "f32" ? "f32" : "i32";
    switch (e.op) {
      case "load": {
        const slot = e.arg as number;
        const inBounds = this.#inBounds(e, a, slot);
        if (this.#held.get(a) === "affine" && this.#coef.get(a) === 1 && inBounds) {
          this.#address(this.#outputs + slot, () => this.#pushScalar(a));
          this.fn.memory("v128.load", 2);
          return;
        }
        // a gather: lane by lane
        this.fn.v128([0, 0, 0, 0]);
        for (let lane = 0; lane < LANES; lane++) {
          this.#address(this.#outputs + slot, () => {
            this.#laneOf(a, lane);
            if (!inBounds) this.#clamp(slot);
          });
          this.fn.memory("f32.load", 2).lane("f32x4.replace_lane", lane);
        }
        return;
      }
      case "select":
        this.#pushVector(b);
        this.#pushVector(c);
        if (this.#held.get(a) === "vector") {
          this.#pushVector(a);
          this.fn.op("v128.bitselect");
        } else {
          this.#pushScalar(a);
          this.fn.selectV128();
        }
        return;
      case "cast":
        this.#pushVector(a);
        if (e.type === "f32" && a.type === "bool") this.fn.f32(1).op("f32x4.splat", "v128.and");
        else if (e.type === "f32" && a.type !== "f32") this.fn.op("f32x4.convert_i32x4_s");
        else if (e.type !== "f32" && a.type === "f32") this.fn.op("i32x4.trunc_sat_f32x4_s");
        return;
      case "neg":
      case "abs":
        this.#pushVector(a);
        this.fn.op(`${kind}x4.${e.op}` as Mnemonic);
        return;
      case "sqrt":
      case "trunc":
        this.#pushVector(a);
        this.fn.op(`f32x4.${e.op}` as Mnemonic);
        return;
      case "exp":
      case "log":
        this.#pushVector(a);
        this.#callMath(e.op);
        return;
      case "rsqrt":
      case "recip":
        this.fn.f32(1).op("f32x4.splat");
        this.#pushVector(a);
        if (e.op === "rsqrt") this.fn.op("f32x4.sqrt");
        this.fn.op("f32x4.div");
        return;
      case "not":
        this.#pushVector(a);
        this.fn.op("v128.not");
        return;
      case "tdiv":
      case "tmod":
        // no lane form: lane by lane
        this.fn.v128([0, 0, 0, 0], "i32");
        for (let lane = 0; lane < LANES; lane++) {
          this.#laneOf(a, lane);
          this.#laneOf(b, lane);
          this.fn.op(e.op === "tdiv" ? "i32.div_s" : "i32.rem_s").lane("i32x4.replace_lane", lane);
        }
        return;
    }
    const op = VECTOR_BINARY[e.op]?.[a.type === "bool" && e.op === "eq" ? "i32" : kind];
    if (op === undefined) throw new Error(`wasm: no lane form of ${e.op} on ${kind}`);
    this.#pushVector(a);
    this.#pushVector(b);
    this.fn.op(op);
  }

  /** Pushes lane `lane` of the index `e` as a scalar. */
  #laneOf(e: Expr, lane: number): void {
    const held = this.#held.get(e) ?? "scalar";
    if (held === "vector") {
      this.#pushVector(e);
      this.fn.lane("i32x4.extract_lane", lane);
      return;
    }
    this.#pushScalar(e);
    if (held === "affine" && lane > 0) this.fn.i32(lane * this.#coef.get(e)!).op("i32.add");
  }

  #store(output: number, index: Expr, value: Expr, vector: boolean): void {
    if (!vector) {
      this.#address(output, () => this.#pushScalar(index));
      this.#pushScalar(value);
      this.fn.memory("f32.store", 2);
      return;
    }
    if (this.#held.get(index) === "affine" && this.#coef.get(index) === 1) {
      this.#address(output, () => this.#pushScalar(index));
      this.#pushVector(value);
      this.fn.memory("v128.store", 2);
      return;
    }
    for (let lane = 0; lane < LANES; lane++) {
      this.#address(output, () => this.#laneOf(index, lane));
      this.#pushVector(value);
      this.fn.lane("f32x4.extract_lane", lane).memory("f32.store", 2);
    }
  }
}

/**
 * Loads that only the value operands of selects read (directly or through other values): the
 * program may not need them, Wasm computes them anyway. A load the program reads otherwise
 * (in a select's predicate, a reduction's bounds, or outside any select) is not speculative.
 */
function speculativeLoads(roots: readonly Expr[]): Set<Expr> {
  const certain = new Set<Expr>();
  const maybe: Expr[] = [];
  const stack = [...roots];
  while (stack.length > 0) {
    const e = stack.pop()!;
    if (certain.has(e)) continue;
    certain.add(e);
    if (e.op === "select") {
      stack.push(e.srcs[0]);
      maybe.push(e.srcs[1], e.srcs[2]);
    } else stack.push(...e.srcs);
  }
  const speculative = new Set<Expr>();
  const seen = new Set<Expr>();
  while (maybe.length > 0) {
    const e = maybe.pop()!;
    if (certain.has(e) || seen.has(e)) continue;
    seen.add(e);
    if (e.op === "load") speculative.add(e);
    maybe.push(...e.srcs);
  }
  return speculative;
}

/**
 * The float32 sums over more than WIDE_SUM_MIN_TRIPS terms (accumulated in float64). A sum
 * whose term is itself such a sum is one sum over both loops (a sum over several axes): every
 * sum of the chain is wide when the product of their trips is above the limit (a sum of [2, 64]
 * over both axes accumulated 128 terms in float32 steps). Shared by the JavaScript printer,
 * whose kernels beside Wasm ones round the other sums at each step as these do.
 */
export function wideSums(roots: readonly Expr[]): Set<Expr> {
  const sums = new Set<Expr>();
  for (const e of exprsInOrder(roots)) {
    if (e.op !== "reduce" || e.type !== "f32") continue;
    const { op, acc } = e.arg as ReduceArg;
    const combine = e.srcs[0];
    if (op === "sum" && combine.op === "add" && combine.srcs.includes(acc)) sums.add(e);
  }
  const trips = (e: Expr) => ((e.arg as ReduceArg).v.arg as VarArg).extent;
  const inner = (e: Expr): Expr | undefined => {
    const term = reduceBody(e);
    return sums.has(term) ? term : undefined;
  };
  const wide = new Set<Expr>();
  const nested = new Set<Expr>();
  for (const e of sums) {
    const term = inner(e);
    if (term !== undefined) nested.add(term);
  }
  for (const outer of sums) {
    if (nested.has(outer)) continue; // counted from the outermost sum of its chain
    const chain: Expr[] = [];
    for (let e: Expr | undefined = outer; e !== undefined; e = inner(e)) chain.push(e);
    const total = chain.reduce((n, e) => n * trips(e), 1);
    if (total > WIDE_SUM_MIN_TRIPS) { for (const e of chain) wide.add(e); }
  }
  return wide;
}

/**
 * Rule SPLIT_WHOLE_VECTORS: where the loop split is the vectorized one, [start, end) counts
 * its groups of four elements (the last group may be short), so a thread's part never starts
 * inside a group: every element is computed by the same code as on one thread.
 *
 * Rule SPLIT_TWO_AXES: the output loops [start, end) counts rows of. The first alone, or the
 * first two when the second is not the vectorized loop: then threads split the rows of both
 * (2 x 96 channels of LocalResponseNorm on (2, 96, 27, 27), where 2 rows let a thread that
 * starts late or is preempted hold up the call for half the kernel).
 */
function splitLoops(program: Program, vectorLoop: LoopStmt | null): LoopStmt[] {
  const { outVars } = program.kernel;
  const outputLoop = (stmts: readonly Stmt[], v: Expr) =>
    stmts.find((s): s is LoopStmt => s.kind === "loop" && s.v === v);
  if (outVars.length === 0) return [];
  const first = outputLoop(program.body, outVars[0]);
  if (first === undefined) return [];
  if (first === vectorLoop || outVars.length === 1) return [first];
  const second = outputLoop(first.body, outVars[1]);
  return second === undefined || second === vectorLoop ? [first] : [first, second];
}

/**
 * The loop to vectorize: the innermost output loop, if it has four elements or more, every op
 * in it has a lane form, and no loop inside it has bounds depending on its variable.
 */
function vectorizableLoop(program: Program): LoopStmt | null {
  const { kernel } = program;
  if (kernel.outVars.length === 0) return null;
  const v = kernel.outVars[kernel.outVars.length - 1];
  if ((v.arg as VarArg).extent < LANES) return null;
  let found: LoopStmt | null = null;
  const find = (stmts: readonly Stmt[]) => {
    for (const s of stmts) {
      if (s.kind !== "loop") continue;
      if (s.v === v) found = s;
      else find(s.body);
    }
  };
  find(program.body);
  if (found === null) return null;
  const loop: LoopStmt = found;
  let ok = true;
  const check = (stmts: readonly Stmt[]) => {
    for (const s of stmts) {
      if (s.kind !== "loop") continue;
      const bounds = exprsInOrder([s.lo, s.hi]);
      if (bounds.includes(v)) ok = false;
      check(s.body);
    }
  };
  check(loop.body);
  return ok ? loop : null;
}

/** A kernel's Wasm module. */
export interface WasmModule {
  /** The module in the binary format. */
  readonly bytes: Uint8Array;
  /** What, with the bytes, determines the text: the header comment and the names of locals. */
  readonly names: string;
  /** The text form, printed when asked for (most kernels are run, never read). */
  readonly text: () => string;
  /** How many rows the function's [start, end) counts over. */
  readonly splitExtent: number;
}

/** The Wasm module of `program`, or null past an engine limit (FUNCTION_LIMITS). */
export function emitWasm(program: Program, sharedMemory: boolean): WasmModule | null {
  const emitter = new KernelEmitter(program);
  emitter.emit();
  if (![emitter.fn, ...emitter.math].every((fn) => fn.withinLimits)) return null;
  const module = new ModuleBuilder(sharedMemory);
  module.add(emitter.fn, true);
  for (const fn of emitter.math) module.add(fn);
  const header = program.kernel.comment.split("\n").map((l) => `;; ${l}`).join("\n");
  return {
    bytes: module.toBytes(),
    names: `${header}\n${module.names()}`,
    text: () => `${header}\n${module.toText()}\n`,
    splitExtent: emitter.splitExtent,
  };
}

/**
 * The guarded windows (short reductions unrolled with bounds) inside the vectorized loop `s`
 * whose bounds do not change along it: neither its variable nor any loop inside it reaches
 * them, so whether they are whole is known before the loop (rule WHOLE_WINDOWS).
 */
function invariantWindows(s: LoopStmt): LoopStmt[] {
  const loops: LoopStmt[] = [];
  const collect = (stmts: readonly Stmt[]) => {
    for (const x of stmts) {
      if (x.kind === "loop") {
        loops.push(x);
        collect(x.body);
      }
    }
  };
  collect(s.body);
  const vars = [s.v, ...loops.map((l) => l.v)];
  return loops.filter((l) => {
    const extent = (l.v.arg as VarArg).extent;
    if (!unrollable(l, UNROLL_MAX_TRIPS) || (l.lo.isConst(0) && l.hi.isConst(extent))) return false;
    return !vars.some((v) => mentions(l.lo, v) || mentions(l.hi, v));
  });
}
