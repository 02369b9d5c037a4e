// The IR (src/ir/): hash-consed nodes and their shape and dtype rules (node.ts), the op
// vocabulary (ops.ts), dtype promotion (dtype.ts), and the text and DOT printers (print.ts).

import * as ir from "../src/ir/node.ts";
import { graphToDot, printGraph } from "../src/ir/print.ts";
import { BINARY_OPS, isBinary, isMovement, isReduce, isUnary, UNARY_OPS } from "../src/ir/ops.ts";
import { floatOf, promote, roundTo } from "../src/ir/dtype.ts";
import { graph, graphDot, tensor } from "../mod.ts";
import {
  assert,
  assertEquals,
  assertNotStrictEquals,
  assertStrictEquals,
  assertThrows,
} from "./assert.ts";
import { nodeOf } from "../src/tensor.ts";

const ref = { id: 1_000_001 };
const other = { id: 1_000_002 };

Deno.test("hash-consing: structurally equal nodes are the same object", () => {
  const a = ir.buffer(ref, [2, 3], "float32");
  assertStrictEquals(ir.buffer(ref, [2, 3], "float32"), a);
  assertNotStrictEquals(ir.buffer(other, [2, 3], "float32"), a);
  assertNotStrictEquals(ir.buffer(ref, [3, 2], "float32"), a);
  const e = ir.unary("exp", a);
  assertStrictEquals(ir.unary("exp", a), e);
  assertNotStrictEquals(ir.unary("log", a), e);
  assertStrictEquals(ir.binary("add", e, a), ir.binary("add", e, a));
  assertNotStrictEquals(ir.binary("add", a, e), ir.binary("add", e, a)); // operand order matters
  assertStrictEquals(ir.pad(a, [[1, 0], [0, 2]], 3), ir.pad(a, [[1, 0], [0, 2]], 3));
  assertNotStrictEquals(ir.pad(a, [[1, 0], [0, 2]], 3), ir.pad(a, [[1, 0], [0, 2]], 0));
  assertStrictEquals(ir.reduce("sum", a, [1, 0]), ir.reduce("sum", a, [0, 1])); // axes sorted
  assertStrictEquals(ir.constant(2, [], "float32"), ir.constant(2, [], "float32"));
  assertNotStrictEquals(ir.constant(0, [], "float32"), ir.constant(-0, [], "float32"));
  assertNotStrictEquals(ir.constant(2, [], "float32"), ir.constant(2, [], "int32"));
  // the same holds through the Tensor API: same op on the same node gives the same node
  const x = tensor([1, 2, 3]);
  assertStrictEquals(nodeOf(x.exp()), nodeOf(x.exp()));
  assertStrictEquals(nodeOf(x.add(1).mul(x)), nodeOf(x.add(1).mul(x)));
  assertNotStrictEquals(nodeOf(x.add(1)), nodeOf(x.add(2)));
  // sources always have smaller ids; nodes and their arguments are frozen
  assert(e.srcs.every((s) => s.id < e.id));
  assert(Object.isFrozen(e.srcs) && Object.isFrozen(e.shape));
  assert(Object.isFrozen(ir.pad(a, [[1, 0], [0, 2]]).arg));
});

Deno.test("shape and dtype rules of each node constructor", () => {
  const a = ir.buffer(ref, [2, 3], "float32");
  const i = ir.buffer(other, [2, 3], "int32");
  assertEquals(ir.unary("exp", i).dtype, "float32"); // float-only ops promote int32
  assertEquals(ir.unary("exp", i).srcs[0].op, "cast");
  assertEquals(ir.unary("neg", i).dtype, "int32");
  assertEquals(ir.binary("add", a, i).dtype, "float32");
  assertEquals(ir.binary("div", i, i).dtype, "float32");
  assertEquals(ir.binary("cmplt", i, i).dtype, "int32");
  assertEquals(ir.affine(i, 2, 1).dtype, "float32");
  assertStrictEquals(ir.castTo(a, "float32"), a);
  assertStrictEquals(ir.detach(ir.detach(a)), ir.detach(a));
  assertEquals(ir.reduce("sum", a, [1]).shape, [2, 1]);
  assertStrictEquals(ir.reduce("max", a, []), a);
  assertEquals(ir.reshape(a, [3, 2]).shape, [3, 2]);
  assertStrictEquals(ir.reshape(a, [2, 3]), a); // identity views are no nodes
  assertEquals(ir.permute(a, [1, 0]).shape, [3, 2]);
  assertStrictEquals(ir.permute(a, [0, 1]), a);
  assertEquals(ir.expand(ir.reshape(a, [2, 3, 1]), [2, 3, 4]).shape, [2, 3, 4]);
  assertEquals(ir.pad(a, [[1, 2], [0, 1]]).shape, [5, 4]);
  assertStrictEquals(ir.pad(a, [[0, 0], [0, 0]]), a);
  assertEquals(ir.shrink(a, [[1, 2], [0, 3]]).shape, [1, 3]);
  assertStrictEquals(ir.shrink(a, [[0, 2], [0, 3]]), a);
  // unfoldDim: L = floor((n - size) / step) + 1, window axis last
  const long = ir.buffer(ref, [2, 9], "float32");
  assertEquals(ir.unfoldDim(long, 1, 3, 1).shape, [2, 7, 3]);
  assertEquals(ir.unfoldDim(long, 1, 3, 2).shape, [2, 4, 3]);
  assertEquals(ir.unfoldDim(long, 1, 4, 3).shape, [2, 2, 4]);
  assertEquals(ir.unfoldDim(long, 0, 2, 5).shape, [1, 9, 2]);
  assertEquals(ir.unfoldTranspose(ir.unfoldDim(long, 1, 3, 2), 1, 9, 2).shape, [2, 9, 3]);
  assertEquals(a.numel, 6);
  assertEquals(ir.numelOf([2, 0, 4]), 0);
  assertEquals(ir.stridesOf([2, 3, 4]), [12, 4, 1]);
});

Deno.test("node constructors guard their invariants with internal errors", () => {
  const a = ir.buffer(ref, [2, 3], "float32");
  assertThrows(
    () => ir.binary("add", a, ir.buffer(ref, [3], "float32")),
    Error,
    "internal IR error: add of shapes [2,3] and [3]",
  );
  assertThrows(() => ir.reshape(a, [4]), Error, "internal IR error: reshape [2,3] to [4]");
  assertThrows(() => ir.expand(a, [2, 4]), Error, "internal IR error: expand");
  assertThrows(() => ir.pad(a, [[-1, 0], [0, 0]]), Error, "internal IR error: pad");
  assertThrows(() => ir.shrink(a, [[0, 3], [0, 3]]), Error, "internal IR error: shrink");
  assertThrows(() => ir.unfoldDim(a, 1, 4, 1), Error, "internal IR error: unfoldDim size 4");
  assertThrows(() => ir.reduce("sum", a, [2]), Error, "internal IR error: reduce axes 2");
  assertThrows(() => ir.permute(a, [0, 0]), Error, "internal IR error: permute");
});

Deno.test("op vocabulary and dtype promotion", () => {
  for (const op of Object.keys(UNARY_OPS)) assert(isUnary(op as never), op);
  for (const op of Object.keys(BINARY_OPS)) assert(isBinary(op as never), op);
  assert(isReduce("sum") && isReduce("max") && !isReduce("add"));
  assert(isMovement("unfoldDim") && isMovement("pad") && !isMovement("exp"));
  assertEquals(promote("int32", "float32"), "float32");
  assertEquals(promote("float64", "float32"), "float64");
  assertEquals(promote("int32", "int32"), "int32");
  assertEquals(floatOf("int32"), "float32");
  assertEquals(floatOf("float64"), "float64");
  assertEquals(roundTo("float32", 0.1), Math.fround(0.1));
  assertEquals(roundTo("int32", 2 ** 31), -(2 ** 31));
  assertEquals(roundTo("float64", 0.1), 0.1);
});

Deno.test("printed IR: one node per line, sources first, local numbering", () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  const y = x.pad([[0, 0], [1, 1]]).unfoldDim(1, 3).sum(-1).mul(2);
  const text = `%0 = buffer() : float32[2,3]
%1 = pad(%0) {pads=[[0,0],[1,1]],value=0} : float32[2,5]
%2 = unfoldDim(%1) {dim=1,size=3,step=1} : float32[2,3,3]
%3 = sum(%2) [2] : float32[2,3,1]
%4 = reshape(%3) : float32[2,3]
%5 = const() 2 : float32[]
%6 = reshape(%5) : float32[1,1]
%7 = expand(%6) : float32[2,3]
%8 = mul(%4, %7) : float32[2,3]`;
  assertEquals(graph(y), text);
  assertEquals(printGraph([nodeOf(y)]), text);
  // the same structure on other data prints the same text (numbering is local)
  const z = tensor([[0, 0, 0], [0, 0, 0]]).pad([[0, 0], [1, 1]]).unfoldDim(1, 3).sum(-1).mul(2);
  assertEquals(graph(z), text);
  // several roots share their common part
  const a = x.exp();
  assertEquals(
    graph(a, a.neg()),
    "%0 = buffer() : float32[2,3]\n%1 = exp(%0) : float32[2,3]\n%2 = neg(%1) : float32[2,3]",
  );
  assertEquals(
    graph(tensor([1], { dtype: "int32" }).add(1)).split("\n").pop(),
    "%3 = add(%0, %2) : int32[1]",
  );
});

Deno.test("DOT output: one box per node, one edge per source", () => {
  const x = tensor([[1, 2, 3], [4, 5, 6]]);
  const dot = `digraph lucid {
  node [shape=box, fontname=monospace];
  n0 [label="buffer\\nfloat32[2,3]"];
  n1 [label="exp\\nfloat32[2,3]"];
  n0 -> n1;
  n2 [label="add\\nfloat32[2,3]"];
  n1 -> n2;
  n0 -> n2;
}`;
  assertEquals(graphDot(x.exp().add(x)), dot);
  assertEquals(graphToDot([nodeOf(x.exp().add(x))]), dot);
  // arguments appear in labels with double quotes made single
  const padded = graphDot(x.pad([[0, 0], [1, 1]], 2));
  assert(padded.includes(`n1 [label="pad {pads=[[0,0],[1,1]],value=2}\\nfloat32[2,5]"];`), padded);
  assert(!/label="[^\n]*"[^\n]*"[^\n]*"\]/.test(padded));
});

Deno.test("hash-consing: nodes whose hashes collide stay apart and are found again", () => {
  // random float64 values until two constants share a table key (about 2^16 tries expected)
  let state = 12345;
  const nextWord = () => (state = Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5 | 0);
  const words = new Int32Array(2);
  const asFloat = new Float64Array(words.buffer);
  const seen = new Map<number, number>();
  let pair: [number, number] | null = null;
  for (let i = 0; i < 2_000_000 && pair === null; i++) {
    words[0] = nextWord();
    words[1] = nextWord() & 0x3fffffff; // finite, positive
    const v = asFloat[0];
    const key = ir.consHash("const", [], v, [3], "float32");
    const earlier = seen.get(key);
    if (earlier !== undefined && earlier !== v) pair = [earlier, v];
    seen.set(key, v);
  }
  assert(pair !== null, "a pair of values sharing a key");
  const [a, b] = pair;
  const before = ir.hashConsStats().sharedEntries;
  const nodeA = ir.constant(a, [3], "float32");
  const nodeB = ir.constant(b, [3], "float32");
  assertNotStrictEquals(nodeA, nodeB);
  assertEquals([nodeA.arg, nodeB.arg], [a, b]);
  assert(ir.hashConsStats().sharedEntries >= before + 2, "both kept under the one key");
  assertStrictEquals(ir.constant(a, [3], "float32"), nodeA);
  assertStrictEquals(ir.constant(b, [3], "float32"), nodeB);
});
