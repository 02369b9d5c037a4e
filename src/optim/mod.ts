// The `optim` namespace: optimizers that update parameters in place with `assign`.

export { Optimizer } from "./optimizer.ts";
export { SGD, type SGDOptions } from "./sgd.ts";
export { Adam, type AdamOptions } from "./adam.ts";
