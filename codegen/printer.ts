// The shared C-style printer: a linearized program (linearize.ts) as source text. It walks the
// statements and asks its subclass how each is spelled: a literal, an operation on named
// operands, a declaration, a loop header, the kernel's frame. The JavaScript and WGSL backends
// (js.ts, wgsl.ts) are thin subclasses. Modeled on tinygrad's CStyleLanguage, whose WGSL
// renderer is a small subclass of it.

import { type Expr, outputName, type ReduceArg, type ScalarType, type VarArg } from "./kernel.ts";
import { type LoopStmt, type Program, type Stmt, unrollable } from "./linearize.ts";

/**
 * The shortest decimal that reads back as the float32 `f` (finite, already rounded): how a
 * float32 constant is spelled, `0.0001` rather than `0.00009999999747378752`.
 */
export function shortestF32(f: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f && Math.abs(candidate) <= F32_MAX) return candidate;
  }
  return f;
}

/** The largest finite float32. */
const F32_MAX = 3.4028234663852886e38;

/** A printer for one language; subclasses fill in the spelling. */
export abstract class CStylePrinter {
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
  /** The opening line of a loop (`for (v = lo; v < hi; v++) {`). */
  protected abstract loopHeader(loop: LoopStmt, v: string, lo: string, hi: string): string;
  /** The statement storing `value` at `index` of the buffer named `output`. */
  protected abstract store(output: string, index: string, value: string): string;
  /** The whole kernel around the body lines (already indented one level). */
  protected abstract frame(program: Program, body: string[]): string;

  /**
   * Reductions of at most this many trips (a window) are printed unrolled: one copy of the body
   * per possible trip, each under a test of the loop's bounds. 0 prints every loop as a loop.
   */
  protected readonly unrollMaxTrips: number = 0;

  /** The program being printed. */
  protected program!: Program;

  /** The source of `program`. */
  print(program: Program): string {
    this.program = program;
    const body: string[] = [];
    this.emit(program.body, "  ", body);
    return this.frame(program, body);
  }

  private emit(stmts: readonly Stmt[], indent: string, out: string[]): void {
    for (const s of stmts) {
      switch (s.kind) {
        case "let":
          out.push(
            indent + this.declare(this.ref(s.expr), s.expr.type, this.spell(s.expr), false),
          );
          break;
        case "acc":
          out.push(
            indent +
              this.declare(
                this.ref(s.reduce),
                s.reduce.type,
                this.identity(s.identity, s.reduce.type),
                true,
              ),
          );
          break;
        case "loop": {
          if (unrollable(s, this.unrollMaxTrips)) {
            this.emitUnrolled(s, indent, out);
          } else {
            out.push(indent + this.loopHeader(s, this.ref(s.v), this.ref(s.lo), this.ref(s.hi)));
            this.emit(s.body, indent + "  ", out);
            out.push(indent + "}");
          }
          const last = s.body[s.body.length - 1];
          if (s.role === "reduce" && last?.kind === "update") {
            out.push(...this.afterReduce(last.reduce).map((line) => indent + line));
          }
          break;
        }
        case "update":
          out.push(indent + this.update(s.reduce));
          break;
        case "combine":
          out.push(...this.combine(s.reduce).map((line) => indent + line));
          break;
        case "store":
          out.push(
            indent +
              this.store(
                outputName(s.output, this.program.kernel.outputs.length),
                this.ref(s.index),
                this.ref(s.value),
              ),
          );
          break;
      }
    }
  }

  /**
   * A short reduction without its loop: trip `k` is `if (lo <= k && k < hi) { v = k; body }`.
   * The bounds are uniform across a kernel's lanes, so the tests cost little, and the copies let
   * the compiler schedule the loads of a window together (1.6x on LocalResponseNorm in WGSL).
   */
  private emitUnrolled(loop: LoopStmt, indent: string, out: string[]): void {
    const v = this.ref(loop.v);
    const [lo, hi] = [this.ref(loop.lo), this.ref(loop.hi)];
    for (let k = 0; k < (loop.v.arg as VarArg).extent; k++) {
      const trip = this.literal(k, loop.v.type);
      out.push(`${indent}if (${lo} <= ${trip} && ${trip} < ${hi}) {`);
      out.push(`${indent}  ${this.declare(v, loop.v.type, trip, false)}`);
      this.emit(loop.body, indent + "  ", out);
      out.push(`${indent}}`);
    }
  }

  /** `e`'s operation spelled on its operands' names. */
  protected spell(e: Expr): string {
    return this.operation(e, e.srcs.map((s) => this.ref(s)));
  }

  /** The statement ending a reduction's loop body: `acc = combine`. */
  protected update(reduce: Expr): string {
    return `${this.ref(reduce)} = ${this.spell(reduce.srcs[0])};`;
  }

  /** Lines after a reduction's loop, once its accumulator holds the result (none here). */
  protected afterReduce(_reduce: Expr): string[] {
    return [];
  }

  /** The lines combining lanes' accumulators (workgroup mode only). */
  protected combine(_reduce: Expr): string[] {
    throw new Error(`${this.constructor.name}: no workgroup launch mode`);
  }

  /**
   * `e` as one inline expression, with the expressions of `given` spelled as given (for the
   * few places that need an expression tree rather than statements).
   */
  protected inline(e: Expr, given: ReadonlyMap<Expr, string>): string {
    const text = given.get(e);
    if (text !== undefined) return text;
    // leaves are spelled as everywhere (a loop variable by its name: a max over a padded axis
    // of 16,385 to 65,536 elements on webgpu failed, "no spelling for op var")
    if (e.op === "const" || e.op === "var") return this.ref(e);
    return `(${this.operation(e, e.srcs.map((s) => this.inline(s, given)))})`;
  }

  /** How an expression is referred to: a literal or a name. */
  protected ref(e: Expr): string {
    if (e.op === "const") return this.literal(e.value, e.type);
    if (e.op === "var") return (e.arg as VarArg).name;
    const name = this.program.names.get(e);
    if (name === undefined) throw new Error(`printer: ${e.op} expression has no name`);
    return name;
  }

  /** The value a reduction's accumulator starts from (its identity), spelled. */
  protected identity(value: number, type: ScalarType): string {
    return this.literal(value, type);
  }

  /** The accumulator of a reduction. */
  protected accOf(reduce: Expr): Expr {
    return (reduce.arg as ReduceArg).acc;
  }
}
