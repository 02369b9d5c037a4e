// The receiver check of nn.Module's members: not re-exported by nn/mod.ts (whose files' exports
// are all public), internal. optim/receiver.ts is the optimizers' counterpart.

import { fail } from "../validate.ts";

/**
 * Throws unless `self`, the receiver of a Module `member`, is an object: a method taken off its
 * module (`xs.map(m.forward)`, `queueMicrotask(m.zeroGrad)`) has none, and threw a bare
 * TypeError from inside. Any object passes: a Proxy of a module works as the module does.
 */
export function checkModuleReceiver(self: unknown, member: string): void {
  if (typeof self === "object" && self !== null) return;
  fail(
    `Module.${member}`,
    "to be called on a module (a method taken off its module has none: call it as " +
      "`(x) => module.forward(x)`)",
    self,
  );
}
