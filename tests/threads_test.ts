// Worker threads of the cpu device (src/runtime/threads.ts): a pool on its own shared memory,
// whose thread count changes while its workers are still starting.

import { ThreadPool } from "../src/runtime/threads.ts";
import { assertEquals } from "./assert.ts";

Deno.test("threads: changing the count while workers start leaves only the last start's", async () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
  const pool = new ThreadPool(memory, 2);
  const first = pool.started();
  pool.threads = 1; // the count changes and back, while the first workers are starting
  pool.threads = 2;
  const second = pool.started();
  await Promise.all([first, second]);
  // the first start's worker was kept running, unreachable, besides the second's
  assertEquals(pool.liveWorkers, 1);
  assertEquals(pool.ready, 2);
  pool.threads = 1;
  assertEquals(pool.liveWorkers, 0);
  assertEquals(pool.ready, 1);
});
