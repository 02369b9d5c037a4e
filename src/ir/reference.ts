// The float64 reference evaluator: the oracle of the tests. It evaluates the IR node by node,
// element by element, straight from each op's definition: no fusion, no code generation, no
// cleverness. int32 nodes wrap to 32 bits after every op; float nodes stay float64 throughout.
// Keep it obviously correct rather than fast (it runs on test-sized inputs only).

import {
  isSettled,
  type Node,
  numelOf,
  type PadArg,
  type Shape,
  stridesOf,
  type UnfoldArg,
  type UnfoldTransposeArg,
} from "./node.ts";
import { topoSort } from "./graph.ts";
import type { BinaryOp, UnaryOp } from "./ops.ts";

/** Each unary op as a float64 function. */
export const UNARY_REFERENCE: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  recip: (x) => 1 / x,
  square: (x) => x * x,
  abs: Math.abs,
  relu: (x) => (Number.isNaN(x) ? x : x > 0 ? x : 0),
  // e^x / (1 + e^x) below 0: 1 / (1 + e^-x) would overflow e^-x before the result underflows
  sigmoid: (x) => x < 0 ? Math.exp(x) / (1 + Math.exp(x)) : 1 / (1 + Math.exp(-x)),
  tanh: Math.tanh,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x), // NaN and -0 stay, as in every kernel
};

/** Each binary op as a float64 function. */
export const BINARY_REFERENCE: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: Math.max,
  minimum: Math.min,
  cmplt: (a, b) => (a < b ? 1 : 0),
  cmpeq: (a, b) => (a === b ? 1 : 0),
};

/** Reads the data of a `buffer` node, or of a settled node's stored value (row-major). */
export type BufferReader = (node: Node) => ArrayLike<number>;

/**
 * Evaluates `root` in float64; `read` supplies the data of buffer nodes and of settled nodes
 * (whose history is gone: their stored value is all there is). Row-major result.
 */
export function evaluateReference(root: Node, read: BufferReader): Float64Array {
  const memo = new Map<Node, Float64Array>();
  const order = topoSort([root]);
  for (const node of order) {
    const value = isSettled(node)
      ? Float64Array.from(read(node))
      : evaluateNode(node, node.srcs.map((s) => memo.get(s)!), read);
    memo.set(node, value);
  }
  return memo.get(root)!;
}

function wrapInt(node: Node, value: number): number {
  return node.dtype === "int32" ? value | 0 : value;
}

/** The multi-index of flat position `flat` in a row-major array of `shape`. */
function unflatten(flat: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = flat % shape[i];
    flat = Math.floor(flat / shape[i]);
  }
  return idx;
}

function flatten(idx: readonly number[], shape: Shape): number {
  const strides = stridesOf(shape);
  let flat = 0;
  for (let i = 0; i < idx.length; i++) flat += idx[i] * strides[i];
  return flat;
}

function evaluateNode(node: Node, srcs: Float64Array[], read: BufferReader): Float64Array {
  const out = new Float64Array(numelOf(node.shape));
  const src = node.srcs[0];
  // For a movement op: the source element an output index reads, or null for the fill value.
  let view: ((idx: number[]) => number[] | null) | null = null;
  let fill = 0;
  switch (node.op) {
    case "buffer": {
      const data = read(node);
      for (let i = 0; i < out.length; i++) out[i] = data[i];
      return out;
    }
    case "const":
      return out.fill(node.arg as number);
    case "affine": {
      const [scale, shift] = node.arg as [number, number];
      for (let i = 0; i < out.length; i++) out[i] = srcs[0][i] * scale + shift;
      return out;
    }
    case "cast":
      for (let i = 0; i < out.length; i++) {
        out[i] = node.dtype === "int32" ? Math.trunc(srcs[0][i]) | 0 : srcs[0][i];
      }
      return out;
    case "detach":
      out.set(srcs[0]);
      return out;
    case "sum":
    case "max": {
      const axes = node.arg as number[];
      out.fill(node.op === "sum" ? 0 : -Infinity);
      for (let i = 0; i < srcs[0].length; i++) {
        const idx = unflatten(i, src.shape);
        for (const a of axes) idx[a] = 0;
        const o = flatten(idx, node.shape);
        const v = srcs[0][i];
        // max(-0, 0) is 0 either way round, as Math.max and the kernels' max give it
        const larger = Number.isNaN(v) || v > out[o] || (v === 0 && Object.is(out[o], -0));
        out[o] = node.op === "sum" ? out[o] + v : larger ? v : out[o];
      }
      if (node.dtype === "int32") { for (let i = 0; i < out.length; i++) out[i] |= 0; }
      return out;
    }
    case "reshape":
      out.set(srcs[0]);
      return out;
    case "permute": {
      const perm = node.arg as number[];
      view = (idx) => {
        const inIdx = new Array<number>(idx.length);
        perm.forEach((p, i) => (inIdx[p] = idx[i]));
        return inIdx;
      };
      break;
    }
    case "expand":
      view = (idx) => idx.map((v, i) => (src.shape[i] === 1 ? 0 : v));
      break;
    case "pad": {
      const { pads, value } = node.arg as PadArg;
      fill = wrapInt(node, value); // an int32 pad value truncates like the kernels' constant
      view = (idx) => {
        const inIdx = idx.map((v, i) => v - pads[i][0]);
        return inIdx.every((v, i) => v >= 0 && v < src.shape[i]) ? inIdx : null;
      };
      break;
    }
    case "shrink": {
      const ranges = node.arg as [number, number][];
      view = (idx) => idx.map((v, i) => v + ranges[i][0]);
      break;
    }
    case "unfoldDim": {
      const { dim, step } = node.arg as UnfoldArg;
      view = (idx) => {
        const inIdx = idx.slice(0, -1);
        inIdx[dim] = idx[dim] * step + idx[idx.length - 1];
        return inIdx;
      };
      break;
    }
    case "unfoldTranspose": {
      const { dim, step } = node.arg as UnfoldTransposeArg;
      view = (idx) => {
        const offset = idx[dim] - idx[idx.length - 1];
        const window = offset / step;
        if (offset < 0 || !Number.isInteger(window) || window >= src.shape[dim]) return null;
        const inIdx = [...idx];
        inIdx[dim] = window;
        return inIdx;
      };
      break;
    }
    default: {
      if (node.srcs.length === 1) {
        const f = UNARY_REFERENCE[node.op as UnaryOp];
        const intSquare = node.op === "square" && node.dtype === "int32";
        for (let i = 0; i < out.length; i++) {
          out[i] = wrapInt(node, intSquare ? Math.imul(srcs[0][i], srcs[0][i]) : f(srcs[0][i]));
        }
      } else {
        const f = BINARY_REFERENCE[node.op as BinaryOp];
        const intMul = node.op === "mul" && node.dtype === "int32";
        for (let i = 0; i < out.length; i++) {
          out[i] = wrapInt(
            node,
            intMul ? Math.imul(srcs[0][i], srcs[1][i]) : f(srcs[0][i], srcs[1][i]),
          );
        }
      }
      return out;
    }
  }
  for (let i = 0; i < out.length; i++) {
    const inIdx = view(unflatten(i, node.shape));
    out[i] = inIdx === null ? fill : srcs[0][flatten(inIdx, src.shape)];
  }
  return out;
}
