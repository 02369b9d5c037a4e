// exportCompiled(): a function compiled by `jit` written out as standalone modules that run
// without the library. It traces the function for the example inputs' signature with every
// kernel compiled for the export target, reads the captured constants, and hands the plan to
// that target's writer (codegen/export_js.ts, codegen/export_wgsl.ts, codegen/export_wasm.ts);
// writeExport() puts the files in a directory atomically. A target is one row of
// EXPORT_TARGETS: the compiler target of each kernel, and its writer.

import { type DType, isDType, isFloat, type TypedArray } from "./ir/dtype.ts";
import type { Node, Shape } from "./ir/node.ts";
import {
  fitsWasm,
  JS_BESIDE_WASM_TARGET,
  JS_TARGET,
  type Target,
  WASM_UNSHARED_TARGET,
  WGSL_TARGET,
} from "../codegen/targets.ts";
import {
  type ExportFile,
  type ExportLayout,
  type ExportProgram,
  layoutOf,
  typeText,
} from "../codegen/export.ts";
import { JS_MODULE_NAMES, writeJsModule } from "../codegen/export_js.ts";
import { WGSL_MODULE_NAMES, writeWgslFiles } from "../codegen/export_wgsl.ts";
import { WASM_LOADER_NAMES, writeWasmFiles } from "../codegen/export_wasm.ts";
import { IndexRangeError } from "../codegen/compile.ts";
import { backendFor } from "./runtime/backends.ts";
import { type DeviceName, DEVICES } from "./runtime/device.ts";
import { realizedBuffer } from "./runtime/realize.ts";
import {
  checkCapturesAlive,
  checkIdentifiers,
  type CompiledFunction,
  currentConstants,
  defaultInputName,
  type InputSpec,
  type JitResult,
  tensorSpec,
  type Trace,
  traceEntryOf,
  type TraceTargets,
} from "./jit.ts";
import { isImitationTensor, isTensor, type Tensor } from "./tensor.ts";
import { acquireHold, endHold } from "./ownership.ts";
import { realizeOn, releaseValue } from "./realization.ts";
import {
  checkKnownKeys,
  checkOptionsObject,
  dense,
  described,
  fail,
  hasMemory,
  isArray,
  typedArrayKind,
} from "./validate.ts";
import { VERSION } from "./version.ts";

export type { ExportFile } from "../codegen/export.ts";

/** An export target's name: `"js"`, `"wgsl"` or `"wasm"`. */
export type ExportTargetName = "js" | "wgsl" | "wasm";

/** How one export target works: what its kernels compile for and who writes its files. */
interface ExportTarget {
  /** The schedule's limits and the compiler target of each kernel. */
  readonly compileFor: TraceTargets;
  /** Names the written module uses itself (inputs and outputs must be named otherwise). */
  readonly reserved: ReadonlySet<string>;
  /** Writes the files of a program. */
  readonly write: (program: ExportProgram, layout: ExportLayout) => ExportFile[];
}

/** Every kernel compiled for `target`, scheduled within its limits. */
function only(target: Target): TraceTargets {
  return { key: target.name, limits: target, targetFor: () => target };
}

/**
 * The `wasm` export's kernels: scheduled as the cpu device schedules them, each compiled for a
 * memory that is not shared when it fits Wasm, else for JavaScript (as the cpu device runs it).
 */
const WASM_KERNELS: TraceTargets = {
  key: "wasm unshared, else js",
  limits: JS_TARGET,
  targetFor: (kernel) => (fitsWasm(kernel) ? WASM_UNSHARED_TARGET : JS_BESIDE_WASM_TARGET),
};

/** Every export target. */
const EXPORT_TARGETS: Readonly<Record<ExportTargetName, ExportTarget>> = {
  js: { compileFor: only(JS_TARGET), reserved: JS_MODULE_NAMES, write: writeJsModule },
  wgsl: { compileFor: only(WGSL_TARGET), reserved: WGSL_MODULE_NAMES, write: writeWgslFiles },
  wasm: { compileFor: WASM_KERNELS, reserved: WASM_LOADER_NAMES, write: writeWasmFiles },
};

/**
 * The constants an export embeds, in elements over all captured tensors: 1,048,576 (4 MiB of
 * float32, written as ~10-20 MB of decimal literals). Larger data (weights) belongs in the
 * function's arguments, where the caller passes it at run time.
 */
export const MAX_EMBEDDED_ELEMENTS = 1 << 20;

/**
 * An example input: a tensor, or what a tensor would be (shape, dtype, requiresGrad, device;
 * the device matters for what `fn` captures: a function reading a webgpu tensor is traced on
 * webgpu).
 */
export type ExampleInput = Tensor | {
  readonly shape: Shape;
  readonly dtype?: DType;
  readonly requiresGrad?: boolean;
  readonly device?: DeviceName;
};

/** Options of {@link exportCompiled}. */
export interface ExportOptions {
  /**
   * `"js"`: one ES module; `"wgsl"`: WGSL files, `manifest.json` and an ES module runner;
   * `"wasm"`: `.wasm` modules, `manifest.json` and an ES module loader.
   */
  readonly target: ExportTargetName;
  /** Base name of the module file, `<name>.js` (default `"model"`). */
  readonly name?: string;
  /** What the function computes, for the header comments (default: inputs -> outputs). */
  readonly description?: string;
}

/**
 * The files of an export, in memory (write them with {@link writeExport}). The `js` and `wgsl`
 * targets make text files only (`Contents` is then `string`); `wasm` makes bytes too.
 */
export interface ExportedFiles<Contents extends string | Uint8Array = string | Uint8Array> {
  /** The target they were made for. */
  readonly target: ExportTargetName;
  /** The files, by path relative to the export directory. */
  readonly files: readonly ExportFile<Contents>[];
}

const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * The examples as a dense array (holes as undefined: map() skipped them, and `[, spec]` was
 * told "on one device, got , cpu"), each spec's fields read once into a plain object (the
 * device was read twice, so a getter could name one device when checked and another when used).
 */
function readExamples(given: unknown): unknown[] {
  if (!isArray(given)) {
    fail("exportCompiled", "exampleInputs must be an array of tensors or {shape, dtype}", given);
  }
  return dense(given).map((e, i) => {
    if (isTensor(e) || isImitationTensor(e) || e === null || typeof e !== "object") return e;
    checkKnownKeys("exportCompiled", `exampleInputs[${i}]`, e, [
      "shape",
      "dtype",
      "requiresGrad",
      "device",
    ]);
    const { shape, dtype, requiresGrad, device } = e as Record<string, unknown>;
    return { shape, dtype, requiresGrad, device };
  });
}

/** The device the examples live on (all must agree; a spec without a device says cpu). */
function exampleDevice(examples: readonly unknown[]): DeviceName {
  const devices = new Set(examples.map((e, i) => {
    if (isTensor(e)) return e.device;
    if (isImitationTensor(e)) {
      // read as a spec, its device getter threw a TypeError from a private field
      fail("exportCompiled", `exampleInputs[${i}] must be a Tensor or {shape, dtype}`, e);
    }
    // undefined only: `device: null` is a mistake to name, not the cpu
    const given: unknown = e !== null && typeof e === "object"
      ? (e as { device?: unknown; }).device
      : undefined;
    const device = given === undefined ? "cpu" : given;
    if (!DEVICES.includes(device as DeviceName)) {
      fail(
        "exportCompiled",
        `exampleInputs[${i}].device must be one of ${DEVICES.map((d) => `"${d}"`).join(", ")}`,
        device,
      );
    }
    return device as DeviceName;
  }));
  if (devices.size > 1) {
    fail(
      "exportCompiled",
      "exampleInputs must all be on one device",
      described([...devices].join(", ")),
    );
  }
  return devices.values().next().value ?? "cpu";
}

const isAxisLength = (d: unknown) => typeof d === "number" && Number.isInteger(d) && d >= 0;

/** The input specs of the examples, validated (errors name the example). */
function specsOf(examples: readonly unknown[], device: DeviceName): InputSpec[] {
  const variables = new Map<Node, number>();
  return examples.map((e, i): InputSpec => {
    if (isTensor(e)) return tensorSpec(e, i, variables, device);
    const what = `exampleInputs[${i}] must be a Tensor or {shape, dtype?, requiresGrad?, device?}`;
    if (e === null || typeof e !== "object") fail("exportCompiled", what, e);
    const { shape: given, dtype = "float32", requiresGrad = false } = e as Record<string, unknown>;
    // copied, each axis read once (what was checked is what is used), holes as undefined
    // (every() skips them); and a count of elements a tensor can have: [1e9, 1e9] failed
    // inside, as an op named "buffer"
    const shape = isArray(given) ? dense(given) : given;
    if (
      !isArray(shape) || !shape.every(isAxisLength) ||
      !Number.isSafeInteger(shape.reduce((n: number, d: number) => n * d, 1))
    ) {
      fail(
        "exportCompiled",
        `exampleInputs[${i}].shape must be non-negative integers of at most 2^53 - 1 elements`,
        given,
      );
    }
    if (!isDType(dtype)) {
      fail("exportCompiled", `exampleInputs[${i}].dtype must be a dtype`, dtype);
    }
    if (typeof requiresGrad !== "boolean") {
      fail("exportCompiled", `exampleInputs[${i}].requiresGrad must be a boolean`, requiresGrad);
    }
    if (dtype === "float64" && device === "webgpu") {
      // as tensor() refuses it: float64 lives on the cpu only
      fail("exportCompiled", `exampleInputs[${i}].dtype float64 needs device "cpu"`, device);
    }
    if (requiresGrad && !isFloat(dtype)) {
      // as tensor() refuses: no call could ever pass such an input
      fail("exportCompiled", `exampleInputs[${i}].requiresGrad needs a float dtype`, dtype);
    }
    return { shape: [...shape], dtype, device, requiresGrad };
  });
}

/** Throws if the target cannot hold a dtype of the trace (WGSL has no float64). */
function checkDtypes(
  target: ExportTargetName,
  values: readonly { what: string; dtype: DType; shape: Shape; }[],
): void {
  if (EXPORT_TARGETS[target].compileFor.limits.float64) return;
  const wide = values.find((v) => v.dtype === "float64");
  if (wide === undefined) return;
  fail(
    "exportCompiled",
    `target "${target}" has no float64 (WGSL has no 64-bit floats): export float32 ` +
      `values, or use target "js" or "wasm"`,
    described(`${wide.what} of type ${typeText(wide.dtype, wide.shape)}`),
  );
}

/** The trace for the export, with errors of the trace named as the export's. */
function traceForExport(
  compiled: CompiledFunction,
  specs: readonly InputSpec[],
  target: ExportTargetName,
): Trace {
  const entry = traceEntryOf(compiled);
  if (entry === undefined) {
    fail("exportCompiled", "compiled must be a function made by jit()", compiled);
  }
  try {
    return entry(specs, EXPORT_TARGETS[target].compileFor);
  } catch (e) {
    if (e instanceof IndexRangeError) {
      throw new Error(
        `exportCompiled: target "${target}" indexes with 32-bit integers (up to ${e.maxIndex}), ` +
          `and kernel ${e.kernel} of the function needs indices up to ${e.widest}; export ` +
          `smaller shapes, or use target "js" or "wasm"`,
        { cause: e },
      );
    }
    const message = e instanceof Error ? e.message : String(e);
    const kernel = /kernel (\w+) computes in float64/.exec(message)?.[1];
    if (kernel !== undefined && !EXPORT_TARGETS[target].compileFor.limits.float64) {
      throw new Error(
        `exportCompiled: target "${target}" has no float64 (WGSL has no 64-bit floats), and ` +
          `kernel ${kernel} of the function computes in float64; export float32 values, or ` +
          `use target "js" or "wasm"`,
        { cause: e },
      );
    }
    throw e;
  }
}

/** The data of every constant of `trace`, read from its device. */
async function constantData(trace: Trace): Promise<Map<number, TypedArray>> {
  const total = [...trace.constants.values()].reduce((n, node) => n + node.numel, 0);
  if (total > MAX_EMBEDDED_ELEMENTS) {
    fail(
      "exportCompiled",
      `the tensors the function captures must hold at most ${MAX_EMBEDDED_ELEMENTS} elements ` +
        "in all to be embedded; pass large tensors (weights) as arguments instead",
      described(`${trace.constants.size} captured tensors of ${total} elements`),
    );
  }
  const backend = backendFor(trace.device);
  checkCapturesAlive(trace, "exportCompiled");
  const captured = currentConstants(trace);
  // held while the export reads them, as a jit call holds them: a lazy capture disposed
  // meanwhile was freed under the read (a TypeError from inside)
  const held = [...captured.values()];
  for (const node of held) acquireHold(node, trace.device);
  try {
    // through realizeOn, as a jit call: with the variables waiting for a value that the
    // captures reach (computed by realizeNodes alone, a capture built on an assigned value left
    // that value waiting below the values kept unasked, runtime/checkpoint.ts, where no walk
    // looks: its predecessor was never freed) and their bookkeeping
    await realizeOn(trace.device, held, "exportCompiled");
    const data = new Map<number, TypedArray>();
    for (const [index, node] of captured) {
      data.set(index, await backend.read(realizedBuffer(node, trace.device)!));
    }
    return data;
  } finally {
    for (const node of held) {
      endHold(node, trace.device);
      releaseValue(node, trace.device);
    }
  }
}

/**
 * Exports a function compiled by {@link jit} as standalone files that run without the library.
 * The function is traced for the signature of `exampleInputs` (tensors, or `{shape, dtype,
 * requiresGrad}`: only their signature matters) with every kernel compiled for the target:
 *
 * - `"js"`: `<name>.js`, one ES module with no imports exporting `inputs`, `outputs` (name,
 *   shape, dtype of each) and `run(...inputs)`: typed arrays in, an array of new typed arrays
 *   out, in the order of `outputs`.
 * - `"wgsl"`: a `.wgsl` file per kernel, `manifest.json` (buffers; per launch, in order: the
 *   kernel, its bindings with names, dtypes and sizes, workgroup size and dispatch grid) and
 *   `<name>.js` exporting `inputs`, `outputs` and `async run(device, ...inputs)` for any
 *   GPUDevice. float32 and int32 only.
 * - `"wasm"`: a `.wasm` module (and its text, `.wat`) per WebAssembly kernel, `manifest.json`
 *   (memory layout; per launch, in order: the function and its arguments) and `<name>.js`, an
 *   ES module with no imports that embeds the modules, instantiates them on its own memory when
 *   imported, and exports `inputs`, `outputs` and `run(...inputs)` as the `js` target does.
 *   Kernels WebAssembly does not compute (float64 or int32 data, a general pow) are JavaScript
 *   functions in it, as on the cpu device. Needs WebAssembly SIMD.
 *
 * Input names come from `jit`'s `inputNames`; output names from the keys of a returned record
 * (else `y`, or `y0`, `y1`, ...). Tensors the function captures are embedded (at most
 * {@link MAX_EMBEDDED_ELEMENTS} elements in all). Exporting twice gives byte-identical files.
 *
 * @example
 * ```ts
 * import { exportCompiled, jit, nn } from "@lucid/nn";
 * const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
 * const forward = jit((x) => lrn.forward(x), { inputNames: ["x"] });
 * const exported = await exportCompiled(forward, [{ shape: [1, 96, 27, 27] }], {
 *   target: "js",
 *   name: "lrn",
 * });
 * console.log(exported.files.map((f) => f.path)); // [ "lrn.js" ]
 * ```
 */
export function exportCompiled(
  compiled: CompiledFunction<JitResult>,
  exampleInputs: readonly ExampleInput[],
  options: ExportOptions & { readonly target: "js" | "wgsl"; },
): Promise<ExportedFiles<string>>;
/**
 * Exports a function compiled by {@link jit} for any target (see the overload above); the
 * `wasm` target's `.wasm` files have bytes as their contents, every other file text.
 */
export function exportCompiled(
  compiled: CompiledFunction<JitResult>,
  exampleInputs: readonly ExampleInput[],
  options: ExportOptions,
): Promise<ExportedFiles>;
export async function exportCompiled(
  compiled: CompiledFunction<JitResult>,
  exampleInputs: readonly ExampleInput[],
  options: ExportOptions,
): Promise<ExportedFiles> {
  if (traceEntryOf(compiled) === undefined) {
    fail("exportCompiled", "compiled must be a function made by jit()", compiled);
  }
  checkOptionsObject("exportCompiled", options, "an object with a target");
  checkKnownKeys("exportCompiled", "options", options, ["target", "name", "description"]);
  const { target, name = "model", description } = options;
  if (typeof target !== "string" || !Object.hasOwn(EXPORT_TARGETS, target)) {
    fail(
      "exportCompiled",
      `options.target must be one of ${
        Object.keys(EXPORT_TARGETS).map((t) => `"${t}"`).join(", ")
      }`,
      target,
    );
  }
  if (typeof name !== "string" || !FILE_NAME.test(name)) {
    fail(
      "exportCompiled",
      "options.name must be a file name of letters, digits, _, . and - (no directories)",
      name,
    );
  }
  if (description !== undefined && typeof description !== "string") {
    fail("exportCompiled", "options.description must be a string", description);
  }
  const examples = readExamples(exampleInputs);
  const specs = specsOf(examples, exampleDevice(examples));
  const inputNames = compiled.inputNames ??
    specs.map((_, i) => defaultInputName(i, specs.length));
  if (inputNames.length !== specs.length) {
    fail(
      "exportCompiled",
      `exampleInputs must have one entry per argument (${inputNames.join(", ")})`,
      described(`${specs.length} entries`),
    );
  }
  checkDtypes(target, specs.map((s, i) => ({ what: `input ${inputNames[i]}`, ...s })));
  const trace = traceWithExamples(compiled, specs, target);
  checkIdentifiers("exportCompiled", "output names (the keys fn returns)", trace.outputNames);
  const names = [...inputNames, ...trace.outputNames];
  const clash = names.find((n, i) => names.indexOf(n) !== i);
  if (clash !== undefined) {
    fail("exportCompiled", "input and output names must differ", clash);
  }
  checkDtypes(target, [
    ...trace.outputs.map((b, i) => ({
      what: `output ${trace.outputNames[i]}`,
      ...trace.plan.buffers[b],
    })),
    ...[...trace.constants.keys()].map((b) => ({
      what: "a captured tensor",
      ...trace.plan.buffers[b],
    })),
  ]);
  // a leaf passed twice is one stand-in, one buffer: the module takes it once, at its first
  // position (it declared every position and read the last alone, whatever the others held)
  const taken = new Set<number>();
  const inputs = trace.inputs.flatMap((buffer, i) => {
    if (taken.has(buffer)) return [];
    taken.add(buffer);
    return [{ name: inputNames[i], buffer }];
  });
  const program: ExportProgram = {
    name,
    description: description ??
      `computes ${trace.outputNames.join(", ")} from ${
        inputs.map((input) => input.name).join(", ") || "nothing"
      }`,
    generator: `@lucid/nn ${VERSION}`,
    plan: trace.plan,
    inputs,
    outputs: trace.outputs.map((buffer, i) => ({ name: trace.outputNames[i], buffer })),
    constants: await constantData(trace),
  };
  const writer = EXPORT_TARGETS[target];
  const layout = layoutOf(program, writer.reserved);
  return { target, files: writer.write(program, layout) };
}

/**
 * The export trace of `compiled` from `specs`. With fewer examples than fn declares parameters,
 * fn read undefined for one and failed inside with a bare TypeError: a failure then says so
 * (an optional parameter, `bias?: Tensor`, counts in `fn.length` too, so it is not refused).
 */
function traceWithExamples(
  compiled: CompiledFunction<JitResult>,
  specs: InputSpec[],
  target: ExportTargetName,
): Trace {
  try {
    return traceForExport(compiled, specs, target);
  } catch (error) {
    const declared = compiled.fn.length;
    if (compiled.inputNames !== undefined || specs.length >= declared) throw error;
    throw new Error(
      `exportCompiled: tracing fn failed (exampleInputs has ${specs.length} entries and fn ` +
        `declares ${declared} parameters: a missing example may be why): ${
          error instanceof Error ? error.message : error
        }`,
      { cause: error },
    );
  }
}

/**
 * Writes `exported` into `dir` (created if missing). Every file is first written under a
 * temporary name, then each is renamed into place once all are written and every destination
 * is known to be replaceable, a file an earlier export left being moved aside first, so a
 * failure (a full disk, a path that is a directory, no permission, a name too long) leaves no
 * file half-written and no part of the export in place: what was renamed is undone, the files
 * moved aside come back, and an Error says why. Calls into one directory run one after
 * another (other processes writing there at the same time are not coordinated). Returns the
 * paths written. Needs read as well as write permission on `dir` (`--allow-read=dir
 * --allow-write=dir`): what is there is looked at before it is replaced.
 *
 * @example
 * ```ts
 * import { exportCompiled, jit, writeExport } from "@lucid/nn";
 * const softplus = jit((x) => x.exp().add(1).log());
 * const exported = await exportCompiled(softplus, [{ shape: [1024] }], { target: "wgsl" });
 * const dir = await Deno.makeTempDir();
 * console.log(await writeExport(exported, dir)); // the .wgsl file(s), manifest.json, model.js
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeExport(exported: ExportedFiles, dir: string): Promise<string[]> {
  // each field read once, into plain values checked and then used: a getter giving a file name
  // when checked and "../x.js" when read again wrote outside `dir`
  const given = exported === null || typeof exported !== "object" ? undefined : exported.files;
  if (!isArray(given)) {
    fail("writeExport", "exported must be what exportCompiled() returned", exported);
  }
  if (typeof dir !== "string" || dir === "") {
    fail("writeExport", "dir must be a directory path", dir);
  }
  if (typeof (globalThis as { Deno?: { writeFile?: unknown; }; }).Deno?.writeFile !== "function") {
    // a browser, say: a ReferenceError from deep inside said less
    fail(
      "writeExport",
      "a runtime with Deno's file system (elsewhere, save exported.files yourself)",
      described("no Deno file system"),
    );
  }
  // every file lands in `dir`: a plain file name (a path of "../x.js" was written outside it)
  const files = Array.from(given as unknown[], (file, i): ExportFile => {
    const { path, contents } = (file ?? {}) as { path?: unknown; contents?: unknown; };
    if (typeof path !== "string" || !FILE_NAME.test(path)) {
      fail(
        "writeExport",
        `exported.files[${i}].path must be a file name of letters, digits, _, . and - ` +
          "(no directories)",
        file === null || typeof file !== "object" ? file : path,
      );
    }
    if (typeof contents === "string") return { path, contents };
    if (typedArrayKind(contents) !== "Uint8Array") {
      fail(
        "writeExport",
        `exported.files[${i}].contents must be a string or a Uint8Array`,
        contents,
      );
    }
    if (!hasMemory(contents as Uint8Array)) {
      fail(
        "writeExport",
        `exported.files[${i}].contents must be a Uint8Array whose memory is there`,
        described("a Uint8Array over memory gone (detached, or past its shrunk buffer)"),
      );
    }
    // a copy, taken now: the caller's bytes, detached or shrunk while the directory was
    // prepared, were written as empty files
    return { path, contents: new Uint8Array(contents as Uint8Array) };
  });
  // two files of one path shared a temporary: the second rename failed after the first landed
  const seen = new Map<string, number>();
  files.forEach(({ path }, i) => {
    const first = seen.get(path);
    if (first !== undefined) {
      fail(
        "writeExport",
        `exported.files[${i}].path must differ from exported.files[${first}].path ` +
          "(a file is written once)",
        path,
      );
    }
    seen.set(path, i);
  });
  const base = dir.replace(/\/+$/, "");
  // calls into one directory run one after another: two at once interleaved their renames,
  // a manifest of one export beside the modules of the other. The directory is told by its
  // absolute path with `.`, `..` and repeated slashes resolved ("out", "./out/." and the
  // absolute spelling queued apart); a symlinked spelling is not resolved
  const key = directoryKey(base);
  const before = writesInProgress.get(key) ?? Promise.resolve();
  const writing = before.catch(() => {}).then(() => writeFiles(files, dir, base));
  writesInProgress.set(key, writing);
  try {
    return await writing;
  } finally {
    if (writesInProgress.get(key) === writing) writesInProgress.delete(key);
  }
}

/** `dir` as writeExport's queue tells directories apart (see there). */
function directoryKey(dir: string): string {
  try {
    return new URL(`${dir}/`, `file://${Deno.cwd()}/`).pathname.replace(/\/+/g, "/");
  } catch {
    return dir; // no read permission for the working directory: the spelling as given
  }
}

/** The writeExport calls in progress, by directory (the last of each). */
const writesInProgress = new Map<string, Promise<string[]>>();

/** writeExport's writing, once everything is checked (see there). */
async function writeFiles(
  files: readonly ExportFile[],
  dir: string,
  base: string,
): Promise<string[]> {
  const paths = files.map((f) => `${base}/${f.path}`);
  const temporaries: string[] = [];
  const placed: number[] = []; // renamed into place
  const replaced = new Map<number, string>(); // the files they replace, moved aside
  try {
    await Deno.mkdir(dir, { recursive: true });
    // a short name of its own, not the file's name plus a suffix: a file name near the system's
    // 255-byte limit fits, its temporary did not
    const tag = `.lucid-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    for (const [i, file] of files.entries()) {
      const temporary = `${base}/${tag}-${i}`;
      temporaries.push(temporary);
      if (typeof file.contents === "string") await Deno.writeTextFile(temporary, file.contents);
      else await Deno.writeFile(temporary, file.contents);
    }
    const existing = await Promise.all(paths.map((path) => Deno.lstat(path).catch(() => null)));
    existing.forEach((info, i) => {
      if (info !== null && !info.isFile) throw new Error(`${paths[i]} exists and is not a file`);
    });
    // a file an earlier export left is moved aside first, and put back if a later rename
    // fails (a name past the system's limit, a file denied): renames that had landed stayed,
    // a new manifest beside an old module
    for (const [i, temporary] of temporaries.entries()) {
      if (existing[i] !== null) {
        const aside = `${base}/${tag}-old-${i}`;
        try {
          await Deno.rename(paths[i], aside);
          replaced.set(i, aside);
        } catch (e) {
          // gone meanwhile (another process writing there): nothing to put back
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
      }
      await Deno.rename(temporary, paths[i]);
      placed.push(i);
    }
  } catch (e) {
    for (const i of placed) await Deno.remove(paths[i]).catch(() => {});
    for (const [i, aside] of replaced) await Deno.rename(aside, paths[i]).catch(() => {});
    for (const temporary of temporaries) await Deno.remove(temporary).catch(() => {});
    const reason = e instanceof Error ? e.message : String(e);
    throw new Error(`writeExport: cannot write the export to ${JSON.stringify(dir)}: ${reason}`, {
      cause: e,
    });
  }
  for (const aside of replaced.values()) await Deno.remove(aside).catch(() => {});
  return paths;
}
