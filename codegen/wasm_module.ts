// A small WebAssembly assembler: functions as instruction lists written by name (WAT
// mnemonics), encoded to the binary format, and printed as readable WAT-like text from the same
// calls, so the bytes and the text cannot disagree. Only what the Wasm backend needs: numeric
// and SIMD instructions, locals, structured control, one imported shared memory. After jax-js's
// wasmblr.ts in size and spirit (no toolchain at run time).

/** Value types. */
export type ValType = "i32" | "f32" | "f64" | "v128";

const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Opcodes by mnemonic: one byte, or the 0xfc / 0xfd prefix and a LEB128 sub-opcode. */
const OPCODES: Record<string, readonly [number] | readonly [number, number]> = {
  "unreachable": [0x00],
  "block": [0x02],
  "loop": [0x03],
  "if": [0x04],
  "else": [0x05],
  "end": [0x0b],
  "br": [0x0c],
  "br_if": [0x0d],
  "return": [0x0f],
  "call": [0x10],
  "drop": [0x1a],
  "select": [0x1b],
  "local.get": [0x20],
  "local.set": [0x21],
  "local.tee": [0x22],
  "i32.load": [0x28],
  "f32.load": [0x2a],
  "f64.load": [0x2b],
  "i32.store": [0x36],
  "f32.store": [0x38],
  "f64.store": [0x39],
  "i32.const": [0x41],
  "f32.const": [0x43],
  "f64.const": [0x44],
  "i32.eqz": [0x45],
  "i32.eq": [0x46],
  "i32.ne": [0x47],
  "i32.lt_s": [0x48],
  "i32.lt_u": [0x49],
  "i32.gt_s": [0x4a],
  "i32.le_s": [0x4c],
  "i32.ge_s": [0x4e],
  "f32.eq": [0x5b],
  "f32.ne": [0x5c],
  "f32.lt": [0x5d],
  "f32.gt": [0x5e],
  "f32.le": [0x5f],
  "f32.ge": [0x60],
  "i32.add": [0x6a],
  "i32.sub": [0x6b],
  "i32.mul": [0x6c],
  "i32.div_s": [0x6d],
  "i32.rem_s": [0x6f],
  "i32.and": [0x71],
  "i32.or": [0x72],
  "i32.xor": [0x73],
  "i32.shl": [0x74],
  "i32.shr_s": [0x75],
  "i32.shr_u": [0x76],
  "f32.abs": [0x8b],
  "f32.neg": [0x8c],
  "f32.ceil": [0x8d],
  "f32.floor": [0x8e],
  "f32.trunc": [0x8f],
  "f32.nearest": [0x90],
  "f32.sqrt": [0x91],
  "f32.add": [0x92],
  "f32.sub": [0x93],
  "f32.mul": [0x94],
  "f32.div": [0x95],
  "f32.min": [0x96],
  "f32.max": [0x97],
  "f32.copysign": [0x98],
  "f64.add": [0xa0],
  "i32.trunc_f32_s": [0xa8],
  "f32.convert_i32_s": [0xb2],
  "f32.demote_f64": [0xb6],
  "f64.promote_f32": [0xbb],
  "i32.reinterpret_f32": [0xbc],
  "f32.reinterpret_i32": [0xbe],
  "i32.trunc_sat_f32_s": [0xfc, 0x00],
  "v128.load": [0xfd, 0x00],
  "v128.load32_splat": [0xfd, 0x09],
  "v128.store": [0xfd, 0x0b],
  "v128.const": [0xfd, 0x0c],
  "i8x16.shuffle": [0xfd, 0x0d],
  "i32x4.splat": [0xfd, 0x11],
  "f32x4.splat": [0xfd, 0x13],
  "i32x4.extract_lane": [0xfd, 0x1b],
  "i32x4.replace_lane": [0xfd, 0x1c],
  "f32x4.extract_lane": [0xfd, 0x1f],
  "f32x4.replace_lane": [0xfd, 0x20],
  "i32x4.eq": [0xfd, 0x37],
  "i32x4.ne": [0xfd, 0x38],
  "i32x4.lt_s": [0xfd, 0x39],
  "i32x4.gt_s": [0xfd, 0x3b],
  "i32x4.le_s": [0xfd, 0x3d],
  "i32x4.ge_s": [0xfd, 0x3f],
  "f32x4.eq": [0xfd, 0x41],
  "f32x4.ne": [0xfd, 0x42],
  "f32x4.lt": [0xfd, 0x43],
  "f32x4.gt": [0xfd, 0x44],
  "f32x4.le": [0xfd, 0x45],
  "f32x4.ge": [0xfd, 0x46],
  "v128.not": [0xfd, 0x4d],
  "v128.and": [0xfd, 0x4e],
  "v128.andnot": [0xfd, 0x4f],
  "v128.or": [0xfd, 0x50],
  "v128.xor": [0xfd, 0x51],
  "v128.bitselect": [0xfd, 0x52],
  "v128.any_true": [0xfd, 0x53],
  "f32x4.demote_f64x2_zero": [0xfd, 0x5e],
  "f64x2.promote_low_f32x4": [0xfd, 0x5f],
  "f32x4.ceil": [0xfd, 0x67],
  "f32x4.floor": [0xfd, 0x68],
  "f32x4.trunc": [0xfd, 0x69],
  "f32x4.nearest": [0xfd, 0x6a],
  "i32x4.abs": [0xfd, 0xa0],
  "i32x4.neg": [0xfd, 0xa1],
  "i32x4.all_true": [0xfd, 0xa3],
  "i32x4.shl": [0xfd, 0xab],
  "i32x4.shr_s": [0xfd, 0xac],
  "i32x4.shr_u": [0xfd, 0xad],
  "i32x4.add": [0xfd, 0xae],
  "i32x4.sub": [0xfd, 0xb1],
  "i32x4.mul": [0xfd, 0xb5],
  "i32x4.min_s": [0xfd, 0xb6],
  "i32x4.max_s": [0xfd, 0xb8],
  "f32x4.abs": [0xfd, 0xe0],
  "f32x4.neg": [0xfd, 0xe1],
  "f32x4.sqrt": [0xfd, 0xe3],
  "f32x4.add": [0xfd, 0xe4],
  "f32x4.sub": [0xfd, 0xe5],
  "f32x4.mul": [0xfd, 0xe6],
  "f32x4.div": [0xfd, 0xe7],
  "f32x4.min": [0xfd, 0xe8],
  "f32x4.max": [0xfd, 0xe9],
  "f32x4.pmin": [0xfd, 0xea],
  "f32x4.pmax": [0xfd, 0xeb],
  "f64x2.add": [0xfd, 0xf0],
  "i32x4.trunc_sat_f32x4_s": [0xfd, 0xf8],
  "f32x4.convert_i32x4_s": [0xfd, 0xfa],
};

/** An instruction name the assembler knows. */
export type Mnemonic = keyof typeof OPCODES;

/** Unsigned LEB128. */
function uleb(value: number, out: number[]): void {
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
}

/** Signed LEB128 of a 32-bit integer. */
function sleb(value: number, out: number[]): void {
  value |= 0;
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return;
  }
}

/** Appends `bytes` to `out` (a loop: spreading millions of bytes overflows the stack). */
function append(out: number[], bytes: readonly number[]): number[] {
  for (const byte of bytes) out.push(byte);
  return out;
}

/** Bytes of a UTF-8 name, length-prefixed. */
function name(text: string, out: number[]): void {
  const bytes = new TextEncoder().encode(text);
  uleb(bytes.length, out);
  append(out, [...bytes]);
}

/**
 * The text-format spelling of the float32 whose little-endian bytes are `bytes`: the shortest
 * decimal that reads back as it, `-0`, `inf`, `-inf`, and `nan` (or `nan:0x...` with its
 * payload, `-nan` with its sign bit), so that the text assembles to the same bits.
 */
function f32Text(bytes: Uint8Array): string {
  const bits = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  const value = new DataView(bytes.buffer, bytes.byteOffset, 4).getFloat32(0, true);
  const sign = bits >>> 31 ? "-" : "";
  if (Number.isNaN(value)) {
    const payload = bits & 0x7fffff;
    return `${sign}nan${payload === 0x400000 ? "" : `:0x${payload.toString(16)}`}`;
  }
  if (!Number.isFinite(value)) return `${sign}inf`;
  return Object.is(value, -0) ? "-0" : String(value);
}

/**
 * The limits the WebAssembly JavaScript API sets on one function (its "Limits" section; V8
 * refuses a module past them with a CompileError): locals, parameters included, parameters
 * (a kernel takes one per buffer: a sum of 998 tensors failed to compile), and body size.
 */
export const FUNCTION_LIMITS = { locals: 50_000, params: 1000, bodyBytes: 7_654_321 } as const;

/** One function under construction: its locals, its code as bytes and as text. */
export class FunctionBuilder {
  readonly code: number[] = [];
  readonly text: string[] = [];
  readonly locals: ValType[] = [];
  readonly localNames: string[] = [];
  #depth = 1;

  /** A function taking `params` (named, for the text form) and returning `results`. */
  constructor(
    readonly name: string,
    readonly params: readonly { name: string; type: ValType; }[],
    readonly results: readonly ValType[] = [],
  ) {
    for (const p of params) this.localNames.push(p.name);
  }

  /** Whether the function is within FUNCTION_LIMITS (its body as it stands). */
  get withinLimits(): boolean {
    return this.params.length + this.locals.length <= FUNCTION_LIMITS.locals &&
      this.params.length <= FUNCTION_LIMITS.params &&
      this.code.length < FUNCTION_LIMITS.bodyBytes;
  }

  /** A new local of `type`; `label` names it in the text form. Returns its index. */
  local(type: ValType, label: string): number {
    this.locals.push(type);
    this.localNames.push(label);
    return this.params.length + this.locals.length - 1;
  }

  /** Emits instruction `op` with its immediates already encoded (`imm`) and spelled (`note`). */
  #emit(op: Mnemonic, imm: readonly number[], note: string): void {
    const [first, sub] = OPCODES[op];
    this.code.push(first);
    if (sub !== undefined) uleb(sub, this.code);
    for (const byte of imm) this.code.push(byte);
    if (op === "end" || op === "else") this.#depth--;
    this.text.push(`${"  ".repeat(this.#depth)}${op}${note ? " " + note : ""}`);
    if (op === "block" || op === "loop" || op === "if" || op === "else") this.#depth++;
  }

  /** An instruction without immediates. */
  op(...ops: Mnemonic[]): this {
    for (const op of ops) this.#emit(op, [], "");
    return this;
  }

  /** `local.get`, `local.set` or `local.tee` of local `index`. */
  localOp(op: "local.get" | "local.set" | "local.tee", index: number): this {
    const imm: number[] = [];
    uleb(index, imm);
    this.#emit(op, imm, `$${this.localNames[index]}`);
    return this;
  }

  /** Reads local `index`. */
  get(index: number): this {
    return this.localOp("local.get", index);
  }

  /** Writes local `index`. */
  set(index: number): this {
    return this.localOp("local.set", index);
  }

  /** `i32.const value`. */
  i32(value: number): this {
    const imm: number[] = [];
    sleb(value, imm);
    this.#emit("i32.const", imm, String(value | 0));
    return this;
  }

  /** `f32.const value`. */
  f32(value: number): this {
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    this.#emit("f32.const", [...bytes], f32Text(bytes));
    return this;
  }

  /** `f64.const value`. */
  f64(value: number): this {
    const bytes = new Uint8Array(new Float64Array([value]).buffer);
    this.#emit("f64.const", [...bytes], String(value));
    return this;
  }

  /** `i8x16.shuffle`: byte `i` of the result is byte `bytes[i]` of the two operands (0-31). */
  shuffle(bytes: readonly number[]): this {
    this.#emit("i8x16.shuffle", bytes, bytes.join(" "));
    return this;
  }

  /** `v128.const` of four f32 (or, with `i32`, four i32) lanes. */
  v128(lanes: readonly number[], kind: "f32" | "i32" = "f32"): this {
    const array = kind === "f32" ? new Float32Array(lanes) : new Int32Array(lanes);
    const bytes = new Uint8Array(array.buffer);
    const spelled = kind === "f32"
      ? [0, 4, 8, 12].map((at) => f32Text(bytes.subarray(at, at + 4)))
      : Array.from(array, String);
    this.#emit("v128.const", [...bytes], `${kind}x4 ${spelled.join(" ")}`);
    return this;
  }

  /** A load or store with its alignment (log2 bytes) and offset. */
  memory(
    op:
      | "i32.load"
      | "f32.load"
      | "f64.load"
      | "i32.store"
      | "f32.store"
      | "f64.store"
      | "v128.load"
      | "v128.load32_splat"
      | "v128.store",
    align: number,
    offset = 0,
  ): this {
    const imm: number[] = [];
    uleb(align, imm);
    uleb(offset, imm);
    this.#emit(op, imm, offset ? `offset=${offset} align=${1 << align}` : `align=${1 << align}`);
    return this;
  }

  /** A lane instruction (`extract_lane`, `replace_lane`) with its lane index. */
  lane(op: Mnemonic, index: number): this {
    this.#emit(op, [index], String(index));
    return this;
  }

  /** `block`, `loop` or `if` without a result. */
  open(op: "block" | "loop" | "if"): this {
    this.#emit(op, [0x40], "");
    return this;
  }

  /** `br` or `br_if` to the label `depth` levels out. */
  branch(op: "br" | "br_if", depth: number): this {
    const imm: number[] = [];
    uleb(depth, imm);
    this.#emit(op, imm, String(depth));
    return this;
  }

  /** `call` of function `index`. */
  call(index: number, label: string): this {
    const imm: number[] = [];
    uleb(index, imm);
    this.#emit("call", imm, `$${label}`);
    return this;
  }

  /** `select` of two v128 values (the typed form; plain `select` takes numbers only). */
  selectV128(): this {
    this.code.push(0x1c, 0x01, VALTYPE.v128);
    this.text.push(`${"  ".repeat(this.#depth)}select (result v128)`);
    return this;
  }

  /** The function body in the binary format (locals and code, `end` included). */
  body(): number[] {
    const out: number[] = [];
    const runs: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    uleb(runs.length, out);
    for (const [count, t] of runs) {
      uleb(count, out);
      out.push(VALTYPE[t]);
    }
    append(out, this.code);
    out.push(OPCODES.end[0]);
    const sized: number[] = [];
    uleb(out.length, sized);
    return append(sized, out);
  }

  /** The function as WAT-like text. */
  toText(): string {
    const params = this.params.map((p) => `(param $${p.name} ${p.type})`).join(" ");
    const results = this.results.map((r) => ` (result ${r})`).join("");
    const locals = this.locals.map((t, i) =>
      `  (local $${this.localNames[this.params.length + i]} ${t})`
    );
    return [`(func $${this.name} ${params}${results}`, ...locals, ...this.text, ")"].join("\n");
  }
}

/** A module: functions (some exported) over one imported shared memory `env.memory`. */
export class ModuleBuilder {
  readonly functions: FunctionBuilder[] = [];
  readonly exports: [string, number][] = [];

  /** Whether the imported memory is shared (it must match the memory given at instantiation). */
  constructor(readonly sharedMemory: boolean) {}

  /** Adds `fn`; returns its function index. */
  add(fn: FunctionBuilder, exported = false): number {
    this.functions.push(fn);
    const index = this.functions.length - 1;
    if (exported) this.exports.push([fn.name, index]);
    return index;
  }

  /** The module in the binary format. */
  toBytes(): Uint8Array {
    const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, content: number[]) => {
      out.push(id);
      uleb(content.length, out);
      append(out, content);
    };
    const types: number[] = [];
    uleb(this.functions.length, types);
    for (const fn of this.functions) {
      types.push(0x60);
      uleb(fn.params.length, types);
      for (const p of fn.params) types.push(VALTYPE[p.type]);
      uleb(fn.results.length, types);
      for (const r of fn.results) types.push(VALTYPE[r]);
    }
    section(1, types);
    const imports: number[] = [1];
    name("env", imports);
    name("memory", imports);
    // memory limits: shared memories need a maximum (flag 3: min, max, shared)
    imports.push(0x02, this.sharedMemory ? 0x03 : 0x00);
    uleb(1, imports);
    if (this.sharedMemory) uleb(65536, imports);
    section(2, imports);
    const funcs: number[] = [];
    uleb(this.functions.length, funcs);
    this.functions.forEach((_, i) => uleb(i, funcs));
    section(3, funcs);
    const exports: number[] = [];
    uleb(this.exports.length, exports);
    for (const [label, index] of this.exports) {
      name(label, exports);
      exports.push(0x00);
      uleb(index, exports);
    }
    section(7, exports);
    const code: number[] = [];
    uleb(this.functions.length, code);
    for (const fn of this.functions) append(code, fn.body());
    section(10, code);
    return new Uint8Array(out);
  }

  /**
   * What the text form holds beyond the binary: the names of the functions, their parameters
   * and locals. Two modules with equal bytes and equal names have equal text, so a key of the
   * two stands for the text without printing it.
   */
  names(): string {
    return this.functions.map((f) => `${f.name}(${f.localNames.join(" ")})`).join("\n");
  }

  /** The module as WAT-like text. */
  toText(): string {
    const memory = `(import "env" "memory" (memory 1${this.sharedMemory ? " 65536 shared" : ""}))`;
    const exports = this.exports.map(([label, index]) =>
      `(export "${label}" (func $${this.functions[index].name}))`
    );
    return [
      "(module",
      `  ${memory}`,
      ...this.functions.map((f) => f.toText().replace(/^/gm, "  ")),
      ...exports.map((e) => `  ${e}`),
      ")",
    ].join("\n");
  }
}
