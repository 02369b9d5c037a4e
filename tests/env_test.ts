// The library's environment variables (src/runtime/env.ts): read only where reading them is
// granted, so that importing the library or computing with it never asks for a permission.

import { envVariable } from "../src/runtime/env.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";

Deno.test("env: a granted variable is read; none is asked for without a grant", async () => {
  Deno.env.set("LUCID_ENV_TEST", "7");
  assertEquals(envVariable("LUCID_ENV_TEST"), "7");
  assertEquals(envVariable("LUCID_ENV_TEST_UNSET"), undefined);
  Deno.env.delete("LUCID_ENV_TEST");
  // a child with no env permission: importing the library read LUCID_THREADS and
  // LUCID_CPU_KERNELS (a prompt at every import, in a terminal), and the worker threads copied
  // the whole environment (a prompt for all of it in the middle of a computation)
  const program = `
    const calls = [];
    for (const name of ["get", "toObject", "has"]) {
      const original = Deno.env[name].bind(Deno.env);
      Deno.env[name] = (...args) => {
        calls.push(name + "(" + args.join(",") + ")");
        return original(...args);
      };
    }
    const root = ${JSON.stringify(new URL("..", import.meta.url).href)};
    const lib = await import(root + "mod.ts");
    const { cpuBackend } = await import(root + "src/runtime/cpu.ts");
    cpuBackend.threadMinElements = 1;
    lib.cpu.threads = 2;
    const ones = () => lib.tensor(new Float32Array(4096).fill(1));
    await ones().exp().data(); // starts the workers
    await cpuBackend.pool.started();
    const sum = await ones().exp().sum().item(); // split over them
    console.log(JSON.stringify({ calls, sum }));`;
  const file = await Deno.makeTempFile({ suffix: ".js" });
  try {
    await Deno.writeTextFile(file, program);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", file],
      env: { NO_COLOR: "1", LUCID_THREADS: "3" },
    }).output();
    const text = new TextDecoder();
    assertEquals(code, 0, text.decode(stderr));
    const { calls, sum } = JSON.parse(text.decode(stdout));
    assertEquals(Math.round(sum), Math.round(4096 * Math.E));
    // (Deno's worker_threads reads NODE_OPTIONS itself, without asking)
    assertEquals(calls.filter((c: string) => c !== "get(NODE_OPTIONS)"), []);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("env: a value the library cannot use is ignored with one warning naming it", async () => {
  // dropped without a word: LUCID_THREADS=two used every core, LUCID_CPU_KERNELS=JS ran Wasm,
  // LUCID_DEBUG=yes printed nothing; and "wasm" on a runtime without SIMD ran JavaScript while
  // cpu.kernels said "wasm"
  const root = new URL("..", import.meta.url).href;
  const program = `
    const lib = await import(${JSON.stringify(root + "mod.ts")});
    await lib.tensor([1, 2]).exp().data();
    console.log(JSON.stringify({ kernels: lib.cpu.kernels, threads: lib.cpu.threads }));`;
  const file = await Deno.makeTempFile({ suffix: ".js" });
  const run = async (env: Record<string, string>, v8Flags: string[] = []) => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", "--allow-env", ...v8Flags, file],
      env: { NO_COLOR: "1", ...env },
    }).output();
    const err = new TextDecoder().decode(stderr);
    assertEquals(code, 0, err);
    return { ...JSON.parse(new TextDecoder().decode(stdout)), stderr: err };
  };
  try {
    await Deno.writeTextFile(file, program);
    const defaults = await run({});
    assertEquals(defaults.stderr, "");
    const bad = await run({ LUCID_THREADS: "two", LUCID_CPU_KERNELS: "JS", LUCID_DEBUG: "yes" });
    assertEquals([bad.kernels, bad.threads], ["auto", defaults.threads]);
    const lines = bad.stderr.trim().split("\n");
    assertEquals(lines.sort(), [
      '@lucid/nn: LUCID_CPU_KERNELS must be "auto", "wasm" or "js", got "JS"; ignored',
      "@lucid/nn: LUCID_DEBUG must be a non-negative integer (0 quiet, 1 launches, 2 also IR, " +
      '3 also source), got "yes"; ignored',
      '@lucid/nn: LUCID_THREADS must be an integer from 1 to 64, got "two"; ignored',
    ]);
    // loose numbers are not integers written plainly
    for (const threads of ["0x1", "1e0", "0", "65", " 2"]) {
      const got = await run({ LUCID_THREADS: threads });
      assertEquals(got.threads, defaults.threads, threads);
      assertStringIncludes(
        got.stderr,
        `LUCID_THREADS must be an integer from 1 to 64, got "${threads}"`,
      );
    }
    assertEquals((await run({ LUCID_THREADS: "1" })).threads, 1);
    // set but empty is how a shell or a Dockerfile turns a variable off: unset, no warning
    const empty = await run({ LUCID_THREADS: "", LUCID_CPU_KERNELS: "", LUCID_DEBUG: "" });
    assertEquals([empty.kernels, empty.threads, empty.stderr], ["auto", defaults.threads, ""]);
    // no WebAssembly at all (V8 without its compilers): "wasm" cannot be, and says so
    const noWasm = await run({ LUCID_CPU_KERNELS: "wasm" }, ["--v8-flags=--jitless"]);
    assertEquals(noWasm.kernels, "auto");
    assertStringIncludes(noWasm.stderr, 'LUCID_CPU_KERNELS="wasm" needs WebAssembly SIMD');
  } finally {
    await Deno.remove(file);
  }
});
