// Graph walks over IR nodes, and over the kernel IR's expressions, which have sources the same
// way. Iterative (an explicit stack), so a 100,000-op chain does not overflow the JavaScript
// call stack.

/** A vertex of a DAG: IR nodes, and the kernel IR's expressions (codegen/kernel.ts). */
export interface WithSources<T> {
  /** The vertices this one is computed from. */
  readonly srcs: readonly T[];
}

/**
 * Vertices reachable from `roots`, every one after its sources (the last root's graph first);
 * the sources of a vertex for which `stopAt` holds are not walked.
 */
export function topoSort<T extends WithSources<T>>(
  roots: readonly T[],
  stopAt?: (n: T) => boolean,
): T[] {
  const seen = new Set<T>();
  const order: T[] = [];
  // two parallel stacks (no pair allocated per visit): a vertex, and whether its sources were
  // pushed already (then it is placed when it comes back up)
  const stack: T[] = [];
  const expanded: boolean[] = [];
  for (const r of roots) {
    stack.push(r);
    expanded.push(false);
  }
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (expanded.pop()) {
      order.push(node);
      continue;
    }
    if (seen.has(node)) continue;
    seen.add(node);
    stack.push(node);
    expanded.push(true);
    if (stopAt?.(node)) continue; // a boundary: included, its sources not walked
    for (let i = node.srcs.length - 1; i >= 0; i--) {
      if (!seen.has(node.srcs[i])) {
        stack.push(node.srcs[i]);
        expanded.push(false);
      }
    }
  }
  return order;
}
