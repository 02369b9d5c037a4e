// The `wasm` export: each distinct WebAssembly kernel as a `.wasm` module with its text beside
// it (`.wat`), a `manifest.json` (the memory layout and, per launch in order, the function and
// the arguments to call it with) and `<name>.js`, a self-contained ES loader with no imports
// exporting `inputs`, `outputs` and `run(...inputs)` with the `js` export's contract: typed
// arrays in, new typed arrays out in the order of `outputs`.
//
// How the loader works, and why:
// - It embeds the modules' bytes (base64) instead of fetching the `.wasm` files, so it needs no
//   file or network access, no server that labels `.wasm` as application/wasm and no path
//   resolution: importing the one file works the same in Deno, Node, a browser, a worker, a
//   bundle or a data: URL. The `.wasm` files and the manifest are for other hosts.
// - It makes its own WebAssembly.Memory, not shared (kernels are compiled for
//   WASM_UNSHARED_TARGET), so it runs in any browser without cross-origin isolation, on the
//   calling thread. The memory is sized once and never grows: every buffer has a fixed 64-byte
//   aligned block (inputs a kernel reads, constants, outputs; intermediates in the scratch
//   slots of codegen/export.ts), so its typed-array views are made once.
// - Kernels Wasm does not compute (float64 or int32 data, a general pow: `fitsWasm`) compile
//   for JavaScript, as on the cpu device, and are embedded as functions that take views of the
//   same memory.
// - The modules are instantiated once, when the loader is imported (top-level await), so
//   `run` is synchronous, as the `js` export's is.

// The helpers of export.ts that export_wgsl.ts imports too: what the targets share lives there,
// so the two import lists (and the openings of the two manifests) look alike.
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
  typedArrayLiteral,
  typedArrayName,
  typeText,
} from "./export.ts";
import { INPUT_CHECKS, inputCheckNames, kernelText, synchronousRun } from "./export_js.ts";

/** Names the loader uses besides its inputs: input and output names must differ from them. */
export const WASM_LOADER_NAMES: ReadonlySet<string> = new Set([
  "run",
  "inputs",
  "outputs",
  ...inputCheckNames(),
  "memory",
  "views",
  "MODULES",
  "instantiate",
  "newMemory",
  "Float32Array",
  "Float64Array",
  "Int32Array",
  "WebAssembly",
]);

/** Block alignment in the memory, as the cpu device's allocator (SIMD loads, cache lines). */
const ALIGN = 64;
/** Bytes of a WebAssembly page. */
const PAGE = 65536;
/** Pages a wasm32 memory may have: 4 GiB. */
const MAX_PAGES = 65536;
/** Base64 characters per line of an embedded module. */
const BASE64_LINE = 96;

/** Where the loader keeps every buffer. */
interface MemoryLayout {
  /** Byte offset of each plan buffer's block, or -1 for an input no kernel reads. */
  readonly offsets: readonly number[];
  /** Bytes of the memory (every block). */
  readonly bytes: number;
  /** Its size in 64 KiB pages (at least 1: the modules import a memory of at least one). */
  readonly pages: number;
}

/** The steps that launch: a kernel writing no element is skipped, as the cpu device does. */
function launchedSteps(program: ExportProgram): number[] {
  const { steps, buffers } = program.plan;
  return steps.flatMap((step, s) => (elementsOf(buffers[step.outputs[0]]) > 0 ? [s] : []));
}

/**
 * Blocks in plan-buffer order (inputs some kernel reads, constants, outputs), then one per
 * scratch slot; intermediates sit in their slot's block. Throws if it passes 4 GiB.
 */
function memoryLayout(program: ExportProgram, layout: ExportLayout): MemoryLayout {
  const { plan } = program;
  const read = new Set(launchedSteps(program).flatMap((s) => plan.steps[s].inputs));
  let top = 0;
  const block = (bytes: number) => {
    const at = top;
    top += Math.ceil(bytes / ALIGN) * ALIGN;
    return at;
  };
  const offsets = plan.buffers.map((b, i) => {
    if (b.role === "intermediate" || (b.role === "input" && !read.has(i))) return -1;
    return block(bytesOf(b));
  });
  const slotOffsets = layout.slotBytes.map(block);
  layout.slots.forEach((slot, i) => {
    if (slot >= 0) offsets[i] = slotOffsets[slot];
  });
  const pages = Math.max(1, Math.ceil(top / PAGE));
  if (pages > MAX_PAGES) {
    throw new Error(
      `exportCompiled: target "wasm" needs ${top} bytes of memory for its buffers, more than ` +
        `the 4 GiB a WebAssembly memory holds; export smaller shapes, or use target "js"`,
    );
  }
  return { offsets, bytes: top, pages };
}

/** Whether a kernel of the layout runs as WebAssembly (else it is JavaScript). */
function isWasm(kernel: ExportLayout["kernels"][number]): boolean {
  return kernel.executable.target === "wasm";
}

/** The range [start, end) of the outer output rows a Wasm launch runs: all of them. */
function outerRange(kernel: ExportLayout["kernels"][number]): [number, number] {
  return [0, kernel.executable.splitExtent!];
}

/** The arguments of a Wasm launch: byte offsets of its output and inputs, then its range. */
function wasmArguments(
  program: ExportProgram,
  layout: ExportLayout,
  memory: MemoryLayout,
  s: number,
): number[] {
  const step = program.plan.steps[s];
  const kernel = layout.kernels[layout.stepKernels[s]];
  const buffers = [...step.outputs, ...step.inputs];
  return [...buffers.map((i) => memory.offsets[i]), ...outerRange(kernel)];
}

/** The statements of `run`: copy the inputs in, launch in order, copy the outputs out. */
function runBody(program: ExportProgram, layout: ExportLayout, memory: MemoryLayout): string[] {
  const { plan } = program;
  const { names } = layout;
  const lines = ["  checkInputs(arguments);"];
  for (const { name, buffer } of program.inputs) {
    if (memory.offsets[buffer] >= 0) lines.push(`  views[${buffer}].set(${name});`);
  }
  for (const s of launchedSteps(program)) {
    const step = plan.steps[s];
    const kernel = layout.kernels[layout.stepKernels[s]];
    const buffers = [...step.outputs, ...step.inputs];
    const args = isWasm(kernel)
      ? wasmArguments(program, layout, memory, s).join(", ")
      : buffers.map((i) => `views[${i}]`).join(", ");
    const reads = step.inputs.map((i) => names[i]).join(", ") || "(no inputs)";
    const writes = step.outputs.map((i) => names[i]).join(", ");
    lines.push(`  ${kernel.name}(${args}); // ${writes} <- ${reads}`);
  }
  for (const { name, buffer } of program.outputs) {
    const source = plan.buffers[buffer].role === "input" ? names[buffer] : `views[${buffer}]`;
    // the constructor copies into a buffer it does not zero first: faster than slice()
    const type = typedArrayName(plan.buffers[buffer].dtype);
    lines.push(`  const ${name} = new ${type}(${source});`);
  }
  lines.push(`  return [${program.outputs.map((v) => v.name).join(", ")}];`);
  return lines;
}

/** The memory, a view per buffer that has a block, and the constants written into it. */
function storage(program: ExportProgram, layout: ExportLayout, memory: MemoryLayout): string[] {
  const { plan } = program;
  const lines = [
    "",
    "// ---- memory: one block per buffer, 64-byte aligned; it never grows, so the views stay ----",
    "// ---- valid (intermediates whose lifetimes do not overlap share a scratch block) ----",
    `const memory = newMemory(${memory.pages});`,
    "const views = [",
  ];
  plan.buffers.forEach((b, i) => {
    const what = `${layout.names[i]}: ${b.role}${
      layout.slots[i] >= 0 ? ` in scratch ${layout.slots[i]}` : ""
    } ${typeText(b.dtype, b.shape)}`;
    if (memory.offsets[i] < 0) {
      lines.push(`  null, // ${what}, read by no kernel`);
      return;
    }
    lines.push(
      `  new ${typedArrayName(b.dtype)}(memory.buffer, ${memory.offsets[i]}, ${
        elementsOf(b)
      }), // ${what}`,
    );
  });
  lines.push("];");
  if (program.constants.size > 0) {
    lines.push("", "// ---- constants: the tensors the function captured, written in once ----");
  }
  for (const [i, data] of program.constants) {
    lines.push(
      `// ${layout.names[i]}`,
      `views[${i}].set(${typedArrayLiteral(plan.buffers[i].dtype, data)});`,
    );
  }
  return lines;
}

/** Base64 of `bytes`. */
function base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** The embedded modules and their instantiation (last in the loader: it awaits). */
function modules(layout: ExportLayout): string[] {
  const wasm = layout.kernels.filter(isWasm);
  if (wasm.length === 0) return [];
  const lines = [
    "",
    "// ---- the WebAssembly modules: the .wasm files beside this module, in base64 ----",
    "const MODULES = {",
  ];
  for (const k of wasm) {
    const text = base64(k.executable.binary!);
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += BASE64_LINE) {
      chunks.push(`"${text.slice(i, i + BASE64_LINE)}"`);
    }
    lines.push(`  ${k.name}:`, `    ${chunks.join(" +\n    ")},`);
  }
  lines.push(
    "};",
    "",
    "// ---- instantiated once, when this module is imported ----",
    `const [${wasm.map((k) => k.name).join(", ")}] = await Promise.all([`,
    ...wasm.map((k) => `  instantiate("${k.name}", "${k.executable.name}"),`),
    "]);",
  );
  return lines;
}

// The part of the loader that is the same for every export.
const RUNTIME = `
// ---- the loader ----

function newMemory(pages) {
  try {
    return new WebAssembly.Memory({ initial: pages });
  } catch (e) {
    throw new Error(\`cannot allocate the \${pages * 65536} bytes of memory this model needs: \${e.message}\`, { cause: e });
  }
}

/** The exported function of the embedded module \`name\`, instantiated on \`memory\`. */
async function instantiate(name, exportName) {
  const bytes = Uint8Array.from(atob(MODULES[name]), (c) => c.charCodeAt(0));
  try {
    const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
    return instance.exports[exportName];
  } catch (e) {
    throw new Error(
      \`kernel \${name} does not load here: \${e.message} (it needs WebAssembly with SIMD: \` +
        "Chrome 91, Firefox 89, Safari 16.4, Node 16.4, Deno 1.9 or later)",
      { cause: e },
    );
  }
}
`;

/** The manifest: what the .wasm files need to run without the loader. */
function manifest(program: ExportProgram, layout: ExportLayout, memory: MemoryLayout): string {
  const { plan } = program;
  return formatJson({
    ...manifestHead(program, "wasm"),
    loader: `${program.name}.js`,
    conventions: "Each .wasm module imports its memory as env.memory (not shared, at least 1 " +
      "page; the loader makes one of memory.pages pages of 64 KiB) and exports one function, " +
      "`export`, taking i32 arguments: the byte offsets of its output and inputs in that " +
      "memory (unsigned: one of 2^31 or more is passed as the i32 of the same bits), then the " +
      "range [start, end) of its outer rows (of the first output axis, or of the first two); " +
      "a launch lists them in `arguments`. Buffers hold row-major little-endian data at " +
      "`offset`; intermediates " +
      "with the same scratchSlot share one block. Kernels of kind js are JavaScript functions " +
      "in the loader taking typed-array views of their buffers, output first. The modules use " +
      "WebAssembly SIMD.",
    memory: { pages: memory.pages, bytes: memory.bytes, shared: false },
    inputs: program.inputs.map((v) => manifestValue(program, v)),
    outputs: program.outputs.map((v) => manifestValue(program, v)),
    // an input no kernel reads has no offset: the loader keeps no block for it
    buffers: plan.buffers.map((_, i) => ({
      ...manifestBuffer(program, layout, i),
      ...(memory.offsets[i] >= 0 ? { offset: memory.offsets[i] } : {}),
    })),
    kernels: layout.kernels.map((k) =>
      isWasm(k)
        ? {
          name: k.name,
          kind: "wasm",
          file: `${k.name}.wasm`,
          text: `${k.name}.wat`,
          export: k.executable.name,
        }
        : { name: k.name, kind: "js", in: `${program.name}.js` }
    ),
    launches: launchedSteps(program).map((s) => {
      const step = plan.steps[s];
      const kernel = layout.kernels[layout.stepKernels[s]];
      return {
        order: s,
        kernel: kernel.name,
        kind: isWasm(kernel) ? "wasm" : "js",
        buffers: [...step.outputs, ...step.inputs].map((i) => layout.names[i]),
        ...(isWasm(kernel) ? { arguments: wasmArguments(program, layout, memory, s) } : {}),
      };
    }),
  });
}

/** The loader's header lines about the kernels and the memory. */
function loaderNotes(layout: ExportLayout, memory: MemoryLayout): string[] {
  const wasm = layout.kernels.filter(isWasm).map((k) => k.name);
  const js = layout.kernels.filter((k) => !isWasm(k)).map((k) => k.name);
  const lines: string[] = [];
  if (wasm.length > 0) {
    lines.push(`// WebAssembly (SIMD) kernels: ${wasm.join(", ")} (the .wasm and .wat files).`);
  }
  if (js.length > 0) {
    lines.push(
      `// JavaScript kernels (float64 or int32 data, or a general pow): ${js.join(", ")}.`,
    );
  }
  const scratch = layout.slotBytes.reduce((n, b) => n + b, 0);
  lines.push(
    `// Memory: ${memory.bytes} bytes (${memory.pages} page${
      memory.pages === 1 ? "" : "s"
    } of 64 KiB), ${scratch} of them for intermediates.`,
    "// Importing this module instantiates the kernels (top-level await); run is synchronous.",
  );
  return lines;
}

/** The `wasm` export of `program`: modules, their text, manifest and loader. */
export function writeWasmFiles(program: ExportProgram, layout: ExportLayout): ExportFile[] {
  const memory = memoryLayout(program, layout);
  const loader = [
    ...moduleHeader(
      program,
      layout,
      "WebAssembly kernels and a standalone ES module that loads and runs them, no imports",
      (a) => `run(${a})`,
    ),
    ...loaderNotes(layout, memory),
    "",
    ...synchronousRun(program, runBody(program, layout, memory)),
  ];
  const js = layout.kernels.filter((k) => !isWasm(k));
  if (js.length > 0) {
    loader.push("", "// ---- JavaScript kernels: what WebAssembly kernels do not compute ----");
    for (const { executable, name } of js) {
      loader.push("", kernelText(executable.text, executable.name, name).trimEnd());
    }
  }
  loader.push(...storage(program, layout, memory), INPUT_CHECKS.trimEnd(), RUNTIME.trimEnd());
  loader.push(...modules(layout));
  return [
    ...layout.kernels.filter(isWasm).flatMap((k) => [
      { path: `${k.name}.wasm`, contents: k.executable.binary!.slice() }, // the caller's own copy
      { path: `${k.name}.wat`, contents: k.executable.text },
    ]),
    { path: "manifest.json", contents: manifest(program, layout, memory) },
    { path: `${program.name}.js`, contents: loader.join("\n").trimEnd() + "\n" },
  ];
}
