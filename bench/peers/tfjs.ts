// TensorFlow.js rows: tfjs-core with its cpu, wasm and webgpu backends, pinned here and nowhere
// else. TF's LRN is channels-last with depthRadius = 2 for size 5 and does not divide alpha by
// size (Lucid's semantics). Inputs are transposed once outside the timed calls; outputs are
// transposed back only in the calls that are checked (the first, and the one after warm-up).
//
// Three quirks of running tfjs under Deno: the wasm backend must be imported before the cpu
// backend or it registers into an engine nobody uses; its Emscripten glue replaces the npm-side
// global `Worker` with node's worker_threads class when it starts, which breaks jax-js's Web
// Workers in the same process (so lrn_bench.ts starts jax-js's workers first); and tfjs-core's
// node bundle registers no gradients, so LRN's (the LRNGrad kernel with the forward output, as
// tfjs-core's own LRN_grad does) is registered here.

// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
import * as tfWasm from "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
import "npm:@tensorflow/tfjs-backend-cpu@4.22.0";
// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import { type Case, type CaseData, fromChannelsLast, LRN, toChannelsLast } from "../cases.ts";
import type { Call, Row } from "../harness.ts";

export const TFJS_VERSION = tf.version_core;

// The .wasm files sit next to the package's entry in Deno's npm cache.
tfWasm.setWasmPaths(
  new URL("./", import.meta.resolve("npm:@tensorflow/tfjs-backend-wasm@4.22.0")).href,
);

tf.registerGradient({
  kernelName: "LRN",
  inputsToSave: ["x"],
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [x, y] = saved;
    return {
      x: () =>
        tf.engine().runKernel(
          "LRNGrad",
          { x, y, dy: dy as tf.Tensor },
          attrs as never,
        ) as tf.Tensor,
    };
  },
});

type Backend = "cpu" | "wasm" | "webgpu";

/** A TensorFlow.js row on `backend`; `detail` goes into the label (threads, adapter). */
export function tfjsRow(backend: Backend, detail = ""): Row {
  return {
    label: `tfjs ${TFJS_VERSION} ${backend}${detail ? ` (${detail})` : ""}`,
    // tfjs-webgpu's LRN gradient on the software adapter took 11 s per call on A and 122 s on B
    // (and failed on C) in one run: forward only there, or a check would take half an hour
    supports: (c) => backend !== "webgpu" || c.mode === "fwd",
    prepare: (c, data) => tfjsCall(backend, c, data),
  };
}

/** Threads of the wasm backend, once it is set up. */
export async function tfjsWasmThreads(): Promise<number> {
  await use("wasm");
  return tfWasm.getThreadsCount();
}

async function use(backend: Backend): Promise<void> {
  if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) {
    throw new Error(`tfjs backend ${backend} could not be initialized`);
  }
  await tf.ready();
}

/** `[n, c, ...rest]` as a 4-D channels-last shape: `[n, h, w, c]` (rank 3: w = 1). */
function channelsLastShape(shape: readonly number[]): [number, number, number, number] {
  const [n, c, h, w = 1] = shape;
  return [n, h, w, c];
}

async function tfjsCall(backend: Backend, c: Case, data: CaseData): Promise<Call> {
  await use(backend);
  const shape = channelsLastShape(c.shape);
  const x = toChannelsLast(data.x, c.shape);
  const g = toChannelsLast(data.g, c.shape);
  const radius = Math.floor(LRN.size / 2);
  const lrn = (t: tf.Tensor4D) =>
    tf.localResponseNormalization(t, radius, LRN.k, LRN.alpha, LRN.beta);
  const back = (v: ArrayLike<number>) => fromChannelsLast(v, c.shape);
  const leaks = tf.memory().numTensors;
  const checkLeaks = () => {
    if (tf.memory().numTensors !== leaks) {
      throw new Error(
        `tfjs ${backend} leaks tensors: ${tf.memory().numTensors} live, ${leaks} before`,
      );
    }
  };
  if (c.mode === "fwd") {
    return async (forCheck) => {
      await use(backend);
      const input = tf.tensor4d(x, shape);
      const y = lrn(input);
      const values = await y.data();
      input.dispose();
      y.dispose();
      if (!forCheck) return { y: values as Float32Array };
      checkLeaks();
      return { y: back(values as Float32Array) };
    };
  }
  const forwardBackward = tf.grad((t: tf.Tensor) => {
    keptY = tf.keep(lrn(t as tf.Tensor4D));
    return keptY;
  });
  let keptY: tf.Tensor | null = null;
  return async (forCheck) => {
    await use(backend);
    const input = tf.tensor4d(x, shape);
    const dy = tf.tensor4d(g, shape);
    const dx = forwardBackward(input, dy);
    const y = keptY!;
    const [yValues, dxValues] = await Promise.all([y.data(), dx.data()]);
    for (const t of [input, dy, dx, y]) t.dispose();
    keptY = null;
    if (!forCheck) return { y: yValues as Float32Array, dx: dxValues as Float32Array };
    checkLeaks();
    return { y: back(yValues as Float32Array), dx: back(dxValues as Float32Array) };
  };
}
