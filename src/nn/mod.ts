// The `nn` namespace: modules and their functional forms. Star re-exports, so that `deno doc`
// (and JSR's pages) list the namespace's classes and functions: it follows `export *` into a
// namespace but not named re-exports. Every export of these files is public.

export * from "./module.ts";
export * from "./local_response_norm.ts";
import { localResponseNorm } from "./local_response_norm.ts";

/** Functional forms of the modules: `nn.functional.localResponseNorm(x, 5)`. */
export const functional: { localResponseNorm: typeof localResponseNorm; } = { localResponseNorm };
