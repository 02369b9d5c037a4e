// Realization on the Tensor side: computing tensors (one schedule per device), reading their
// values, and moving them between devices. The compiler and runtime behind it are in
// src/runtime/realize.ts.

import type { TypedArray } from "./ir/dtype.ts";
import * as ir from "./ir/node.ts";
import { numelOf } from "./ir/node.ts";
import { backendFor } from "./runtime/backends.ts";
import { type DeviceName, DEVICES } from "./runtime/device.ts";
import { realizedBuffer, realizeNodes } from "./runtime/realize.ts";
import { adoptData, type NestedArray, Tensor } from "./tensor.ts";
import { described, fail } from "./validate.ts";

/** Realizes several tensors together (one schedule per device, shared work). */
export async function realizeTensors(tensors: readonly Tensor[]): Promise<void> {
  for (const device of new Set(tensors.map((t) => t.device))) {
    await realizeNodes(
      tensors.filter((t) => t.device === device).map((t) => t.node),
      backendFor(device),
    );
  }
}

/** `t.data()`: the values as a new typed array. */
export async function readData(t: Tensor): Promise<TypedArray> {
  await realizeTensors([t]);
  return await backendFor(t.device).read(realizedBuffer(t.node)!);
}

/** `t.dataSync()`: the values of a cpu tensor, computed and read synchronously. */
export function readDataSync(t: Tensor): TypedArray {
  if (t.device !== "cpu") {
    fail("dataSync", `needs a cpu tensor (use await data() on "${t.device}")`, t.device);
  }
  const cpu = backendFor("cpu");
  const ran = realizeNodes([t.node], cpu);
  if (ran instanceof Promise || cpu.pending(realizedBuffer(t.node)!) !== null) {
    // a copy from another device is still arriving: only the async path can wait for it
    ran?.catch(() => {});
    fail(
      "dataSync",
      "inputs that are ready now (this tensor depends on data still being copied from another device; use await data())",
      described("a pending copy"),
    );
  }
  return cpu.readSync!(realizedBuffer(t.node)!);
}

/** `t.to(device)`: a new leaf on `device` holding a copy (the same tensor if already there). */
export function moveTo(t: Tensor, device: DeviceName): Tensor {
  if (!DEVICES.includes(device)) fail("to", `device must be "cpu" or "webgpu"`, device);
  if (device === t.device) return t;
  const fromBackend = backendFor(t.device);
  const toBackend = backendFor(device);
  const node = t.node;
  const data = (async () => {
    await realizeNodes([node], fromBackend);
    return await fromBackend.read(realizedBuffer(node)!);
  })();
  const buffer = toBackend.uploadLater(data, node.dtype, node.numel);
  return adoptData(
    new Tensor(ir.buffer(buffer, node.shape, node.dtype), device, t.requiresGrad, true),
  );
}

/** Flat row-major values as nested arrays of `shape` (a number for a 0-D shape). */
export function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const [n, ...rest] = shape;
  const size = numelOf(rest);
  return Array.from({ length: n }, (_, i) => nest(flat.slice(i * size, (i + 1) * size), rest));
}
