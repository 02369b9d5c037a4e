// The @lucid/nn rows: fused on each cpu backend (JavaScript, WebAssembly on one thread and on
// every core), unfused (`setFusion(false)`, one kernel per op) on
// the JS backend, and fused on webgpu. Only the public API of mod.ts is used.

import { cpu, type CpuKernels, type DeviceName, nn, realize, setFusion, tensor } from "../mod.ts";
import { type Case, type CaseData, LRN } from "./cases.ts";
import type { Call, Row } from "./harness.ts";

/**
 * A way of running @lucid/nn: `enter` switches it on and returns what switches it back, so rows
 * that share the process never see each other's settings.
 */
export interface LucidMode {
  readonly label: string;
  readonly device: DeviceName;
  enter(): () => void;
}

const nothing = () => () => {};

/** Runs the cpu device with `kernels` on `threads` threads until the returned function is called. */
function cpuSettings(kernels: CpuKernels, threads: number): () => () => void {
  return () => {
    const before = { kernels: cpu.kernels, threads: cpu.threads };
    cpu.kernels = kernels;
    cpu.threads = threads;
    return () => {
      cpu.kernels = before.kernels;
      cpu.threads = before.threads;
    };
  };
}

const allThreads = Math.max(1, Math.min(64, navigator.hardwareConcurrency));

/**
 * The cpu backends, one fused row each: JavaScript kernels, and WebAssembly SIMD kernels
 * (`cpu.kernels = "auto"`, the default) on one thread and on every core. Changing the thread
 * count restarts the worker pool, so each row's warm-up calls absorb that.
 */
export const LUCID_CPU_BACKENDS: readonly LucidMode[] = [
  { label: "fused, js", device: "cpu", enter: cpuSettings("js", 1) },
  { label: "fused, wasm, 1 thread", device: "cpu", enter: cpuSettings("auto", 1) },
  {
    label: `fused, wasm, ${allThreads} threads`,
    device: "cpu",
    enter: cpuSettings("auto", allThreads),
  },
];

/** One kernel per op, on the JavaScript backend. */
export const LUCID_UNFUSED: LucidMode = {
  label: "unfused (setFusion(false)), js",
  device: "cpu",
  enter() {
    const leaveCpu = cpuSettings("js", 1)();
    setFusion(false);
    return () => {
      setFusion(true);
      leaveCpu();
    };
  },
};

/** A row of @lucid/nn in `mode`. */
export function lucidRow(mode: LucidMode): Row {
  return { label: `@lucid/nn ${mode.label}`, prepare: (c, data) => lucidCall(c, data, mode) };
}

/** Fused on webgpu, labelled with the adapter. */
export function lucidWebGpuRow(adapter: string): Row {
  return lucidRow({ label: `fused, webgpu (${adapter})`, device: "webgpu", enter: nothing });
}

/** The call of one case: a fresh input tensor each call, outputs read back, all disposed. */
export function lucidCall(
  c: Case,
  data: CaseData,
  mode: LucidMode,
  lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k),
): Call {
  const shape = [...c.shape];
  const device = mode.device;
  if (c.mode === "fwd") {
    return async () => {
      const leave = mode.enter();
      try {
        using x = tensor(data.x, { shape, device });
        using y = lrn.forward(x);
        return { y: await y.data() };
      } finally {
        leave();
      }
    };
  }
  return async () => {
    const leave = mode.enter();
    try {
      using x = tensor(data.x, { shape, device, requiresGrad: true });
      using g = tensor(data.g, { shape, device });
      using y = lrn.forward(x);
      y.backward(g);
      using dx = x.grad!;
      await realize(y, dx);
      const [yValues, dxValues] = await Promise.all([y.data(), dx.data()]);
      return { y: yValues, dx: dxValues };
    } finally {
      leave();
    }
  };
}
