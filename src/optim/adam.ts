// Adam (Kingma and Ba, 2015), as PyTorch's torch.optim.Adam defines it: with g the gradient
// and t the step count of the parameter,
//   g += weightDecay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// The two bias corrections change every step: they enter the plan as data (two 0-D tensors
// computed in float64 on the host), so every step reuses one compiled plan.

import type { Tensor } from "../tensor.ts";
import {
  checkKnownKeys,
  checkOptionsObject,
  checkRate,
  dense,
  fail,
  isArray,
} from "../validate.ts";
import { Optimizer } from "./optimizer.ts";
import { checkReceiver } from "./receiver.ts";
import { nameModuleClass } from "../nn/names.ts";

/** Options of {@link Adam}. */
export interface AdamOptions {
  /** Learning rate; default 1e-3. */
  lr?: number;
  /** Decay rates of the moment estimates, each in [0, 1); default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Added to the denominator for stability; default 1e-8. */
  eps?: number;
  /** L2 penalty added to the gradient (`g + weightDecay * p`); default 0. */
  weightDecay?: number;
}

/**
 * Adam. `step()` updates every parameter with a gradient in place (by `assign`), with its first
 * and second moment estimates; the update is computed with the next realization, fused.
 *
 * @example
 * ```ts
 * import { optim, tensor } from "@lucid/nn";
 * const w = tensor([1, -2, 3], { requiresGrad: true });
 * const opt = new optim.Adam([w], { lr: 0.1 });
 * for (let i = 0; i < 200; i++) {
 *   w.square().sum().backward();
 *   opt.step();
 *   opt.zeroGrad();
 * }
 * console.log(await w.toArray()); // close to [0, 0, 0]
 * ```
 */
export class Adam extends Optimizer {
  // settings are read-only (getters, a frozen pair): written, they bypassed the constructor's
  // checks (a beta of 1 made the parameters NaN)
  readonly #betas: readonly [number, number];
  readonly #eps: number;
  readonly #weightDecay: number;
  readonly #m: (Tensor | undefined)[] = [];
  readonly #v: (Tensor | undefined)[] = [];
  readonly #steps: number[] = [];

  /** An optimizer over `params` (e.g. `module.parameters()`). */
  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    checkOptionsObject("Adam", options);
    checkKnownKeys("Adam", "options", options, ["lr", "betas", "eps", "weightDecay"]);
    // each read once; a default only for a missing setting (null was taken for one)
    const { lr = 1e-3, betas: given = [0.9, 0.999], eps = 1e-8, weightDecay = 0 } = options;
    super("Adam", params, lr);
    // copied, each read once: a getter read again after its check gave a beta of 5
    const betas = isArray(given) ? dense(given) : given;
    if (!isArray(betas) || betas.length !== 2) {
      fail("Adam", "betas must be a pair [beta1, beta2]", betas);
    }
    for (const b of betas) {
      if (typeof b !== "number" || !(b >= 0 && b < 1)) {
        fail("Adam", "betas must each be a number in [0, 1)", betas);
      }
    }
    this.#betas = Object.freeze([betas[0], betas[1]] as [number, number]);
    this.#eps = checkRate("Adam", "eps", eps);
    this.#weightDecay = checkRate("Adam", "weightDecay", weightDecay);
  }

  /** Its settings, for `Deno.inspect`. */
  protected override settings(): Record<string, unknown> {
    return { betas: this.#betas, eps: this.#eps, weightDecay: this.#weightDecay };
  }

  /** What its state is called in errors. */
  protected override readonly stateNames = "moment estimates";

  /** Parameter `index`'s first and second moment estimates, if made. */
  protected override stateOf(index: number): readonly (Tensor | undefined)[] {
    return [this.#m[index], this.#v[index]];
  }

  /** Decay rates of the first and second moment estimates. */
  get betas(): readonly [number, number] {
    checkReceiver(this, "betas");
    return this.#betas;
  }

  /** Added to the denominator for stability. */
  get eps(): number {
    checkReceiver(this, "eps");
    return this.#eps;
  }

  /** L2 penalty on the parameters. */
  get weightDecay(): number {
    checkReceiver(this, "weightDecay");
    return this.#weightDecay;
  }

  /** `p -= lr * m_hat / (sqrt(v_hat) + eps)` with bias-corrected moment estimates. */
  protected override update(index: number, p: Tensor, g: Tensor): void {
    const [b1, b2] = this.betas;
    const t = (this.#steps[index] ?? 0) + 1;
    this.#steps[index] = t;
    const d = this.weightDecay === 0 ? g : g.add(p.mul(this.weightDecay));
    const m = this.#m[index] ??= this.zerosLike(p);
    const v = this.#v[index] ??= this.zerosLike(p);
    m.assign(m.mul(b1).add(d.mul(1 - b1)));
    v.assign(v.mul(b2).add(d.square().mul(1 - b2)));
    const [stepSize, rootCorrection] = this.scalarsFor(p, [
      this.lr / (1 - b1 ** t),
      1 / Math.sqrt(1 - b2 ** t),
    ]);
    p.assign(p.sub(m.mul(stepSize).div(v.sqrt().mul(rootCorrection).add(this.eps))));
  }
}

nameModuleClass(Adam, "Adam");
