// README.md's training-loop example runs as written: the block under "### A training loop" is
// taken from the README, its `@lucid/nn` import pointed at this checkout's mod.ts, and run; the
// loss it prints must go down. The LocalResponseNorm kernel README shows is the source the
// library generates today, character for character.

import { assert, assertEquals } from "./assert.ts";

const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));

/** The first ```ts block after `heading`. */
function codeAfter(heading: string): string {
  const at = readme.indexOf(heading);
  assert(at >= 0, `README has no "${heading}"`);
  const match = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert(match !== null, `no ts block after "${heading}"`);
  return match[1];
}

Deno.test("README: the training-loop example runs and its loss goes down", async () => {
  const code = codeAfter("### A training loop");
  const modUrl = new URL("../mod.ts", import.meta.url).href;
  const runnable = code.replace(`from "@lucid/nn"`, `from "${modUrl}"`);
  assert(runnable !== code, "the example imports @lucid/nn");
  const printed: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => printed.push(args.join(" "));
  try {
    const url = `data:application/typescript;base64,${btoa(runnable)}`;
    await import(url);
  } finally {
    console.log = log;
  }
  assertEquals(printed.length, 4, printed.join("\n"));
  const losses = printed.map((line) => Number(/loss (\S+)/.exec(line)![1]));
  assert(losses.every((l) => Number.isFinite(l) && l >= 0), printed.join("\n"));
  assert(losses[3] < losses[0] / 100, `the loss went down a hundredfold: ${printed.join("; ")}`);
});

Deno.test("README: the short tour runs and prints what its comments say", async () => {
  // (helper 118 ran every README block by hand; only the training loop had a test)
  const code = codeAfter("## A short tour");
  const modUrl = new URL("../mod.ts", import.meta.url).href;
  const runnable = code.replace(`from "@lucid/nn"`, `from "${modUrl}"`);
  assert(runnable !== code, "the tour imports @lucid/nn");
  // each console.log line's comment says what it prints, up to the first ":" or "("
  const promised = [...code.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
  assertEquals(promised.length, 3, "the tour's printed lines");
  const printed: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => printed.push(args.join(" "));
  try {
    await import(`data:application/typescript;base64,${btoa(runnable)}`);
  } finally {
    console.log = log;
  }
  assertEquals(printed, [
    "LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=2.0)",
    "1",
    "2",
  ]);
  assertEquals(promised.map((p) => p.split(/: | \(/)[0].trim()), printed);
});

Deno.test("README: the LocalResponseNorm kernel it shows is the one the library generates", async () => {
  const { cpu, kernels, nn, zeros } = await import("../mod.ts");
  const at = readme.indexOf("```js\n   // lucid kernel: out float32[2,96,27,27]");
  assert(at >= 0, "README shows the LRN kernel");
  const block = readme.slice(at + "```js\n".length, readme.indexOf("```", at + 6));
  const shown = block.split("\n").map((line) => line.slice(3)).join("\n");
  const before = cpu.kernels;
  cpu.kernels = "js";
  try {
    const y = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2).forward(zeros(2, 96, 27, 27));
    assertEquals(shown, kernels(y)[0].source);
  } finally {
    cpu.kernels = before;
  }
});
