// Run by tests/webgpu_test.ts in a subprocess, as `deno test` of this file alone (its name does
// not end in _test.ts, so the suite itself never runs it): the sequence behind issue 8, where
// the test process aborted at exit (`double free or corruption`) after a device had been lost
// while buffers, pooled storage and pipelines made by other work were still referenced. The
// process-wide device does work (live, pooled and garbage-collected handles, cached pipelines),
// a private backend loses its device under live, pooled and in-flight buffers, then the
// process-wide device is lost too and recovers; the garbage collector runs the finalizers after
// each loss, and the process ends. `deno test` (not `deno run`) because it runs the module on a
// worker thread, as in the suite: the abort was a race between that thread's exit and the
// process exit. Each step prints one line starting with `child:` that the parent compares; the
// parent also checks the exit status.
//
// Needs `--v8-flags=--expose-gc`.

import { optim, realize, tensor, webgpu } from "../mod.ts";
import { WebGpuBackend, webgpuBackend } from "../src/runtime/webgpu.ts";

const gc = (globalThis as { gc?: () => void; }).gc;
if (gc === undefined) throw new Error("webgpu_loss_child: run with --v8-flags=--expose-gc");

/** Runs the garbage collector and lets the finalizers it queued run. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** Whether `promise` rejects with an Error whose message includes `text`. */
async function rejectsWith(promise: Promise<unknown>, text: string): Promise<boolean> {
  try {
    await promise;
    return false;
  } catch (e) {
    return e instanceof Error && e.message.includes(text);
  }
}

const log = (line: string) => console.log(`child: ${line}`);

Deno.test("webgpu: devices lost under live, pooled, in-flight and collected buffers", async () => {
  // 1. Work on the process-wide device: pipelines, pooled storage, handles left to the collector.
  const kept = tensor([1, 2, 3, 4], { device: "webgpu" });
  const keptSum = kept.mul(2).exp().sum();
  await keptSum.realize();
  for (let i = 0; i < 20; i++) {
    using x = tensor([i, i + 1, i + 2, i + 3], { device: "webgpu" });
    using y = x.mul(2).exp().add(x).sum();
    await y.realize();
  }
  (() => {
    for (let i = 0; i < 50; i++) tensor([i, -i], { device: "webgpu" }).add(1).realize();
  })();
  const global = webgpuBackend();
  log(`work: ${Array.from(await kept.add(1).data()).join(" ")}`);

  // 2. A private backend loses its device under a live buffer, pooled storage, a read in flight.
  const own = new WebGpuBackend();
  const device = await own.acquireDevice();
  const live = own.upload(Float32Array.from([1, 2, 3]), "float32");
  const pooled = own.upload(Float32Array.from([4, 5, 6]), "float32");
  own.release(pooled);
  await (async () => {
    const dropped = own.upload(Float32Array.from([7, 8, 9]), "float32");
    await own.read(dropped); // it gets GPU storage; then the handle is left to the collector
  })();
  const inFlight = own.read(live);
  device.destroy();
  // the read either finished first or failed with an Error; which one depends on timing
  const settled = await inFlight.then(() => true, (e) => e instanceof Error);
  await device.lost;
  for (let i = 0; i < 10 && own.liveBuffers() > 1; i++) await collect(); // `dropped` finalized
  const lostBuffers = own.deviceBuffers(); // no device: 0
  const reported = await rejectsWith(own.read(live), "lost") ||
    await rejectsWith(own.read(live), "lost"); // once, by whichever call came first after the loss
  await own.acquireDevice();
  const recovered = own.upload(Float32Array.from([10, 11]), "float32");
  const recoveredValues = Array.from(await own.read(recovered)).join(" ");
  own.release(live); // a late release of storage that died with its device
  own.release(recovered); // pooled on the new device
  log(
    `private loss: read in flight settled ${settled}, device buffers ${lostBuffers}, ` +
      `reported ${reported}, new device reads ${recoveredValues}, live buffers ` +
      `${own.liveBuffers()}, device buffers ${own.deviceBuffers()}`,
  );
  own.destroyDevice();
  log(`private device given up: device buffers ${own.deviceBuffers()}`);

  // 3. The process-wide device is lost under realized tensors, cached pipelines and the pool.
  const before = await global.acquireDevice();
  before.destroy();
  await before.lost;
  await collect();
  const loss = await rejectsWith(tensor([1], { device: "webgpu" }).add(1).data(), "lost");
  const stale = await rejectsWith(keptSum.data(), "lost with the device");
  const again = await tensor([1, 2], { device: "webgpu" }).mul(3).data();
  log(
    `global loss: reported ${loss}, old value gone ${stale}, recovered ${
      Array.from(again).join(" ")
    }, pipelines ${global.cachedPipelines()}`,
  );

  // 4. A loss met before `device.lost` settles (no task between: every call awaited promises
  // only) gave WebGPU's bare "validation error occurred" on every call and never recovered.
  const current = await global.acquireDevice();
  current.destroy();
  const errors: string[] = [];
  let values = "";
  for (let i = 0; i < 5 && values === ""; i++) {
    try {
      values = Array.from(await tensor([1, 2], { device: "webgpu" }).mul(2).data()).join(" ");
    } catch (e) {
      errors.push((e as Error).message.includes("device was lost") ? "lost" : String(e));
    }
  }
  log(`loss before its event: errors ${errors.join(", ")}, then ${values}`);
  // two reads failing on one loss are both told it (the second was told "given up")
  const [r1, r2] = [tensor([1, 2], { device: "webgpu" }).mul(2), tensor([3], { device: "webgpu" })];
  await realize(r1, r2);
  const reading = [r1.data(), r2.data()];
  (await global.acquireDevice()).destroy();
  const told = await Promise.all(
    reading.map((p) =>
      p.then(
        () => "read",
        (e) => (e as Error).message.includes("device was lost") ? "lost" : String(e),
      )
    ),
  );
  const after = Array.from(await tensor([5], { device: "webgpu" }).mul(2).data());
  log(`two reads at a loss: ${told.join(", ")}, then ${after}`);

  // 5. Optimizers across a loss: SGD's learning rate (kept as a tensor on the device) is made
  // again, so a parameter given a new value steps (every step failed reading the lost one);
  // a momentum buffer lost with the device is an Error naming it, before anything changes.
  const p = tensor([1, 2, 3], { device: "webgpu", requiresGrad: true });
  const q = tensor([1, 2, 3], { device: "webgpu", requiresGrad: true });
  const plain = new optim.SGD([p], { lr: 0.1 });
  const heavy = new optim.SGD([q], { lr: 0.1, momentum: 0.9 });
  const stepBoth = async () => {
    p.square().sum().backward();
    q.square().sum().backward();
    plain.step();
    heavy.step();
    plain.zeroGrad();
    heavy.zeroGrad();
    await realize(p, q);
  };
  await stepBoth();
  // a momentum buffer whose last step is not computed yet (it reads the stored one) met the
  // generic read Error at the first step after the loss, not this one
  const r = tensor([1, 2, 3], { device: "webgpu", requiresGrad: true });
  const pendingState = new optim.SGD([r], { lr: 0.1, momentum: 0.9 });
  for (let step = 0; step < 2; step++) {
    r.square().sum().backward();
    pendingState.step();
    pendingState.zeroGrad();
    if (step === 0) await realize(r);
  }
  const third = await global.acquireDevice();
  third.destroy();
  await third.lost;
  await collect();
  const reportedOnce = await rejectsWith(tensor([1], { device: "webgpu" }).data(), "lost");
  p.assign(tensor([1, 2, 3], { device: "webgpu" }));
  p.square().sum().backward();
  plain.step();
  const stepped = Array.from(await p.data()).map((v) => v.toFixed(3)).join(" ");
  /** The Error message of a step of `opt` over `param` given a new value, or "". */
  const refusal = (param: typeof p, opt: typeof heavy) => {
    param.assign(tensor([1, 2, 3], { device: "webgpu" }));
    param.square().sum().backward();
    try {
      opt.step();
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  };
  const refused = refusal(q, heavy);
  const refusedPending = refusal(r, pendingState);
  log(
    `optimizers after a loss: reported ${reportedOnce}, SGD stepped ${stepped}, momentum SGD: ${refused}`,
  );
  log(`pending momentum: ${refusedPending}`);

  // 6. Leave live handles, pooled storage and pipelines of the new device to process exit.
  await collect();
  log(`exit with ${webgpu.liveBuffers() > 0 ? "live" : "no"} buffers`);
});
