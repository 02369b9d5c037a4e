// nn.Module: the base of layers, after Lucid's (and PyTorch's) Module. Children and parameters
// are found by looking at the module's own fields (and the elements of array fields): a Module
// field is a child, a Tensor field that requires grad is a parameter, any other Tensor field is
// state (a buffer).

import { isTensor, type Tensor } from "../tensor.ts";
import { fail } from "../validate.ts";
import { moduleClassName } from "./names.ts";

const inspect = Symbol.for("Deno.customInspect");

/**
 * A module's fields by name, with the elements of array fields (nested too) as `name.0`,
 * `name.1`... (torch's ModuleList and ParameterList naming): `layers = [new A(), new B()]` are
 * children, which an optimizer built from `parameters()` would otherwise never see.
 */
function fieldsOf(m: Module): [string, unknown][] {
  const fields: [string, unknown][] = [];
  // arrays on the way down: an array holding itself ends there (one held twice is listed
  // under each name, as a child shared under two names is)
  const path = new Set<unknown[]>();
  const walk = (name: string, value: unknown) => {
    if (!Array.isArray(value)) {
      fields.push([name, value]);
      return;
    }
    if (path.has(value)) return;
    // only the elements there are (forEach skips holes: one module at index 10^7 of an empty
    // array was a walk of ten million holes), and none of an array of plain values
    const present: [number, unknown][] = [];
    value.forEach((v, i) => {
      if (v instanceof Module || isTensor(v) || Array.isArray(v)) present.push([i, v]);
    });
    path.add(value);
    for (const [i, v] of present) walk(`${name}.${i}`, v);
    path.delete(value);
  };
  for (const [name, value] of Object.entries(m)) walk(name, value);
  return fields;
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
    // depth first with a stack of its own: nested yield* was quadratic in the depth, and a
    // chain of 20,000 modules overflowed the call stack
    const seen = new Set<Module>();
    const stack: Module[] = [this];
    while (stack.length > 0) {
      const m = stack.pop()!;
      if (seen.has(m)) continue; // met again (shared, or a cycle): walked where first met
      seen.add(m);
      yield m;
      const next = [...m.children()];
      for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]);
    }
  }

  /**
   * Parameters (tensors requiring grad) of this module and its children, with dotted names;
   * a tensor two of them share comes once, under its first name (as torch's does: an optimizer
   * given it twice refuses it).
   */
  namedParameters(prefix = ""): Generator<[string, Tensor]> {
    // checked at the call, not at the first step of the walk (a generator's body waits for it)
    if (typeof prefix !== "string") {
      fail(
        `${moduleClassName(this.constructor)}.namedParameters`,
        "prefix must be a string",
        prefix,
      );
    }
    return namedParametersOf(this, prefix);
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
    // depth first with a stack of its own (a chain of 20,000 modules overflowed the call
    // stack); `above` holds the modules on the way down, each left by its `leave` entry
    const above = new Set<Module>();
    const stack: ({ m: Module; prefix: string; } | { leave: Module; })[] = [{
      m: this,
      prefix: "",
    }];
    while (stack.length > 0) {
      const entry = stack.pop()!;
      if ("leave" in entry) {
        above.delete(entry.leave);
        continue;
      }
      const { m, prefix } = entry;
      if (above.has(m)) continue;
      above.add(m);
      stack.push({ leave: m });
      for (const [name, value] of fieldsOf(m)) {
        if (isTensor(value)) state[prefix + name] = value;
      }
      const children = [...m.namedChildren()];
      for (let i = children.length - 1; i >= 0; i--) {
        stack.push({ m: children[i][1], prefix: `${prefix}${children[i][0]}.` });
      }
    }
    return state;
  }

  /** Sets training mode on this module and its children; returns this module. */
  train(mode = true): this {
    if (typeof mode !== "boolean") {
      fail(`${moduleClassName(this.constructor)}.train`, "mode must be a boolean", mode);
    }
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Sets evaluation mode (`train(false)`); returns this module. */
  eval(): this {
    return this.train(false);
  }

  /** Clears the gradients of every tensor of the module tree (frozen parameters' too). */
  zeroGrad(): void {
    // each as Tensor.zeroGrad (setting `grad` directly skipped tidy's and jit's bookkeeping);
    // every tensor, not only those requiring grad: a parameter frozen after a backward kept its
    // gradient, and an optimizer built before the freeze went on stepping it with that one
    for (const t of new Set(Object.values(this.stateDict()))) t.zeroGrad();
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
    return describeModule(this, new Set());
  }

  /** @ignore Deno's inspect shows `toString()`. */
  [inspect](): string {
    return this.toString();
  }
}

/**
 * The parameters of `root` and the modules below it, named from `prefix` (Module's
 * namedParameters). A function, not a private method: a Module behind a Proxy passes
 * `instanceof Module`, and a private method called on it threw a bare TypeError.
 */
function* namedParametersOf(root: Module, prefix: string): Generator<[string, Tensor]> {
  const seen = new Set<Tensor>();
  // a module reached again (shared, or a cycle) adds nothing; a stack of its own, as modules()
  const walked = new Set<Module>();
  const stack: [Module, string][] = [[root, prefix]];
  while (stack.length > 0) {
    const [m, at] = stack.pop()!;
    if (walked.has(m)) continue;
    walked.add(m);
    for (const [name, value] of fieldsOf(m)) {
      if (isTensor(value) && value.requiresGrad && !seen.has(value)) {
        seen.add(value);
        yield [at + name, value];
      }
    }
    const next = [...m.namedChildren()];
    for (let i = next.length - 1; i >= 0; i--) stack.push([next[i][1], `${at}${next[i][0]}.`]);
  }
}

/** `m` as Module's toString() prints it; `above` holds the modules being printed around it. */
function describeModule(m: Module, above: Set<Module>): string {
  const name = moduleClassName(m.constructor) || "Module";
  if (above.has(m)) return `${name}(...)`;
  const children = [...m.namedChildren()];
  const extra = m.extraRepr();
  if (children.length === 0 && !extra.includes("\n")) return `${name}(${extra})`;
  above.add(m);
  const indent = (text: string) => text.split("\n").join("\n  ");
  const lines = [`${name}(`];
  if (extra) lines.push(`  ${indent(extra)}`);
  for (const [childName, child] of children) {
    lines.push(`  (${childName}): ${indent(describeModule(child, above))}`);
  }
  lines.push(")");
  above.delete(m);
  return lines.join("\n");
}
