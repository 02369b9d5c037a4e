// The `optim` namespace: optimizers that update parameters in place with `assign`. Star
// re-exports, so that `deno doc` (and JSR's pages) list the namespace's classes: it follows
// `export *` into a namespace but not named re-exports. Every export of these files is public.

export * from "./optimizer.ts";
export * from "./sgd.ts";
export * from "./adam.ts";
