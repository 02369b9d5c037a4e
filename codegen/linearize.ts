// Linearize: a kernel's expression DAG becomes a small structured program of statements, the
// one form every backend walks (the C-style printers for JavaScript and WGSL, the Wasm
// emitter). Placement, hoisting and naming happen here, once. After tinygrad's linearizer,
// which turns a kernel's graph into the list of uops its renderers print.
//
// Placement rules (loop-invariant code motion falls out of them):
// - every expression lives in the innermost scope among the variables it mentions: the output
//   loop of its deepest output variable, or the loop of the reduction that binds a variable;
// - an expression that mentions no variable is computed once, before any loop;
// - a reduction lives where its bounds and its body's free variables (minus its own) allow,
//   and opens a loop scope of its own; nested reductions nest loops;
// - constants, variables and accumulators are referred to in place; every other expression is
//   one named statement, emitted after the statements it reads. A reduction's combine
//   expression is not a statement: the loop ends by assigning it to the accumulator.
//
// Launch modes say who runs which part of the index space:
// - `loops`: one call runs everything; each output axis is a loop (cpu targets);
// - `grid`: one invocation per output element; the output variables come from the invocation
//   index and are all in the outermost scope (GPU targets);
// - `workgroup`: one workgroup per output element; the reductions of the outermost scope are
//   split over the workgroup's lanes (each lane takes every `lanes`-th iteration) and then
//   combined across lanes, so long reductions run in parallel.

import {
  type Expr,
  exprsInOrder,
  type Kernel,
  kernelRoots,
  type ReduceArg,
  reduceIdentity,
  type VarArg,
} from "./kernel.ts";

/** Who runs which part of the index space (see the file header). */
export type LaunchMode = "loops" | "grid" | "workgroup";

/** `const name = expr;`: one operation on named operands. */
export interface LetStmt {
  readonly kind: "let";
  readonly expr: Expr;
}

/** Declares the accumulator of `reduce` and sets it to the reduction's identity. */
export interface AccStmt {
  readonly kind: "acc";
  readonly reduce: Expr;
  /** The identity the accumulator starts from. */
  readonly identity: number;
}

/**
 * `for v in [lo, hi)`. An `output` loop walks an output axis, a `reduce` loop a reduction; a
 * `lanes` loop is a reduction split over a workgroup: lane l takes v = lo + l, lo + l + lanes...
 */
export interface LoopStmt {
  readonly kind: "loop";
  readonly role: "output" | "reduce" | "lanes";
  readonly v: Expr;
  readonly lo: Expr;
  readonly hi: Expr;
  readonly body: readonly Stmt[];
}

/**
 * Whether a printer may write `loop` unrolled (a copy of its body per trip): a reduction of at
 * most `maxTrips` trips with no loop inside. Unrolling nested short reductions multiplied the
 * copies: the sum of a (7, 7, 7, 7, 7, 7) tensor printed 2.5 million lines (18 s to compile on
 * the cpu; on webgpu a stack overflow), where unrolling the innermost only keeps the windows
 * unrolling is for.
 */
export function unrollable(loop: LoopStmt, maxTrips: number): boolean {
  return loop.role === "reduce" && (loop.v.arg as VarArg).extent <= maxTrips &&
    !loop.body.some((s) => s.kind === "loop");
}

/** The last statement of a reduction's loop: `acc = combine`. */
export interface UpdateStmt {
  readonly kind: "update";
  readonly reduce: Expr;
}

/** After a `lanes` loop: combines every lane's accumulator into each lane's accumulator. */
export interface CombineStmt {
  readonly kind: "combine";
  readonly reduce: Expr;
}

/** Stores `value` at `index` of output `output` (in `workgroup` mode, lane 0 stores). */
export interface StoreStmt {
  readonly kind: "store";
  /** Which of the kernel's outputs. */
  readonly output: number;
  readonly index: Expr;
  readonly value: Expr;
}

/** One statement of a program. */
export type Stmt = LetStmt | AccStmt | LoopStmt | UpdateStmt | CombineStmt | StoreStmt;

/** A kernel as statements, with the names every backend uses for its values. */
export interface Program {
  readonly kernel: Kernel;
  readonly mode: LaunchMode;
  /** Lanes per workgroup in `workgroup` mode (1 otherwise). */
  readonly lanes: number;
  readonly body: readonly Stmt[];
  /** The name of every statement's value (an accumulator has its reduction's name). */
  readonly names: ReadonlyMap<Expr, string>;
}

interface Scope {
  readonly depth: number;
  readonly items: Expr[];
}

/** The free loop variables of every expression below `roots`. */
function freeVariables(roots: readonly Expr[]): Map<Expr, ReadonlySet<Expr>> {
  const free = new Map<Expr, ReadonlySet<Expr>>();
  const none: ReadonlySet<Expr> = new Set();
  for (const e of exprsInOrder(roots)) {
    if (e.op === "var") free.set(e, new Set([e]));
    else if (e.op === "acc") free.set(e, new Set([e.arg as Expr]));
    else if (e.srcs.length === 0) free.set(e, none);
    else if (e.srcs.length === 1 && e.op !== "reduce") free.set(e, free.get(e.srcs[0])!);
    else {
      const set = new Set<Expr>();
      for (const s of e.srcs) for (const v of free.get(s)!) set.add(v);
      if (e.op === "reduce") set.delete((e.arg as ReduceArg).v);
      free.set(e, set);
    }
  }
  return free;
}

/** The statements of `kernel` in launch mode `mode` (`lanes` per workgroup in workgroup mode). */
export function linearize(kernel: Kernel, mode: LaunchMode, lanes = 1): Program {
  const loops = mode === "loops";
  const levels: Scope[] = [];
  for (let i = 0; i < (loops ? kernel.outVars.length + 1 : 1); i++) {
    levels.push({ depth: i, items: [] });
  }
  const varScope = new Map<Expr, Scope>();
  kernel.outVars.forEach((v, i) => varScope.set(v, levels[loops ? i + 1 : 0]));
  const loopScopes = new Map<Expr, Scope>();
  const roots = kernelRoots(kernel);
  const free = freeVariables(roots);

  const deepest = (e: Expr): Scope => {
    let scope = levels[0];
    for (const v of free.get(e)!) {
      const s = varScope.get(v)!;
      if (s.depth > scope.depth) scope = s;
    }
    return scope;
  };
  // Placement, as a depth-first walk with an explicit stack: `enter` picks the scope (the
  // variables an expression mentions are all bound by then) and queues the sources; a
  // reduction first places its bounds, then opens its loop scope, then places its body.
  type Task = { e: Expr; phase: "enter" | "body" | "place"; scope?: Scope; };
  const visited = new Set<Expr>();
  const stack: Task[] = roots.map((e): Task => ({ e, phase: "enter" }));
  const isLeaf = (e: Expr) => e.op === "const" || e.op === "var" || e.op === "acc";
  while (stack.length > 0) {
    const task = stack.pop()!;
    const { e } = task;
    if (task.phase === "enter") {
      if (visited.has(e) || isLeaf(e)) continue;
      visited.add(e);
      const scope = deepest(e);
      if (e.op === "reduce") {
        stack.push({ e, phase: "body", scope });
        stack.push({ e: e.srcs[2], phase: "enter" }, { e: e.srcs[1], phase: "enter" });
      } else {
        stack.push({ e, phase: "place", scope });
        for (let i = e.srcs.length - 1; i >= 0; i--) stack.push({ e: e.srcs[i], phase: "enter" });
      }
    } else if (task.phase === "body") {
      const loop: Scope = { depth: task.scope!.depth + 1, items: [] };
      loopScopes.set(e, loop);
      varScope.set((e.arg as ReduceArg).v, loop);
      stack.push({ e, phase: "place", scope: task.scope });
      // the combine expression's operands (not the combine itself: the update assigns it)
      const combine = e.srcs[0];
      for (let i = combine.srcs.length - 1; i >= 0; i--) {
        stack.push({ e: combine.srcs[i], phase: "enter" });
      }
    } else {
      task.scope!.items.push(e);
    }
  }

  const names = new Map<Expr, string>();
  const counters = new Map<string, number>();
  const name = (e: Expr) => {
    const prefix = e.op === "reduce"
      ? "acc"
      : e.op === "load"
      ? `in${e.arg}_`
      : e.type === "bool"
      ? "ok"
      : e.type === "index"
      ? "idx" // not "i": `i32` would shadow WGSL's type
      : "v";
    const n = counters.get(prefix) ?? 0;
    counters.set(prefix, n + 1);
    names.set(e, `${prefix}${n}`);
    if (e.op === "reduce") names.set((e.arg as ReduceArg).acc, `${prefix}${n}`);
  };

  // Emission: names are given in statement order, so equal kernels print equal text.
  const emitScope = (scope: Scope, outermost: boolean): Stmt[] => {
    const stmts: Stmt[] = [];
    for (const e of scope.items) {
      name(e);
      if (e.op !== "reduce") {
        stmts.push({ kind: "let", expr: e });
        continue;
      }
      const { op, v } = e.arg as ReduceArg;
      const split = mode === "workgroup" && outermost;
      stmts.push({ kind: "acc", reduce: e, identity: reduceIdentity(op, e.type) });
      const body = [
        ...emitScope(loopScopes.get(e)!, false),
        { kind: "update", reduce: e } as const,
      ];
      stmts.push({
        kind: "loop",
        role: split ? "lanes" : "reduce",
        v,
        lo: e.srcs[1],
        hi: e.srcs[2],
        body,
      });
      if (split) stmts.push({ kind: "combine", reduce: e });
    }
    return stmts;
  };
  const emitLevel = (i: number): Stmt[] => {
    const stmts = emitScope(levels[i], i === 0);
    if (i + 1 < levels.length) {
      const v = kernel.outVars[i];
      const hi = kernel.builder.int((v.arg as VarArg).extent);
      stmts.push({
        kind: "loop",
        role: "output",
        v,
        lo: kernel.builder.int(0),
        hi,
        body: emitLevel(i + 1),
      });
    } else {
      kernel.outputs.forEach(({ value }, output) => {
        stmts.push({ kind: "store", output, index: kernel.outIndex, value });
      });
    }
    return stmts;
  };
  const body = emitLevel(0);
  return { kernel, mode, lanes: mode === "workgroup" ? lanes : 1, body, names };
}

/**
 * Loop iterations one call (`loops`), invocation (`grid`) or lane (`workgroup`) runs at most:
 * over every loop, the product of the trip counts of the loops around it and its own.
 */
export function loopWork(program: Program): number {
  const trips = (loop: LoopStmt) => {
    const n = Math.max(0, loop.hi.max - loop.lo.min);
    return loop.role === "lanes" ? Math.ceil(n / program.lanes) : n;
  };
  let total = 0;
  const stack: [readonly Stmt[], number][] = [[program.body, 1]];
  while (stack.length > 0) {
    const [stmts, outer] = stack.pop()!;
    for (const s of stmts) {
      if (s.kind !== "loop") continue;
      const n = outer * trips(s);
      total += n;
      stack.push([s.body, n]);
    }
  }
  return total;
}
