// onnxruntime-web rows: the wasm execution provider on one thread, running a one-node LRN model
// built by hand (onnx_model.ts). ONNX divides alpha by size, so the model gets alpha * size.
// Forward only: onnxruntime-web does no training here.

import * as ort from "npm:onnxruntime-web@1.30.0";
import { LRN } from "../cases.ts";
import type { Row } from "../harness.ts";
import { lrnModel } from "./onnx_model.ts";

export const ORT_VERSION = "1.30.0";

// Read the .wasm from Deno's npm cache and hand over the bytes: no fetch, no path guessing.
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmBinary = await Deno.readFile(
  new URL(
    "./ort-wasm-simd-threaded.wasm",
    import.meta.resolve("npm:onnxruntime-web@1.30.0"),
  ),
);

/** onnxruntime-web, wasm, one thread. */
export function onnxRow(): Row {
  return {
    label: `onnxruntime-web ${ORT_VERSION} wasm, 1 thread`,
    supports: (c) => c.mode === "fwd",
    async prepare(c, data) {
      const shape = [...c.shape];
      const model = lrnModel(shape, { ...LRN, alpha: LRN.alpha * LRN.size, bias: LRN.k });
      const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
      return async () => {
        const x = new ort.Tensor("float32", data.x, shape);
        const result = await session.run({ x });
        const y = result.y;
        const values = await y.getData();
        y.dispose();
        return { y: values as Float32Array };
      };
    },
  };
}
