// The `nn` namespace: modules and their functional forms.

export { Module } from "./module.ts";
export { LocalResponseNorm, localResponseNorm } from "./local_response_norm.ts";
import { localResponseNorm } from "./local_response_norm.ts";

/** Functional forms of the modules. */
export const functional: { localResponseNorm: typeof localResponseNorm; } = { localResponseNorm };
