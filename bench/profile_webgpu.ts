// Where a WebGPU LocalResponseNorm forward call spends its time, for @lucid/nn and for jax-js's
// WebGPU backend, measured the same way for both by wrapping the WebGPU API itself (no library
// internals): per call, the count and time of uploads (writeBuffer), buffer creations, bind
// groups, submits, pipeline creations, and the wait in mapAsync (GPU work still queued plus
// readback); then the kernel alone, by replaying the call's recorded dispatches many times in
// one submit; and the fixed floor of a round trip (an empty submit, a 4-byte readback).
// Run: deno run --allow-env --allow-read bench/profile_webgpu.ts [A|B|...] [calls]

import { nn, tensor, webgpu } from "../mod.ts";
import { caseData, LRN, makeCase, SHAPES } from "./cases.ts";

interface Stat {
  count: number;
  ms: number;
  bytes: number;
}
const stats = new Map<string, Stat>();
function note(name: string, ms: number, bytes = 0): void {
  const s = stats.get(name) ?? { count: 0, ms: 0, bytes: 0 };
  s.count++;
  s.ms += ms;
  s.bytes += bytes;
  stats.set(name, s);
}

type Method = (...args: unknown[]) => unknown;
/** Wraps `proto[name]`: times synchronous calls, or until the returned promise settles. */
function wrap(proto: object, name: string, label: string, bytes?: (args: unknown[]) => number) {
  const target = proto as Record<string, Method>;
  const original = target[name];
  target[name] = function (this: unknown, ...args: unknown[]) {
    const start = performance.now();
    const result = original.apply(this, args);
    const size = bytes?.(args) ?? 0;
    if (result instanceof Promise) {
      return result.finally(() => note(label, performance.now() - start, size));
    }
    note(label, performance.now() - start, size);
    return result;
  };
}

// the dispatches of the current call, to replay them for the kernel-only time
let recording: { pipeline: unknown; bindGroup: unknown; grid: number[]; }[] = [];
const current: { pipeline: unknown; bindGroup: unknown; } = { pipeline: null, bindGroup: null };

wrap(GPUQueue.prototype, "writeBuffer", "upload (queue.writeBuffer)", (a) => {
  const data = a[2] as ArrayBufferView | ArrayBuffer;
  return (a[4] as number | undefined) ?? data.byteLength;
});
wrap(GPUQueue.prototype, "submit", "queue.submit");
wrap(
  GPUDevice.prototype,
  "createBuffer",
  "device.createBuffer",
  (a) => (a[0] as { size: number; }).size,
);
wrap(GPUDevice.prototype, "createBindGroup", "device.createBindGroup");
wrap(GPUDevice.prototype, "popErrorScope", "device.popErrorScope (until resolved)");
wrap(GPUDevice.prototype, "createShaderModule", "device.createShaderModule");
// the WGSL behind each pipeline, to print what each dispatch runs
const shaderOf = new WeakMap<object, string>();
const codeOf = new WeakMap<object, string>();
{
  const device = GPUDevice.prototype as unknown as Record<string, Method>;
  const createModule = device.createShaderModule;
  device.createShaderModule = function (this: unknown, ...a: unknown[]) {
    const module = createModule.apply(this, a) as object;
    codeOf.set(module, (a[0] as GPUShaderModuleDescriptor).code);
    return module;
  };
  for (const name of ["createComputePipeline", "createComputePipelineAsync"]) {
    const create = device[name];
    device[name] = function (this: unknown, ...a: unknown[]) {
      const code = codeOf.get((a[0] as GPUComputePipelineDescriptor).compute.module) ?? "";
      const result = create.apply(this, a);
      if (result instanceof Promise) return result.then((p) => (shaderOf.set(p, code), p));
      shaderOf.set(result as object, code);
      return result;
    };
  }
}
wrap(GPUDevice.prototype, "createComputePipeline", "device.createComputePipeline");
wrap(GPUDevice.prototype, "createComputePipelineAsync", "device.createComputePipelineAsync");
wrap(GPUBuffer.prototype, "mapAsync", "readback wait (buffer.mapAsync)");
wrap(GPUBuffer.prototype, "getMappedRange", "buffer.getMappedRange");
wrap(GPUCommandEncoder.prototype, "copyBufferToBuffer", "encoder.copyBufferToBuffer");
{
  const pass = GPUComputePassEncoder.prototype as unknown as Record<string, Method>;
  const setPipeline = pass.setPipeline;
  pass.setPipeline = function (this: unknown, ...a: unknown[]) {
    current.pipeline = a[0];
    return setPipeline.apply(this, a);
  };
  const setBindGroup = pass.setBindGroup;
  pass.setBindGroup = function (this: unknown, ...a: unknown[]) {
    if (a[0] === 0) current.bindGroup = a[1];
    return setBindGroup.apply(this, a);
  };
  const dispatch = pass.dispatchWorkgroups;
  pass.dispatchWorkgroups = function (this: unknown, ...a: unknown[]) {
    recording.push({ ...current, grid: a as number[] });
    note("pass.dispatchWorkgroups", 0);
    return dispatch.apply(this, a);
  };
}

const shapeName = Deno.args[0] ?? "A";
const calls = Number(Deno.args[1] ?? 20);
const shape = [...SHAPES[shapeName]];
const data = caseData(shape);
if (!(await webgpu.available())) throw new Error("no WebGPU adapter");

async function lucidForward(): Promise<void> {
  const lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
  using x = tensor(data.x, { shape, device: "webgpu" });
  using y = lrn.forward(x);
  await y.data();
}

const jax = await import("./peers/jax.ts");
await jax.jaxDevices();
const jaxCall = await jax.jaxRow("webgpu", "").prepare(makeCase(shapeName, "fwd"), data);

/** The time of `replays` replays of the recorded dispatches, in one submit, per replay. */
async function kernelOnly(device: GPUDevice, replays: number): Promise<number> {
  const work = recording.slice();
  device.pushErrorScope("validation");
  const start = performance.now();
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (let i = 0; i < replays; i++) {
    for (const d of work) {
      pass.setPipeline(d.pipeline as GPUComputePipeline);
      pass.setBindGroup(0, d.bindGroup as GPUBindGroup);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1] ?? 1, d.grid[2] ?? 1);
    }
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  const ms = (performance.now() - start) / replays;
  const error = await device.popErrorScope();
  if (error) throw new Error(`replay failed: ${error.message}`);
  return ms;
}

/** The fixed cost of a round trip on `device`: an empty submit, and a 4-byte readback. */
async function floors(device: GPUDevice): Promise<{ emptySubmit: number; tinyReadback: number; }> {
  const src = device.createBuffer({
    size: 4,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  let emptySubmit = Infinity;
  let tinyReadback = Infinity;
  for (let i = 0; i < 10; i++) {
    let start = performance.now();
    device.queue.submit([device.createCommandEncoder().finish()]);
    await device.queue.onSubmittedWorkDone();
    emptySubmit = Math.min(emptySubmit, performance.now() - start);
    start = performance.now();
    const staging = device.createBuffer({
      size: 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(src, 0, staging, 0, 4);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    staging.unmap();
    staging.destroy();
    tinyReadback = Math.min(tinyReadback, performance.now() - start);
  }
  src.destroy();
  return { emptySubmit, tinyReadback };
}

/** Medians over `calls` calls of the wall time, then the per-call API profile. */
async function profile(name: string, call: () => Promise<void>, device: () => GPUDevice) {
  for (let i = 0; i < 3; i++) await call(); // compile, pools, caches
  const walls: number[] = [];
  stats.clear();
  for (let i = 0; i < calls; i++) {
    recording = [];
    const start = performance.now();
    await call();
    walls.push(performance.now() - start);
  }
  const profileStats = new Map([...stats].map(([k, v]) => [k, { ...v }]));
  const dispatched = recording.slice();
  const kernel = await kernelOnly(device(), 20);
  const floor = await floors(device());
  walls.sort((a, b) => a - b);
  console.log(`\n## ${name}, LRN forward on ${shapeName} (${shape.join("x")}), ${calls} calls`);
  console.log(
    `wall per call: median ${walls[calls >> 1].toFixed(2)} ms, min ${walls[0].toFixed(2)} ms`,
  );
  console.log(
    `dispatches per call: ${dispatched.length}; kernel only (replayed x20 in one submit): ${
      kernel.toFixed(2)
    } ms per call`,
  );
  console.log(
    `floors on this device: empty submit + onSubmittedWorkDone ${
      floor.emptySubmit.toFixed(2)
    } ms, 4-byte readback ${floor.tinyReadback.toFixed(2)} ms`,
  );
  console.log("| WebGPU call | per LRN call | ms per LRN call | MB per LRN call |");
  console.log("|---|--:|--:|--:|");
  for (const d of dispatched) {
    const code = shaderOf.get(d.pipeline as object) ?? "";
    const size = /@workgroup_size\(([^)]*)\)/.exec(code)?.[1] ?? "?";
    console.log(
      `dispatch: grid ${d.grid.join("x")}, workgroup_size(${size}), ${code.length} chars of WGSL`,
    );
    if (Deno.env.get("SHOW_WGSL")) console.log(code);
  }
  for (const [label, s] of [...profileStats].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(
      `| ${label} | ${(s.count / calls).toFixed(1)} | ${(s.ms / calls).toFixed(3)} | ${
        (s.bytes / calls / 1e6).toFixed(2)
      } |`,
    );
  }
}

// the device @lucid/nn uses is the one its buffers were made on: found through a recorded bind group
let lucidDevice: GPUDevice | null = null;
{
  const original = GPUDevice.prototype.createBindGroup;
  GPUDevice.prototype.createBindGroup = function (this: GPUDevice, d: GPUBindGroupDescriptor) {
    lucidDevice ??= this;
    return original.call(this, d);
  };
}
await profile("@lucid/nn webgpu", lucidForward, () => lucidDevice!);
lucidDevice = null;
await profile("jax-js 0.1.25 webgpu", async () => void await jaxCall(), jax.jaxWebGpuDevice);
