// The command line (cli.ts): every option parsed and checked, --help naming every option, bad
// options a message and exit status 2, failed exports status 1, and `deno task export` run
// as a process twice writing byte-identical files that run.

import { type CliOptions, HELP, main, parseCli, parseShape, UsageError } from "../cli.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { assertClose } from "./helpers.ts";

const base = ["lrn", "--shape", "2,3,4", "--out", "/tmp/unused"];

Deno.test("cli: options are parsed with their defaults", () => {
  assertEquals(parseCli(base), {
    model: "lrn",
    size: 5,
    alpha: 1e-4,
    beta: 0.75,
    k: 1,
    shape: [2, 3, 4],
    dtype: "float32",
    target: "js",
    grad: false,
    out: "/tmp/unused",
    name: "lrn",
  });
  const full = parseCli([
    "lrn",
    "--size=3",
    "--alpha",
    "1e-3",
    "--beta",
    "0.5",
    "--k",
    "-2",
    "--shape",
    "2, 96,27,27",
    "--target",
    "wgsl",
    "--grad",
    "--out",
    "dist",
    "--dtype",
    "float32",
  ]);
  assertEquals(full, {
    model: "lrn",
    size: 3,
    alpha: 1e-3,
    beta: 0.5,
    k: -2,
    shape: [2, 96, 27, 27],
    dtype: "float32",
    target: "wgsl",
    grad: true,
    out: "dist",
    name: "lrn_grad",
  });
  assertEquals(parseCli([...base, "--help"]), "help");
  assertEquals(parseCli(["-h"]), "help");
  assertEquals(parseCli(["--version"]), "version");
});

Deno.test("cli: bad options are UsageErrors naming the option and the value", () => {
  const cases: [string[], string][] = [
    [[], "name the model to export (lrn)"],
    [["lrn", "vgg", "--shape", "2,3", "--out", "d"], "one model at a time, got lrn, vgg"],
    [["resnet", "--shape", "2,3", "--out", "d"], 'unknown model "resnet" (known: lrn)'],
    [[...base, "--bogus", "1"], "unknown option --bogus"],
    [[...base, "-x"], "unknown option -x"],
    [[...base, "--size"], "--size needs a value"],
    [[...base, "--size", "--grad"], "--size needs a value"],
    [[...base, "--size", "0"], '--size must be a positive integer, got "0"'],
    [[...base, "--size", "2.5"], '--size must be a positive integer, got "2.5"'],
    // Number() read these as 16, 10 and 1e20 (which then failed inside pad, exit 1)
    [[...base, "--size", "0x10"], '--size must be a positive integer, got "0x10"'],
    [[...base, "--size", "1e1"], '--size must be a positive integer, got "1e1"'],
    [[...base, "--size", "1e20"], '--size must be a positive integer, got "1e20"'],
    [[...base, "--grad=1"], '--grad takes no value, got "--grad=1"'],
    // past 2^53 digits no longer say one number: 99999999999999999999 was read as 1e20
    [
      [...base, "--size", "99999999999999999999"],
      '--size must be a positive integer below 2^53, got "99999999999999999999"',
    ],
    [[...base, "--alpha", "abc"], '--alpha must be a finite decimal number, got "abc"'],
    [[...base, "--beta", "Infinity"], '--beta must be a finite decimal number, got "Infinity"'],
    [[...base, "--k", ""], '--k must be a finite decimal number, got ""'],
    // Number() read these as 16, 1 and 7
    [[...base, "--alpha", "0x10"], '--alpha must be a finite decimal number, got "0x10"'],
    [[...base, "--beta", "0b1"], '--beta must be a finite decimal number, got "0b1"'],
    [[...base, "--k", "0o7"], '--k must be a finite decimal number, got "0o7"'],
    [[...base, "--beta", "1e999"], '--beta must be a finite decimal number, got "1e999"'],
    // these read as 0 (and -0): a value the user did not write (helper-163)
    [
      [...base, "--alpha", "1e-400"],
      "--alpha must be a decimal number whose magnitude float64 can hold (at least 5e-324), " +
      'got "1e-400", which reads as 0',
    ],
    [
      [...base, "--k", "0.0000001e-320"],
      "--k must be a decimal number whose magnitude float64 can hold (at least 5e-324), " +
      'got "0.0000001e-320", which reads as 0',
    ],
    [
      [...base, "--beta", "-2e-324"],
      "--beta must be a decimal number whose magnitude float64 can hold (at least 5e-324), " +
      'got "-2e-324", which reads as 0',
    ],
    // the last one silently won
    [[...base, "--shape", "4,5"], "--shape is given twice"],
    [[...base, "--alpha", "1", "--alpha=2"], "--alpha is given twice"],
    [[...base, "--grad", "--grad"], "--grad is given twice"],
    [[...base, "--target", "webgl"], '--target must be js, wgsl or wasm, got "webgl"'],
    [[...base, "--dtype", "int32"], '--dtype must be float32 or float64, got "int32"'],
    [
      [...base, "--name", "a/b"],
      '--name must be a file name of letters, digits, _, . and -, got "a/b"',
    ],
    [["lrn", "--out", "d"], "--shape is required (e.g. --shape 2,96,27,27)"],
    [["lrn", "--shape", "2,3"], "--out DIR is required"],
  ];
  for (const [args, message] of cases) {
    assertThrows(() => parseCli(args), UsageError, message, args.join(" "));
  }
  // decimals as people write them
  for (
    const [text, value] of [
      ["-2", -2],
      ["+.5", 0.5],
      ["3.", 3],
      ["1E-3", 1e-3],
      [" 2 ", 2],
      ["0", 0],
      ["0.000e-999", 0],
      ["-0", -0],
      ["5e-324", 5e-324],
    ]
  ) {
    assertEquals((parseCli([...base, "--k", text as string]) as CliOptions).k, value);
  }
  // digits are digits however many: a window past every channel is clipped to them
  assertEquals((parseCli([...base, "--size", "007"]) as CliOptions).size, 7);
  assertEquals(
    (parseCli([...base, "--size", "9007199254740991"]) as CliOptions).size,
    Number.MAX_SAFE_INTEGER,
  );
  for (const shape of ["2x96", "2,", "", "5", "2,-3", "2,3.5", "a,b"]) {
    assertThrows(
      () => parseShape(shape),
      UsageError,
      `--shape must be at least 2 comma-separated non-negative integers (N, C, ...) such as 2,96,27,27, got ${
        JSON.stringify(shape)
      }`,
    );
  }
  // a count no tensor can have is a usage error too (an op named "buffer" said it, exit 1)
  assertThrows(
    () => parseShape("1000000000,1000000000"),
    UsageError,
    "--shape has more elements than 2^53 - 1: 1000000000,1000000000",
  );
});

Deno.test("cli: --help explains every option", () => {
  const options = ["--size", "--alpha", "--beta", "--k", "--shape", "--dtype", "--target"];
  for (const option of [...options, "--grad", "--out", "--name", "-h, --help", "--version"]) {
    assertStringIncludes(HELP, `\n  ${option} `);
  }
  assertStringIncludes(HELP, "deno run -A jsr:@lucid/nn/cli lrn");
});

/** Runs cli.ts as `deno task export` does; the exit code and what it printed. */
async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string; }> {
  const cli = new URL("../cli.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", cli, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

Deno.test("cli: a process exports byte-identical files twice; bad options exit 2, failures 1", async () => {
  const root = await Deno.makeTempDir({ prefix: "lucid-cli-" });
  try {
    const args = [
      "lrn",
      "--size",
      "5",
      "--alpha",
      "1e-4",
      "--beta",
      "0.75",
      "--k",
      "2",
      "--shape",
      "2,96,27,27",
      "--target",
      "wgsl",
      "--grad",
    ];
    const first = await runCli([...args, "--out", `${root}/a`]);
    assertEquals(first.code, 0, first.stderr);
    assertStringIncludes(first.stdout, `${root}/a/manifest.json`);
    await runCli([...args, "--out", `${root}/b`]);
    const names = [...Deno.readDirSync(`${root}/a`)].map((e) => e.name).sort();
    assert(names.includes("lrn_grad.js") && names.includes("manifest.json"));
    assertEquals(
      names.filter((n) => n.endsWith(".wgsl")).length,
      2,
      "y with the backward's middle term (MULTI_OUTPUT), then dx",
    );
    for (const name of names) {
      assertEquals(
        await Deno.readFile(`${root}/b/${name}`),
        await Deno.readFile(`${root}/a/${name}`),
        name,
      );
    }
    const bad = await runCli(["lrn", "--shape", "2x96", "--out", `${root}/c`]);
    assertEquals(bad.code, 2);
    assertStringIncludes(bad.stderr, "error: --shape must be at least 2 comma-separated");
    assertStringIncludes(bad.stderr, "Run with --help for every option.");
    const f64 = await runCli([
      "lrn",
      "--shape",
      "2,3",
      "--dtype",
      "float64",
      "--target",
      "wgsl",
      "--out",
      `${root}/d`,
    ]);
    assertEquals(f64.code, 1);
    assertStringIncludes(f64.stderr, 'target "wgsl" has no float64');
    await Deno.writeTextFile(`${root}/file`, "");
    const unwritable = await runCli(["lrn", "--shape", "2,3", "--out", `${root}/file/out`]);
    assertEquals(unwritable.code, 1);
    assertStringIncludes(
      unwritable.stderr,
      `error: writeExport: cannot write the export to "${root}/file/out"`,
    );
    assertEquals(
      [...Deno.readDirSync(root)].map((e) => e.name).sort(),
      ["a", "b", "file"],
      "nothing else written",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("cli: --target wasm writes modules, their text, a manifest and a loader, byte-identical twice", async () => {
  const root = await Deno.makeTempDir({ prefix: "lucid-cli-" });
  try {
    const args = ["lrn", "--shape", "2,7,3,3", "--k", "2", "--target", "wasm", "--grad"];
    assertEquals((parseCli([...args, "--out", "d"]) as CliOptions).target, "wasm");
    for (const dir of ["a", "b"]) {
      const run = await runCli([...args, "--out", `${root}/${dir}`]);
      assertEquals(run.code, 0, run.stderr);
    }
    const names = [...Deno.readDirSync(`${root}/a`)].map((e) => e.name).sort();
    assertEquals(names.filter((n) => n.endsWith(".wasm")).length, 2, "two kernels");
    assertEquals(names.filter((n) => n.endsWith(".wat")).length, 2);
    assert(names.includes("lrn_grad.js") && names.includes("manifest.json"));
    for (const name of names) {
      assertEquals(
        await Deno.readFile(`${root}/b/${name}`),
        await Deno.readFile(`${root}/a/${name}`),
        name,
      );
    }
    const m = await import(`file://${root}/a/lrn_grad.js`);
    const x = Float32Array.from({ length: 126 }, (_, i) => Math.cos(i));
    const [y, dx] = m.run(x, new Float32Array(126).fill(1));
    // y_c = x_c (2 + 1e-4 S_c)^-0.75, S over channels c-2..c+2 at the same n and position
    const at = (n: number, c: number, p: number) => x[(n * 7 + c) * 9 + p];
    for (const [n, c, p] of [[0, 0, 0], [1, 3, 4], [1, 6, 8]]) {
      let s = 0;
      for (let j = Math.max(0, c - 2); j <= Math.min(6, c + 2); j++) s += at(n, j, p) ** 2;
      const want = at(n, c, p) / Math.pow(2 + 1e-4 * s, 0.75);
      const got = y[(n * 7 + c) * 9 + p];
      assert(Math.abs(got - want) <= 1e-6 * Math.abs(want) + 1e-7, `y at ${[n, c, p]}`);
    }
    assertEquals(dx.length, 126);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("cli: main writes the export and reports it", async () => {
  const root = await Deno.makeTempDir({ prefix: "lucid-cli-" });
  const logged: string[] = [];
  const log = console.log;
  console.log = (...parts: unknown[]) => logged.push(parts.join(" "));
  try {
    assertEquals(await main(["lrn", "--shape", "1,4", "--out", root, "--name", "tiny"]), 0);
    assertEquals(logged, ["wrote 1 file:", `  ${root}/tiny.js`]);
    const m = await import(`file://${root}/tiny.js`);
    assertEquals(m.inputs, [{ name: "x", shape: [1, 4], dtype: "float32" }]);
    const [y] = m.run(Float32Array.of(1, 2, 3, 4));
    // size 5, alpha 1e-4, beta 0.75, k 1: y_c = x_c (1 + 1e-4 S_c)^-0.75, S over c-2..c+2
    const x = [1, 2, 3, 4];
    const want = x.map((v, c) => {
      const s = x.slice(Math.max(0, c - 2), c + 3).reduce((a, b) => a + b * b, 0);
      return v / Math.pow(1 + 1e-4 * s, 0.75);
    });
    // (float32 arithmetic: within a few float32 ulps of the exact value)
    assertClose(y, want, { rtol: 1e-6, atol: 0 });
  } finally {
    console.log = log;
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("cli: a relative --out is reported where the files are (helper-146)", async () => {
  // `deno task export` runs in the project's directory: `--out reldir` typed elsewhere printed
  // `reldir/lrn.js`, a path that was not there from where the command was typed
  const root = await Deno.makeTempDir({ prefix: "lucid-cli-" });
  const logged: string[] = [];
  const log = console.log;
  const cwd = Deno.cwd();
  console.log = (...parts: unknown[]) => logged.push(parts.join(" "));
  try {
    Deno.chdir(root);
    assertEquals(await main(["lrn", "--shape", "1,4", "--out", "reldir"]), 0);
    assertEquals(logged, ["wrote 1 file:", `  ${Deno.realPathSync(root)}/reldir/lrn.js`]);
    assertEquals(Deno.statSync(logged[1].trim()).isFile, true);
  } finally {
    console.log = log;
    Deno.chdir(cwd);
    await Deno.remove(root, { recursive: true });
  }
});
