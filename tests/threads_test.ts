// Worker threads of the cpu device (src/runtime/threads.ts): a pool on its own shared memory,
// whose thread count changes while its workers are still starting, and kernels split in
// chunks over two and three threads.

import { ThreadPool } from "../src/runtime/threads.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import type { Executable } from "../codegen/compile.ts";
import { cpu, tensor } from "../mod.ts";
import { assertClose, onBackend } from "./helpers.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";

Deno.test("threads: changing the count while workers start leaves only the last start's", async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 2);
  const first = pool.started();
  pool.threads = 1; // the count changes and back, while the first workers are starting
  pool.threads = 2;
  const second = pool.started();
  await Promise.all([first, second]);
  // the first start saw the count change before it made any worker: only the second's run
  assertEquals(pool.liveWorkers, 1);
  assertEquals(pool.ready, 2);
  pool.threads = 1;
  assertEquals(pool.liveWorkers, 0);
  assertEquals(pool.ready, 1);
});

Deno.test("threads: workers started again check in without a turn of the event loop", async () => {
  // a loop whose awaits all settle at once never gives the event loop a turn: workers that
  // said they were ready by message were never seen after a restart (the count set to 1 and
  // back to 2), and every later kernel ran on one thread
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 2);
  await pool.started();
  assertEquals(pool.ready, 2);
  pool.threads = 1;
  pool.threads = 2;
  const starting = pool.started();
  for (let i = 0; i < 1000 && pool.liveWorkers === 0; i++) await Promise.resolve();
  assertEquals(pool.liveWorkers, 1, "the new worker is made within microtasks");
  // now only synchronous waiting: no task of the event loop runs
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + 20_000;
  while (pool.ready < 2 && Date.now() < until) Atomics.wait(nap, 0, 0, 5);
  assertEquals(pool.ready, 2);
  await starting;
  pool.threads = 1;
  assertEquals(pool.liveWorkers, 0);
});

Deno.test("threads: a large kernel starts one worker at once and the others on later turns", async () => {
  // every worker was made in one microtask, each blocking tens of milliseconds: a program
  // ending after its first large kernel waited for all of them (64 threads: 6.5 s to exit)
  const before = cpu.threads;
  try {
    cpu.threads = 5;
    const x = tensor(new Float32Array(1 << 18).fill(2));
    assertEquals(x.mul(3).dataSync()[0], 6);
    for (let i = 0; i < 1000 && cpuBackend.pool.liveWorkers === 0; i++) await Promise.resolve();
    assertEquals(cpuBackend.pool.liveWorkers, 1, "one worker within microtasks");
    const until = Date.now() + 20_000;
    while (cpuBackend.pool.liveWorkers < 4 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assertEquals(cpuBackend.pool.liveWorkers, 4, "the others on later turns of the event loop");
    await cpuBackend.pool.started();
    assertEquals(cpuBackend.pool.ready, 5);
    assertEquals(x.mul(3).dataSync()[(1 << 18) - 1], 6);
    x.dispose();
  } finally {
    cpu.threads = before;
  }
});

Deno.test("threads: the count set to 1 in the turn of the first large kernel makes no worker", async () => {
  // the start a large kernel queued ran after the count was set to 1 and made a worker that
  // lived on for the process (helper-138)
  const before = cpu.threads;
  try {
    cpu.threads = 1;
    cpu.threads = 2; // no workers yet, whatever tests ran before
    const x = tensor(new Float32Array(1 << 18).fill(2));
    assertEquals(x.mul(3).dataSync()[0], 6);
    cpu.threads = 1;
    await new Promise((resolve) => setTimeout(resolve, 50));
    await cpuBackend.pool.settled();
    assertEquals(cpuBackend.pool.liveWorkers, 0);
    assertEquals(cpuBackend.pool.ready, 1);
    x.dispose();
  } finally {
    cpu.threads = before;
  }
});

/** A module from its bytes written in hex. */
function moduleBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16));
}

Deno.test("threads: a module a worker cannot instantiate fails the launch, never hangs it", async () => {
  // (module (import "env" "f" (func)) (func (export "k"))): the workers provide only the
  // memory, so instantiating it throws a LinkError in each worker (which used to kill it and
  // leave the caller waiting for good)
  const broken = moduleBytes(
    "0061736d01000000" + "010401600000" + "02090103656e760166" + "0000" + "03020100" +
      "070501016b0001" + "0a040102000b",
  );
  // (module (func (export "k")))
  const fine = moduleBytes(
    "0061736d01000000" + "010401600000" + "03020100" + "070501016b0000" +
      "0a040102000b",
  );
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 2);
  await pool.started();
  // the calling thread takes its chunks slowly, so the worker claims some
  const slowly = () => {
    const until = performance.now() + 5;
    while (performance.now() < until) { /* busy */ }
  };
  const broke = { name: "k", binary: broken } as unknown as Executable;
  const error = assertThrows(() => pool.run(broke, slowly, [], 8));
  assertMatch(String(error), /failed in a worker thread/);
  // the pool still runs what it can afterwards
  const ok = { name: "k", binary: fine } as unknown as Executable;
  assertEquals(pool.run(ok, slowly, [], 8), true);
  pool.threads = 1;
});

Deno.test("threads: a worker that died between launches never holds up a launch", async () => {
  // the caller used to wait for every worker to check in on each launch: a worker that had
  // died left it waiting for good; now it waits only for chunks claimed, and a dead worker
  // claims none
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 3);
  await pool.started();
  assertEquals(pool.ready, 3);
  await pool.crashWorkersForTest();
  const fine = moduleBytes(
    "0061736d01000000" + "010401600000" + "03020100" + "070501016b0000" +
      "0a040102000b",
  );
  const ok = { name: "k", binary: fine } as unknown as Executable;
  for (let launch = 0; launch < 3; launch++) {
    const rows: number[] = [];
    const record = (start: number, end: number) => {
      for (let r = start; r < end; r++) rows.push(r);
    };
    assertEquals(pool.run(ok, record, [], 10), true);
    assertEquals(rows.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }
  pool.threads = 1;
});

Deno.test("threads: workers keep the kernels launched most recently, up to a limit", async () => {
  // each worker instantiated every kernel it was sent and kept it as long as the pool lived:
  // a program making distinct kernels (new shapes or constants) grew 13 MB per thousand
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 3);
  pool.workerKernelLimit = 4;
  await pool.started();
  const fine = moduleBytes(
    "0061736d01000000" + "010401600000" + "03020100" + "070501016b0000" +
      "0a040102000b",
  );
  const executables = Array.from(
    { length: 12 },
    () => ({ name: "k", binary: fine }) as unknown as Executable,
  );
  const launch = (executable: Executable) => {
    const rows: number[] = [];
    const record = (start: number, end: number) => {
      for (let r = start; r < end; r++) rows.push(r);
    };
    assertEquals(pool.run(executable, record, [], 9), true);
    // the caller's rows (the workers run the no-op module for the chunks they claim, and a
    // worker already spinning may claim them all): in range, each once
    assertEquals(new Set(rows).size, rows.length);
    assert(rows.every((r) => r >= 0 && r < 9), `${rows}`);
  };
  const settled = async (want: number) => {
    for (let i = 0; i < 500 && !pool.workerKernels.every((n) => n === want); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assertEquals(pool.workerKernels, [want, want]);
  };
  launch(executables[0]);
  launch(executables[1]);
  await settled(2);
  for (const e of executables) launch(e);
  await settled(4);
  // the first was dropped: launching it again sends it again, and a worker may run it
  launch(executables[0]);
  await settled(4);
  pool.threads = 1;
});

Deno.test("threads: every row of the outer loop is computed once, whatever the chunks", async () => {
  // rows claimed in chunks from a shared counter: a missed or misplaced chunk leaves wrong
  // values; outer extents around the chunk counts (4 per thread) and below the thread count
  for (const threads of [2, 3]) {
    await onBackend(
      { name: `wasm ${threads}`, device: "cpu", kernels: "wasm", threads },
      async () => {
        for (let outer = 1; outer <= 14; outer++) {
          const values = Float32Array.from({ length: outer * 7 }, (_, i) => i - 20);
          using x = tensor(values, { shape: [outer, 7] });
          using y = x.mul(3).add(1);
          const got = await y.data();
          const want = values.map((v) => 3 * v + 1);
          assertEquals(Array.from(got), Array.from(want), `${threads} threads, ${outer} rows`);
        }
      },
    );
  }
});

Deno.test("threads: results are the same bits on any number of threads, NaNs included", async () => {
  // a split of the vectorized loop itself (a 1-D kernel) cut it anywhere: elements at a chunk
  // edge moved between the f32x4 body and the scalar tail, and f32x4.max and f32.max give NaNs
  // of other signs (18 of 262,147 elements of maximum(1, NaN) on three threads)
  const length = 4099;
  const a = Float32Array.from({ length }, (_, i) => (i % 5 === 0 ? NaN : i % 7) - 3);
  const b = Float32Array.from({ length }, (_, i) => (i % 3 === 0 ? NaN : -(i % 11)) + 4);
  const bitsOn = (threads: number) =>
    onBackend({ name: `wasm ${threads}`, device: "cpu", kernels: "wasm", threads }, async () => {
      using x = tensor(a);
      using y = tensor(b);
      using max = x.maximum(y);
      using min = x.minimum(y).mul(2);
      const values = await Promise.all([max.data(), min.data()]);
      return values.map((v) => Array.from(new Uint32Array(v.buffer)));
    });
  const before = cpuBackend.threadMinElements;
  cpuBackend.threadMinElements = 1;
  try {
    const one = await bitsOn(1);
    for (const threads of [2, 3, 5]) {
      const many = await bitsOn(threads);
      assertEquals(many[0], one[0], `maximum on ${threads} threads`);
      assertEquals(many[1], one[1], `minimum on ${threads} threads`);
    }
  } finally {
    cpuBackend.threadMinElements = before;
  }
});

/** Spins the calling thread for `ms` milliseconds (workers sleep after their spin of 0.2 ms). */
function idle(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) Atomics.pause?.();
}

Deno.test("threads: a large upload wakes idle workers once, ahead of its kernel", async () => {
  await onBackend({ name: "wasm 2", device: "cpu", kernels: "wasm", threads: 2 }, async () => {
    const pool = cpuBackend.pool;
    cpuBackend.threadMinElements = 1000;
    idle(3); // past any spin: the worker sleeps
    const before = pool.wakes;
    using small = tensor(new Float32Array(999));
    assertEquals(pool.wakes, before, "an upload below the split size wakes nobody");
    using large = tensor(new Float32Array(1000).fill(2));
    assertEquals(pool.wakes, before + 1, "an upload of a splittable size wakes the workers");
    using y = large.mul(3);
    assertEquals(Array.from(await y.data()), new Array(1000).fill(6));
    assertEquals(pool.wakes, before + 2, "the launch wakes them (they may spin still)");
    void small;
  });
});

Deno.test("threads: kernels launched at any time after a prewake compute every element once", async () => {
  // a prewake opens no launch: the woken worker must find nothing to claim, spin, and take
  // part in the next launch whenever it comes (while it spins, after it slept again)
  await onBackend({ name: "wasm 3", device: "cpu", kernels: "wasm", threads: 3 }, async () => {
    const gaps = [0, 0.05, 0.3, 0.8, 1.5, 3];
    for (let i = 0; i < 60; i++) {
      const n = 13 + 17 * i;
      const values = Float32Array.from({ length: n }, (_, k) => k - i);
      idle(gaps[i % gaps.length]);
      using x = tensor(values, { shape: [n] }); // wakes the workers (every size splits here)
      idle(gaps[(i * 5 + 1) % gaps.length]);
      using y = x.mul(2).sub(1);
      const got = await y.data();
      assertEquals(Array.from(got), Array.from(values, (v) => 2 * v - 1), `call ${i}`);
    }
  });
});

Deno.test("threads: a prewake with no workers, or dead ones, changes nothing", async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 2);
  pool.prewake(); // not started: starts nothing
  assertEquals(pool.liveWorkers, 0);
  assertEquals(pool.wakes, 0);
  await pool.started();
  await pool.crashWorkersForTest();
  idle(1.5);
  pool.prewake();
  const fine = moduleBytes(
    "0061736d01000000" + "010401600000" + "03020100" + "070501016b0000" +
      "0a040102000b",
  );
  const ok = { name: "k", binary: fine } as unknown as Executable;
  const rows: number[] = [];
  assertEquals(
    pool.run(
      ok,
      (start, end) => {
        for (let r = start; r < end; r++) rows.push(r);
      },
      [],
      6,
    ),
    true,
  );
  assertEquals(rows.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5]);
  pool.threads = 1;
});

Deno.test("threads: in Node, workers start, the default is the hardware's, LUCID_* are read", async () => {
  // only Deno was asked whether the caller may block, so Node never started a worker; Node 20
  // has no navigator, so the default was one thread; and the environment was read from Deno only
  let node: string;
  try {
    node = new TextDecoder().decode(
      (await new Deno.Command("which", { args: ["node"], stdout: "piped" }).output()).stdout,
    ).trim();
  } catch {
    node = "";
  }
  if (node === "") {
    console.log("no node here: skipped");
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    const root = new URL("..", import.meta.url).pathname;
    const bundled = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "node", "-o", `${dir}/lucid.mjs`, `${root}mod.ts`],
    }).output();
    assert(bundled.success, new TextDecoder().decode(bundled.stderr));
    await Deno.writeTextFile(
      `${dir}/run.mjs`,
      `import * as lib from "./lucid.mjs";
      import { availableParallelism } from "node:os";
      import { readFileSync } from "node:fs";
      import { inspect } from "node:util";
      const threadsNow = () => Number(/Threads:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]);
      const before = threadsNow();
      const defaults = { threads: lib.cpu.threads, hardware: Math.min(availableParallelism(), 64) };
      lib.cpu.threads = 2;
      const x = lib.tensor(new Float32Array(1 << 20).fill(2)).reshape([1024, 1024]);
      let sum = 0;
      for (let i = 0; i < 20; i++) sum = (await x.exp().data()).reduce((a, b) => a + b, 0);
      const shown = inspect(lib.tensor([1, 2]));
      console.log(JSON.stringify({ ...defaults, sum, added: threadsNow() - before, kernels: lib.cpu.kernels, shown }));`,
    );
    const run = async (env: Record<string, string>) => {
      const out = await new Deno.Command(node, {
        args: [`${dir}/run.mjs`],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(out.success, new TextDecoder().decode(out.stderr));
      return JSON.parse(new TextDecoder().decode(out.stdout));
    };
    const got = await run({});
    assertEquals(got.threads, got.hardware);
    assertClose([got.sum], [Math.exp(2) * (1 << 20)], { rtol: 1e-5 });
    if (got.hardware > 1) assert(got.added >= 1, `worker threads started: ${got.added}`);
    assertEquals((await run({ LUCID_CPU_KERNELS: "js" })).kernels, "js");
    // and Node's inspect shows what Deno's does (it printed `_Tensor {}`)
    assertEquals(got.shown, "Tensor(float32[2], cpu, realized)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threads: no library file imports a node: module by a literal specifier", async () => {
  // esbuild building for the browser stopped at `await import("node:worker_threads")`, "Could
  // not resolve"; the runtime gives the module (process.getBuiltinModule) instead
  const root = new URL("..", import.meta.url);
  const offenders: string[] = [];
  for (const dir of ["src", "src/runtime", "src/ir", "src/nn", "src/optim", "codegen"]) {
    for await (const entry of Deno.readDir(new URL(`${dir}/`, root))) {
      if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
      const text = await Deno.readTextFile(new URL(`${dir}/${entry.name}`, root));
      const literal = /(?<!typeof )import\(\s*["']node:|^\s*import\b[^;]*\bfrom\s*["']node:/m;
      if (literal.test(text)) offenders.push(`${dir}/${entry.name}`);
    }
  }
  assertEquals(offenders, []);
});
