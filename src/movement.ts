// The view methods of Tensor (reshape, permute, expand, pad, slice, unfoldDim, ...): argument
// checking and the IR movement node each one builds. Views never copy: they are index
// functions that the scheduler folds into the kernels reading them.

import * as ir from "./ir/node.ts";
import { numelOf } from "./ir/node.ts";
import { broadcastTo } from "./elementwise.ts";
import { derive, liveNode, nodeOf, shapeOf, type Tensor } from "./tensor.ts";
import { checkInt32, dense, described, fail, isArray, normalizeAxis } from "./validate.ts";

/** A shape given as varargs `(2, 3)` or as one array `([2, 3])`, unchecked. */
export type ShapeLike = number[] | [readonly number[]];

// holes as undefined (every() and map() skip them: permute([1, , 0]) passed its checks)
const unpack = (args: ShapeLike): unknown[] =>
  dense((args.length === 1 && isArray(args[0]) ? args[0] : args) as unknown[]) as unknown[];

/** `t.reshape(...shape)`: one axis may be -1 (inferred). */
export function reshape(t: Tensor, shape: ShapeLike): Tensor {
  liveNode("reshape", t);
  const raw = unpack(shape);
  if (!raw.every((d) => typeof d === "number" && Number.isInteger(d) && d >= -1)) {
    fail("reshape", "shape must hold non-negative integers or one -1", raw);
  }
  const dims = raw as number[];
  const inferred = dims.filter((d) => d === -1).length;
  if (inferred > 1) fail("reshape", "shape may hold at most one -1", dims);
  let out = dims;
  if (inferred === 1) {
    const known = dims.reduce((n, d) => (d === -1 ? n : n * d), 1);
    if (known === 0 || t.numel % known !== 0) {
      fail("reshape", `cannot infer -1: ${t.numel} elements are not a multiple of ${known}`, dims);
    }
    out = dims.map((d) => (d === -1 ? t.numel / known : d));
  }
  if (numelOf(out) !== t.numel) {
    fail(
      "reshape",
      `shape [${out.join(", ")}] has ${numelOf(out)} elements, the tensor [${
        shapeOf(t).join(", ")
      }] has ${t.numel}`,
      out,
    );
  }
  return derive(t, ir.reshape(nodeOf(t), out), [t]);
}

/** `t.permute(...dims)`: output axis i is input axis `dims[i]`. */
export function permute(t: Tensor, dims: ShapeLike): Tensor {
  liveNode("permute", t);
  const raw = unpack(dims);
  if (raw.length !== t.ndim) fail("permute", `dims must list all ${t.ndim} axes`, raw);
  const perm = raw.map((d) => normalizeAxis("permute", d, t.ndim, "dims"));
  if (new Set(perm).size !== perm.length) {
    fail("permute", "dims must be a permutation (no repeats)", raw);
  }
  return derive(t, ir.permute(nodeOf(t), perm), [t]);
}

/** `t.transpose(dim0, dim1)`: two axes swapped. */
export function transpose(t: Tensor, dim0: number, dim1: number): Tensor {
  liveNode("transpose", t);
  const a = normalizeAxis("transpose", dim0, t.ndim, "dim0");
  const b = normalizeAxis("transpose", dim1, t.ndim, "dim1");
  const perm = shapeOf(t).map((_, i) => (i === a ? b : i === b ? a : i));
  return derive(t, ir.permute(nodeOf(t), perm), [t]);
}

/** `t.expand(...shape)`: new leading axes allowed, -1 keeps an axis. */
export function expand(t: Tensor, shape: ShapeLike): Tensor {
  liveNode("expand", t);
  const raw = unpack(shape);
  if (
    !raw.every((d) => typeof d === "number" && Number.isInteger(d) && d >= -1) ||
    raw.length < t.ndim
  ) {
    fail("expand", `shape must be integers, at least ${t.ndim} of them`, raw);
  }
  const lead = raw.length - t.ndim;
  const target = (raw as number[]).map((d, i) => {
    if (d !== -1) return d;
    return i < lead ? fail("expand", "new leading axes cannot be -1", raw) : shapeOf(t)[i - lead];
  });
  shapeOf(t).forEach((d, i) => {
    if (d !== 1 && d !== target[i + lead]) {
      fail(
        "expand",
        `axis ${i} of length ${d} can only expand to ${d} (only length-1 axes broadcast)`,
        target,
      );
    }
  });
  return derive(t, broadcastTo(nodeOf(t), target), [t]);
}

/** `t.squeeze(dim?)`: length-1 axes dropped (all, or the given one). */
export function squeeze(t: Tensor, dim?: number): Tensor {
  liveNode("squeeze", t);
  if (dim === undefined) {
    return derive(t, ir.reshape(nodeOf(t), shapeOf(t).filter((d) => d !== 1)), [t]);
  }
  const a = normalizeAxis("squeeze", dim, t.ndim, "dim");
  // an axis longer than 1 stays: the same value, as a handle of its own (as reshape gives it)
  const shape = shapeOf(t)[a] !== 1 ? shapeOf(t) : shapeOf(t).filter((_, i) => i !== a);
  return derive(t, ir.reshape(nodeOf(t), shape), [t]);
}

/** `t.unsqueeze(dim)`: a length-1 axis inserted at `dim`. */
export function unsqueeze(t: Tensor, dim: number): Tensor {
  liveNode("unsqueeze", t);
  const n = t.ndim + 1; // the result's axes (the message said "for a 3-D tensor" of a 2-D one)
  if (typeof dim !== "number" || !Number.isInteger(dim) || dim < -n || dim >= n) {
    fail("unsqueeze", `dim must be an integer in [${-n}, ${n - 1}] for a ${t.ndim}-D tensor`, dim);
  }
  const a = normalizeAxis("unsqueeze", dim, n, "dim");
  const shape = [...shapeOf(t)];
  shape.splice(a, 0, 1);
  return derive(t, ir.reshape(nodeOf(t), shape), [t]);
}

/** `t.flatten(startDim, endDim)`: those axes merged into one. */
export function flatten(t: Tensor, startDim: number, endDim: number): Tensor {
  liveNode("flatten", t);
  if (t.ndim === 0) {
    // its axes are checked as a 1-D tensor's (as torch's): flatten(5, 9) and flatten("a") passed
    normalizeAxis("flatten", startDim, 1, "startDim");
    normalizeAxis("flatten", endDim, 1, "endDim");
    return reshape(t, [[1]]);
  }
  const s = normalizeAxis("flatten", startDim, t.ndim, "startDim");
  const e = normalizeAxis("flatten", endDim, t.ndim, "endDim");
  if (s > e) {
    fail("flatten", "startDim must not come after endDim", described(`${startDim} and ${endDim}`));
  }
  const shape = [
    ...shapeOf(t).slice(0, s),
    numelOf(shapeOf(t).slice(s, e + 1)),
    ...shapeOf(t).slice(e + 1),
  ];
  return derive(t, ir.reshape(nodeOf(t), shape), [t]);
}

/** `t.pad(pads, value)`: `[before, after]` per axis; negative amounts crop. */
export function pad(
  t: Tensor,
  pads: readonly (readonly [number, number])[],
  value: number,
): Tensor {
  liveNode("pad", t);
  // copied, each element read once, holes as undefined: the checks see the holes (every() skips
  // them), and what was checked is what is used
  if (isArray(pads)) {
    pads = dense(pads).map((p) => isArray(p) ? dense(p) : p) as [number, number][];
  }
  if (
    !isArray(pads) || pads.length !== t.ndim ||
    !pads.every((p) => isArray(p) && p.length === 2 && p.every((v) => Number.isInteger(v)))
  ) {
    fail("pad", `pads must be ${t.ndim} pairs [before, after] of integers, one per axis`, pads);
  }
  if (typeof value !== "number") fail("pad", "value must be a number", value);
  if (t.dtype === "int32") checkInt32("pad", "value", value, "for dtype int32");
  pads.forEach(([b, a], i) => {
    if (-Math.min(b, 0) - Math.min(a, 0) > shapeOf(t)[i]) {
      fail(
        "pad",
        `negative pads of axis ${i} must not remove more than its ${shapeOf(t)[i]} elements`,
        [b, a],
      );
    }
  });
  const cropped = ir.shrink(
    nodeOf(t),
    pads.map(([b, a], i) => [Math.max(-b, 0), shapeOf(t)[i] - Math.max(-a, 0)]),
  );
  const padded = ir.pad(cropped, pads.map(([b, a]) => [Math.max(b, 0), Math.max(a, 0)]), value);
  return derive(t, padded, [t]);
}

/** `t.shrink(ranges)`: each axis cut to `[start, end)`; null keeps an axis. */
export function shrink(t: Tensor, ranges: readonly (readonly [number, number] | null)[]): Tensor {
  liveNode("shrink", t);
  // a hole is not null (which keeps an axis): undefined, refused below
  if (isArray(ranges)) {
    ranges = dense(ranges) as (readonly [number, number] | null)[];
  }
  if (!isArray(ranges) || ranges.length !== t.ndim) {
    fail("shrink", `ranges must have one [start, end] or null per axis (${t.ndim})`, ranges);
  }
  const full = ranges.map((given, i) => {
    if (given === null) return [0, shapeOf(t)[i]] as [number, number];
    const r = isArray(given) ? dense(given) : given; // read once, as above
    if (
      !isArray(r) || r.length !== 2 || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) ||
      r[0] < 0 || r[0] > r[1] || r[1] > shapeOf(t)[i]
    ) {
      fail("shrink", `range of axis ${i} must satisfy 0 <= start <= end <= ${shapeOf(t)[i]}`, r);
    }
    return [r[0], r[1]] as [number, number];
  });
  return derive(t, ir.shrink(nodeOf(t), full), [t]);
}

/** `t.slice(dim, start, end)`: Python-style clamped indices along one axis. */
export function slice(t: Tensor, dim: number, start: number, end?: number): Tensor {
  liveNode("slice", t);
  if (t.ndim === 0) {
    fail("slice", "needs a tensor with at least one axis", described("a 0-D tensor"));
  }
  const a = normalizeAxis("slice", dim, t.ndim, "dim");
  const n = shapeOf(t)[a];
  const clampIndex = (v: number, name: string) => {
    if (!Number.isInteger(v)) fail("slice", `${name} must be an integer`, v);
    return Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  };
  const s = clampIndex(start, "start");
  const e = Math.max(s, clampIndex(end ?? n, "end"));
  return shrink(t, shapeOf(t).map((d, i) => (i === a ? [s, e] : [0, d])));
}

/** `t.unfoldDim(dim, size, step)`: sliding windows along one axis, as a view. */
export function unfoldDim(t: Tensor, dim: number, size: number, step: number): Tensor {
  liveNode("unfoldDim", t);
  if (t.ndim === 0) {
    fail("unfoldDim", "needs a tensor with at least one axis", described("a 0-D tensor"));
  }
  const a = normalizeAxis("unfoldDim", dim, t.ndim, "dim");
  if (!Number.isInteger(size) || size < 1) {
    fail("unfoldDim", "size must be a positive integer", size);
  }
  if (!Number.isInteger(step) || step < 1) {
    fail("unfoldDim", "step must be a positive integer", step);
  }
  if (size > shapeOf(t)[a]) {
    fail("unfoldDim", `size must not exceed the length ${shapeOf(t)[a]} of axis ${a}`, size);
  }
  return derive(t, ir.unfoldDim(nodeOf(t), a, size, step), [t]);
}
