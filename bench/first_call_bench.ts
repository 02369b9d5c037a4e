// First-call latency of LocalResponseNorm forward on A: what a call costs when nothing is cached
// (trace, schedule, generate, compile, run, read back). Measured two ways, because a warm
// process cannot simply "call for the first time" again:
// - new structure per call: each call uses a new alpha (1e-4 * (1 + i * 1e-6)), so the
//   structural key, the plan, the generated source and the compiled kernel are all new, while
//   the JavaScript engine is warm; the same for jax-js with a new `jit` function per call;
// - fresh process: each call starts `deno run bench/cold_start.ts`, which imports @lucid/nn and
//   times its own first call (the sample is that in-process time; process start and imports are
//   excluded), and on cpu a second row whose sample is the import and the first call together:
//   what a user waits for the first result once Deno is running. Each child checks its output
//   against the float64 reference.
// The hand-written loop on A is the baseline row, so the ratios track like the others.

import { nn, webgpu } from "../mod.ts";
import { caseData, FIRST_CALL_GROUP, LRN, makeCase, selectedGroups } from "./cases.ts";
import { handwrittenForward } from "./handwritten.ts";
import {
  type Call,
  checkOutputs,
  noteOutputError,
  registerRow,
  writeSamplesAtUnload,
} from "./harness.ts";
import { lucidCall, type LucidMode } from "./lucid_rows.ts";
import { referenceLrn, RTOL } from "./reference.ts";

writeSamplesAtUnload(import.meta.url);

const GROUP = FIRST_CALL_GROUP;
const wanted = selectedGroups();
const enabled = wanted === null || wanted.has(GROUP);
const c = makeCase("A", "fwd");
const data = caseData(c.shape);
const expected = () => referenceLrn(data.x, c.shape, LRN);

const loop: Call = () => Promise.resolve({ y: handwrittenForward(data.x, c.shape, LRN) });

/** Sets up a row: one checked call, then the timed calls, each after a paired loop call. */
function checkedRow(label: string, baseline: boolean, make: () => Call | Promise<Call>): void {
  const setup = async () => {
    const call = await make();
    noteOutputError(GROUP, label, checkOutputs(label, c, await call(true), expected()));
    return call;
  };
  if (enabled) registerRow(GROUP, label, baseline, setup, baseline ? null : loop);
}

checkedRow("hand-written JS loop (float32)", true, () => loop);

/** @lucid/nn with a LocalResponseNorm of a new alpha on every call after the first. */
function newStructureRow(mode: LucidMode): void {
  let calls = 0;
  checkedRow(`@lucid/nn ${mode.label}, new structure per call`, false, () => () => {
    const alpha = LRN.alpha * (1 + calls++ * 1e-6);
    return lucidCall(c, data, mode, new nn.LocalResponseNorm(LRN.size, alpha, LRN.beta, LRN.k))();
  });
}

const ROOT = new URL("../", import.meta.url);

/** What a child process timed: importing the library, then the first call. */
interface ColdStart {
  readonly importMs: number;
  readonly firstCallMs: number;
}

/** One child process: its self-timed import and first call, checked (the error noted for `label`). */
async function coldStart(device: "cpu" | "webgpu", label: string): Promise<ColdStart> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-env",
      "--allow-read",
      `--config=${new URL("deno.json", ROOT).pathname}`,
      new URL("bench/cold_start.ts", ROOT).pathname,
      device,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`cold_start.ts ${device} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const result = JSON.parse(text) as ColdStart & { error: number; };
  if (!(result.error <= RTOL)) {
    throw new Error(`cold_start.ts ${device}: output error ${result.error} > ${RTOL}; not timed`);
  }
  noteOutputError(GROUP, label, result.error);
  return result;
}

function freshProcessRow(
  label: string,
  device: "cpu" | "webgpu",
  sample: (c: ColdStart) => number = (c) => c.firstCallMs,
): void {
  const setup = async () => {
    await coldStart(device, label); // checked in the child
    return async () => ({ y: [], selfTimedMs: sample(await coldStart(device, label)) });
  };
  if (enabled) registerRow(GROUP, label, false, setup, loop);
}

// The cpu device's defaults: Wasm kernels where they apply, worker threads once a kernel is large.
const cpu: LucidMode = { label: "fused, cpu (wasm)", device: "cpu", enter: () => () => {} };
newStructureRow(cpu);
freshProcessRow("@lucid/nn fused, cpu (wasm), fresh process", "cpu");
freshProcessRow(
  "@lucid/nn fused, cpu (wasm), fresh process, import and first call",
  "cpu",
  (c) => c.importMs + c.firstCallMs,
);

let adapter: string | null = null;
if (await webgpu.available()) {
  const info = (await navigator.gpu.requestAdapter())?.info;
  adapter = info?.description || info?.device || "unknown adapter";
  newStructureRow({ label: `fused, webgpu (${adapter})`, device: "webgpu", enter: () => () => {} });
  freshProcessRow(`@lucid/nn fused, webgpu (${adapter}), fresh process`, "webgpu");
}

try {
  const { jaxDevices, jaxNewFunctionCall, JAX_VERSION } = await import("./peers/jax.ts");
  const devices = await jaxDevices();
  for (const device of ["wasm", "webgpu"] as const) {
    if (!devices.includes(device) || (device === "webgpu" && adapter === null)) continue;
    const detail = device === "wasm" ? `${navigator.hardwareConcurrency} workers` : adapter;
    checkedRow(
      `jax-js ${JAX_VERSION} ${device} (${detail}), new jit function per call`,
      false,
      () => jaxNewFunctionCall(device, c, data),
    );
  }
} catch (e) {
  const setup = () => Promise.reject(new Error(`failed to load: ${e}`));
  if (enabled) registerRow(GROUP, "jax-js", false, setup, null);
}
