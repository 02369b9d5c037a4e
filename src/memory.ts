// memory(): what each device's storage holds, for finding leaks and checking that a loop stays
// flat. Counts come from the backends (buffers and bytes) and from runtime/lifetime.ts (values).

import { cpuBackend } from "./runtime/cpu.ts";
import type { Backend, DeviceName } from "./runtime/device.ts";
import { liveValues } from "./runtime/lifetime.ts";
import { webgpuBackend } from "./runtime/webgpu.ts";

/** What one device's storage holds now. */
export interface DeviceMemory {
  /**
   * Tensor values whose storage is live: tensors made from data and computed results, not yet
   * disposed, overwritten by `assign` or garbage collected. Tensors sharing a value count once.
   */
  readonly liveTensors: number;
  /** Buffers allocated and not released (values, and temporaries of running computations). */
  readonly liveBuffers: number;
  /** Bytes of the live buffers. */
  readonly bytesInUse: number;
  /** Bytes of released storage kept in the device's pool for reuse. */
  readonly bytesPooled: number;
}

/** Memory per device: what `memory()` returns. */
export type MemoryInfo = Record<DeviceName, DeviceMemory>;

function deviceMemory(device: DeviceName, backend: Backend): DeviceMemory {
  const stats = backend.storageStats();
  return {
    liveTensors: liveValues(device),
    liveBuffers: stats.liveBuffers,
    bytesInUse: stats.bytesInUse,
    bytesPooled: stats.bytesPooled,
  };
}

/**
 * Live tensors, live buffers, bytes in use and bytes pooled, per device. Storage of a tensor
 * dropped without `dispose()` counts until it is garbage collected.
 *
 * @example
 * ```ts
 * import { memory, randn } from "@lucid/nn";
 * using x = randn(1000);
 * await x.realize();
 * console.log(memory().cpu.bytesInUse >= 4000); // true
 * ```
 */
export function memory(): MemoryInfo {
  return {
    cpu: deviceMemory("cpu", cpuBackend),
    webgpu: deviceMemory("webgpu", webgpuBackend()),
  };
}
