// Graph walks over IR nodes. Iterative (an explicit stack), so a 100,000-op chain does not
// overflow the JavaScript call stack.

import type { Node } from "./node.ts";

/**
 * Nodes reachable from `roots`, every node after its sources; the sources of a node for which
 * `stopAt` holds are not walked.
 */
export function topoSort(roots: readonly Node[], stopAt?: (n: Node) => boolean): Node[] {
  const seen = new Set<Node>();
  const order: Node[] = [];
  const stack: [Node, boolean][] = roots.map((r) => [r, false]);
  while (stack.length > 0) {
    const [node, expanded] = stack.pop()!;
    if (expanded) {
      order.push(node);
      continue;
    }
    if (seen.has(node)) continue;
    seen.add(node);
    stack.push([node, true]);
    if (stopAt?.(node)) continue; // a boundary: included, its sources not walked
    for (let i = node.srcs.length - 1; i >= 0; i--) {
      if (!seen.has(node.srcs[i])) stack.push([node.srcs[i], false]);
    }
  }
  return order;
}
