// The `wgsl` export: each distinct kernel as a `.wgsl` file, a `manifest.json` describing how
// to run them (buffers, and per launch in order: the kernel, its bindings with names, dtypes
// and sizes, its workgroup size and dispatch grid), and `<name>.js`, a self-contained ES
// module exporting `inputs`, `outputs` and `async run(device, ...inputs)` for any GPUDevice
// the caller passes. The runner embeds the same WGSL text, so it needs no file access.
//
// How kernels bind and launch is the runtime's own convention (src/runtime/webgpu.ts): `out`
// at binding 0 (read_write; a kernel writing several outputs binds `out0`, `out1`, ... at 0, 1,
// ...), the inputs `in0`, `in1`, ... after them (read-only), an explicit bind group
// layout (so a binding a kernel ignores still binds), one 2-D dispatch per launch. The runner
// keeps per device what does not change between runs (pipelines, layouts, intermediates,
// constants); inputs, outputs and readback buffers are made per run and destroyed after.
// Runs on one device may overlap: the queue orders their launches, so the shared
// intermediates are never used by two runs at once.

// The helpers of export.ts that export_wasm.ts imports too: what the targets share lives there,
// so the two import lists (and the openings of the two manifests) look alike.
import { WORKGROUP_SIZE } from "./wgsl.ts";
import { outputName } from "./kernel.ts";
import { INPUT_CHECKS } from "./export_js.ts";
import {
  bytesOf,
  elementsOf,
  type ExportFile,
  type ExportLayout,
  type ExportProgram,
  formatJson,
  manifestBuffer,
  manifestHead,
  manifestValue,
  moduleHeader,
  runDoc,
  typedArrayLiteral,
  valueTables,
} from "./export.ts";

/** Names `run` uses besides its inputs: input and output names must differ from them. */
export const WGSL_MODULE_NAMES: ReadonlySet<string> = new Set(["run", "device", "runOn"]);

/** Invocations per workgroup of a kernel. */
function workgroupSize(layoutKernel: ExportLayout["kernels"][number]): number {
  const program = layoutKernel.executable.program;
  return program.mode === "workgroup" ? program.lanes : WORKGROUP_SIZE;
}

/** `text` as a JavaScript string literal: a template literal when it needs no escapes. */
function stringLiteral(text: string): string {
  return /[`\\]|\$\{/.test(text) ? JSON.stringify(text) : `\`${text}\``;
}

/** The manifest: everything needed to run the kernels without the runner. */
function manifest(program: ExportProgram, layout: ExportLayout): string {
  const { plan } = program;
  return formatJson({
    ...manifestHead(program, "wgsl"),
    runner: `${program.name}.js`,
    conventions: "Each kernel binds `out` at binding 0 (storage, read_write; a kernel with " +
      "several outputs binds `out0`, `out1`, ... at 0, 1, ...) and its inputs `in0`, `in1`, " +
      "... at the bindings after them (storage, read) of group 0. Launch them in " +
      "order, each with dispatchWorkgroups(dispatch[0], dispatch[1]). Buffers hold row-major " +
      "data; a storage binding is at least 4 bytes. Intermediates with the same scratchSlot " +
      "may share one GPUBuffer of scratch[slot].bytes.",
    inputs: program.inputs.map((v) => manifestValue(program, v)),
    outputs: program.outputs.map((v) => manifestValue(program, v)),
    buffers: plan.buffers.map((_, i) => manifestBuffer(program, layout, i)),
    scratch: layout.slotBytes.map((bytes, slot) => ({ slot, bytes })),
    kernels: layout.kernels.map((k) => ({
      name: k.name,
      file: `${k.name}.wgsl`,
      entryPoint: k.executable.name,
      workgroupSize: [workgroupSize(k), 1, 1],
      // grid: one invocation per output element; workgroup: one workgroup per output element,
      // its lanes splitting the reduction
      mode: k.executable.program.mode,
    })),
    launches: plan.steps.map((step, s) => {
      const kernel = layout.kernels[layout.stepKernels[s]];
      return {
        order: s,
        kernel: kernel.name,
        file: `${kernel.name}.wgsl`,
        entryPoint: kernel.executable.name,
        workgroupSize: [workgroupSize(kernel), 1, 1],
        dispatch: [...kernel.executable.workgroups, 1],
        bindings: [...step.outputs, ...step.inputs].map((i, binding) => ({
          binding,
          variable: binding < step.outputs.length
            ? outputName(binding, step.outputs.length)
            : `in${binding - step.outputs.length}`,
          access: binding < step.outputs.length ? "read_write" : "read",
          buffer: layout.names[i],
          dtype: plan.buffers[i].dtype,
          elements: elementsOf(plan.buffers[i]),
          bytes: bytesOf(plan.buffers[i]),
        })),
      };
    }),
  });
}

/** The runner's tables: kernels, buffers, launches. */
function runnerTables(program: ExportProgram, layout: ExportLayout): string[] {
  const { plan } = program;
  const lines = [
    "",
    "// ---- kernels: the same WGSL as the .wgsl files beside this module ----",
    "",
  ];
  lines.push("const KERNELS = {");
  for (const k of layout.kernels) {
    lines.push(
      `  ${k.name}: {`,
      `    entryPoint: "${k.executable.name}",`,
      `    code: ${stringLiteral(k.executable.text)},`,
      "  },",
    );
  }
  lines.push("};");
  if (program.constants.size > 0) {
    lines.push("", "// ---- constants: the tensors the function captured when it was traced ----");
    for (const [i, data] of program.constants) {
      lines.push(`const ${layout.names[i]} = ${typedArrayLiteral(plan.buffers[i].dtype, data)};`);
    }
  }
  lines.push(
    "",
    "// ---- buffers: intermediates live in per-device scratch slots, reused by every run ----",
    "const BUFFERS = [",
  );
  plan.buffers.forEach((b, i) => {
    const extra = b.role === "intermediate"
      ? `, slot: ${layout.slots[i]}`
      : b.role === "constant"
      ? `, data: ${layout.names[i]}`
      : "";
    lines.push(
      `  { name: "${layout.names[i]}", role: "${b.role}", dtype: "${b.dtype}", length: ${
        elementsOf(b)
      }${extra} },`,
    );
  });
  lines.push(
    "];",
    `const SCRATCH_BYTES = [${layout.slotBytes.join(", ")}];`,
    `const INPUT_BUFFERS = [${program.inputs.map((v) => v.buffer).join(", ")}];`,
    `const OUTPUT_BUFFERS = [${program.outputs.map((v) => v.buffer).join(", ")}];`,
    "",
    "// ---- launches, in order: kernel, outputs, buffers bound (outputs first), grid ----",
    "const LAUNCHES = [",
  );
  plan.steps.forEach((step, s) => {
    const kernel = layout.kernels[layout.stepKernels[s]];
    const [x, y] = kernel.executable.workgroups;
    lines.push(
      `  { kernel: "${kernel.name}", outputs: ${step.outputs.length}, buffers: [${
        [...step.outputs, ...step.inputs].join(", ")
      }], workgroups: [${x}, ${y}] }, // ${
        [...step.outputs, ...step.inputs].map((i) => layout.names[i]).join(", ")
      }`,
    );
  });
  lines.push("];");
  return lines;
}

// The part of the runner that is the same for every export. It is plain JavaScript for a module
// with no imports, so it spells out again what src/runtime/webgpu.ts does with the library's
// types (usage flags, error scopes around the launches, readback): alike by design.
const RUNTIME = `
// ---- the runner ----

const STORAGE = 0x80; // GPUBufferUsage.STORAGE, and the others spelled out likewise, so this
const COPY_SRC = 0x4; // module loads where the WebGPU globals are missing
const COPY_DST = 0x8;
const MAP_READ = 0x1;
const MODE_READ = 0x1; // GPUMapMode.READ
const COMPUTE = 0x4; // GPUShaderStage.COMPUTE
const TYPED_ARRAYS = { float32: Float32Array, int32: Int32Array };

/** Bytes of a buffer's storage binding (at least 4: WebGPU binds no empty buffer). */
function bindingBytes(buffer) {
  return Math.max(4, buffer.length * 4);
}

/** What is kept per device: pipelines, layouts, scratch and constant buffers. */
const states = new WeakMap();

/** The loss info of each device known lost (a destroyed device's launches fail as validation errors). */
const lostDevices = new WeakMap();
const watchedDevices = new WeakSet();

function watchLoss(device) {
  if (watchedDevices.has(device)) return;
  watchedDevices.add(device);
  device.lost?.then((info) => {
    lostDevices.set(device, info);
    states.delete(device);
  });
}

/** The device's loss info, given a few tasks to arrive (the lost promise settles after a failure), or undefined. */
async function lossOf(device) {
  for (let task = 0; task < 3 && !lostDevices.has(device); task++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return lostDevices.get(device);
}

function lostError(info, cause) {
  const why = info.message ? \`\${info.reason}: \${info.message}\` : String(info.reason);
  return new Error(\`run: the device was lost (\${why}); request a new GPUDevice\`, { cause });
}

function stateOf(device) {
  let state = states.get(device);
  if (state !== undefined) return state;
  const layouts = new Map();
  const layoutFor = (count, outputs) => {
    const key = count + "/" + outputs;
    let layout = layouts.get(key);
    if (layout === undefined) {
      const bind = device.createBindGroupLayout({
        entries: Array.from({ length: count }, (_, binding) => ({
          binding,
          visibility: COMPUTE,
          buffer: { type: binding < outputs ? "storage" : "read-only-storage" },
        })),
      });
      layout = { bind, pipeline: device.createPipelineLayout({ bindGroupLayouts: [bind] }) };
      layouts.set(key, layout);
    }
    return layout;
  };
  const modules = new Map();
  const pipelines = new Map();
  for (const launch of LAUNCHES) {
    if (pipelines.has(launch.kernel)) continue;
    const kernel = KERNELS[launch.kernel];
    const module = device.createShaderModule({ code: kernel.code });
    modules.set(launch.kernel, module);
    pipelines.set(
      launch.kernel,
      device.createComputePipelineAsync({
        layout: layoutFor(launch.buffers.length, launch.outputs).pipeline,
        compute: { module, entryPoint: kernel.entryPoint },
      }),
    );
  }
  const scratch = SCRATCH_BYTES.map((size) => device.createBuffer({ size: Math.max(4, size), usage: STORAGE }));
  const constants = new Map();
  BUFFERS.forEach((buffer, i) => {
    if (buffer.role !== "constant") return;
    const gpu = device.createBuffer({ size: bindingBytes(buffer), usage: STORAGE | COPY_DST });
    if (buffer.length > 0) device.queue.writeBuffer(gpu, 0, buffer.data);
    constants.set(i, gpu);
  });
  state = { layoutFor, modules, pipelines, scratch, constants };
  states.set(device, state);
  return state;
}

function checkDevice(device) {
  if (device === null || typeof device !== "object" || typeof device.createBuffer !== "function" || !device.queue) {
    throw new TypeError(
      "run: device must be a GPUDevice (from (await navigator.gpu.requestAdapter()).requestDevice()), " +
        \`got \${describeValue(device)}\`,
    );
  }
  const limits = device.limits;
  for (const launch of LAUNCHES) {
    const need = (limit, value, what) => {
      if (value > limits[limit]) {
        throw new Error(
          \`run: kernel \${launch.kernel} needs \${what} \${value}, above this device's \${limit} \` +
            \`of \${limits[limit]}; request the device with requiredLimits: { \${limit}: \${value} }\`,
        );
      }
    };
    need("maxStorageBuffersPerShaderStage", launch.buffers.length, "storage buffers:");
    need("maxComputeWorkgroupsPerDimension", Math.max(...launch.workgroups), "workgroups per dimension:");
    for (const b of launch.buffers) {
      need("maxStorageBufferBindingSize", bindingBytes(BUFFERS[b]), \`a binding (\${BUFFERS[b].name}) of bytes:\`);
    }
  }
}

async function runOn(device, values) {
  checkDevice(device);
  watchLoss(device);
  if (lostDevices.has(device)) throw lostError(lostDevices.get(device));
  checkInputs(values);
  // the values at the call: they are uploaded after an await, and the caller may refill its
  // arrays or transfer their buffers meanwhile (a run computed on zeros, or on the new values)
  // (copied by the built-in constructor: a subclass's own slice() may return anything)
  const types = { float32: Float32Array, float64: Float64Array, int32: Int32Array };
  values = values.map((value, i) => new types[inputs[i].dtype](value));
  const state = stateOf(device);
  let pipelines;
  try {
    pipelines = new Map(await Promise.all([...state.pipelines].map(async ([k, p]) => [k, await p])));
  } catch (e) {
    states.delete(device); // the next run compiles again
    const lost = await lossOf(device);
    if (lost !== undefined) throw lostError(lost, e);
    const messages = [];
    for (const [name, module] of state.modules) {
      const info = await module.getCompilationInfo?.();
      for (const m of info?.messages ?? []) {
        if (m.type === "error") messages.push(\`\\n  \${name}.wgsl:\${m.lineNum}:\${m.linePos}: \${m.message}\`);
      }
    }
    throw new Error(\`run: a kernel does not compile on this device: \${e.message}\${messages.join("")}\`, { cause: e });
  }
  const temporary = [];
  try {
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    let staging = null;
    let thrown = null;
    try {
      staging = submit(device, state, pipelines, values, temporary);
    } catch (e) {
      thrown = e; // the error scopes are popped first
    }
    // both popped before any await: another run pushing its scopes in between took ours
    const popped = [device.popErrorScope(), device.popErrorScope()];
    const [invalid, outOfMemory] = await Promise.all(popped);
    if (thrown !== null) throw thrown;
    const error = invalid ?? outOfMemory;
    if (error) throw new Error(\`run: WebGPU refused the launches: \${error.message}\`);
    await Promise.all([...staging.values()].map((readback) => readback.mapAsync(MODE_READ)));
    const results = new Map();
    for (const [b, readback] of staging) {
      const type = TYPED_ARRAYS[BUFFERS[b].dtype];
      results.set(b, new type(new type(readback.getMappedRange()))); // a copy, not zeroed first
      readback.unmap();
    }
    const claimed = new Set(); // a second output of the same buffer gets a copy
    return OUTPUT_BUFFERS.map((b) => {
      const buffer = BUFFERS[b];
      if (buffer.role === "input") return values[INPUT_BUFFERS.indexOf(b)].slice();
      if (buffer.role === "constant") return buffer.data.slice();
      const data = results.get(b) ?? new TYPED_ARRAYS[buffer.dtype](0);
      const first = !claimed.has(b);
      claimed.add(b);
      return first ? data : data.slice();
    });
  } catch (e) {
    // a device lost meanwhile (destroyed, say) fails the readback with a bare OperationError
    const lost = await lossOf(device);
    throw lost === undefined ? e : lostError(lost, e);
  } finally {
    for (const storage of temporary) storage.destroy();
  }
}

/** Uploads the inputs, encodes every launch and the readback copies, submits; the staging buffers. */
function submit(device, state, pipelines, values, temporary) {
  const used = new Set(LAUNCHES.flatMap((launch) => launch.buffers));
  const make = (buffer, usage) => {
    const storage = device.createBuffer({ size: bindingBytes(buffer), usage });
    temporary.push(storage);
    return storage;
  };
  const gpu = BUFFERS.map((buffer, i) => {
    if (!used.has(i) && buffer.role !== "output") return null;
    switch (buffer.role) {
      case "intermediate":
        return state.scratch[buffer.slot];
      case "constant":
        return state.constants.get(i);
      case "input": {
        const storage = make(buffer, STORAGE | COPY_DST);
        if (buffer.length > 0) device.queue.writeBuffer(storage, 0, values[INPUT_BUFFERS.indexOf(i)]);
        return storage;
      }
      default:
        return make(buffer, STORAGE | COPY_SRC);
    }
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  for (const launch of LAUNCHES) {
    pass.setPipeline(pipelines.get(launch.kernel));
    pass.setBindGroup(0, device.createBindGroup({
      layout: state.layoutFor(launch.buffers.length, launch.outputs).bind,
      entries: launch.buffers.map((b, binding) => ({
        binding,
        resource: { buffer: gpu[b], size: bindingBytes(BUFFERS[b]) },
      })),
    }));
    pass.dispatchWorkgroups(launch.workgroups[0], launch.workgroups[1]);
  }
  pass.end();
  const staging = new Map();
  for (const b of new Set(OUTPUT_BUFFERS)) {
    const buffer = BUFFERS[b];
    if (buffer.role !== "output" || buffer.length === 0) continue;
    const readback = make(buffer, MAP_READ | COPY_DST);
    encoder.copyBufferToBuffer(gpu[b], 0, readback, 0, buffer.length * 4);
    staging.set(b, readback);
  }
  device.queue.submit([encoder.finish()]);
  return staging;
}
`;

/** The `wgsl` export of `program`: kernels, manifest and runner. */
export function writeWgslFiles(program: ExportProgram, layout: ExportLayout): ExportFile[] {
  const inputNames = program.inputs.map((v) => v.name);
  const runner = [
    ...moduleHeader(
      program,
      layout,
      "WGSL kernels and a standalone ES module that runs them on a GPUDevice",
      (a) => `await run(${["device", a].filter((t) => t !== "").join(", ")})`,
    ),
    "",
    ...valueTables(
      program,
      "The inputs of `run` after the device, in order: name, shape (row-major) and dtype.",
      "The outputs `run` resolves to, in order.",
    ),
    "",
    ...runDoc(
      program,
      [
        "@param {GPUDevice} device any WebGPU device (kernels, intermediates and constants are " +
        "kept per device)",
      ],
      (types) => `Promise<${types}>`,
    ),
    `export async function run(${["device", ...inputNames].join(", ")}) {`,
    "  return await runOn(device, [...arguments].slice(1));",
    "}",
    ...runnerTables(program, layout),
    INPUT_CHECKS.trimEnd(),
    RUNTIME,
  ];
  return [
    ...layout.kernels.map((k) => ({ path: `${k.name}.wgsl`, contents: k.executable.text })),
    { path: "manifest.json", contents: manifest(program, layout) },
    { path: `${program.name}.js`, contents: runner.join("\n").trimEnd() + "\n" },
  ];
}
