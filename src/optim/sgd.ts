// Stochastic gradient descent with momentum, Nesterov momentum and weight decay, as PyTorch's
// torch.optim.SGD defines them (without dampening): with g the gradient,
//   g += weightDecay * p;  buf = momentum * buf + g;  d = nesterov ? g + momentum * buf : buf;
//   p -= lr * d.
// The momentum buffer starts at zero, so its first value is g, as in PyTorch.

import type { Tensor } from "../tensor.ts";
import { checkKnownKeys, checkOptionsObject, checkRate, fail } from "../validate.ts";
import { Optimizer } from "./optimizer.ts";
import { checkReceiver } from "./receiver.ts";
import { nameModuleClass } from "../nn/names.ts";

/** Options of {@link SGD}. */
export interface SGDOptions {
  /** Learning rate (required). */
  lr: number;
  /** Momentum factor in [0, 1]; default 0 (none). */
  momentum?: number;
  /** L2 penalty added to the gradient (`g + weightDecay * p`); default 0. */
  weightDecay?: number;
  /** Nesterov momentum (needs momentum > 0); default false. */
  nesterov?: boolean;
}

/**
 * Stochastic gradient descent. `step()` updates every parameter with a gradient in place (by
 * `assign`); the update is computed with the next realization, fused into a few kernels.
 *
 * @example
 * ```ts
 * import { optim, tensor } from "@lucid/nn";
 * const w = tensor([1, -2, 3], { requiresGrad: true });
 * const opt = new optim.SGD([w], { lr: 0.1, momentum: 0.9 });
 * for (let i = 0; i < 100; i++) {
 *   w.square().sum().backward(); // minimize |w|^2
 *   opt.step();
 *   opt.zeroGrad();
 * }
 * console.log(await w.toArray()); // close to [0, 0, 0]
 * ```
 */
export class SGD extends Optimizer {
  // settings are read-only (getters): written, they bypassed the constructor's checks (a
  // momentum of 5)
  readonly #momentum: number;
  readonly #weightDecay: number;
  readonly #nesterov: boolean;
  readonly #buffers: (Tensor | undefined)[] = [];

  /** An optimizer over `params` (e.g. `module.parameters()`). */
  constructor(params: Iterable<Tensor>, options: SGDOptions) {
    checkOptionsObject("SGD", options, "an object with lr");
    checkKnownKeys("SGD", "options", options, ["lr", "momentum", "weightDecay", "nesterov"]);
    // each read once; a default only for a missing setting (null was taken for one)
    const { lr, momentum = 0, weightDecay = 0, nesterov = false } = options;
    super("SGD", params, lr);
    this.#momentum = checkRate("SGD", "momentum", momentum, 1);
    this.#weightDecay = checkRate("SGD", "weightDecay", weightDecay);
    if (typeof nesterov !== "boolean") fail("SGD", "nesterov must be a boolean", nesterov);
    if (nesterov && momentum === 0) fail("SGD", "nesterov needs momentum > 0", 0);
    this.#nesterov = nesterov;
  }

  /** Its settings, for `Deno.inspect`. */
  protected override settings(): Record<string, unknown> {
    return { momentum: this.#momentum, weightDecay: this.#weightDecay, nesterov: this.#nesterov };
  }

  /** What its state is called in errors. */
  protected override readonly stateNames = "momentum buffer";

  /** Parameter `index`'s momentum buffer, if made. */
  protected override stateOf(index: number): readonly (Tensor | undefined)[] {
    return [this.#buffers[index]];
  }

  /** Momentum factor. */
  get momentum(): number {
    checkReceiver(this, "momentum");
    return this.#momentum;
  }

  /** L2 penalty on the parameters. */
  get weightDecay(): number {
    checkReceiver(this, "weightDecay");
    return this.#weightDecay;
  }

  /** Whether momentum is Nesterov's. */
  get nesterov(): boolean {
    checkReceiver(this, "nesterov");
    return this.#nesterov;
  }

  /** `p -= lr * d`, `d` the gradient with weight decay, through the momentum buffer if any. */
  protected override update(index: number, p: Tensor, g: Tensor): void {
    let d = this.weightDecay === 0 ? g : g.add(p.mul(this.weightDecay));
    if (this.momentum !== 0) {
      const buf = this.#buffers[index] ??= this.zerosLike(p);
      buf.assign(buf.mul(this.momentum).add(d));
      d = this.nesterov ? d.add(buf.mul(this.momentum)) : buf;
    }
    p.assign(p.sub(d.mul(this.lrFor(p))));
  }
}

nameModuleClass(SGD, "SGD");
