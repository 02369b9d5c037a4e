// The random generator (src/random.ts): xoshiro128** word for word as its authors' C code,
// seeds that start unrelated streams, 53 random bits in a float64 uniform and 24, exact, in a
// float32 one.

import { manualSeed, rand, randn } from "../mod.ts";
import { nextWord, privateUniforms, type State, stateOf } from "../src/random.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";

Deno.test("random: xoshiro128** gives the reference implementation's words", () => {
  // from the authors' xoshiro128starstar.c, compiled with gcc, state {1, 2, 3, 4}
  const s: State = Uint32Array.of(1, 2, 3, 4);
  const first = Array.from({ length: 6 }, () => nextWord(s));
  assertEquals(first, [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  for (let i = 0; i < 1_000_000; i++) nextWord(s);
  assertEquals(nextWord(s), 1778123047);
});

Deno.test("random: distinct seeds start streams that do not overlap", () => {
  // the 32-bit generator before made every seed a point of one cycle: seed 178's stream was
  // seed 15709's 8 draws later, seed 726's was seed 767's 6,116 draws later
  for (const [a, b] of [[178, 15709], [726, 767], [0, 1]]) {
    const head = stateOf(a);
    const wanted = `${nextWord(head)} ${nextWord(head)} ${nextWord(head)}`;
    const other = stateOf(b);
    const window = [nextWord(other), nextWord(other), nextWord(other)];
    for (let i = 0; i < 20_000; i++) {
      assert(window.join(" ") !== wanted, `seed ${a}'s stream is seed ${b}'s after ${i} draws`);
      window.shift();
      window.push(nextWord(other));
    }
  }
  // every seed gives a state of its own (the four words, not only one)
  const states = new Set<string>();
  for (let seed = 0; seed < 5000; seed++) states.add(stateOf(seed).join(","));
  assertEquals(states.size, 5000);
});

Deno.test("random: float64 uniforms have 53 random bits, float32 ones 24 and never 1", async () => {
  manualSeed(3);
  const wide = await rand([4000], { dtype: "float64" }).data();
  // 32 bits before: every value a multiple of 2^-32
  const beyond32 = Array.from(wide).filter((u) => !Number.isInteger(u * 2 ** 32)).length;
  assert(beyond32 > 3900, `${beyond32} of 4000 carry bits past 2^-32`);
  assert(Array.from(wide).every((u) => u >= 0 && u < 1 && Number.isInteger(u * 2 ** 53)));
  manualSeed(3);
  const narrow = await rand(100_000).data();
  // exact in float32: a draw never rounds up to 1 on its way there
  assert(Array.from(narrow).every((u) => u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24)));
  // gradcheck's private stream is float64 rand's, from its seed
  const own = privateUniforms(3);
  assertEquals(Array.from({ length: 4 }, own), Array.from(wide.slice(0, 4)));
});

Deno.test("random: normals have mean 0, variance 1 and a normal's share beyond 3 sigma", async () => {
  manualSeed(11);
  const normal = Array.from(await randn([200_000], { dtype: "float64" }).data());
  const mean = normal.reduce((s, x) => s + x, 0) / normal.length;
  const variance = normal.reduce((s, x) => s + (x - mean) ** 2, 0) / normal.length;
  assert(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
  // about 0.27% beyond 3 sigma
  const beyond3 = normal.filter((x) => Math.abs(x) > 3).length / normal.length;
  assert(Math.abs(beyond3 - 0.0027) < 0.0006, `beyond 3 sigma: ${beyond3}`);
});

Deno.test("rand and randn: a call that fails after drawing leaves the generator where it was", async () => {
  // the device out of memory once the values were drawn: the generator had moved by as many
  // draws as the tensor had elements, and every seeded number after it shifted
  for (const draw of [rand, randn]) {
    manualSeed(3);
    const expected = Array.from(await draw([5]).data());
    manualSeed(3);
    const upload = cpuBackend.upload;
    cpuBackend.upload = () => {
      throw new Error("cpu: out of memory (a stand-in)");
    };
    try {
      assertThrows(() => draw([1000]), Error, "out of memory");
    } finally {
      cpuBackend.upload = upload;
    }
    assertEquals(Array.from(await draw([5]).data()), expected);
  }
});
