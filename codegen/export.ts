// Export, the part every target shares: a plan (plan.ts) plus the names of its inputs and
// outputs and the data of its constants is an `ExportProgram`; `layoutOf` decides what every
// target's files spell the same way: a variable name per buffer, each distinct kernel once
// under a name unique in the module, the order of launches, and scratch slots that
// intermediates whose lifetimes do not overlap share. Each target is a writer turning a
// program and its layout into files (export_js.ts, export_wgsl.ts, export_wasm.ts). Everything
// here is a pure function of the plan, so exporting twice gives byte-identical files.

import type { DType, TypedArray } from "../src/ir/dtype.ts";
import { bytesPerElement } from "../src/ir/dtype.ts";
import type { Shape } from "../src/ir/node.ts";
import type { Executable } from "./compile.ts";
import type { Plan, PlanBuffer } from "./plan.ts";

/** A named input or output of an exported program and the plan buffer holding it. */
export interface ExportedValue {
  readonly name: string;
  readonly buffer: number;
}

/** What an export writes out: a plan, its named inputs and outputs, and its constants' data. */
export interface ExportProgram {
  /** The base name of the files (`<name>.js`). */
  readonly name: string;
  /** What the program computes, in a line or a few (heads every file). */
  readonly description: string;
  /** Who made it: `@lucid/nn <version>`. */
  readonly generator: string;
  /** Buffers with roles input, constant, output, intermediate, and the kernel launches. */
  readonly plan: Plan;
  /** The arguments of `run`, in order. */
  readonly inputs: readonly ExportedValue[];
  /** The results of `run`, in order (several may name one buffer). */
  readonly outputs: readonly ExportedValue[];
  /** The data of every constant buffer. */
  readonly constants: ReadonlyMap<number, TypedArray>;
}

/**
 * One file of an export: a path relative to the export directory and its contents, text or
 * bytes (a `.wasm` module); `Contents` narrows them where only text is possible.
 */
export interface ExportFile<Contents extends string | Uint8Array = string | Uint8Array> {
  /** Where it goes, relative to the export directory (a plain file name). */
  readonly path: string;
  /** Its text, or its bytes (a `.wasm` module). */
  readonly contents: Contents;
}

/** A kernel as an export writes it: the executable and its name in the exported module. */
export interface ExportedKernel {
  readonly executable: Executable;
  /** The executable's name, made unique among the module's kernels (`k_exp`, `k_exp_2`). */
  readonly name: string;
}

/** What every target spells the same way (see the file header). */
export interface ExportLayout {
  /** The variable name of each plan buffer. */
  readonly names: readonly string[];
  /** Each distinct executable once, in the order of first launch. */
  readonly kernels: readonly ExportedKernel[];
  /** For each plan step, its kernel (an index into `kernels`). */
  readonly stepKernels: readonly number[];
  /** For each plan buffer, its scratch slot if it is an intermediate, else -1. */
  readonly slots: readonly number[];
  /** Bytes of each scratch slot (the largest intermediate it holds). */
  readonly slotBytes: readonly number[];
  /** For each output, whether it is the buffer a kernel wrote for it (false: a copy). */
  readonly written: readonly boolean[];
}

/** The typed array class name of a dtype. */
export function typedArrayName(dtype: DType): string {
  return { float32: "Float32Array", float64: "Float64Array", int32: "Int32Array" }[dtype];
}

/** Number of elements of a buffer. */
export function elementsOf(buffer: PlanBuffer): number {
  return buffer.shape.reduce((n, d) => n * d, 1);
}

/** Bytes of a buffer's data. */
export function bytesOf(buffer: PlanBuffer): number {
  return elementsOf(buffer) * bytesPerElement(buffer.dtype);
}

/** `float32[2, 96, 27, 27]`. */
export function typeText(dtype: DType, shape: Shape): string {
  return `${dtype}[${shape.join(", ")}]`;
}

/**
 * Intermediates share scratch slots when their lifetimes (from the step writing one to the last
 * step reading it) do not overlap; a slot is as large as the largest intermediate it holds. An
 * intermediate never shares with a buffer its own step reads.
 */
function assignSlots(plan: Plan): { slots: number[]; slotBytes: number[]; } {
  const lastUse = plan.buffers.map(() => -1);
  plan.steps.forEach((step, s) => {
    for (const i of [...step.inputs, ...step.outputs]) lastUse[i] = s;
  });
  const slots = plan.buffers.map(() => -1);
  const slotBytes: number[] = [];
  const slotFreeAfter: number[] = []; // the last step reading the slot's current holder
  plan.steps.forEach((step, s) => {
    for (const output of step.outputs) {
      const buffer = plan.buffers[output];
      if (buffer.role !== "intermediate") continue;
      // (a slot taken by another output of this step is busy until at least this step)
      let slot = slotFreeAfter.findIndex((last) => last < s);
      if (slot < 0) {
        slot = slotBytes.length;
        slotBytes.push(0);
        slotFreeAfter.push(0);
      }
      slots[output] = slot;
      slotBytes[slot] = Math.max(slotBytes[slot], bytesOf(buffer));
      slotFreeAfter[slot] = lastUse[output];
    }
  });
  return { slots, slotBytes };
}

/** Identifiers an exported module defines itself: input and output names must differ. */
function isInternalName(name: string): boolean {
  return /^k_/.test(name) || /^(tmp|constant|scratch)\d+$/.test(name);
}

/**
 * The layout of `program` (see {@link ExportLayout}). Throws if an input or output name would
 * collide with a name the module defines (`reserved` holds a writer's helpers).
 */
export function layoutOf(program: ExportProgram, reserved: ReadonlySet<string>): ExportLayout {
  const { plan } = program;
  for (const { name } of [...program.inputs, ...program.outputs]) {
    if (isInternalName(name) || reserved.has(name)) {
      throw new Error(
        `export: the name ${JSON.stringify(name)} is one the exported module uses itself ` +
          "(k_*, tmpN, constantN, scratchN and its helpers); name the input or output otherwise",
      );
    }
  }
  // a buffer takes the name of its input, or of its first output if a kernel writes it for
  // that output; constants and intermediates get names of their own
  const names = plan.buffers.map(() => "");
  for (const { name, buffer } of program.inputs) names[buffer] = name;
  for (const { name, buffer } of program.outputs) {
    if (plan.buffers[buffer].role === "output") names[buffer] ||= name;
  }
  let constants = 0;
  let temporaries = 0;
  plan.buffers.forEach((b, i) => {
    if (names[i] !== "") return;
    names[i] = b.role === "constant" ? `constant${constants++}` : `tmp${temporaries++}`;
  });
  const kernels: ExportedKernel[] = [];
  const kernelOf = new Map<string, number>();
  const used = new Set<string>();
  const stepKernels = plan.steps.map(({ executable }) => {
    let index = kernelOf.get(executable.key);
    if (index === undefined) {
      let name = executable.name;
      for (let n = 2; used.has(name); n++) name = `${executable.name}_${n}`;
      used.add(name);
      index = kernels.length;
      kernels.push({ executable, name });
      kernelOf.set(executable.key, index);
    }
    return index;
  });
  const claimed = new Set<number>();
  const written = program.outputs.map(({ buffer }) => {
    const direct = plan.buffers[buffer].role === "output" && !claimed.has(buffer);
    claimed.add(buffer);
    return direct;
  });
  return { names, kernels, stepKernels, ...assignSlots(plan), written };
}

/**
 * `text` as `// ` comment lines, split at every line terminator JavaScript knows (\r\n, \n, \r,
 * U+2028, U+2029): a `//` comment ends at any of them, and text after a lone \r in a
 * description became code of the module.
 */
export function commentLines(text: string): string[] {
  return text.split(LINE_TERMINATOR).map((line) => `// ${line}`.trimEnd());
}

/** JavaScript's line terminators (a CRLF pair is one). */
const LINE_TERMINATOR = /\r\n|[\n\r\u2028\u2029]/;

/**
 * The header every exported module starts with: what it computes, who made it, its signature
 * and the launch order.
 */
export function moduleHeader(
  program: ExportProgram,
  layout: ExportLayout,
  what: string,
  call: (inputs: string) => string,
): string[] {
  const { plan } = program;
  const width = Math.max(...[...program.inputs, ...program.outputs].map((v) => v.name.length));
  const describe = (v: ExportedValue) => {
    const b = plan.buffers[v.buffer];
    return `//   ${v.name.padEnd(width)}  ${typeText(b.dtype, b.shape)}`;
  };
  const lines = [
    ...commentLines(`${program.name}: ${program.description}`),
    `// Generated by ${program.generator}: ${what}.`,
    "// Regenerate it rather than editing it.",
    "//",
    `// ${call(program.inputs.map((v) => v.name).join(", "))} -> [${
      program.outputs.map((v) => v.name).join(", ")
    }]`,
    ...program.inputs.map(describe),
    ...program.outputs.map(describe),
    "//",
  ];
  if (plan.steps.length === 0) {
    lines.push("// No kernels: every output is an input or a constant.");
  } else {
    lines.push("// Launch order:");
    plan.steps.forEach((step, s) => {
      const name = layout.kernels[layout.stepKernels[s]].name;
      const reads = step.inputs.map((i) => layout.names[i]).join(", ") || "(no inputs)";
      const writes = step.outputs.map((i) => layout.names[i]).join(", ");
      lines.push(`//   ${s + 1}. ${name}: ${writes} <- ${reads}`);
    });
  }
  return lines;
}

/** The JSDoc lines describing `run`'s inputs (`extra`: parameters before them) and outputs. */
export function runDoc(
  program: ExportProgram,
  extra: readonly string[],
  returns: (types: string) => string,
): string[] {
  const { plan } = program;
  const param = (v: ExportedValue) => {
    const b = plan.buffers[v.buffer];
    return ` * @param {${typedArrayName(b.dtype)}} ${v.name} ${typeText(b.dtype, b.shape)}: ` +
      `${elementsOf(b)} elements, row-major`;
  };
  const types = program.outputs.map((v) => typedArrayName(plan.buffers[v.buffer].dtype));
  return [
    "/**",
    ...program.description.split(LINE_TERMINATOR).map((line) =>
      ` * ${line.replaceAll("*/", "*\\/")}`
    ),
    " *",
    ...extra.map((line) => ` * ${line}`),
    ...program.inputs.map(param),
    ` * @returns {${returns(`[${types.join(", ")}]`)}} [${
      program.outputs.map((v) => v.name).join(", ")
    }], new arrays on every call:`,
    ...program.outputs.map((v) => {
      const b = plan.buffers[v.buffer];
      return ` *   ${v.name} ${typeText(b.dtype, b.shape)}`;
    }),
    " */",
  ];
}

/**
 * The exported `inputs` and `outputs` tables: `{ name, shape, dtype }` for each value, with
 * doc comments (`inputsDoc`, `outputsDoc`).
 */
export function valueTables(
  program: ExportProgram,
  inputsDoc: string,
  outputsDoc: string,
): string[] {
  // frozen: run checks its inputs against this table, and a caller that changed a shape in it
  // (reusing the array it was given) had run read past a shorter input
  const table = (values: readonly ExportedValue[]) =>
    values.map((v) => {
      const b = program.plan.buffers[v.buffer];
      return `  Object.freeze({ name: ${JSON.stringify(v.name)}, shape: Object.freeze([${
        b.shape.join(", ")
      }]), dtype: "${b.dtype}" }),`;
    });
  return [
    `/** ${inputsDoc} */`,
    "export const inputs = Object.freeze([",
    ...table(program.inputs),
    "]);",
    "",
    `/** ${outputsDoc} */`,
    "export const outputs = Object.freeze([",
    ...table(program.outputs),
    "]);",
  ];
}

/** The number literal of `value` that reads back as the same number (`-0` kept). */
export function numberLiteral(value: number): string {
  return Object.is(value, -0) ? "-0" : String(value);
}

/** A typed array's values as `<Type>.from([...])`, 16 values a line. */
export function typedArrayLiteral(dtype: DType, data: TypedArray): string {
  const type = typedArrayName(dtype);
  if (data.length === 0) return `new ${type}(0)`;
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    lines.push(`  ${Array.from(data.subarray(i, i + 16), numberLiteral).join(", ")},`);
  }
  return `${type}.from([\n${lines.join("\n")}\n])`;
}

/** The fields a manifest opens with: its format (`lucid-nn-<target>-export/1`), and provenance. */
export function manifestHead(
  program: ExportProgram,
  target: string,
): { format: string; generator: string; name: string; description: string; } {
  return {
    format: `lucid-nn-${target}-export/1`,
    generator: program.generator,
    name: program.name,
    description: program.description,
  };
}

/** A value of a manifest's `inputs` or `outputs`: name, shape and dtype. */
export function manifestValue(
  program: ExportProgram,
  v: ExportedValue,
): { name: string; shape: Shape; dtype: DType; } {
  const b = program.plan.buffers[v.buffer];
  return { name: v.name, shape: b.shape, dtype: b.dtype };
}

/** A buffer of a manifest's `buffers`: name, role, type, size, scratch slot, where its data is. */
export function manifestBuffer(
  program: ExportProgram,
  layout: ExportLayout,
  i: number,
): Record<string, unknown> {
  const b = program.plan.buffers[i];
  return {
    name: layout.names[i],
    role: b.role,
    dtype: b.dtype,
    shape: b.shape,
    elements: elementsOf(b),
    bytes: bytesOf(b),
    ...(layout.slots[i] >= 0 ? { scratchSlot: layout.slots[i] } : {}),
    ...(b.role === "constant" ? { data: `embedded in ${program.name}.js` } : {}),
  };
}

/** JSON with two-space indents, arrays of numbers and strings kept on one line; ends in `\n`. */
export function formatJson(value: unknown): string {
  const format = (v: unknown, indent: string): string => {
    if (Array.isArray(v)) {
      if (v.every((x) => typeof x !== "object" || x === null)) {
        return `[${v.map((x) => JSON.stringify(x)).join(", ")}]`;
      }
      const inner = indent + "  ";
      return `[\n${v.map((x) => inner + format(x, inner)).join(",\n")}\n${indent}]`;
    }
    if (v !== null && typeof v === "object") {
      const inner = indent + "  ";
      const entries = Object.entries(v).map(([k, x]) =>
        `${inner}${JSON.stringify(k)}: ${format(x, inner)}`
      );
      return entries.length === 0 ? "{}" : `{\n${entries.join(",\n")}\n${indent}}`;
    }
    return JSON.stringify(v);
  };
  return format(value, "") + "\n";
}
