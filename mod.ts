/**
 * `@lucid/nn`, a tensor library that compiles. Tensor operations build a lazy graph; realizing
 * a tensor cuts the graph into fused kernels, generates them as JavaScript or WebAssembly (cpu)
 * or WGSL (webgpu) and runs them. Autodiff transforms the graph, so backward passes fuse too.
 *
 * Where to start: {@link tensor}, {@link zeros} and {@link randn} make tensors, and
 * {@link Tensor} lists their ops; {@link nn.LocalResponseNorm} and {@link nn.Module} are layers,
 * {@link optim.SGD} and {@link optim.Adam} optimizers; {@link kernels} shows the generated code;
 * {@link jit} compiles a whole step and {@link exportCompiled} writes it as standalone files;
 * {@link tidy} and {@link memory} manage storage; {@link cpu} and {@link webgpu} are the devices.
 *
 * @example
 * ```ts
 * import { nn, randn, kernels } from "@lucid/nn";
 * const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
 * const y = lrn.forward(randn(2, 96, 27, 27));
 * console.log(kernels(y).length); // 1
 * console.log((await y.data()).length); // 139968
 * ```
 *
 * @module
 */

export { type NestedArray, type NestedInput, Tensor } from "./src/tensor.ts";
export {
  arange,
  full,
  ones,
  rand,
  randn,
  type ShapeAndOptions,
  tensor,
  type TensorDataOptions,
  type TensorOptions,
  zeros,
} from "./src/creation.ts";
export { grad } from "./src/grad.ts";
export { manualSeed } from "./src/random.ts";
export { noGrad } from "./src/autodiff.ts";
export { keep, tidy } from "./src/tidy.ts";
export { type DeviceMemory, memory, type MemoryInfo } from "./src/memory.ts";
export type { DType, TypedArray } from "./src/ir/dtype.ts";
export type { DeviceName } from "./src/runtime/device.ts";
export {
  type BufferInfo,
  graph,
  graphDot,
  type KernelInfo,
  kernels,
  realize,
  setDebug,
  setFusion,
} from "./src/inspect.ts";
/**
 * Neural-network layers: the base class `nn.Module`, `nn.LocalResponseNorm`, and their
 * functional forms in `nn.functional`.
 */
export * as nn from "./src/nn/mod.ts";
/**
 * Optimizers (`optim.SGD`, `optim.Adam`, and their base `optim.Optimizer`) updating parameters
 * in place with `assign`.
 */
export * as optim from "./src/optim/mod.ts";
export { gradcheck, type GradcheckOptions, type GradcheckResult } from "./src/gradcheck.ts";
export { webgpu, type WebGpuInfo } from "./src/runtime/webgpu.ts";
export { cpu, type CpuInfo, type CpuKernels } from "./src/runtime/cpu.ts";
export { type CompiledFunction, jit, type JitOptions, type JitResult } from "./src/jit.ts";
export {
  type ExampleInput,
  exportCompiled,
  type ExportedFiles,
  type ExportFile,
  type ExportOptions,
  type ExportTargetName,
  MAX_EMBEDDED_ELEMENTS,
  writeExport,
} from "./src/export.ts";
export type { Shape } from "./src/ir/node.ts";
