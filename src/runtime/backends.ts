// The device registry: the cpu backend always exists; the webgpu backend is created on first
// use (acquiring an adapter is asynchronous and may fail, see webgpu.ts).

import { cpuBackend } from "./cpu.ts";
import type { Backend, DeviceName } from "./device.ts";
import { webgpuBackend } from "./webgpu.ts";

/** The backend of a device. */
export function backendFor(device: DeviceName): Backend {
  return device === "cpu" ? cpuBackend : webgpuBackend();
}
