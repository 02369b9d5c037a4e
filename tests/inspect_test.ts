// Seeing what the compiler does (src/inspect.ts): kernels() describes the plan without running
// it, realize() computes several tensors in one schedule, setFusion and setDebug switch
// behaviour, and every entry validates its arguments.

import {
  cpu,
  graph,
  graphDot,
  jit,
  kernels,
  realize,
  setDebug,
  setFusion,
  type Tensor,
  tensor,
} from "../mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";
import { assertClose, reference, withCpuKernels } from "./helpers.ts";

const input = (seed: number) =>
  tensor(Array.from({ length: 12 }, (_, i) => Math.cos(i + seed)), { shape: [3, 4] });

/** Runs `fn` with console.error captured; returns the lines printed. */
async function captureErrors(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return lines;
}

Deno.test("kernels() describes the plan and runs nothing", () =>
  withCpuKernels("js", async () => {
    const x = input(1);
    const y = x.exp().sum(1);
    const ks = kernels(y);
    assertEquals(ks.length, 1);
    assertEquals(ks[0].target, "js");
    assertEquals(ks[0].name, "k_exp_sum");
    assertStringIncludes(ks[0].source, `function ${ks[0].name}(out, in0)`);
    assertEquals(ks[0].outputs, [{ dtype: "float32", shape: [3], role: "output" }]);
    assertEquals(ks[0].inputs, [{ dtype: "float32", shape: [3, 4], role: "input" }]);
    assertEquals(y.isRealized, false); // nothing ran
    assertClose(await y.data(), reference(y));
    assertEquals(kernels(y).length, 0); // realized: nothing left to run
    assertEquals(kernels(x).length, 0); // data needs no kernel
  }));

Deno.test("realize() computes several tensors in one schedule", async () => {
  const x = input(2);
  const a = x.exp().mul(2);
  const b = x.exp().sum(0);
  await realize(a, b);
  assert(a.isRealized && b.isRealized);
  assertClose(a.dataSync(), reference(a));
  assertClose(b.dataSync(), reference(b));
  assertEquals(await realize(), undefined);
});

Deno.test("setFusion(false) gives one kernel per op; the values do not change", async () => {
  const build = (seed: number) => input(seed).neg().exp().affine(2, 1);
  const fused = build(3);
  assertEquals(kernels(fused).length, 1);
  const unfused = build(3.5);
  try {
    setFusion(false);
    assertEquals(kernels(unfused).map((k) => k.name), ["k_neg", "k_exp", "k_affine"]);
    assertClose(await unfused.data(), reference(unfused));
  } finally {
    setFusion(true);
  }
  assertClose(await fused.data(), reference(fused));
});

Deno.test("setDebug(1) prints each launch; setDebug(0) is quiet again", async () => {
  const y = input(4).sqrt().abs().max(0);
  let lines: string[] = [];
  try {
    setDebug(1);
    lines = await captureErrors(async () => void (await y.data()));
  } finally {
    setDebug(0);
  }
  assertEquals(lines.length, 1);
  assertMatch(lines[0], /^\[lucid\] launch k_\w+ -> float32\[4\]$/);
  const quiet = await captureErrors(async () => void (await input(5).sqrt().abs().max(0).data()));
  assertEquals(quiet, []);
});

Deno.test("debug output that cannot be written fails nothing (helper-146)", async () => {
  // stderr on a full disk: console.error threw, every realization rejected with "No space left
  // on device" and kept the buffers it had allocated until garbage collection
  const original = console.error;
  const y = input(7).abs().sqrt().mul(3); // a structure no other test plans
  const want = Array.from(await input(7).data(), (v) => Math.sqrt(Math.abs(v)) * 3);
  let got: number[] = [];
  try {
    setDebug(3);
    console.error = () => {
      throw new Error("No space left on device (os error 28)");
    };
    got = Array.from(await y.data());
  } finally {
    console.error = original;
    setDebug(0);
  }
  assertClose(got, want);
});

Deno.test("setDebug(3) also prints the IR and the source of each new plan", async () => {
  const y = input(6).tanh().square().sum(0, true); // a structure no other test plans
  let lines: string[] = [];
  try {
    setDebug(3);
    lines = await captureErrors(async () => void (await y.data()));
  } finally {
    setDebug(0);
  }
  const text = lines.join("\n");
  assertStringIncludes(text, "[lucid] IR:\n%0 = buffer() : float32[3,4]");
  // tanh runs as a Wasm kernel where SIMD is available: its text form is a module
  assertStringIncludes(
    text,
    cpu.simd ? "(func $k_tanh_square_sum (param $out i32)" : "function k_tanh_square_sum(out, in0)",
  );
  assertStringIncludes(text, "[lucid] launch k_tanh_square_sum -> float32[1,4]");
});

Deno.test("setDebug(2) prints a plan's own graph, down to stored values, jit's plans too", async () => {
  // the whole history was printed, with nothing to say where the plan began; and plans jit
  // made printed nothing at levels 2 and 3
  const x = input(7);
  const stored = x.exp().neg();
  await stored.realize();
  let lines: string[] = [];
  try {
    setDebug(2);
    lines = await captureErrors(async () => void (await stored.add(1).data()));
    lines.push("--- jit");
    lines.push(...await captureErrors(async () => void (await jit((t) => t.sigmoid().abs())(x))));
  } finally {
    setDebug(0);
  }
  const [eager, traced] = lines.join("\n").split("--- jit");
  assertStringIncludes(eager, "[lucid] IR:\n%0 = neg(stored) : float32[3,4]\n");
  assert(!eager.includes("exp("), eager);
  assertStringIncludes(traced, "[lucid] IR:\n%0 = buffer() : float32[3,4]\n%1 = sigmoid(%0)");
  assertStringIncludes(traced, "[lucid] launch k_sigmoid_abs");
});

Deno.test("kernels() lists what realize() runs, the assigned values it computes included", async () => {
  // a realization computes the assigned values that storing its outputs would free what they
  // read; kernels() planned the outputs alone: one kernel listed, two launched
  const w = input(8);
  w.assign(w.mul(2));
  const y = w.add(1).sum();
  const listed = kernels(y);
  let launched: string[] = [];
  try {
    setDebug(1);
    launched = await captureErrors(() => realize(y));
  } finally {
    setDebug(0);
  }
  assertEquals(
    launched.map((l) => l.split(" ")[2]),
    listed.map((k) => k.name),
  );
  const want = Array.from({ length: 12 }, (_, i) => 2 * Math.cos(i + 8) + 1)
    .reduce((a, b) => a + b, 0);
  assertClose([await y.item()], [want], { rtol: 1e-5 });
});

Deno.test("graph(), graphDot() and kernel headers spell NaN, the infinities and -0", () => {
  // JSON made them null and 0: a pad by -Infinity printed as one by NaN, x * -0 as x * 0
  const x = input(9);
  const padded = x.pad([[0, 0], [1, 1]], -Infinity).max(1);
  assertStringIncludes(graph(padded), "pad(%0) {pads=[[0,0],[1,1]],value=-Infinity}");
  assertStringIncludes(graphDot(padded), "value=-Infinity");
  assertStringIncludes(graph(x.pad([[0, 0], [1, 1]], NaN)), "value=NaN}");
  assertStringIncludes(graph(x.affine(Infinity, -0)), "affine(%0) [Infinity,-0]");
  assertStringIncludes(graph(x.mul(-0)), "const() -0");
  withCpuKernels("js", () => {
    assertStringIncludes(kernels(padded)[0].source, "value=-Infinity})");
    assertStringIncludes(kernels(x.mul(-0).add(1))[0].source, "mul(in0, expand(reshape(-0)))");
  });
});

Deno.test("inspection entries validate their arguments", async () => {
  const bad = [1, 2] as unknown as Tensor;
  assertThrows(() => graph(bad), Error, "graph: argument 0 must be a Tensor, got [1, 2]");
  assertThrows(() => graphDot(input(1), bad), Error, "graphDot: argument 1 must be a Tensor");
  assertThrows(() => kernels(bad), Error, "kernels: argument 0 must be a Tensor");
  await assertRejects(() => realize(bad), Error, "realize: argument 0 must be a Tensor");
  assertThrows(
    () => setFusion(1 as unknown as boolean),
    Error,
    "setFusion: enabled must be a boolean, got 1",
  );
  assertThrows(() => setDebug(-1), Error, "setDebug: level must be a non-negative integer, got -1");
  assertThrows(
    () => setDebug(1.5),
    Error,
    "setDebug: level must be a non-negative integer, got 1.5",
  );
});
