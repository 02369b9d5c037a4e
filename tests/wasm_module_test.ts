// The Wasm module builder's text form (codegen/wasm_module.ts): float32 constants are spelled as
// the WebAssembly text format reads them (inf, -inf, nan, nan:0x..., -0), so the `.wat` files of
// the wasm export assemble to the same constants as the bytes beside them.

import { FunctionBuilder } from "../codegen/wasm_module.ts";
import { assertEquals } from "./assert.ts";

/** The float32 bits a text-format float token means (its grammar, independently). */
function bitsOfToken(token: string): number {
  const sign = token.startsWith("-") ? 0x80000000 : 0;
  const magnitude = token.replace(/^[+-]/, "");
  if (magnitude === "inf") return (sign | 0x7f800000) >>> 0;
  const nan = /^nan(?::0x([0-9a-f]+))?$/.exec(magnitude);
  if (nan) return (sign | 0x7f800000 | (nan[1] ? parseInt(nan[1], 16) : 0x400000)) >>> 0;
  assertEquals(/^\d+(\.\d+)?(e[+-]?\d+)?$/.test(magnitude), true, `a decimal: ${token}`);
  const bits = new Uint32Array(new Float32Array([Number(token)]).buffer)[0];
  return sign && Number(magnitude) === 0 ? 0x80000000 : bits;
}

Deno.test("wasm module: float32 constants in the text read back as the bytes' bits", () => {
  const payloadNan = new Float32Array(new Uint32Array([0xffc00001]).buffer)[0];
  const values = [0, -0, 1, -1.5, 0.1, 1e-45, 3.4028234663852886e38, Infinity, -Infinity, NaN];
  const fn = new FunctionBuilder("f", []);
  for (const v of values) fn.f32(v);
  fn.v128([Infinity, -0, NaN, 0.1]);
  const text = fn.text.map((line) => line.trim());
  const tokens = [...text.slice(0, values.length).map((l) => l.split(" ")[1])];
  tokens.push(...text[values.length].split(" ").slice(2));
  const bits = new Uint32Array(new Float32Array([...values, Infinity, -0, NaN, 0.1]).buffer);
  assertEquals(tokens.map(bitsOfToken), Array.from(bits), tokens.join(" "));
  assertEquals(text[values.length], "v128.const f32x4 inf -0 nan 0.10000000149011612");
  // a NaN with a payload and its sign bit, as a Float32Array holds it
  const payload = new FunctionBuilder("g", []);
  payload.v128([payloadNan, 0, 0, 0]);
  const token = payload.text[0].trim().split(" ")[2];
  const stored = new Uint32Array(new Float32Array([payloadNan]).buffer)[0];
  assertEquals(bitsOfToken(token), stored, token);
});
