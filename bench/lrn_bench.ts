// LocalResponseNorm side by side: @lucid/nn (fused on each cpu backend, unfused, webgpu), a
// hand-written JavaScript loop (the baseline row), TensorFlow.js (cpu, wasm, webgpu),
// onnxruntime-web (wasm, one thread) and jax-js (wasm, webgpu), on the shapes of bench/cases.ts,
// forward and forward + backward, plus a tiny input (T) for the per-call overhead of a cached
// call. Every row is checked against the float64 reference before it is timed (harness.ts).
// Run: deno task bench (tables), deno task bench:check (ratios against bench/baseline.json).

import { webgpu } from "../mod.ts";
import { LRN, selectedCases } from "./cases.ts";
import { handwrittenForward, handwrittenForwardBackward } from "./handwritten.ts";
import { brokenRow, registerCases, type Row, writeSamplesAtUnload } from "./harness.ts";
import { LUCID_CPU_BACKENDS, LUCID_UNFUSED, lucidRow, lucidWebGpuRow } from "./lucid_rows.ts";

writeSamplesAtUnload(import.meta.url);

/** The baseline row: the straightforward loop on the host arrays. */
export const HANDWRITTEN_ROW: Row = {
  label: "hand-written JS loop (float32)",
  baseline: true,
  prepare: (c, data) =>
    c.mode === "fwd"
      ? () => Promise.resolve({ y: handwrittenForward(data.x, c.shape, LRN) })
      : () => Promise.resolve(handwrittenForwardBackward(data.x, data.g, c.shape, LRN)),
};

/** The adapter's description, or null without WebGPU. */
async function adapterName(): Promise<string | null> {
  if (!(await webgpu.available())) return null;
  const adapter = await navigator.gpu.requestAdapter();
  const info = adapter?.info;
  return info?.description || info?.device || info?.vendor || "unknown adapter";
}

/**
 * Peer rows; a peer that fails to load becomes failing rows that say why. jax-js loads first: its
 * worker pool must start before tfjs-backend-wasm touches the global `Worker` (peers/tfjs.ts).
 */
async function peerRows(adapter: string | null): Promise<Row[]> {
  const rows: Row[] = [];
  try {
    const { jaxDevices, jaxRow } = await import("./peers/jax.ts");
    const devices = await jaxDevices();
    if (devices.includes("wasm")) {
      rows.push(jaxRow("wasm", `${navigator.hardwareConcurrency} workers`));
    }
    if (adapter !== null && devices.includes("webgpu")) rows.push(jaxRow("webgpu", adapter));
  } catch (e) {
    rows.push(brokenRow("jax-js", `failed to load: ${e}`));
  }
  try {
    const { tfjsRow, tfjsWasmThreads } = await import("./peers/tfjs.ts");
    rows.push(tfjsRow("cpu", "1 thread"), tfjsRow("wasm", `${await tfjsWasmThreads()} thread`));
    if (adapter !== null) rows.push(tfjsRow("webgpu", adapter));
  } catch (e) {
    rows.push(brokenRow("tfjs", `failed to load: ${e}`));
  }
  try {
    const { onnxRow } = await import("./peers/onnxruntime.ts");
    rows.push(onnxRow());
  } catch (e) {
    rows.push(brokenRow("onnxruntime-web", `failed to load: ${e}`));
  }
  return rows;
}

const adapter = await adapterName();
const peers = await peerRows(adapter);
const onCpu = (r: Row) => !r.label.includes("webgpu");
registerCases(selectedCases(), [
  HANDWRITTEN_ROW,
  ...LUCID_CPU_BACKENDS.map(lucidRow),
  lucidRow(LUCID_UNFUSED),
  ...peers.filter(onCpu),
  ...(adapter === null ? [] : [lucidWebGpuRow(adapter)]),
  ...peers.filter((r) => !onCpu(r)),
]);
