// Threads for the cpu device's Wasm kernels: worker threads that share the cpu memory and,
// with the calling thread, run a kernel's outer output rows in chunks [start, end) that each
// thread claims in turn from a shared claim word, so a thread that wakes late or shares its
// core (with the garbage collector's marking thread, say) takes fewer chunks. After jax-js's
// parallel dispatch (ranges over workers on one memory).
//
// Rules of a launch:
// - the claim word holds the launch's sequence number and the next chunk; a thread claims a
//   chunk by compare-and-swap on it, so a claim made with what a thread read under an older
//   launch fails (it never runs a chunk with arguments torn between two launches);
// - the caller publishes a launch in three steps: the claim word closed under the new sequence
//   number, then the kernel and its arguments, then the word opened at chunk 0;
// - every claimed chunk is counted done once it has run (or failed); the caller returns when
//   all are done. It never waits for a worker that did not wake in time: that worker's claims
//   fail and it goes back to waiting.
// - Workers are `node:worker_threads` workers, `unref()`ed so they never keep a process alive
//   (a Deno `Worker` that is still running does). Creating one blocks the calling thread for
//   tens of milliseconds (measured: 65-80 ms in Deno 2.9), so they start right after the first
//   kernel large enough to split has run (that call pays for it, once); until every worker
//   has checked in on the shared control array, kernels run on the calling thread (no message
//   is involved: a loop that never yields to the event loop sees them all the same).
// - A kernel's module reaches a worker once, by message; the worker instantiates it on the
//   shared memory. A launch is a write to a shared control array and an `Atomics.notify`; the
//   workers spin briefly, then wait with `Atomics.waitAsync`, so they can still receive
//   modules; the calling thread spins, then waits with `Atomics.wait` (Deno allows it on the
//   main thread; browsers do not, and there the pool stays at one thread).
// - A sleeping worker takes tens of microseconds to wake (measured 50-150 us here), which is
//   half of a kernel that is just large enough to split. So the caller can wake the workers
//   ahead of a launch it sees coming (`prewake`, after a large upload): they spin a little
//   longer, until the launch or PREWAKE_SPIN_MS, and the launch finds them running.
// - Every output element is computed by exactly one thread with the same code, so results do
//   not depend on the number of threads.

import type { Executable } from "../../codegen/compile.ts";
import { type CpuMemory, isShared } from "./heap.ts";
import { nodeProcess } from "./env.ts";

// (Named numbers, like webgpu.ts's usage flags: tables alike in form, with nothing to share.)

/** The most arguments a kernel takes: buffers plus the range. */
const MAX_ARGS = 256;
/** The most worker threads a pool has. */
const MAX_WORKERS = 63;
/**
 * Control array layout (Int32): sequence, chunks done, kernel id, arg count, failure flag,
 * outer extent, chunk count, workers ready, how long a woken worker spins (microseconds), args,
 * then per worker the kernels it holds; then the claim word (see CLAIM_BYTE).
 */
const SEQ = 0;
const DONE = 1;
const KERNEL = 2;
const ARGC = 3;
const FAILED = 4;
const OUTER = 5;
const CHUNKS = 6;
const READY = 7;
const SPIN_US = 8;
const ARGS = 9;
const HELD = ARGS + MAX_ARGS;
const CONTROL_LENGTH = HELD + MAX_WORKERS;
/**
 * Byte offset of the claim word (BigInt64, after the Int32 slots): the launch's sequence number
 * times 2^32 plus the next chunk to claim; CLOSED as the chunk while a launch is being written.
 */
const CLAIM_BYTE = 8 * Math.ceil(CONTROL_LENGTH / 2); // BigInt64 needs 8-byte alignment
const CLOSED = 0xffffffff;
/**
 * How long a thread that waits for the others (a worker for the next launch, the caller for the
 * chunks others claimed) first spins on the control array before it sleeps. Waking a sleeping
 * thread took tens of microseconds here (a 2-core virtual machine), on every launch. Measured
 * with the spin switched per call in one process (medians): LocalResponseNorm forward on
 * (4, 32, 64) split over two threads 97-102 us with 0.2 ms of spinning, 131-143 without; on
 * (32, 256, 13, 13) 3.65 against 3.90-3.96 ms; forward + backward on (8, 96, 55, 55) no
 * different (16.7-17.0 ms). Sleeping in `Atomics.wait` instead of the event loop's
 * `Atomics.waitAsync` made no difference either. A loop of calls launches again within the
 * spin; an idle pool spins 0.2 ms after its last launch, then sleeps. (Spinning 0.5 ms made
 * no difference on (2, 96, 27, 27) in blocks alternating in one process, 2026-12-06.)
 */
const SPIN_MS = 0.2;
/**
 * How long workers woken by `prewake` spin for the launch before they sleep again. An upload
 * of a quarter million elements and the graph built on it took 60-300 us here before their
 * first kernel; a longer wait than this is a program doing something else, and the other core
 * is not ours to burn.
 */
const PREWAKE_SPIN_MS = 1;
/**
 * Kernels a worker keeps instantiated: past this many, the one launched least recently is
 * dropped (and sent again if it is launched again). A worker held every kernel it was ever
 * sent: 13 MB more per thousand distinct kernels, for as long as the pool lived.
 */
const WORKER_KERNEL_LIMIT = 256;
/** Chunks per thread: enough to even out a late or slowed thread, few enough to stay cheap. */
const CHUNKS_PER_THREAD = 4;

/** How often `started()` looks whether the workers checked in, and how long at most. */
const STARTUP_POLL_MS = 2;
const STARTUP_WAIT_MS = 30_000;

/** The rows `[start, end)` of chunk `c` of `chunks` over `[0, outer)` (the same everywhere). */
function chunkRange(c: number, chunks: number, outer: number): [number, number] {
  return [Math.floor((outer * c) / chunks), Math.floor((outer * (c + 1)) / chunks)];
}

/** The worker's program (plain JavaScript, run with `eval`, so it needs no file of its own). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const control = new Int32Array(workerData.control, 0, ${CONTROL_LENGTH});
const claim = new BigInt64Array(workerData.control, ${CLAIM_BYTE}, 1);
const memory = workerData.memory;
const held = ${HELD} + workerData.index;
const chunkRange = ${chunkRange.toString()};
const kernels = new Map();
parentPort.on("message", ({ id, module, name, drop }) => {
  if (drop !== undefined) {
    kernels.delete(drop);
  } else {
    // a module that fails here fails the launches that use it (caught below), never the
    // worker: a worker that dies in a chunk would leave that chunk undone
    try {
      kernels.set(id, new WebAssembly.Instance(module, { env: { memory } }).exports[name]);
    } catch (error) {
      kernels.set(id, () => {
        throw error;
      });
    }
  }
  Atomics.store(control, held, kernels.size);
});
const LOW = 0xffffffffn;
/** Takes part in the launch under way, if any chunk of it is left. */
async function work() {
  for (;;) {
    // the word first: every read after it is checked by the claim (the same launch still)
    let word = Atomics.load(claim, 0);
    const launch = word >> 32n;
    const id = Atomics.load(control, ${KERNEL});
    const argc = Atomics.load(control, ${ARGC});
    const args = [];
    for (let i = 0; i < argc; i++) args.push(Atomics.load(control, ${ARGS} + i));
    const outer = Atomics.load(control, ${OUTER});
    const chunks = Atomics.load(control, ${CHUNKS});
    if (Number(word & LOW) >= chunks) return; // closed, or every chunk claimed
    const fn = kernels.get(id);
    if (fn === undefined) {
      // its module is still on its way (or was dropped, its launch long over): let the
      // message in, then look again
      await new Promise((resolve) => setTimeout(resolve, 0));
      continue;
    }
    while ((word >> 32n) === launch && Number(word & LOW) < chunks) {
      const seenWord = Atomics.compareExchange(claim, 0, word, word + 1n);
      if (seenWord !== word) {
        word = seenWord; // another thread claimed it, or a new launch began
        continue;
      }
      const c = Number(word & LOW);
      word += 1n;
      try {
        if (Atomics.load(control, ${FAILED}) === 0) fn(...args, ...chunkRange(c, chunks, outer));
      } catch (error) {
        Atomics.store(control, ${FAILED}, 1);
      }
      Atomics.add(control, ${DONE}, 1);
      Atomics.notify(control, ${DONE});
    }
    return;
  }
}
(async () => {
  let seen = Atomics.load(control, ${SEQ});
  Atomics.add(control, ${READY}, 1); // after reading the sequence: no launch can be missed
  for (;;) {
    const spinUntil = performance.now() + Atomics.load(control, ${SPIN_US}) / 1000;
    while (Atomics.load(control, ${SEQ}) === seen && performance.now() < spinUntil) Atomics.pause?.();
    const wait = Atomics.waitAsync(control, ${SEQ}, seen);
    if (wait.async) await wait.value;
    seen = Atomics.load(control, ${SEQ});
    await work();
  }
})();
`;

interface NodeWorker {
  postMessage(message: unknown): void;
  unref(): void;
  terminate(): Promise<number>;
  on(event: "error", listener: (error: unknown) => void): void;
}

/** Lets the process end while `timer` is pending (Deno's timers are numbers, Node's objects). */
function unrefTimer(timer: unknown): void {
  const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void; }; }).Deno;
  if (deno?.unrefTimer !== undefined && typeof timer === "number") deno.unrefTimer(timer);
  else (timer as { unref?(): void; }).unref?.();
}

/**
 * Threads available here by default: the hardware's, where the runtime says (`navigator` in
 * Deno and browsers; Node 20 has none, and its `os` module says: it defaulted to one thread).
 */
export function defaultThreads(): number {
  let n = (globalThis.navigator as { hardwareConcurrency?: number; } | undefined)
    ?.hardwareConcurrency;
  if (n === undefined) {
    const os = nodeProcess()?.getBuiltinModule?.("node:os") as
      | { availableParallelism?(): number; cpus?(): unknown[]; }
      | undefined;
    n = os?.availableParallelism?.() ?? os?.cpus?.().length;
  }
  return Number.isInteger(n) && n! > 0 ? Math.min(n!, 64) : 1;
}

/**
 * `node:worker_threads`, from the runtime (Deno and Node both give it through
 * `process.getBuiltinModule`), not through a dynamic import with a literal specifier: a bundler
 * building for the browser (esbuild) stopped at that specifier, "Could not resolve". Rejects
 * where there is none (a browser): the pool then stays on one thread.
 */
function workerThreads(): Promise<typeof import("node:worker_threads")> {
  const module = nodeProcess()?.getBuiltinModule?.("node:worker_threads");
  if (module !== undefined) return Promise.resolve(module as typeof import("node:worker_threads"));
  const specifier = "node:worker_threads"; // a variable: bundlers leave it alone
  return import(specifier);
}

/**
 * Whether the calling thread may block on `Atomics.wait`: asked of `Atomics.wait` itself, once
 * (it throws where blocking is not allowed: a browser's main thread, an Electron renderer),
 * rather than guessed from the runtime (only Deno was asked, so Node never started a worker).
 */
function canBlock(): boolean {
  if (blockingAllowed === null) {
    try {
      // a wait that returns at once ("not-equal"): the value is not the one it waits on
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
      blockingAllowed = true;
    } catch {
      blockingAllowed = false; // not allowed here, or no SharedArrayBuffer at all
    }
  }
  return blockingAllowed;
}
let blockingAllowed: boolean | null = null;

/** Worker threads running slices of Wasm kernels on one shared memory. */
export class ThreadPool {
  readonly #memory: CpuMemory;
  #threads: number;
  #workers: NodeWorker[] = [];
  #starting: Promise<void> | null = null;
  #scheduled: Promise<void> | null = null;
  #control: Int32Array | null = null;
  #claim: BigInt64Array | null = null;
  /** The sequence number of the latest launch. */
  #launch = 0n;
  /** The ids of the kernels the workers hold, least recently launched first. */
  #ids = new Map<Executable, number>();
  /** The modules the workers hold, by id (for a worker created after they were sent). */
  #modules = new Map<number, { module: WebAssembly.Module; name: string; }>();
  #nextId = 1;
  /** @internal WORKER_KERNEL_LIMIT, settable for tests. */
  workerKernelLimit: number = WORKER_KERNEL_LIMIT;
  /** Worker threads created and not terminated (those still starting included). */
  #live = 0;
  /** Until when (performance.now()) the workers spin after the latest launch or prewake. */
  #spinningUntil = 0;
  /** Makes one more worker on the current control array (set by the start under way). */
  #createWorker: (() => void) | null = null;
  /** Whether a large kernel has asked for one more worker (made in a microtask). */
  #growing = false;

  /** A pool for kernels on `memory`, with `threads` threads in all (the caller's included). */
  constructor(memory: CpuMemory, threads: number) {
    this.#memory = memory;
    this.#threads = Math.min(threads, MAX_WORKERS + 1);
  }

  /** Threads in all, the calling one included. */
  get threads(): number {
    return this.#threads;
  }

  /** Sets the thread count (1: everything on the calling thread); the workers start anew. */
  set threads(value: number) {
    value = Math.min(value, MAX_WORKERS + 1);
    if (value === this.#threads) return;
    this.#threads = value;
    this.#terminate(this.#workers);
    this.#workers = [];
    this.#control = null;
    this.#claim = null;
    this.#createWorker = null;
    this.#starting = null;
    this.#scheduled = null;
    this.#ids = new Map();
    this.#modules = new Map();
  }

  /**
   * @internal Ends the workers as a crash would (the pool is not told), for tests: later launches
   * must not wait for them.
   */
  crashWorkersForTest(): Promise<unknown> {
    return Promise.all(this.#workers.map((w) => w.terminate()));
  }

  /** @internal Worker threads created and not yet terminated. */
  get liveWorkers(): number {
    return this.#live;
  }

  #terminate(workers: readonly NodeWorker[]): void {
    for (const w of workers) w.terminate();
    this.#live -= workers.length;
  }

  /** Threads that would run a kernel now (workers still starting do not count). */
  get ready(): number {
    return 1 + this.#readyWorkers();
  }

  /** The workers that have checked in on the control array (they take part in launches). */
  #readyWorkers(): number {
    return this.#control === null ? 0 : Atomics.load(this.#control, READY);
  }

  /** Whether every worker of the thread count is created and has checked in. */
  #allReady(): boolean {
    return this.#workers.length === this.#threads - 1 &&
      this.#readyWorkers() === this.#workers.length;
  }

  /**
   * Runs `fn(...args, start, end)` over `[0, outer)` of the kernel's outermost loop, split over
   * the ready threads; returns false (running nothing) if there is only this one.
   */
  run(
    executable: Executable,
    fn: (...args: number[]) => void,
    args: number[],
    outer: number,
  ): boolean {
    if (this.#threads <= 1 || !canBlock() || !isShared(this.#memory.buffer)) {
      return false;
    }
    if (this.#control === null) {
      // creating a worker blocks the calling thread for tens of milliseconds: do it right
      // after this call, before the program goes on (a loop of awaits may never see a timer)
      if (this.#starting === null && this.#scheduled === null) {
        // unless the count is set before it runs (to 1 in the same turn: a worker was made and
        // lived on with no launch to take part in)
        const scheduled: Promise<void> = Promise.resolve().then(() => {
          if (this.#scheduled === scheduled) return this.#start();
        });
        this.#scheduled = scheduled;
      }
      return false;
    }
    if (this.#workers.length < this.#threads - 1 && !this.#growing) {
      // one more worker after each large kernel, too, for a loop whose awaits never let a
      // timer run (its workers would stay one)
      this.#growing = true;
      queueMicrotask(() => {
        this.#growing = false;
        if (this.#workers.length < this.#threads - 1) this.#tryCreateWorker();
      });
    }
    // (workers still starting take part once they check in: a launch waits for none)
    const readyWorkers = this.#readyWorkers();
    if (readyWorkers === 0) return false; // still starting
    const control = this.#control;
    const claim = this.#claim!;
    const threads = Math.min(readyWorkers + 1, outer);
    if (threads <= 1 || args.length > MAX_ARGS) return false;
    const id = this.#send(executable);
    const chunks = Math.min(outer, threads * CHUNKS_PER_THREAD);
    // launch numbers wrap below 2^31, so the word stays a positive BigInt64 (a claim read 2^31
    // launches ago and still unmade is not a case to guard)
    this.#launch = (this.#launch + 1n) & 0x7fffffffn;
    const launch = this.#launch << 32n;
    Atomics.store(claim, 0, launch | BigInt(CLOSED));
    Atomics.store(control, KERNEL, id);
    Atomics.store(control, ARGC, args.length);
    Atomics.store(control, FAILED, 0);
    Atomics.store(control, OUTER, outer);
    Atomics.store(control, CHUNKS, chunks);
    Atomics.store(control, DONE, 0);
    args.forEach((a, i) => Atomics.store(control, ARGS + i, a));
    Atomics.store(claim, 0, launch);
    Atomics.store(control, SPIN_US, SPIN_MS * 1000);
    Atomics.add(control, SEQ, 1);
    Atomics.notify(control, SEQ);
    // the calling thread claims chunks like the workers (the first, at once)
    let thrown: unknown = null;
    for (let word = launch; Number(word & 0xffffffffn) < chunks;) {
      const seen = Atomics.compareExchange(claim, 0, word, word + 1n);
      if (seen !== word) {
        word = seen; // a worker claimed it
        continue;
      }
      const [start, end] = chunkRange(Number(word & 0xffffffffn), chunks, outer);
      word += 1n;
      try {
        if (thrown === null && Atomics.load(control, FAILED) === 0) fn(...args, start, end);
      } catch (e) {
        thrown = e;
        Atomics.store(control, FAILED, 1); // the others start no more chunks
      }
      Atomics.add(control, DONE, 1);
    }
    const spinUntil = performance.now() + SPIN_MS;
    while (Atomics.load(control, DONE) !== chunks && performance.now() < spinUntil) {
      Atomics.pause?.();
    }
    for (
      let done = Atomics.load(control, DONE);
      done !== chunks;
      done = Atomics.load(control, DONE)
    ) {
      Atomics.wait(control, DONE, done);
    }
    this.#spinningUntil = performance.now() + SPIN_MS;
    if (thrown !== null) throw thrown;
    if (Atomics.load(control, FAILED) !== 0) {
      throw new Error(`cpu: kernel ${executable.name} failed in a worker thread`);
    }
    return true;
  }

  /**
   * Wakes the workers for a launch that is coming soon (the caller just uploaded a tensor large
   * enough to be split, say), so that it does not wait for them to wake: they spin until the
   * launch or PREWAKE_SPIN_MS. Does nothing while they still spin, or with no workers ready.
   */
  prewake(): void {
    const control = this.#control;
    if (control === null || this.#readyWorkers() === 0) return;
    const now = performance.now();
    if (now < this.#spinningUntil) return;
    this.#spinningUntil = now + PREWAKE_SPIN_MS;
    // no chunk is open between launches (a launch ends with every chunk claimed), so a woken
    // worker finds nothing to claim and spins on the sequence number
    Atomics.store(control, SPIN_US, PREWAKE_SPIN_MS * 1000);
    Atomics.add(control, SEQ, 1);
    Atomics.notify(control, SEQ);
  }

  /** @internal Times the workers were woken (launches and prewakes), for tests. */
  get wakes(): number {
    return this.#control === null ? 0 : Atomics.load(this.#control, SEQ);
  }

  /**
   * The id workers know `executable` by, sending them its module on first use; past
   * `workerKernelLimit` kernels the least recently launched is dropped from the workers.
   */
  #send(executable: Executable): number {
    let id = this.#ids.get(executable);
    if (id !== undefined) {
      this.#ids.delete(executable); // now the most recent
      this.#ids.set(executable, id);
      return id;
    }
    id = this.#nextId++;
    this.#ids.set(executable, id);
    const module = new WebAssembly.Module(executable.binary! as Uint8Array<ArrayBuffer>);
    this.#modules.set(id, { module, name: executable.name });
    for (const w of this.#workers) w.postMessage({ id, module, name: executable.name });
    for (const [old, oldId] of this.#ids) {
      if (this.#ids.size <= this.workerKernelLimit) break;
      this.#ids.delete(old);
      this.#modules.delete(oldId);
      for (const w of this.#workers) w.postMessage({ drop: oldId });
    }
    return id;
  }

  /** @internal The kernels each worker holds (as the workers last said). */
  get workerKernels(): number[] {
    const control = this.#control;
    return control === null ? [] : this.#workers.map((_, i) => Atomics.load(control, HELD + i));
  }

  /** Starts the workers in the background (once per thread count set). */
  #start(): Promise<void> {
    if (this.#starting !== null) return this.#starting;
    const starting: Promise<void> = this.#startWorkers(() => this.#starting === starting)
      .catch(() => {
        this.#threads = 1; // no worker threads in this runtime: stay on one
      });
    this.#starting = starting;
    return starting;
  }

  /** Creates the workers; `current()` says whether the count was not set since the start. */
  async #startWorkers(current: () => boolean): Promise<void> {
    if (this.#threads <= 1) return;
    const { Worker } = await workerThreads();
    // the count was set meanwhile (even back to the same number): a later start, if any, has
    // workers of its own
    if (!current()) return;
    const buffer = new SharedArrayBuffer(CLAIM_BYTE + 8);
    const control = new Int32Array(buffer, 0, CONTROL_LENGTH);
    Atomics.store(control, SPIN_US, SPIN_MS * 1000);
    // each worker checks in on the control array (READY) once it waits for launches: kernels
    // use it from then on, whether or not the caller's event loop ever turns (a ready message
    // needed a turn, and a loop whose awaits all settle at once took hundreds of calls to see
    // it, or never did)
    this.#workers = [];
    this.#control = control;
    this.#claim = new BigInt64Array(buffer, CLAIM_BYTE, 1);
    this.#createWorker = () => {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        // an environment of its own, empty: by default it copies process.env, which asked for
        // access to every variable (a prompt in the middle of a computation)
        env: Object.create(null),
        workerData: { control: buffer, memory: this.#memory, index: this.#workers.length },
      }) as unknown as NodeWorker;
      worker.on("error", () => {});
      worker.unref(); // a process must be able to end while they idle
      this.#live++;
      // the kernels sent before it was made (it reads them before its first launch)
      for (const [id, { module, name }] of this.#modules) worker.postMessage({ id, module, name });
      this.#workers.push(worker);
    };
    this.#createWorker();
    // the others one per turn of the event loop, on timers that do not keep the process (and
    // that nothing awaits: with only those left, Deno ends the program): each blocks the
    // calling thread for tens of milliseconds, and a program ending after its first large
    // kernel waited for all of them (64 threads: 6.5 s between its end and its exit)
    const createLater = () => {
      if (!current() || this.#workers.length >= this.#threads - 1) return;
      if (!this.#tryCreateWorker()) return;
      unrefTimer(setTimeout(createLater, 0));
    };
    unrefTimer(setTimeout(createLater, 0));
  }

  /** Makes the workers of the thread count not made yet, now. */
  #createRest(): void {
    while (this.#createWorker !== null && this.#workers.length < this.#threads - 1) {
      if (!this.#tryCreateWorker()) return;
    }
  }

  /**
   * One more worker, or false where making it threw (out of threads, say): the pool goes on
   * with those it has (thrown from a timer or a microtask, it was an uncaught exception).
   */
  #tryCreateWorker(): boolean {
    try {
      this.#createWorker?.();
      return true;
    } catch {
      this.#createWorker = null;
      return false;
    }
  }

  /**
   * Starts the workers now, if there are to be any, and waits until they are ready (those of
   * the latest count, if it is set meanwhile).
   */
  async started(): Promise<void> {
    const deadline = performance.now() + STARTUP_WAIT_MS;
    while (this.#threads > 1 && !this.#allReady()) {
      if (performance.now() > deadline) return; // a worker that never started: stay on one
      if (this.#control === null) await this.#start();
      else {
        this.#createRest(); // asked for all of them: not one per turn
        await new Promise((resolve) => setTimeout(resolve, STARTUP_POLL_MS));
      }
    }
  }

  /** Waits for a start that a large kernel has asked for, if any (starts nothing itself). */
  async settled(): Promise<void> {
    await this.#scheduled;
    await this.#starting;
  }
}
