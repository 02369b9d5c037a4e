// nn.Module: the base of layers, after Lucid's (and PyTorch's) Module. Children and parameters
// are found by looking at the module's own fields (and the elements of array fields): a Module
// field is a child, a Tensor field that requires grad is a parameter, any other Tensor field is
// state (a buffer).

import { Tensor } from "../tensor.ts";
import { fail } from "../validate.ts";

const inspect = Symbol.for("Deno.customInspect");

/**
 * A module's fields by name, with the elements of array fields (nested too) as `name.0`,
 * `name.1`... (torch's ModuleList and ParameterList naming): `layers = [new A(), new B()]` are
 * children, which an optimizer built from `parameters()` would otherwise never see.
 */
function* fieldsOf(m: Module): Generator<[string, unknown]> {
  const walk = function* (
    name: string,
    value: unknown,
    seen: Set<unknown>,
  ): Generator<[string, unknown]> {
    if (!Array.isArray(value)) {
      yield [name, value];
      return;
    }
    if (seen.has(value)) return; // an array holding itself
    seen.add(value);
    // an array of numbers (a shape, a table) holds no fields: not walked element by element
    const holds = (v: unknown) => v instanceof Module || v instanceof Tensor || Array.isArray(v);
    if (!value.some(holds)) return;
    for (let i = 0; i < value.length; i++) yield* walk(`${name}.${i}`, value[i], seen);
  };
  for (const [name, value] of Object.entries(m)) yield* walk(name, value, new Set());
}

/**
 * The base class of layers. Subclasses implement `forward` and may override `extraRepr`.
 * Fields are found by looking: a Module field is a child, a Tensor field that requires grad a
 * parameter, any other Tensor field state; the elements of an array field count as fields
 * named `field.0`, `field.1`... (`layers = [new A(), new B()]` are two children).
 *
 * @example
 * ```ts
 * import { nn, optim, randn, type Tensor } from "@lucid/nn";
 * class Scale extends nn.Module {
 *   weight = randn([96, 1, 1], { requiresGrad: true });
 *   norm = new nn.LocalResponseNorm(5);
 *   forward(x: Tensor): Tensor {
 *     return this.norm.forward(x).mul(this.weight);
 *   }
 * }
 * const model = new Scale();
 * console.log([...model.namedParameters()].map(([name]) => name)); // [ "weight" ]
 * const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
 * model.forward(randn(2, 96, 27, 27)).square().mean().backward();
 * opt.step();
 * ```
 */
export abstract class Module {
  /** Whether the module is in training mode (see `train` and `eval`). */
  training = true;

  /** Computes the module's output. */
  abstract forward(...inputs: Tensor[]): Tensor;

  /** Direct child modules with their field names. */
  *namedChildren(): Generator<[string, Module]> {
    for (const [name, value] of fieldsOf(this)) {
      if (value instanceof Module) yield [name, value];
    }
  }

  /** Direct child modules. */
  *children(): Generator<Module> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /**
   * This module and every module below it, depth first, each once: a child shared under two
   * names, or a back-reference (`child.owner = parent`), is not walked again.
   */
  *modules(): Generator<Module> {
    const seen = new Set<Module>();
    const walk = function* (m: Module): Generator<Module> {
      if (seen.has(m)) return;
      seen.add(m);
      yield m;
      for (const child of m.children()) yield* walk(child);
    };
    yield* walk(this);
  }

  /**
   * Parameters (tensors requiring grad) of this module and its children, with dotted names;
   * a tensor two of them share comes once, under its first name (as torch's does: an optimizer
   * given it twice refuses it).
   */
  *namedParameters(prefix = ""): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    const walked = new Set<Module>(); // a module reached again (shared, or a cycle) adds nothing
    const walk = function* (m: Module, at: string): Generator<[string, Tensor]> {
      if (walked.has(m)) return;
      walked.add(m);
      for (const [name, value] of fieldsOf(m)) {
        if (value instanceof Tensor && value.requiresGrad && !seen.has(value)) {
          seen.add(value);
          yield [at + name, value];
        }
      }
      for (const [name, child] of m.namedChildren()) yield* walk(child, `${at}${name}.`);
    };
    yield* walk(this, prefix);
  }

  /** Parameters of this module and its children. */
  *parameters(): Generator<Tensor> {
    for (const [, p] of this.namedParameters()) yield p;
  }

  /**
   * Every tensor of the module tree (parameters and state) by dotted name: a child shared under
   * two names is listed under each (as torch's is); a back-reference to a module above is not
   * followed.
   */
  stateDict(): Record<string, Tensor> {
    const state: Record<string, Tensor> = {};
    const above = new Set<Module>();
    const walk = (m: Module, prefix: string) => {
      if (above.has(m)) return;
      above.add(m);
      for (const [name, value] of fieldsOf(m)) {
        if (value instanceof Tensor) state[prefix + name] = value;
      }
      for (const [name, child] of m.namedChildren()) walk(child, `${prefix}${name}.`);
      above.delete(m);
    };
    walk(this, "");
    return state;
  }

  /** Sets training mode on this module and its children; returns this module. */
  train(mode = true): this {
    if (typeof mode !== "boolean") {
      fail(`${this.constructor.name}.train`, "mode must be a boolean", mode);
    }
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Sets evaluation mode (`train(false)`); returns this module. */
  eval(): this {
    return this.train(false);
  }

  /** Clears the gradients of every parameter. */
  zeroGrad(): void {
    // each as Tensor.zeroGrad (setting `grad` directly skipped tidy's and jit's bookkeeping)
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** The text inside the parentheses of `toString()`; empty by default. */
  extraRepr(): string {
    return "";
  }

  /**
   * `Name(extra)`, or the multi-line `(name): Child(...)` form when there are children or the
   * extra text has several lines (torch's layout). A back-reference to a module above prints
   * as `Name(...)`.
   */
  toString(): string {
    return this.#describe(new Set());
  }

  #describe(above: Set<Module>): string {
    const name = this.constructor.name || "Module";
    if (above.has(this)) return `${name}(...)`;
    const children = [...this.namedChildren()];
    const extra = this.extraRepr();
    if (children.length === 0 && !extra.includes("\n")) return `${name}(${extra})`;
    above.add(this);
    const indent = (text: string) => text.split("\n").join("\n  ");
    const lines = [`${name}(`];
    if (extra) lines.push(`  ${indent(extra)}`);
    for (const [childName, child] of children) {
      lines.push(`  (${childName}): ${indent(child.#describe(above))}`);
    }
    lines.push(")");
    above.delete(this);
    return lines.join("\n");
  }

  /** @ignore Deno's inspect shows `toString()`. */
  [inspect](): string {
    return this.toString();
  }
}
