// The base of optimizers: the parameters they update, zeroGrad, a learning rate that can change
// between steps without recompiling (it is data, a 0-D tensor per device, not a constant baked
// into the plan), and per-parameter state tensors. Subclasses write step() with ordinary tensor
// ops and `assign`, so an update is lazy graph: it is computed with the next realization (the
// next forward pass, typically), fused into a few kernels, and it never grows the graph.

import { noGrad } from "../autodiff.ts";
import { disposeTemporaries } from "../tidy.ts";
import { tensor, zeros } from "../creation.ts";
import { isFloat } from "../ir/dtype.ts";
import { keepForever, recordCreated, tracing, untracked } from "../ownership.ts";
import { gradOf, isTensor, nodeOf, type Tensor } from "../tensor.ts";
import { backendFor } from "../runtime/backends.ts";
import { realizedBuffer } from "../runtime/realize.ts";
import { sameShape } from "../ir/hash.ts";
import type { Node } from "../ir/node.ts";
import { topoSort } from "../ir/graph.ts";
import { checkRate, described, fail } from "../validate.ts";
import { checkReceiver, registerOptimizer } from "./receiver.ts";
import { classNameOf } from "../nn/names.ts";

/**
 * Whether `t`'s value was lost with the device it lived on: its storage, or, for a value still
 * pending (a state assigned in a step not computed yet), storage it is computed from (only the
 * stored value was looked at, and such a state met the generic read Error instead).
 */
function contentsLost(t: Tensor): boolean {
  if (t.isDisposed) return false;
  const backend = backendFor(t.device);
  // (most programs never lose a device: no walk of a pending state's graph each step, which
  // a loop of unread steps made quadratic in the steps)
  if (backend.lost === undefined || backend.lostAny?.() === false) return false;
  const storedHere = (n: Node) => realizedBuffer(n, t.device);
  for (const n of topoSort([nodeOf(t)], (m) => storedHere(m) !== undefined)) {
    const buffer = storedHere(n);
    if (buffer !== undefined && backend.lost(buffer)) return true;
  }
  return false;
}

/** Parameters updated by gradient steps: `step()` after `backward()`, then `zeroGrad()`. */
export abstract class Optimizer {
  // private, read through a getter: a writable field let `opt.params = [p, p]` past every check
  // of the constructor (p stepped twice)
  readonly #params: readonly Tensor[];
  #lr: number;
  /**
   * Per-step numbers as tensors, by device, dtype and values; used: in this step; idle: steps
   * since one last used them.
   */
  readonly #scalars = new Map<string, { tensor: Tensor; used: boolean; idle: number; }>();
  readonly #name: string;

  /** `params`: a module's `parameters()` or any iterable of leaf float tensors requiring grad. */
  constructor(name: string, params: Iterable<Tensor>, lr: number) {
    this.#name = name;
    if (params === null || typeof (params as Iterable<Tensor>)?.[Symbol.iterator] !== "function") {
      fail(name, "params must be an iterable of tensors (e.g. module.parameters())", params);
    }
    const list = [...params];
    list.forEach((p, i) => {
      if (!isTensor(p)) fail(name, `parameter ${i} must be a Tensor`, p);
      if (p.isDisposed) fail(name, `parameter ${i} must not be disposed`, described(String(p)));
      if (!p.isLeaf || !p.requiresGrad || !isFloat(p.dtype)) {
        fail(
          name,
          `parameter ${i} must be a float leaf tensor requiring grad`,
          described(String(p)),
        );
      }
    });
    if (new Set(list).size !== list.length) {
      fail(name, "params must not list a tensor twice", described(`${list.length} entries`));
    }
    // as torch's: a generator another optimizer had used up gave one that never stepped
    if (list.length === 0) fail(name, "params must hold at least one tensor", described("none"));
    // frozen: a parameter pushed again was stepped twice
    this.#params = Object.freeze(list);
    this.#lr = checkRate(name, "lr", lr);
    registerOptimizer(this);
  }

  /** The tensors this optimizer updates (leaves requiring grad), frozen. */
  get params(): readonly Tensor[] {
    checkReceiver(this, "params");
    return this.#params;
  }

  /** The learning rate; changing it between steps costs no recompilation. */
  get lr(): number {
    checkReceiver(this, "lr");
    return this.#lr;
  }
  set lr(value: number) {
    checkReceiver(this, "lr");
    this.#lr = checkRate(`${this.#name}.lr`, "lr", value);
  }

  /** Applies one update to every parameter that has a gradient (lazily: see the class docs). */
  step(): void {
    checkReceiver(this, "step");
    if (tracing()) {
      // refused before any state changes (Adam counts its steps), as assign would refuse it
      fail(
        `${this.#name}.step`,
        "no step inside a function jit traces (return the gradients and step after the call)",
        described("a step while tracing"),
      );
    }
    // every gradient is checked before anything changes: a step that throws updates nothing
    // (it used to update the parameters before the bad one, and Adam to count the step)
    const updates: [number, Tensor, Tensor][] = [];
    for (const [i, p] of this.#params.entries()) {
      if (!p.isDisposed && this.stateOf(i).some((t) => t !== undefined && contentsLost(t))) {
        fail(
          `${this.#name}.step`,
          `parameter ${i}'s ${this.stateNames} must be live (it was lost with the ${p.device} ` +
            "device it lived on: a new optimizer starts it again)",
          described("a lost device's buffer"),
        );
      }
      if (p.isDisposed) continue;
      const g: unknown = gradOf(p); // not p.grad: the program has not seen it (see zeroGrad)
      if (g === null) continue;
      if (!isTensor(g)) {
        fail(`${this.#name}.step`, `parameter ${i}'s grad must be a Tensor or null`, g);
      }
      if (g.isDisposed) {
        // taken for none, the parameter quietly missed the step
        fail(
          `${this.#name}.step`,
          `parameter ${i}'s grad must be live or null (set it to null, or call zeroGrad(), to ` +
            "leave the parameter out of a step)",
          described("a disposed grad"),
        );
      }
      if (!sameShape(g.shape, p.shape) || g.dtype !== p.dtype || g.device !== p.device) {
        fail(
          `${this.#name}.step`,
          `parameter ${i}'s grad must be ${p.dtype}[${p.shape.join(", ")}] on ${p.device}, ` +
            "as the parameter",
          described(`${g.dtype}[${g.shape.join(", ")}] on ${g.device}`),
        );
      }
      updates.push([i, p, g]);
    }
    for (const entry of this.#scalars.values()) entry.used = false;
    // The tensors the updates make (the scalars' views, every term of the update) are disposed
    // when the step ends, where that frees nothing (see disposeTemporaries): the assignments
    // hold their graphs, not these handles. Dropped instead, they lived until garbage
    // collection, and one that hash-consing had made the same as a tensor of the program
    // (Adam's `g.square()` and a stored `p.grad.square()`) kept that tensor's storage past its
    // dispose; a scheduled learning rate's view kept one value more every step. (A tidy scope
    // did too much: it disposed a gradient an update let go of, which the program kept, and
    // a stored tensor an update made, which computed the update at once, early: helper-155.)
    const [, made] = recordCreated(() =>
      noGrad(() => {
        for (const [i, p, g] of updates) this.update(i, p, g);
      })
    );
    disposeTemporaries(made);
    // numbers of steps before the last are done with (an update still reading one is computed
    // first)
    for (const [key, entry] of this.#scalars) {
      if (entry.used) entry.idle = 0;
      // kept a step longer: the last step's updates read them and are usually computed by the
      // time of the next step's end (a dispose at the next step computed them there, in a
      // realization of their own: Adam's step took 1.3x the time; measured 2026-12-07)
      if (entry.used || ++entry.idle < 2) continue;
      this.#scalars.delete(key);
      entry.tensor.dispose();
    }
  }

  /** Sets every parameter's gradient to null (as `Tensor.zeroGrad`: inside `tidy`, disposed at its end). */
  zeroGrad(): void {
    checkReceiver(this, "zeroGrad");
    for (const p of this.#params) p.zeroGrad();
  }

  /** The settings `Deno.inspect` shows, after the learning rate (none by default). */
  protected settings(): Record<string, unknown> {
    return {};
  }

  /**
   * `SGD(lr=0.1, momentum=0.9, weightDecay=0, nesterov=false, 2 parameters)`: the class and its
   * settings (String() printed `[object Object]`).
   */
  toString(): string {
    if (typeof this !== "object" || this === null || !(#lr in this)) {
      return "an imitation of an optimizer (a Proxy or a copy of one)";
    }
    const settings = Object.entries({ lr: this.#lr, ...this.settings() })
      .map(([name, value]) => `${name}=${Array.isArray(value) ? `[${value.join(", ")}]` : value}`);
    const count = this.#params.length;
    settings.push(`${count} parameter${count === 1 ? "" : "s"}`);
    return `${classNameOf(this, "Optimizer")}(${settings.join(", ")})`;
  }

  /**
   * @ignore Deno's inspect shows the class, its settings and its parameters (private fields
   * since params became a getter: it showed only `stateNames`).
   */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options?: unknown) => string,
    options?: unknown,
  ): string {
    if (typeof this !== "object" || this === null || !(#lr in this)) {
      return "an imitation of an optimizer (a Proxy or a copy of one)";
    }
    const shown = { lr: this.#lr, ...this.settings(), params: this.#params };
    return `${classNameOf(this, "Optimizer")} ${inspect(shown, options)}`;
  }

  /**
   * Updates parameter `index` (`p`) from its gradient `g` with `assign`; runs under noGrad.
   * The tensors it makes are disposed when the step ends where that frees no storage (terms
   * of the update), except state made with `state` or `zerosLike`; a tensor it stores (noise
   * from `randn`, say) is left to garbage collection or the program's `tidy`.
   */
  protected abstract update(index: number, p: Tensor, g: Tensor): void;

  /** What the state tensors of `stateOf` hold, for errors ("momentum buffer"). */
  protected readonly stateNames: string = "state";

  /** The state tensors kept for parameter `index` (none by default). */
  protected stateOf(_index: number): readonly (Tensor | undefined)[] {
    return [];
  }

  /** The learning rate as a 0-D tensor like `p` (remade only when the rate changes). */
  protected lrFor(p: Tensor): Tensor {
    return this.scalarsFor(p, [this.#lr])[0];
  }

  /**
   * `values` as 0-D tensors on `p`'s device and dtype: numbers that change between steps enter
   * the plan as data, so one compiled plan serves every step. Their storage is kept until two
   * steps in a row have not used it; the tensors returned are views, for this step's updates
   * (disposed when the step ends).
   */
  protected scalarsFor(p: Tensor, values: readonly number[]): Tensor[] {
    const key = `${p.device}:${p.dtype}:${values.join(",")}`;
    let entry = this.#scalars.get(key);
    if (entry !== undefined && contentsLost(entry.tensor)) {
      // made on a webgpu device since lost: made again (the parameters' own values were
      // assigned anew by the program, but every step failed reading this one)
      this.#scalars.delete(key);
      entry.tensor.dispose();
      entry = undefined;
    }
    if (entry === undefined) {
      const t = this.state(() => tensor([...values], { device: p.device, dtype: p.dtype }));
      entry = { tensor: t, used: true, idle: 0 };
      this.#scalars.set(key, entry);
    }
    entry.used = true;
    const all = entry.tensor;
    // (a slice of a one-value tensor is that tensor)
    return values.map((_, i) => all.slice(0, i, i + 1).reshape([]));
  }

  /** A state tensor of zeros like `p`, owned by the optimizer (no tidy scope disposes it). */
  protected zerosLike(p: Tensor): Tensor {
    return this.state(() => zeros(p.shape, { device: p.device, dtype: p.dtype }));
  }

  /** Makes a state tensor outside any tidy scope and keeps it from every later one. */
  protected state(make: () => Tensor): Tensor {
    const t = untracked(make);
    keepForever(t);
    return t;
  }
}

// Node's inspect (console.log there printed `SGD {}`): the same text as Deno's, with Node's own
// formatting of the settings. Defined outside the class: not part of its documented members.
Object.defineProperty(Optimizer.prototype, Symbol.for("nodejs.util.inspect.custom"), {
  value(
    this: Optimizer,
    _depth: number,
    options: unknown,
    inspect: (value: unknown, options?: unknown) => string,
  ): string {
    const deno = Symbol.for("Deno.customInspect");
    return (this as unknown as Record<symbol, typeof inspect>)[deno].call(this, inspect, options);
  },
});
