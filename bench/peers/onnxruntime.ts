// onnxruntime-web rows: the wasm execution provider on one thread, running a one-node LRN model
// built by hand (onnx_model.ts). ONNX divides alpha by size, so the model gets alpha * size.
// Forward only: onnxruntime-web does no training here. Its LRN kernel wants 4-D input, so the
// 3-D shape D gets a trailing axis of 1 (the same data).

// deno-lint-ignore no-import-prefix -- peers are pinned here, in bench files only
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
      // onnxruntime's LRN kernel takes 4-D input only: (N, C, L) runs as (N, C, L, 1)
      const shape = [...c.shape, ...Array(Math.max(0, 4 - c.shape.length)).fill(1)];
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
