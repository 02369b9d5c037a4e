// The shared C-style printer: everything about turning a kernel's expression DAG into
// statements that does not depend on the target language. Subclasses (js.ts, wgsl.ts) only say
// how a constant, an operator, a declaration, a loop and the kernel's frame are spelled.
// Modeled on tinygrad's CStyleLanguage, whose WGSL renderer is a thin subclass.
//
// Placement rules (loop-invariant code motion falls out of them):
// - every expression lives in the innermost scope among the variables it mentions: the output
//   loop of its deepest output variable, or the loop of the reduction that binds a variable;
// - an expression that mentions no variable is computed once, before any loop;
// - a reduction lives where its body's free variables (minus its own) and its bounds allow, and
//   opens a loop scope of its own; nested reductions nest loops;
// - constants and variables are printed in place; every other expression is one named `const`
//   (or `let`) statement, emitted after the statements it reads.

import type { Expr, Kernel, ReduceArg, ScalarType, VarArg } from "./kernel.ts";
import { reduceIdentity } from "./kernel.ts";

interface Scope {
  readonly depth: number;
  readonly items: Expr[];
}

/** A printer for one language; subclasses fill in the spelling. */
export abstract class CStylePrinter {
  /** Whether output axes are loops (CPU) or one index per invocation (GPU, all at depth 0). */
  protected abstract readonly outputLoops: boolean;

  /** A literal of `type`. */
  protected abstract literal(value: number, type: ScalarType): string;
  /** An operation on already-named operands (`args`), producing `e`. */
  protected abstract operation(e: Expr, args: readonly string[]): string;
  /** A statement declaring `name` as `text` of `type`. */
  protected abstract declare(
    name: string,
    type: ScalarType,
    text: string,
    mutable: boolean,
  ): string;
  /** `for (v = lo; v < hi; v++) {`. */
  protected abstract loopHeader(v: string, lo: string, hi: string): string;
  /** `acc = acc (op) value;`. */
  protected abstract accumulate(
    op: ReduceArg["op"],
    acc: string,
    value: string,
    type: ScalarType,
  ): string;
  /** The statement storing `value` at `index` of the output. */
  protected abstract store(index: string, value: string): string;
  /** The whole kernel around the body lines (already indented one level). */
  protected abstract frame(kernel: Kernel, body: string[]): string;

  private names = new Map<Expr, string>();
  private scopeOf = new Map<Expr, Scope>();
  private loopScopes = new Map<Expr, Scope>();
  private counters = new Map<string, number>();

  /** The source of `kernel`. */
  print(kernel: Kernel): string {
    this.names = new Map();
    this.scopeOf = new Map();
    this.loopScopes = new Map();
    this.counters = new Map();
    const levels: Scope[] = [];
    const depthCount = this.outputLoops ? kernel.outVars.length + 1 : 1;
    for (let i = 0; i < depthCount; i++) levels.push({ depth: i, items: [] });
    const varScope = new Map<Expr, Scope>();
    kernel.outVars.forEach((v, i) => varScope.set(v, levels[this.outputLoops ? i + 1 : 0]));

    const free = new Map<Expr, Set<Expr>>();
    const freeVars = (e: Expr): Set<Expr> => {
      let set = free.get(e);
      if (set) return set;
      set = new Set();
      if (e.op === "var") set.add(e);
      for (const s of e.srcs) for (const v of freeVars(s)) set.add(v);
      if (e.op === "reduce") set.delete((e.arg as ReduceArg).v);
      free.set(e, set);
      return set;
    };
    const deepest = (e: Expr): Scope => {
      let scope = levels[0];
      for (const v of freeVars(e)) {
        const s = varScope.get(v)!;
        if (s.depth > scope.depth) scope = s;
      }
      return scope;
    };
    const visited = new Set<Expr>();
    const visit = (e: Expr): void => {
      if (visited.has(e) || e.op === "const" || e.op === "var") return;
      visited.add(e);
      const scope = deepest(e);
      if (e.op === "reduce") {
        visit(e.srcs[1]);
        visit(e.srcs[2]);
        const loop: Scope = { depth: scope.depth + 1, items: [] };
        this.loopScopes.set(e, loop);
        varScope.set((e.arg as ReduceArg).v, loop);
        visit(e.srcs[0]);
      } else {
        for (const s of e.srcs) visit(s);
      }
      this.scopeOf.set(e, scope);
      scope.items.push(e);
    };
    visit(kernel.outIndex);
    visit(kernel.value);

    const body: string[] = [];
    const emitScope = (scope: Scope, indent: string) => {
      for (const e of scope.items) {
        if (e.op === "reduce") this.emitReduce(e, indent, body, emitScope);
        else {body.push(
            indent + this.declare(
              this.nameOf(e),
              e.type,
              this.operation(e, e.srcs.map((s) => this.ref(s))),
              false,
            ),
          );}
      }
    };
    const emitLevel = (i: number, indent: string) => {
      emitScope(levels[i], indent);
      if (i + 1 < levels.length) {
        const v = kernel.outVars[i];
        body.push(
          indent +
            this.loopHeader(
              this.ref(v),
              this.literal(0, "i32"),
              this.literal((v.arg as VarArg).extent, "i32"),
            ),
        );
        emitLevel(i + 1, indent + "  ");
        body.push(indent + "}");
      } else {
        body.push(indent + this.store(this.ref(kernel.outIndex), this.ref(kernel.value)));
      }
    };
    emitLevel(0, "  ");
    return this.frame(kernel, body);
  }

  private emitReduce(
    e: Expr,
    indent: string,
    body: string[],
    emitScope: (s: Scope, indent: string) => void,
  ): void {
    const { op, v } = e.arg as ReduceArg;
    const acc = this.nameOf(e);
    const vName = this.ref(v);
    body.push(
      indent + this.declare(acc, e.type, this.literal(reduceIdentity(op, e.type), e.type), true),
    );
    body.push(indent + this.loopHeader(vName, this.ref(e.srcs[1]), this.ref(e.srcs[2])));
    emitScope(this.loopScopes.get(e)!, indent + "  ");
    body.push(indent + "  " + this.accumulate(op, acc, this.ref(e.srcs[0]), e.type));
    body.push(indent + "}");
  }

  /** How an expression is referred to: a literal, a variable name or a statement's name. */
  protected ref(e: Expr): string {
    if (e.op === "const") return this.literal(e.value, e.type);
    if (e.op === "var") return (e.arg as VarArg).name;
    return this.nameOf(e);
  }

  private nameOf(e: Expr): string {
    let name = this.names.get(e);
    if (name === undefined) {
      const prefix = e.op === "reduce"
        ? "acc"
        : e.op === "load"
        ? `in${e.arg}_`
        : e.type === "bool"
        ? "ok"
        : e.type === "i32" && e.op !== "cast"
        ? "idx" // not "i": `i32` would shadow WGSL's type
        : "v";
      const n = this.counters.get(prefix) ?? 0;
      this.counters.set(prefix, n + 1);
      name = `${prefix}${n}`;
      this.names.set(e, name);
    }
    return name;
  }
}
