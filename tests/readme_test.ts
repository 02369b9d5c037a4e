// README.md's training-loop example runs as written: the block under "### A training loop" is
// taken from the README, its `@lucid/nn` import pointed at this checkout's mod.ts, and run; the
// loss it prints must go down. The LocalResponseNorm kernel README shows is the source the
// library generates today, character for character. The blocks of "Compile and export" run as
// a reader would paste them, and the files they write run without the library, as its js and
// wasm snippets say.

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

const modUrl = new URL("../mod.ts", import.meta.url).href;

/** `code` with its `@lucid/nn` import pointed at this checkout's mod.ts. */
function pointedAtCheckout(code: string): string {
  const runnable = code.replace(`from "@lucid/nn"`, `from "${modUrl}"`);
  assert(runnable !== code, "the example imports @lucid/nn");
  return runnable;
}

/** Runs `code` as a module and returns the lines it printed with console.log. */
async function runPrinting(code: string): Promise<string[]> {
  const printed: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => printed.push(args.join(" "));
  try {
    await import(`data:application/typescript;base64,${btoa(code)}`);
  } finally {
    console.log = log;
  }
  return printed;
}

Deno.test("README: the training-loop example runs and its loss goes down", async () => {
  const printed = await runPrinting(pointedAtCheckout(codeAfter("### A training loop")));
  assertEquals(printed.length, 4, printed.join("\n"));
  const losses = printed.map((line) => Number(/loss (\S+)/.exec(line)![1]));
  assert(losses.every((l) => Number.isFinite(l) && l >= 0), printed.join("\n"));
  assert(losses[3] < losses[0] / 100, `the loss went down a hundredfold: ${printed.join("; ")}`);
});

Deno.test("README: the short tour runs and prints what its comments say", async () => {
  // (helper 118 ran every README block by hand; only the training loop had a test)
  const code = codeAfter("## A short tour");
  // each console.log line's comment says what it prints, up to the first ":" or "("
  const promised = [...code.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1]);
  assertEquals(promised.length, 3, "the tour's printed lines");
  const printed = await runPrinting(pointedAtCheckout(code));
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

/** The ```lang blocks of the section under `heading`, in order, their indentation removed. */
function blocksOf(heading: string, lang: string): string[] {
  const start = readme.indexOf(`\n${heading}\n`);
  assert(start >= 0, `README has no "${heading}"`);
  const end = readme.indexOf("\n## ", start + heading.length + 2);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^( *)```(\w+)\n([\s\S]*?)^\1```/gm)]
    .filter((m) => m[2] === lang)
    .map((m) => m[3].split("\n").map((line) => line.slice(m[1].length)).join("\n"));
}

Deno.test("README: Compile and export's code runs as written, and its exports run alone", async () => {
  // (helper 118 ran these blocks by hand; no test did)
  const [compile, exporting] = blocksOf("## Compile and export", "ts");
  const consumers = blocksOf("## Compile and export", "js");
  assertEquals(consumers.length, 2, "the js and wasm examples");
  const dir = await Deno.makeTempDir({ prefix: "lucid-readme-export-" });
  try {
    // one module, as a reader would paste the two blocks; `dist/` is made in a scratch directory
    const code = pointedAtCheckout(`${compile}\n${exporting}`)
      .replaceAll("`dist/${target}`", `\`${dir}/dist/\${target}\``);
    assert(code.includes(`${dir}/dist/`), "the export block writes under dist/");
    const printed = await runPrinting(code);
    assertEquals(printed, ["1"], "step.traceCount, as its comment says");
    for (const target of ["js", "wgsl", "wasm"]) {
      const files = [...Deno.readDirSync(`${dir}/dist/${target}`)].map((e) => e.name);
      assert(files.includes("lrn_grad.js"), `dist/${target}: ${files}`);
    }
    // the js and wasm snippets, each in a fresh process that may read the scratch directory only
    const { nn, ones } = await import("../mod.ts");
    const lrn = new nn.LocalResponseNorm(5, 1e-4, 0.75, 2);
    using x = ones([2, 96, 27, 27], { requiresGrad: true });
    using y = lrn.forward(x);
    using dy = ones(2, 96, 27, 27);
    y.backward(dy);
    using dx = x.grad!;
    const want = [await y.data(), await dx.data()] as Float32Array[];
    x.grad = null;
    for (const [i, snippet] of consumers.entries()) {
      const script = `${dir}/consumer${i}.mjs`;
      const report = "\nconsole.log(JSON.stringify([Array.from(y), Array.from(dx)]));\n";
      await Deno.writeTextFile(script, snippet + report);
      const { code: exit, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-config", "--no-lock", "--no-remote", `--allow-read=${dir}`, script],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(exit, 0, new TextDecoder().decode(stderr));
      const [gotY, gotDx] = JSON.parse(new TextDecoder().decode(stdout)) as number[][];
      // the wasm loader runs the library's own kernels: equal bit for bit (see README); the js
      // module the JavaScript ones, which agree with them on float32 (cpu.kernels = "auto")
      for (const [name, got, expected] of [["y", gotY, want[0]], ["dx", gotDx, want[1]]] as const) {
        assertEquals(got.length, expected.length, `consumer ${i}: ${name}'s length`);
        // the first difference, not a diff of 139,968 numbers (which took minutes to print)
        const at = got.findIndex((v, j) => !Object.is(v, expected[j]));
        assertEquals(at, -1, `consumer ${i}: ${name}[${at}] = ${got[at]}, not ${expected[at]}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
