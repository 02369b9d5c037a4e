// The reduction methods of Tensor (sum, max, mean): axis checking and the IR reduce node.
// Reduced axes keep length 1 in the IR; dropping them (keepdim false) is a reshape.

import { floatOf } from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import type { ReduceOp } from "./ir/ops.ts";
import { derive, liveNode, nodeOf, shapeOf, type Tensor } from "./tensor.ts";
import { dense, described, fail, isArray, normalizeAxis } from "./validate.ts";
import { broadcastTo } from "./elementwise.ts";

/** An axis argument of a reduction: one axis, several, or all (undefined or null). */
export type Axes = number | number[] | null | undefined;

/** The validated, non-negative axes of a reduction (all axes when omitted). */
function reduceAxes(fn: string, t: Tensor, axis: unknown): number[] {
  if (axis === undefined || axis === null) return shapeOf(t).map((_, i) => i);
  const list = isArray(axis) ? dense(axis) : [axis];
  const axes = list.map((a) => normalizeAxis(fn, a, t.ndim));
  if (axes.length > 1 && new Set(axes).size !== axes.length) {
    fail(fn, "axes must be distinct", axis);
  }
  return t.ndim === 0 ? [] : axes; // a 0-D tensor accepts axis 0 or -1 and reduces nothing
}

/** `op` over validated axes, dropping them unless `keepdim`; `fn` names the method. */
export function reduce(fn: string, t: Tensor, op: ReduceOp, axis: Axes, keepdim: unknown): Tensor {
  liveNode(fn, t);
  if (typeof keepdim !== "boolean") fail(fn, "keepdim must be a boolean", keepdim);
  const axes = reduceAxes(fn, t, axis);
  if (op === "max" && axes.some((a) => shapeOf(t)[a] === 0)) {
    fail(fn, "cannot take the max over an empty axis", described(`axis of length 0`));
  }
  let node = ir.reduce(op, nodeOf(t), axes);
  if (!keepdim) node = ir.reshape(node, shapeOf(t).filter((_, i) => !axes.includes(i)));
  return derive(t, node, [t]);
}

/** The mean over `axis` (integer input averages in float32). */
export function mean(t: Tensor, axis: Axes, keepdim: boolean): Tensor {
  const node = liveNode("mean", t);
  if (typeof keepdim !== "boolean") fail("mean", "keepdim must be a boolean", keepdim);
  const axes = reduceAxes("mean", t, axis);
  const shape = shapeOf(t);
  const count = axes.reduce((n, a) => n * shape[a], 1);
  // built on nodes, with no tensor in between: a tensor the library makes and drops is a handle
  // on its node until garbage collection, so a cast of a float tensor to its own dtype, or a sum
  // over no axes (both t's own node), kept t's storage after t.dispose(), and a sum equal to one
  // the program holds kept that one's after its dispose
  const dtype = floatOf(t.dtype);
  let summed = ir.reduce("sum", ir.castTo(node, dtype), axes);
  if (!keepdim) summed = ir.reshape(summed, shape.filter((_, i) => !axes.includes(i)));
  // a division, as NumPy and torch do: times a rounded 1 / count, the mean of [v, v, v] was an
  // ulp above v
  const divisor = broadcastTo(ir.constant(count, [], dtype), summed.shape);
  return derive(t, ir.binary("div", summed, divisor), [t]);
}
