// jax-js rows: LocalResponseNorm composed from square, pad and shifted slices along the channel
// axis under `jit` (pow(d, -0.75) written as 1 / (sqrt(d) * sqrt(sqrt(d))), the same rewrite our
// compiler does), on its Wasm backend (cpu rows) and its WebGPU backend (webgpu rows); the
// gradient of sum(y * g) through `vjp`. jax-js arrays are reference counted and every function
// takes ownership of its arguments: `.ref` marks each extra use, `data()` consumes the array it
// reads, so nothing outlives a call.

// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
import { defaultDevice, getWebGPUDevice, init } from "npm:@jax-js/jax@0.1.25";
// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
import { jit, numpy as np, vjp } from "npm:@jax-js/jax@0.1.25";
import { type Case, type CaseData, LRN } from "../cases.ts";
import type { Call, Row } from "../harness.ts";

export const JAX_VERSION = "0.1.25";

type JaxDevice = "wasm" | "webgpu";

/**
 * The jax-js devices that started here. On wasm, one large call also starts its worker pool
 * now: tfjs-backend-wasm's Emscripten glue later replaces the npm-side global `Worker` with
 * node's worker_threads class, which cannot load jax-js's blob-URL workers.
 */
export async function jaxDevices(): Promise<string[]> {
  const devices = await init();
  if (devices.includes("wasm")) {
    const shape = [8, 96, 55, 55];
    const x = np.zeros(shape, { device: "wasm" });
    await forward(x).data();
  }
  return devices;
}

/** The GPUDevice of jax-js's WebGPU backend (for bench/profile_webgpu.ts). */
export function jaxWebGpuDevice(): GPUDevice {
  return getWebGPUDevice();
}

/** LRN over axis 1 of `x` (consumes `x`). */
export function jaxLrn(x: np.Array, alpha: number = LRN.alpha): np.Array {
  const channels = x.shape[1];
  const before = Math.floor((LRN.size - 1) / 2);
  const after = Math.floor(LRN.size / 2);
  const pads = x.shape.map((_, axis): [number, number] => axis === 1 ? [before, after] : [0, 0]);
  const padded = np.pad(np.square(x.ref), pads);
  let sum: np.Array | null = null;
  for (let offset = 0; offset < LRN.size; offset++) {
    const window = padded.ref.slice(
      ...x.shape.map((_, axis): [number, number] | [] =>
        axis === 1 ? [offset, offset + channels] : []
      ),
    );
    sum = sum === null ? window : sum.add(window);
  }
  padded.dispose();
  const d = sum!.mul(alpha).add(LRN.k);
  const root = np.sqrt(d);
  const power = root.ref.mul(np.sqrt(root)); // d^0.75
  return x.div(power);
}

const forward = jit((x: np.Array) => jaxLrn(x));
const forwardBackward = jit((x: np.Array, g: np.Array) => {
  const [y, pullback] = vjp(jaxLrn, [x]);
  const [dx] = pullback(g);
  pullback.dispose();
  return [y, dx];
});

/** A jax-js row on `device`; `detail` goes into the label (workers, adapter). */
export function jaxRow(device: JaxDevice, detail: string): Row {
  return {
    label: `jax-js ${JAX_VERSION} ${device} (${detail})`,
    prepare: (c, data) => jaxCall(device, c, data),
  };
}

/**
 * Forward with a new `jit` function on every call (alpha 1e-4 * (1 + i * 1e-6)), so jax-js traces
 * and compiles each time: its first-call cost in a warm process.
 */
export function jaxNewFunctionCall(device: JaxDevice, c: Case, data: CaseData): Call {
  const shape = [...c.shape];
  let calls = 0;
  return async () => {
    defaultDevice(device);
    const alpha = LRN.alpha * (1 + calls++ * 1e-6);
    const fresh = jit((x: np.Array) => jaxLrn(x, alpha));
    const x = np.array(data.x, { shape, device });
    const y = await fresh(x).data() as Float32Array;
    fresh.dispose();
    return { y };
  };
}

function jaxCall(device: JaxDevice, c: Case, data: CaseData): Call {
  const shape = [...c.shape];
  if (c.mode === "fwd") {
    return async () => {
      defaultDevice(device);
      const x = np.array(data.x, { shape, device });
      return { y: await forward(x).data() as Float32Array };
    };
  }
  return async () => {
    defaultDevice(device);
    const x = np.array(data.x, { shape, device });
    const g = np.array(data.g, { shape, device });
    const [y, dx] = forwardBackward(x, g) as np.Array[];
    const [yValues, dxValues] = await Promise.all([y.data(), dx.data()]);
    return { y: yValues as Float32Array, dx: dxValues as Float32Array };
  };
}
