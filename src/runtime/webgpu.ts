// Placeholder until the WebGPU backend lands (issue 5): using the device throws a clear Error.

import type { Backend } from "./device.ts";

/** The webgpu backend. */
export function webgpuBackend(): Backend {
  throw new Error("webgpu: the WebGPU backend is not available in this build");
}
