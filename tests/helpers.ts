// Shared test helpers: the devices to run on, the float64 reference of a tensor, and a
// tolerance comparison that reports the worst element.

import { evaluateReference } from "../src/ir/reference.ts";
import { plannedSteps, realizedBuffer } from "../src/runtime/realize.ts";
import { backendFor } from "../src/runtime/backends.ts";
import type { Expr, ExprBuilder, Kernel, ScalarType } from "../codegen/kernel.ts";
import type { Executable } from "../codegen/compile.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { cpu, type CpuKernels, type DeviceName, nn, type Tensor, tensor } from "../mod.ts";
import { assertEquals } from "./assert.ts";
import { nodeOf } from "../src/tensor.ts";

async function probeWebgpu(): Promise<boolean> {
  try {
    const adapter = await (navigator as { gpu?: GPU; }).gpu?.requestAdapter();
    return adapter !== null && adapter !== undefined;
  } catch {
    return false;
  }
}

/** Whether this machine has a WebGPU adapter. */
export const webgpuAvailable: boolean = await probeWebgpu();

const required = (() => {
  try {
    return Deno.env.get("LUCID_REQUIRE_WEBGPU") === "1";
  } catch {
    return false;
  }
})();

if (!webgpuAvailable) {
  if (required) throw new Error("LUCID_REQUIRE_WEBGPU=1 but navigator.gpu has no adapter");
  console.log("webgpu: no adapter on this machine; the webgpu half of the device tests is skipped");
}

/** The devices every device-table test runs on. */
export const testDevices: DeviceName[] = webgpuAvailable ? ["cpu", "webgpu"] : ["cpu"];

/** One way to run kernels: a device, and on cpu which kernels and how many threads. */
export interface TestBackend {
  /** `cpu js`, `cpu wasm`, `cpu wasm 2 threads` or `webgpu`. */
  readonly name: string;
  readonly device: DeviceName;
  readonly kernels?: CpuKernels;
  readonly threads?: number;
}

/**
 * The backend table of the device tests: cpu with JavaScript kernels, with Wasm kernels on one
 * thread and on two (every Wasm kernel split over the threads, however small), and webgpu.
 */
export const testBackends: TestBackend[] = [
  { name: "cpu js", device: "cpu", kernels: "js", threads: 1 },
  ...(cpu.simd
    ? [
      { name: "cpu wasm", device: "cpu", kernels: "wasm", threads: 1 } as const,
      { name: "cpu wasm 2 threads", device: "cpu", kernels: "wasm", threads: 2 } as const,
    ]
    : []),
  ...(webgpuAvailable ? [{ name: "webgpu", device: "webgpu" } as const] : []),
];

/** Runs `fn` with the cpu device set up as `backend` says, then restores the settings. */
export async function onBackend<T>(backend: TestBackend, fn: () => T | Promise<T>): Promise<T> {
  const before = { kernels: cpu.kernels, threads: cpu.threads, min: cpuBackend.threadMinElements };
  if (backend.kernels !== undefined) cpu.kernels = backend.kernels;
  if (backend.threads !== undefined) cpu.threads = backend.threads;
  if (backend.threads !== undefined && backend.threads > 1) {
    cpuBackend.threadMinElements = 0; // split every kernel, to test splitting on small ones
    await cpuBackend.pool.started();
  }
  try {
    return await fn();
  } finally {
    cpu.kernels = before.kernels;
    cpu.threads = before.threads;
    cpuBackend.threadMinElements = before.min;
  }
}

/** The float64 reference value of a cpu tensor's graph (no fusion, no code generation). */
export function reference(t: Tensor): Float64Array {
  return evaluateReference(nodeOf(t), (node) => {
    const buffer = realizedBuffer(node, "cpu");
    if (buffer === undefined || buffer.device !== "cpu") {
      throw new Error("reference: needs realized cpu inputs");
    }
    return cpuBackend.readSync(buffer);
  });
}

/** Options of {@link assertClose}. */
export interface CloseOptions {
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** Prefix for the failure message. */
  msg?: string;
}

/**
 * Asserts `|actual - expected| <= atol + rtol * |expected|` elementwise; NaN matches NaN and
 * infinities must match exactly.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: CloseOptions = {},
): void {
  const { rtol = 1e-5, atol = 1e-6, msg = "" } = options;
  if (actual.length !== expected.length) {
    throw new Error(`${msg} length ${actual.length} != expected ${expected.length}`);
  }
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (
      Number.isNaN(e)
        ? Number.isNaN(a)
        : !Number.isFinite(e)
        ? a === e
        : Math.abs(a - e) <= atol + rtol * Math.abs(e)
    ) continue;
    throw new Error(`${msg} element ${i}: got ${a}, expected ${e} (rtol ${rtol}, atol ${atol})`);
  }
}

/** The executable of each kernel that realizing `tensors` (on one device) would run. */
export function plannedExecutables(...tensors: Tensor[]): Executable[] {
  const plan = plannedSteps(tensors.map(nodeOf), backendFor(tensors[0].device));
  return (plan?.steps ?? []).map((s) => s.executable);
}

/** The kernel IR of each kernel that realizing `tensors` (on one device) would run. */
export function plannedKernelIR(...tensors: Tensor[]): Kernel[] {
  return plannedExecutables(...tensors).map((e) => e.program.kernel);
}

/**
 * A hand-built kernel over `builder`'s expressions (inputs given by type and shape), writing
 * `outputs`, or the one output `value` of type `outType`.
 */
export function handKernel(
  builder: ExprBuilder,
  fields: Omit<Kernel, "builder" | "inputs" | "comment" | "outputs"> & {
    comment?: string;
    inputs: readonly { type: ScalarType; shape: readonly number[]; }[];
  } & ({ outType: ScalarType; value: Expr; } | { outputs: Kernel["outputs"]; }),
): Kernel {
  const { name, outShape, outVars, outIndex } = fields;
  return {
    name,
    comment: fields.comment ?? name,
    outShape,
    outVars,
    outputs: "outputs" in fields ? fields.outputs : [{ type: fields.outType, value: fields.value }],
    outIndex,
    inputs: fields.inputs.map((i) => ({ ...i, numel: i.shape.reduce((n, d) => n * d, 1) })),
    builder,
  };
}

/** Runs `fn` with the cpu device's kernels set to `kernels`, then restores the setting. */
export async function withCpuKernels<T>(kernels: CpuKernels, fn: () => T | Promise<T>): Promise<T> {
  const before = cpu.kernels;
  cpu.kernels = kernels;
  try {
    return await fn();
  } finally {
    cpu.kernels = before;
  }
}

/** A small seeded generator of floats in [0, 1), independent of the library's (bench/cases.ts). */
export { mulberry32 as rng } from "../bench/cases.ts";

/** Runs `fn`, then waits a little; returns the promise rejections nobody handled meanwhile. */
export async function unhandledRejectionsOf(fn: () => Promise<void>): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  const note = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", note);
  try {
    await fn();
    await new Promise((resolve) => setTimeout(resolve, 50)); // they are reported on a task
  } finally {
    globalThis.removeEventListener("unhandledrejection", note);
  }
  return unhandled;
}

/**
 * Runs LocalResponseNorm (size 3, alpha 0.5, beta 0.75, k 1) forward and backward on `shape` in
 * a child `deno eval` with `flags`, after `prelude` (code taking something away from the
 * runtime), asserts that its y and dx equal this process's, and returns the child's report:
 * `simd`, the `targets` of its kernels, and the fields `extra` adds (`name: expression`).
 */
export async function lrnInChild(
  shape: readonly number[],
  flags: readonly string[],
  prelude = "",
  extra = "",
): Promise<Record<string, unknown>> {
  const count = shape.reduce((n, d) => n * d, 1);
  const program = `${prelude}
    const { cpu, kernels, nn, tensor } = await import(${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  });
    const values = Array.from({ length: ${count} }, (_, i) => Math.sin(i));
    const x = tensor(values, { shape: ${JSON.stringify(shape)}, requiresGrad: true });
    const y = new nn.LocalResponseNorm(3, 0.5, 0.75, 1).forward(x);
    y.sum().backward();
    console.log(JSON.stringify({
      simd: cpu.simd,
      targets: kernels(y.mul(2)).map((k) => k.target),
      y: Array.from(await y.data()),
      dx: Array.from(await x.grad.data()),
      ${extra}
    }));`;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", ...flags, program],
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  assertEquals(code, 0, text.decode(stderr));
  const got = JSON.parse(text.decode(stdout));
  const x = tensor(Array.from({ length: count }, (_, i) => Math.sin(i)), {
    shape: [...shape],
    requiresGrad: true,
  });
  const y = new nn.LocalResponseNorm(3, 0.5, 0.75, 1).forward(x);
  y.sum().backward();
  assertClose(got.y, await y.data(), { rtol: 1e-6 });
  assertClose(got.dx, await x.grad!.data(), { rtol: 1e-6 });
  return got;
}

/**
 * Runs `fn` with every GPUDevice's `pushErrorScope` and `popErrorScope` recorded, in call order
 * (`push` or `pop`), and asserts that the scopes nest: each group of pushes is popped entirely
 * before anything pushes again. Error scopes are one stack per device, shared by every run: a
 * run that pushed two scopes and popped its second after an await took the scope another run
 * had pushed meanwhile, with that run's errors.
 */
export async function assertErrorScopesNest(fn: () => Promise<void>): Promise<string[]> {
  const prototype = GPUDevice.prototype;
  const { pushErrorScope, popErrorScope } = prototype;
  const calls: string[] = [];
  prototype.pushErrorScope = function (this: GPUDevice, filter: GPUErrorFilter) {
    calls.push("push");
    return pushErrorScope.call(this, filter);
  };
  prototype.popErrorScope = function (this: GPUDevice) {
    calls.push("pop");
    return popErrorScope.call(this);
  };
  try {
    await fn();
  } finally {
    prototype.pushErrorScope = pushErrorScope;
    prototype.popErrorScope = popErrorScope;
  }
  for (let i = 0; i < calls.length;) {
    let pushes = 0;
    while (calls[i] === "push") [pushes, i] = [pushes + 1, i + 1];
    for (let k = 0; k < pushes; k++, i++) {
      if (calls[i] !== "pop") {
        throw new Error(`error scopes interleaved: call ${i} of ${calls.join(", ")}`);
      }
    }
    if (pushes === 0) throw new Error(`a pop without a push: ${calls.join(", ")}`);
  }
  return calls;
}

/**
 * `w0` after `steps` steps of Adam (PyTorch's form, bias corrections included) on the loss
 * `sum(c * w^2)`, in float64: the reference of the optimizer tests.
 */
export function adamReference(
  w0: number[],
  c: number[],
  steps: number,
  lr: number,
  [b1, b2]: [number, number],
  eps: number,
  weightDecay: number,
): number[] {
  const w = [...w0];
  const m = w.map(() => 0);
  const v = w.map(() => 0);
  for (let t = 1; t <= steps; t++) {
    for (let i = 0; i < w.length; i++) {
      const g = 2 * c[i] * w[i] + weightDecay * w[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps;
      w[i] -= (lr / (1 - b1 ** t)) * m[i] / denom;
    }
  }
  return w;
}
