// nn.Module: the base of layers, after Lucid's (and PyTorch's) Module. Children and parameters
// are found by looking at the module's own fields (and the elements of array fields): a Module
// field is a child, a Tensor field that requires grad is a parameter, any other Tensor field is
// state (a buffer).

import { isTensor, type Tensor } from "../tensor.ts";
import { described, fail, isArray, isRevokedProxy } from "../validate.ts";
import { classNameOf } from "./names.ts";
import { checkModuleReceiver } from "./receiver.ts";

const inspect = Symbol.for("Deno.customInspect");

/**
 * Calls `visit(i, element)` for the elements of `array` that are modules, tensors or arrays, in
 * index order: index by index while the array has no holes, and by its keys (as many as its
 * elements) from the first hole on (forEach, or an index loop, steps over every index: one
 * parameter at index 10^6 of an empty array cost 20 ms a walk, at 10^8 3 s).
 */
function forEachMember(array: readonly unknown[], visit: (i: number, v: unknown) => void): void {
  const isMember = (v: unknown) => isModule(v) || isTensor(v) || isArray(v);
  for (let i = 0; i < array.length; i++) {
    const v = array[i];
    if (v === undefined && !(i in array)) {
      // a hole: the rest by keys (index keys come first, ascending; the first key that is not
      // an index ends them)
      for (const key of Object.keys(array)) {
        const j = Number(key);
        if (!(Number.isInteger(j) && j >= 0 && j < 2 ** 32 - 1 && String(j) === key)) break;
        if (j > i && isMember(array[j])) visit(j, array[j]);
      }
      return;
    }
    if (isMember(v)) visit(i, v);
  }
}

/**
 * A module's fields by name, with the elements of array fields (nested too) as `name.0`,
 * `name.1`... (torch's ModuleList and ParameterList naming): `layers = [new A(), new B()]` are
 * children, which an optimizer built from `parameters()` would otherwise never see.
 */
function fieldsOf(m: Module): [string, unknown][] {
  const fields: [string, unknown][] = [];
  for (const [name, value] of Object.entries(m)) {
    if (isArray(value)) walkArray(name, value, fields);
    else fields.push([name, value]);
  }
  return fields;
}

/** Whether `v` is a Module (a revoked Proxy is not: `instanceof` threw a bare TypeError). */
function isModule(v: unknown): v is Module {
  return !isRevokedProxy(v) && v instanceof Module;
}

/** The child modules of `m` found by its fields, with their names. */
function childFields(m: Module): [string, Module][] {
  return fieldsOf(m).flatMap(([name, value]) =>
    isModule(value) ? [[name, value] as [string, Module]] : []
  );
}

/**
 * The child modules of `m` as every walk sees them: its `namedChildren()` (a subclass may
 * override it, and every walk then follows the override), or its fields where a field of that
 * name (a list of layers) shadows the method (V8's "is not a function" from parameters,
 * stateDict and toString).
 */
function childrenOf(m: Module): [string, Module][] {
  if (typeof m.namedChildren !== "function") return childFields(m);
  const fn = `${classNameOf(m, "Module")}.namedChildren`;
  const given: unknown = m.namedChildren();
  if (typeof (given as Iterable<unknown>)?.[Symbol.iterator] !== "function") {
    fail(fn, "an override must return an iterable of [name, Module] pairs", given);
  }
  // each entry checked: an override yielding modules, or [name, 5], gave bare TypeErrors from
  // every walk, or no parameters at all (helper-161)
  const children: [string, Module][] = [];
  for (const entry of given as Iterable<unknown>) {
    if (
      !isArray(entry) || entry.length !== 2 || typeof entry[0] !== "string" ||
      !isModule(entry[1])
    ) {
      fail(fn, "an override must yield [name, Module] pairs", entry);
    }
    children.push([entry[0], entry[1]]);
  }
  return children;
}

/**
 * Pushes the tensors, modules and arrays of `array` onto `fields` under `name.i` (nested to any
 * depth, with a stack of its own: 5,000 nested arrays overflowed the call stack); an array
 * holding itself ends there (one held twice is listed under each name, as a child shared under
 * two names is).
 */
function walkArray(name: string, array: unknown[], fields: [string, unknown][]): void {
  const path = new Set<unknown[]>(); // the arrays on the way down
  const stack: ({ name: string; value: unknown; } | { leave: unknown[]; })[] = [{
    name,
    value: array,
  }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    if ("leave" in entry) {
      path.delete(entry.leave);
      continue;
    }
    const v = entry.value;
    if (!isArray(v)) {
      fields.push([entry.name, v]);
      continue;
    }
    if (path.has(v)) continue;
    path.add(v);
    stack.push({ leave: v });
    const members: { name: string; value: unknown; }[] = [];
    forEachMember(v, (i, e) => members.push({ name: `${entry.name}.${i}`, value: e }));
    for (let k = members.length - 1; k >= 0; k--) stack.push(members[k]);
  }
}

/**
 * Fails `fn` when `name` already names another tensor: a field whose name has a dot (`"a.0"`
 * beside `a = [t]`) made two tensors one name, and `stateDict()` dropped one.
 */
function checkUniqueName(fn: string, name: string, taken: boolean): void {
  if (!taken) return;
  fail(
    fn,
    "a name of its own for each tensor (a field whose name has a '.' can clash with the " +
      "dotted names of array elements and children: rename it)",
    described(`two tensors named ${JSON.stringify(name)}`),
  );
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
    checkModuleReceiver(this, "namedChildren");
    yield* childFields(this);
  }

  /** Direct child modules. */
  *children(): Generator<Module> {
    checkModuleReceiver(this, "children");
    for (const [, m] of childrenOf(this)) yield m;
  }

  /**
   * This module and every module below it, depth first, each once: a child shared under two
   * names, or a back-reference (`child.owner = parent`), is not walked again.
   */
  *modules(): Generator<Module> {
    checkModuleReceiver(this, "modules");
    // depth first with a stack of its own: nested yield* was quadratic in the depth, and a
    // chain of 20,000 modules overflowed the call stack
    yield* moduleTree(this);
  }

  /**
   * Parameters (tensors requiring grad) of this module and its children, with dotted names;
   * a tensor two of them share comes once, under its first name (as torch's does: an optimizer
   * given it twice refuses it).
   */
  namedParameters(prefix = ""): Generator<[string, Tensor]> {
    checkModuleReceiver(this, "namedParameters");
    // checked at the call, not at the first step of the walk (a generator's body waits for it)
    if (typeof prefix !== "string") {
      fail(
        `${classNameOf(this, "Module")}.namedParameters`,
        "prefix must be a string",
        prefix,
      );
    }
    return namedParametersOf(this, prefix, true);
  }

  /** Parameters of this module and its children. */
  *parameters(): Generator<Tensor> {
    checkModuleReceiver(this, "parameters");
    // no names, so none to refuse (it named namedParameters, which the program never called)
    for (const [, p] of namedParametersOf(this, "", false)) yield p;
  }

  /**
   * Every tensor of the module tree (parameters and state) by dotted name: a child shared under
   * two names is listed under each (as torch's is); a back-reference to a module above is not
   * followed.
   */
  stateDict(): Record<string, Tensor> {
    checkModuleReceiver(this, "stateDict");
    const state: Record<string, Tensor> = {};
    for (const [key, value] of stateEntries(this)) {
      checkUniqueName(
        `${classNameOf(this, "Module")}.stateDict`,
        key,
        Object.hasOwn(state, key) && state[key] !== value,
      );
      state[key] = value;
    }
    return state;
  }

  /** Sets training mode on this module and its children; returns this module. */
  train(mode = true): this {
    checkModuleReceiver(this, "train");
    if (typeof mode !== "boolean") {
      fail(`${classNameOf(this, "Module")}.train`, "mode must be a boolean", mode);
    }
    // every module is checked before any changes: a frozen child threw a bare TypeError half
    // way, the modules before it switched and those after it not
    const modules = [...moduleTree(this)];
    for (const m of modules) {
      if (!canSetTraining(m)) {
        fail(
          `${classNameOf(this, "Module")}.train`,
          "every module of the tree must have a writable `training` (frozen or sealed " +
            "modules cannot switch mode)",
          described(`${classNameOf(m, "Module")} whose training cannot be set`),
        );
      }
    }
    for (const m of modules) m.training = mode;
    return this;
  }

  /** Sets evaluation mode (`train(false)`); returns this module. */
  eval(): this {
    checkModuleReceiver(this, "eval");
    // a subclass's train (one keeping a layer frozen), or Module's where a field shadows it
    if (typeof this.train === "function") this.train(false);
    else Module.prototype.train.call(this, false);
    return this;
  }

  /** Clears the gradients of every tensor of the module tree (frozen parameters' too). */
  zeroGrad(): void {
    checkModuleReceiver(this, "zeroGrad");
    // each as Tensor.zeroGrad (setting `grad` directly skipped tidy's and jit's bookkeeping);
    // every tensor, not only those requiring grad: a parameter frozen after a backward kept its
    // gradient, and an optimizer built before the freeze went on stepping it with that one
    // (each module once, not by stateEntries, which lists a shared child under every name it
    // has: a child shared under two fields at each of 23 levels took 11 s; and no name is
    // refused, unlike stateDict's)
    const tensors = new Set<Tensor>();
    for (const m of moduleTree(this)) {
      for (const [, value] of fieldsOf(m)) if (isTensor(value)) tensors.add(value);
    }
    for (const t of tensors) t.zeroGrad();
  }

  /** The text inside the parentheses of `toString()`; empty by default. */
  extraRepr(): string {
    checkModuleReceiver(this, "extraRepr");
    return "";
  }

  /**
   * `Name(extra)`, or the multi-line `(name): Child(...)` form when there are children or the
   * extra text has several lines (torch's layout). A back-reference to a module above prints
   * as `Name(...)`.
   */
  toString(): string {
    checkModuleReceiver(this, "toString");
    return describeModule(this);
  }

  /** @ignore Deno's inspect shows `toString()`. */
  [inspect](): string {
    return printedModule(this);
  }
}

// Node's inspect (console.log there printed the fields): `toString()`, as Deno's shows.
// Defined outside the class: not part of its documented members.
Object.defineProperty(Module.prototype, Symbol.for("nodejs.util.inspect.custom"), {
  value(this: Module): string {
    return printedModule(this);
  },
});

/** `m.toString()` (a subclass's), or Module's where a field of that name shadows it. */
function printedModule(m: Module): string {
  return typeof m.toString === "function" ? m.toString() : Module.prototype.toString.call(m);
}

/**
 * The parameters of `root` and the modules below it, named from `prefix` (Module's
 * namedParameters). A function, not a private method: a Module behind a Proxy passes
 * `instanceof Module`, and a private method called on it threw a bare TypeError.
 */
function* namedParametersOf(
  root: Module,
  prefix: string,
  checkNames: boolean,
): Generator<[string, Tensor]> {
  const seen = new Set<Tensor>();
  const names = new Set<string>();
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
        const full = at + name;
        if (checkNames) {
          checkUniqueName(`${classNameOf(root, "Module")}.namedParameters`, full, names.has(full));
          names.add(full);
        }
        yield [full, value];
      }
    }
    const next = childrenOf(m);
    for (let i = next.length - 1; i >= 0; i--) stack.push([next[i][1], `${at}${next[i][0]}.`]);
  }
}

/**
 * `root` and every module below it, depth first, each once (a child shared under two names, or
 * a back-reference, is not walked again), found by fields (see childrenOf). A stack of its
 * own: nested yield* was quadratic in the depth, and a chain of 20,000 modules overflowed the
 * call stack.
 */
function* moduleTree(root: Module): Generator<Module> {
  const seen = new Set<Module>();
  const stack: Module[] = [root];
  while (stack.length > 0) {
    const m = stack.pop()!;
    if (seen.has(m)) continue; // met again (shared, or a cycle): walked where first met
    seen.add(m);
    yield m;
    const next = childrenOf(m);
    for (let i = next.length - 1; i >= 0; i--) stack.push(next[i][1]);
  }
}

/**
 * Every tensor of the tree below `root` with its dotted name, in stateDict's order (a child
 * shared under two names under each; a back-reference to a module above not followed). Depth
 * first with a stack of its own: a chain of 20,000 modules overflowed the call stack.
 */
function stateEntries(root: Module): [string, Tensor][] {
  const entries: [string, Tensor][] = [];
  // `above` holds the modules on the way down, each left by its `leave` entry
  const above = new Set<Module>();
  const stack: ({ m: Module; prefix: string; } | { leave: Module; })[] = [{
    m: root,
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
      if (isTensor(value)) entries.push([prefix + name, value]);
    }
    const children = childrenOf(m);
    for (let i = children.length - 1; i >= 0; i--) {
      stack.push({ m: children[i][1], prefix: `${prefix}${children[i][0]}.` });
    }
  }
  return entries;
}

/** Whether `m.training = value` would take (an own writable field, or one it may add). */
function canSetTraining(m: Module): boolean {
  const own = Object.getOwnPropertyDescriptor(m, "training");
  if (own === undefined) return Object.isExtensible(m);
  return "value" in own ? own.writable === true : own.set !== undefined;
}

/** The longest text toString returns (16 M characters: far past any tree one reads). */
const MAX_TEXT = 2 ** 24;

/**
 * `root` as Module's toString() prints it: `Name(extra)` for a leaf, else `Name(`, the extra
 * text's lines, one `(field): ...` per child and `)`, each nested line two spaces deeper; a
 * module being printed around itself prints as `Name(...)`. Built line by line with a stack of
 * its own: recursion re-indented every child's whole text at each level (1,500 levels took 3.5
 * s) and a chain of 10,000 modules overflowed the call stack.
 */
function describeModule(root: Module): string {
  const lines: string[] = [];
  let length = 0;
  const push = (line: string) => {
    length += line.length + 1;
    if (length > MAX_TEXT) {
      // the layout's indentation grows with the depth: a chain of 20,000 modules is 1.2e9
      // characters, more than a string holds (a bare RangeError from join)
      fail(
        `${classNameOf(root, "Module")}.toString`,
        `a text of at most ${MAX_TEXT} characters (the tree is too deep or wide to print)`,
        described(`a longer one (${lines.length} lines in)`),
      );
    }
    lines.push(line);
  };
  const above = new Set<Module>();
  const stack:
    ({ m: Module; depth: number; label: string; } | { close: Module; depth: number; })[] = [{
      m: root,
      depth: 0,
      label: "",
    }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const pad = "  ".repeat(entry.depth);
    if ("close" in entry) {
      push(`${pad})`);
      above.delete(entry.close);
      continue;
    }
    const { m, depth, label } = entry;
    const name = classNameOf(m, "Module");
    if (above.has(m)) {
      push(`${pad}${label}${name}(...)`);
      continue;
    }
    const children = childrenOf(m);
    // (a subclass's override, or Module's when a field of that name shadows the method)
    const extra: unknown = typeof m.extraRepr === "function"
      ? m.extraRepr()
      : Module.prototype.extraRepr.call(m);
    if (typeof extra !== "string") {
      fail(`${name}.toString`, "extraRepr() to return a string", extra);
    }
    if (children.length === 0 && !extra.includes("\n")) {
      push(`${pad}${label}${name}(${extra})`);
      continue;
    }
    above.add(m);
    push(`${pad}${label}${name}(`);
    if (extra) {
      for (const line of extra.split("\n")) push(`${pad}  ${line}`);
    }
    stack.push({ close: m, depth });
    for (let i = children.length - 1; i >= 0; i--) {
      stack.push({ m: children[i][1], depth: depth + 1, label: `(${children[i][0]}): ` });
    }
  }
  return lines.join("\n");
}
