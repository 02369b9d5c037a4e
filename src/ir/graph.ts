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
  if (walking || roots.length === 0 || !("seen" in roots[0])) {
    return topoPlaces(roots, stopAt).order;
  }
  // vertices that carry a stamp (IR nodes) are marked seen on themselves, not in a Map: the
  // walks of a realization's bookkeeping (waiting variables, protected readers) were a seventh
  // of an optimizer step of many small parameters. A walk begun inside another (from stopAt)
  // uses the Map, which leaves the outer walk's stamps alone.
  walking = true;
  try {
    return stampedOrder(roots as unknown as readonly Stamped[], stopAt as StopAt) as unknown as T[];
  } finally {
    walking = false;
  }
}

/** A vertex that records the last walk that saw it (IR nodes: Node.seen). */
interface Stamped {
  readonly srcs: readonly Stamped[];
  seen: number;
}
type StopAt = ((n: Stamped) => boolean) | undefined;

let walking = false;
let lastStamp = 0;

/** topoPlaces' order, with each vertex's `seen` set to this walk's stamp instead of a Map. */
function stampedOrder(roots: readonly Stamped[], stopAt: StopAt): Stamped[] {
  const stamp = ++lastStamp;
  const order: Stamped[] = [];
  const stack: Stamped[] = [];
  const expanded: boolean[] = [];
  for (let i = 0; i < roots.length; i++) {
    stack.push(roots[i]);
    expanded.push(false);
  }
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (expanded.pop()) {
      order.push(node);
      continue;
    }
    if (node.seen === stamp) continue;
    node.seen = stamp;
    stack.push(node);
    expanded.push(true);
    if (stopAt?.(node)) continue;
    for (let i = node.srcs.length - 1; i >= 0; i--) {
      if (node.srcs[i].seen !== stamp) {
        stack.push(node.srcs[i]);
        expanded.push(false);
      }
    }
  }
  return order;
}

/**
 * {@link topoSort}'s order, and each vertex's place in it: the map of places is also the walk's
 * record of the vertices seen (-1 while a vertex's sources are walked), so a caller that needs
 * both allocates one map, not a set and a map. (The plan cache, which keys every realization's
 * graph by places, stamps them on the nodes instead: runtime/realize.ts's `placeNodes`.)
 */
export function topoPlaces<T extends WithSources<T>>(
  roots: readonly T[],
  stopAt?: (n: T) => boolean,
): { order: T[]; places: Map<T, number>; } {
  const places = new Map<T, number>();
  const order: T[] = [];
  // two parallel stacks (no pair allocated per visit): a vertex, and whether its sources were
  // pushed already (then it is placed when it comes back up)
  const stack: T[] = [];
  const expanded: boolean[] = [];
  for (let i = 0; i < roots.length; i++) {
    stack.push(roots[i]);
    expanded.push(false);
  }
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (expanded.pop()) {
      places.set(node, order.length);
      order.push(node);
      continue;
    }
    if (places.has(node)) continue;
    places.set(node, -1);
    stack.push(node);
    expanded.push(true);
    if (stopAt?.(node)) continue; // a boundary: included, its sources not walked
    for (let i = node.srcs.length - 1; i >= 0; i--) {
      if (!places.has(node.srcs[i])) {
        stack.push(node.srcs[i]);
        expanded.push(false);
      }
    }
  }
  return { order, places };
}
