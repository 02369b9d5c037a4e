// The `js` export: one self-contained ES module with no imports. It exports `inputs` and
// `outputs` (name, shape, dtype of each) and `run(...inputs)`, which checks its typed arrays,
// calls the kernels in launch order and returns new typed arrays in the order of `outputs`.
// Kernels are the executables' own JavaScript text (codegen/js.ts), each distinct one once.
// Intermediates are allocated once, when the module loads, and reused by every run (run is
// synchronous, so no two runs overlap); constants are embedded as literals.

import {
  bytesOf,
  elementsOf,
  type ExportFile,
  type ExportLayout,
  type ExportProgram,
  moduleHeader,
  runDoc,
  typedArrayLiteral,
  typedArrayName,
  valueTables,
} from "./export.ts";

/** The names {@link INPUT_CHECKS} declares or reads: every module that holds it reserves them. */
export function inputCheckNames(): string[] {
  return [
    "checkInputs",
    "describeValue",
    "typedArrayPrototype",
    "typedArrayTag",
    "typedArrayLength",
    "Int8Array",
    "Object",
    "Symbol",
    "ArrayBuffer",
  ];
}

/** The helpers the module defines: input and output names must differ from them. */
export const JS_MODULE_NAMES: ReadonlySet<string> = new Set([
  "run",
  "inputs",
  "outputs",
  ...inputCheckNames(),
  "Float32Array",
  "Float64Array",
  "Int32Array",
]);

/** The kernel's text with its function renamed to its name in the module. */
export function kernelText(text: string, original: string, name: string): string {
  if (name === original) return text;
  const declaration = `function ${original}(`;
  if (text.split(declaration).length !== 2) {
    throw new Error(`export: kernel ${original} does not declare one function of its name`);
  }
  return text.replace(declaration, `function ${name}(`);
}

/** The statements of `run`: output arrays, launches, copies, return. */
function runBody(program: ExportProgram, layout: ExportLayout): string[] {
  const { plan } = program;
  const { names } = layout;
  const lines = ["  checkInputs(arguments);"];
  program.outputs.forEach(({ buffer }, o) => {
    if (!layout.written[o]) return;
    const b = plan.buffers[buffer];
    lines.push(`  const ${names[buffer]} = new ${typedArrayName(b.dtype)}(${elementsOf(b)});`);
  });
  plan.steps.forEach((step, s) => {
    const kernel = layout.kernels[layout.stepKernels[s]].name;
    const args = [...step.outputs, ...step.inputs].map((i) => names[i]).join(", ");
    lines.push(`  ${kernel}(${args});`);
  });
  // outputs no kernel writes (inputs, constants, repeats) are copied by the built-in
  // constructor: an input's own slice() or species constructor would choose what is returned
  program.outputs.forEach(({ name, buffer }, o) => {
    if (layout.written[o]) return;
    const type = typedArrayName(plan.buffers[buffer].dtype);
    lines.push(`  const ${name} = new ${type}(${names[buffer]});`);
  });
  lines.push(`  return [${program.outputs.map((v) => v.name).join(", ")}];`);
  return lines;
}

/** Module-level storage: intermediates (by scratch slot) and constants. */
function storage(program: ExportProgram, layout: ExportLayout): string[] {
  const { plan } = program;
  const lines: string[] = [];
  const members = layout.slotBytes.map((): number[] => []);
  layout.slots.forEach((slot, i) => {
    if (slot >= 0) members[slot].push(i);
  });
  if (members.length > 0) {
    lines.push(
      "",
      "// ---- intermediates: allocated once when the module loads, reused by every run ----",
      "// (intermediates whose lifetimes do not overlap share one scratch ArrayBuffer)",
    );
  }
  members.forEach((buffers, slot) => {
    if (buffers.length === 1) {
      const b = plan.buffers[buffers[0]];
      lines.push(
        `const ${layout.names[buffers[0]]} = new ${typedArrayName(b.dtype)}(${elementsOf(b)});`,
      );
      return;
    }
    lines.push(`const scratch${slot} = new ArrayBuffer(${layout.slotBytes[slot]});`);
    for (const i of buffers) {
      const b = plan.buffers[i];
      lines.push(
        `const ${layout.names[i]} = new ${typedArrayName(b.dtype)}(scratch${slot}, 0, ${
          elementsOf(b)
        });`,
      );
    }
  });
  if (program.constants.size > 0) {
    lines.push("", "// ---- constants: the tensors the function captured when it was traced ----");
  }
  for (const [i, data] of program.constants) {
    const b = plan.buffers[i];
    lines.push(`const ${layout.names[i]} = ${typedArrayLiteral(b.dtype, data)};`);
  }
  return lines;
}

/**
 * `checkInputs(args)` and `describeValue(value)`: what `run` checks its inputs with (every
 * target's module: js, wasm and the wgsl runner).
 */
export const INPUT_CHECKS = `
// ---- input checks ----

// A typed array's kind and length as the engine knows them: a subclass or an own property can
// make \`length\` and \`Symbol.toStringTag\` say anything, and a run that trusted them read past
// the end of the data (or the last run's values). The built-in getters read the array's own
// slots, in this realm or another (a worker's, an iframe's).
const typedArrayPrototype = Object.getPrototypeOf(Int8Array.prototype);
const typedArrayTag = Object.getOwnPropertyDescriptor(typedArrayPrototype, Symbol.toStringTag).get;
const typedArrayLength = Object.getOwnPropertyDescriptor(typedArrayPrototype, "length").get;

function checkInputs(args) {
  if (args.length !== inputs.length) {
    const names = inputs.map((input) => input.name).join(", ");
    throw new TypeError(\`run: expected \${inputs.length} inputs (\${names}), got \${args.length}\`);
  }
  inputs.forEach(({ name, shape, dtype }, i) => {
    const type = { float32: "Float32Array", float64: "Float64Array", int32: "Int32Array" }[dtype];
    const length = shape.reduce((n, d) => n * d, 1);
    const value = args[i];
    // the tag, not instanceof: arrays from another realm (a worker, an iframe) are welcome
    if (typedArrayTag.call(value) !== type || typedArrayLength.call(value) !== length) {
      const article = type === "Int32Array" ? "an" : "a";
      const unit = length === 1 ? "element" : "elements";
      throw new TypeError(
        \`run: input \${name} must be \${article} \${type} of \${length} \${unit} \` +
          \`(\${dtype}[\${shape.join(", ")}]), got \${describeValue(value)}\`,
      );
    }
  });
}

/**
 * What a wrong argument was, for an Error: an array with its length, a class by name, a type.
 * Never throws: a Proxy around a typed array says it is one (its constructor's name) but the
 * built-in getters refuse it, and a revoked Proxy or a getter that throws has nothing to say.
 */
function describeValue(value) {
  if (value === null) return "null";
  try {
    const tag = typedArrayTag.call(value);
    if (tag !== undefined) {
      const article = /^[AEIO]/.test(tag) ? "an" : "a"; // a Uint8Array, an Int32Array
      const length = typedArrayLength.call(value);
      return \`\${article} \${tag} of \${length} element\${length === 1 ? "" : "s"}\`;
    }
    const kind = ArrayBuffer.isView(value)
      ? "DataView"
      : Array.isArray(value)
      ? "Array"
      : typeof value === "object"
      ? value.constructor?.name || "Object"
      : null;
    if (kind === null) return typeof value;
    const article = /^[AEIO]/.test(kind) ? "an" : "a";
    return "length" in value
      ? \`\${article} \${kind} of \${value.length} elements\`
      : \`\${article} \${kind}\`;
  } catch {
    return "an object that is not a typed array and cannot be looked into (a Proxy around " +
      "one? pass the array itself)";
  }
}
`;

/**
 * The `inputs` and `outputs` tables and `export function run(...inputs)` with `body` (its
 * statements), documented: the part of a module whose `run` is synchronous (`js`, `wasm`).
 */
export function synchronousRun(program: ExportProgram, body: readonly string[]): string[] {
  return [
    ...valueTables(
      program,
      "The inputs of `run`, in order: name, shape (row-major) and dtype.",
      "The outputs `run` returns, in order.",
    ),
    "",
    ...runDoc(program, [], (types) => types),
    `export function run(${program.inputs.map((v) => v.name).join(", ")}) {`,
    ...body,
    "}",
  ];
}

/** The `js` export of `program`: `<name>.js`. */
export function writeJsModule(program: ExportProgram, layout: ExportLayout): ExportFile[] {
  const { plan } = program;
  const scratch = layout.slotBytes.reduce((n, b) => n + b, 0);
  const constantBytes = [...program.constants.keys()].reduce(
    (n, i) => n + bytesOf(plan.buffers[i]),
    0,
  );
  const lines = [
    ...moduleHeader(program, layout, "a standalone ES module, no imports", (a) => `run(${a})`),
    `// Memory: ${scratch} bytes of intermediates, ${constantBytes} bytes of constants.`,
    "",
    ...synchronousRun(program, runBody(program, layout)),
  ];
  if (layout.kernels.length > 0) {
    lines.push("", "// ---- kernels ----");
    for (const { executable, name } of layout.kernels) {
      lines.push("", kernelText(executable.text, executable.name, name).trimEnd());
    }
  }
  lines.push(...storage(program, layout), INPUT_CHECKS);
  return [{ path: `${program.name}.js`, contents: lines.join("\n").trimEnd() + "\n" }];
}
