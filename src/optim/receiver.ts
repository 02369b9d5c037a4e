// Which objects are optimizers the library made: an optimizer's public members check their
// receiver here, so a Proxy of one gets an Error naming the member instead of V8's "Cannot read
// private member". Not re-exported by optim/mod.ts: internal.

import { classNameOf } from "../nn/names.ts";
import { described, fail } from "../validate.ts";

/** The optimizers the library made (see `checkReceiver`). */
const optimizers = new WeakSet<object>();

/** Records `optimizer` as one the library made (its constructor's last step). */
export function registerOptimizer(optimizer: object): void {
  optimizers.add(optimizer);
}

/**
 * Throws unless `self`, the receiver of an optimizer's public `member`, is an optimizer the
 * library made: its state is private, so a Proxy of one (which reads through to its fields and
 * methods, as a Module's does) cannot reach it, and threw "Cannot read private member #lr".
 */
export function checkReceiver(self: unknown, member: string): void {
  if (typeof self === "object" && self !== null && optimizers.has(self)) return;
  const name = typeof self === "object" && self !== null
    ? classNameOf(self, "Optimizer")
    : "Optimizer";
  fail(
    `${name}.${member}`,
    "to be used on the optimizer itself (its state is private: a Proxy of an optimizer, or an " +
      "object made from its prototype, cannot reach it)",
    described("another object"),
  );
}
