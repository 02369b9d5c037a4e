// The library's environment variables (src/runtime/env.ts): read only where reading them is
// granted, so that importing the library or computing with it never asks for a permission.

import { envVariable } from "../src/runtime/env.ts";
import { assertEquals } from "./assert.ts";

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
