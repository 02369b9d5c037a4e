// Readable forms of an IR graph: text (one node per line, sources before users) and Graphviz
// DOT. Nodes are numbered locally (%0, %1, ...) so the same structure prints the same text.

import { isSettled, type Node } from "./node.ts";
import { topoSort } from "./graph.ts";

/**
 * An op's argument as text: `{pads=[[1,1]],value=-Infinity}`. Numbers as JavaScript spells
 * them, -0 included: JSON made NaN and both infinities `null` and -0 `0`, so a pad by
 * -Infinity printed as one by NaN, and `x.mul(-0)` as `x.mul(0)`.
 */
export function spellArg(arg: unknown): string {
  if (typeof arg === "number") return Object.is(arg, -0) ? "-0" : String(arg);
  if (Array.isArray(arg)) return `[${arg.map(spellArg).join(",")}]`;
  if (arg !== null && typeof arg === "object") {
    const fields = Object.entries(arg).filter(([, v]) => v !== undefined);
    return `{${fields.map(([k, v]) => `${k}=${spellArg(v)}`).join(",")}}`;
  }
  return JSON.stringify(arg) ?? String(arg);
}

function describeArg(node: Node): string {
  const arg = node.arg;
  if (arg === null || arg === undefined) return "";
  if (node.op === "buffer" || node.op === "detach") return ""; // storage id, variable tag
  return spellArg(arg);
}

/**
 * The graph below `roots` as text, one node per line:
 * `%3 = sum(%2) [4] : float32[2,8,3,3,1]`. The walk stops at nodes `isStored` says hold a value
 * (their sources print as `stored`), as a plan's graph does.
 */
export function printGraph(
  roots: readonly Node[],
  isStored: (n: Node) => boolean = () => false,
): string {
  const order = topoSort(roots, (n) => !roots.includes(n) && isStored(n));
  const names = new Map<Node, string>();
  const lines: string[] = [];
  for (const node of order) {
    const name = `%${names.size}`;
    names.set(node, name);
    // a settled node's history is gone: it prints as the stored value it now is
    const stored = isSettled(node) ||
      (node.srcs.length > 0 && !roots.includes(node) && isStored(node));
    const srcs = stored ? "stored" : node.srcs.map((s) => names.get(s)).join(", ");
    const arg = describeArg(node);
    lines.push(
      `${name} = ${node.op}(${srcs})${arg ? " " + arg : ""} : ${node.dtype}[${
        node.shape.join(",")
      }]`,
    );
  }
  return lines.join("\n");
}

/** The graph below `roots` in Graphviz DOT (`dot -Tsvg`). */
export function graphToDot(roots: readonly Node[]): string {
  const order = topoSort(roots);
  const ids = new Map<Node, number>();
  const lines = ["digraph lucid {", "  node [shape=box, fontname=monospace];"];
  for (const node of order) {
    const id = ids.size;
    ids.set(node, id);
    const arg = describeArg(node).replace(/"/g, "'");
    lines.push(
      `  n${id} [label="${node.op}${arg ? " " + arg : ""}\\n${node.dtype}[${
        node.shape.join(",")
      }]"];`,
    );
    for (const s of node.srcs) lines.push(`  n${ids.get(s)} -> n${id};`);
  }
  lines.push("}");
  return lines.join("\n");
}
