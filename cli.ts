/**
 * The @lucid/nn command line: exports LocalResponseNorm (forward, or forward and backward) as a
 * standalone module that runs without the library.
 *
 * ```sh
 * deno run -A jsr:@lucid/nn/cli lrn --size 5 --alpha 1e-4 --beta 0.75 --k 2 \
 *   --shape 2,96,27,27 --target js --grad --out DIR
 * ```
 *
 * `--help` lists every option. Bad options print a message and exit with status 2; a failed
 * export (an unwritable directory, a dtype the target lacks) exits with status 1.
 *
 * @module
 */

import { jit } from "./src/jit.ts";
import {
  exportCompiled,
  type ExportedFiles,
  type ExportTargetName,
  writeExport,
} from "./src/export.ts";
import { LocalResponseNorm } from "./src/nn/local_response_norm.ts";
import type { DType } from "./src/ir/dtype.ts";
import { VERSION } from "./src/version.ts";

/** What the command line asks for. */
export interface CliOptions {
  /** The model to export (only `lrn` for now). */
  readonly model: "lrn";
  /** Window size in channels. */
  readonly size: number;
  /** Scale of the sum of squares (not divided by size). */
  readonly alpha: number;
  /** Exponent of the denominator. */
  readonly beta: number;
  /** Additive constant of the denominator. */
  readonly k: number;
  /** Shape of the input x. */
  readonly shape: readonly number[];
  /** Element type of x (and dy). */
  readonly dtype: DType;
  /** The export target. */
  readonly target: ExportTargetName;
  /** Forward and backward (inputs x, dy; outputs y, dx) instead of forward only. */
  readonly grad: boolean;
  /** Directory to write to. */
  readonly out: string;
  /** Base name of the module file. */
  readonly name: string;
}

/** A bad command line: printed with a hint to `--help`, exit status 2. */
export class UsageError extends Error {}

/** The text `--help` prints. */
export const HELP = `lucid-nn export ${VERSION}: export a model as a standalone module

Usage:
  deno task export lrn --shape DIMS --out DIR [options]
  deno run -A jsr:@lucid/nn/cli lrn --shape DIMS --out DIR [options]
  (-A, or at least --allow-read and --allow-write on DIR: files are written under temporary
  names and renamed into place, and what is there is looked at first)

Models:
  lrn             nn.LocalResponseNorm across channels of an (N, C, *) input, with Lucid's
                  semantics: y = x / (k + alpha * S)^beta, S the sum of x^2 over the window
                  [c - floor((size-1)/2), c + floor(size/2)] (alpha is not divided by size)

Options:
  --size N        channels in each window, a positive integer (default 5)
  --alpha A       scale of the sum of squares, a finite number (default 0.0001)
  --beta B        exponent of the denominator, a finite number (default 0.75)
  --k K           additive constant of the denominator, a finite number (default 1)
  --shape DIMS    shape of the input x: comma-separated non-negative integers, at least 2
                  (N and C), e.g. 2,96,27,27 (required)
  --dtype T       float32 (default) or float64 (float64: targets js and wasm, where
                  float64 kernels run as JavaScript)
  --target T      js: one ES module exporting run(...inputs) (default)
                  wgsl: .wgsl kernels, manifest.json and an ES module exporting
                  async run(device, ...inputs)
                  wasm: .wasm kernels (and their .wat text), manifest.json and an ES
                  module that embeds them, exporting run(...inputs) as js does
  --grad          forward and backward: inputs x and dy (the gradient of the output),
                  outputs y and dx (the gradient of sum(y * dy) with respect to x);
                  without it: input x, output y
  --out DIR       directory to write the files to, created if missing (required)
  --name NAME     base name of the module, NAME.js (default lrn, or lrn_grad with --grad)
  -h, --help      print this text and exit
  --version       print the version and exit

Example:
  deno task export lrn --size 5 --alpha 1e-4 --beta 0.75 --k 2 --shape 2,96,27,27 \\
    --target js --grad --out dist/lrn
`;

const VALUE_OPTIONS = [
  "size",
  "alpha",
  "beta",
  "k",
  "shape",
  "dtype",
  "target",
  "out",
  "name",
] as const;
type ValueOption = typeof VALUE_OPTIONS[number];

function usage(message: string): never {
  throw new UsageError(message);
}

function parseNumber(option: string, text: string): number {
  const value = Number(text);
  // decimal only, as a user writes it: Number() took 0x10, 0b1 and 0o7 too
  if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(text) || !Number.isFinite(value)) {
    usage(`--${option} must be a finite decimal number, got ${JSON.stringify(text)}`);
  }
  // a nonzero digit before the exponent that still reads as ±0 underflowed: the model would
  // get a value the user did not write
  if (value === 0 && /[1-9]/.test(text.replace(/e.*$/i, ""))) {
    usage(
      `--${option} must be a decimal number whose magnitude float64 can hold ` +
        `(at least 5e-324), got ${JSON.stringify(text)}, which reads as 0`,
    );
  }
  return value;
}

/** Parses `--shape`: comma-separated non-negative integers, at least two (N and C). */
export function parseShape(text: string): number[] {
  const parts = text.split(",").map((p) => p.trim());
  if (!parts.every((p) => /^\d+$/.test(p)) || parts.length < 2) {
    usage(
      `--shape must be at least 2 comma-separated non-negative integers (N, C, ...) such as ` +
        `2,96,27,27, got ${JSON.stringify(text)}`,
    );
  }
  const shape = parts.map(Number);
  if (!shape.every(Number.isSafeInteger)) usage(`--shape has an axis too long: ${text}`);
  if (!Number.isSafeInteger(shape.reduce((n, d) => n * d, 1))) {
    usage(`--shape has more elements than 2^53 - 1: ${text}`);
  }
  return shape;
}

/**
 * The options of a command line (without the program name). Returns "help" or "version" when
 * asked for; throws a {@link UsageError} naming the bad option.
 */
export function parseCli(args: readonly string[]): CliOptions | "help" | "version" {
  const values: Partial<Record<ValueOption, string>> = {};
  const positional: string[] = [];
  let grad = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") return "help";
    if (arg === "--version") return "version";
    if (arg === "--grad") {
      if (grad) usage("--grad is given twice");
      grad = true;
      continue;
    }
    if (arg.startsWith("--grad=")) usage(`--grad takes no value, got ${JSON.stringify(arg)}`);
    if (!arg.startsWith("-")) {
      positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const option = flag.replace(/^--/, "") as ValueOption;
    if (!flag.startsWith("--") || !VALUE_OPTIONS.includes(option)) {
      usage(`unknown option ${flag}`);
    }
    const value = inline ?? args[++i];
    if (value === undefined || (inline === undefined && value.startsWith("--"))) {
      usage(`--${option} needs a value`);
    }
    // the last one silently won
    if (values[option] !== undefined) usage(`--${option} is given twice`);
    values[option] = value;
  }
  if (positional.length !== 1) {
    usage(
      positional.length === 0
        ? "name the model to export (lrn)"
        : `one model at a time, got ${positional.join(", ")}`,
    );
  }
  if (positional[0] !== "lrn") usage(`unknown model ${JSON.stringify(positional[0])} (known: lrn)`);
  // digits only: Number() took 0x10 and 1e1 too
  if (values.size !== undefined && !/^\s*0*[1-9]\d*\s*$/.test(values.size)) {
    usage(`--size must be a positive integer, got ${JSON.stringify(values.size)}`);
  }
  const size = values.size === undefined ? 5 : Number(values.size);
  if (!Number.isSafeInteger(size)) {
    usage(`--size must be a positive integer below 2^53, got ${JSON.stringify(values.size)}`);
  }
  if (values.shape === undefined) usage("--shape is required (e.g. --shape 2,96,27,27)");
  if (values.out === undefined || values.out === "") usage("--out DIR is required");
  const dtype = values.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float64") {
    usage(`--dtype must be float32 or float64, got ${JSON.stringify(dtype)}`);
  }
  const target = values.target ?? "js";
  if (target !== "js" && target !== "wgsl" && target !== "wasm") {
    usage(`--target must be js, wgsl or wasm, got ${JSON.stringify(target)}`);
  }
  const name = values.name ?? (grad ? "lrn_grad" : "lrn");
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    usage(`--name must be a file name of letters, digits, _, . and -, got ${JSON.stringify(name)}`);
  }
  return {
    model: "lrn",
    size,
    alpha: values.alpha === undefined ? 1e-4 : parseNumber("alpha", values.alpha),
    beta: values.beta === undefined ? 0.75 : parseNumber("beta", values.beta),
    k: values.k === undefined ? 1 : parseNumber("k", values.k),
    shape: parseShape(values.shape),
    dtype,
    target,
    grad,
    out: values.out,
    name,
  };
}

/**
 * The export the options describe, in memory: LocalResponseNorm forward (`x -> y`) or forward
 * and backward (`x, dy -> y, dx`, dx the gradient of sum(y * dy)).
 */
export async function exportLrn(options: CliOptions): Promise<ExportedFiles> {
  const lrn = new LocalResponseNorm(options.size, options.alpha, options.beta, options.k);
  const x = { shape: options.shape, dtype: options.dtype, requiresGrad: options.grad };
  const what = `${lrn}, input of shape [${options.shape.join(", ")}]`;
  if (!options.grad) {
    const forward = jit((x) => lrn.forward(x), { inputNames: ["x"] });
    return await exportCompiled(forward, [x], {
      target: options.target,
      name: options.name,
      description: `${what}: y = x / (k + alpha * S)^beta, S the windowed sum of x^2`,
    });
  }
  const step = jit((x, dy) => {
    const y = lrn.forward(x);
    y.backward(dy);
    return { y, dx: x.grad! };
  }, { inputNames: ["x", "dy"] });
  return await exportCompiled(step, [x, { shape: options.shape, dtype: options.dtype }], {
    target: options.target,
    name: options.name,
    description: `${what}: forward y, and dx, the gradient of sum(y * dy) with respect to x`,
  });
}

/** Runs the command line `args`; resolves to the exit status (messages go to the console). */
export async function main(args: readonly string[]): Promise<number> {
  let options: ReturnType<typeof parseCli>;
  try {
    options = parseCli(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message}\nRun with --help for every option.`);
    return 2;
  }
  if (options === "help") {
    console.log(HELP);
    return 0;
  }
  if (options === "version") {
    console.log(VERSION);
    return 0;
  }
  // where the files are, whatever directory the command was typed in: `deno task export` runs
  // in the project's directory, and `--out reldir` from elsewhere printed a path that was not
  // there
  const absolute = (path: string) =>
    path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path) ? path : `${Deno.cwd()}/${path}`;
  try {
    const written = await writeExport(await exportLrn(options), options.out);
    console.log(`wrote ${written.length} file${written.length === 1 ? "" : "s"}:`);
    for (const path of written) console.log(`  ${absolute(path)}`);
    return 0;
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
