// memory() (src/memory.ts): live tensors, live buffers, bytes in use and bytes pooled per
// device, as tensors are made, computed, shared and disposed.

import { gradcheck, memory, randn, tensor, zeros } from "../mod.ts";
import type { DeviceBuffer } from "../src/runtime/device.ts";
import { wasReleased } from "../src/runtime/realize.ts";
import { nodeOf } from "../src/tensor.ts";
import { assertEquals } from "./assert.ts";
import { testDevices } from "./helpers.ts";

Deno.test("memory: counts follow creation, realization, sharing and dispose", async () => {
  for (const device of testDevices) {
    const start = memory()[device];
    const x = zeros([250], { device }); // 1000 bytes
    let now = memory()[device];
    assertEquals(now.liveTensors - start.liveTensors, 1, device);
    assertEquals(now.liveBuffers - start.liveBuffers, 1, device);
    assertEquals(now.bytesInUse - start.bytesInUse, 1000, device);
    const y = x.add(1);
    const view = y.reshape(250); // the same value as y: no storage of its own
    await y.realize();
    now = memory()[device];
    assertEquals(now.liveTensors - start.liveTensors, 2, device);
    assertEquals(now.bytesInUse - start.bytesInUse, 2000, device);
    y.dispose(); // the view still shares the value: nothing freed
    assertEquals(memory()[device].bytesInUse - start.bytesInUse, 2000, device);
    assertEquals(Array.from(await view.data())[0], 1);
    view.dispose();
    x.dispose();
    now = memory()[device];
    assertEquals(now.liveTensors, start.liveTensors, device);
    assertEquals(now.liveBuffers, start.liveBuffers, device);
    assertEquals(now.bytesInUse, start.bytesInUse, device);
    // freed storage went to the pool (unless the pool was already full)
    assertEquals(now.bytesPooled >= start.bytesPooled, true, device);
  }
  // a webgpu-only value does not show on the cpu
  const cpuBefore = memory().cpu.liveTensors;
  if (testDevices.includes("webgpu")) {
    using g = tensor([1, 2], { device: "webgpu" });
    assertEquals(g.device, "webgpu");
    assertEquals(memory().cpu.liveTensors, cpuBefore);
  }
});

Deno.test("memory: a tensor read through mean() or gradcheck() is freed by its dispose", () => {
  // both made a tensor sharing the input's value (a cast to its own dtype) and dropped it: the
  // storage stayed until garbage collection, which a loop of dataSync() never lets run
  const x = randn([1000]);
  const storage = nodeOf(x).arg as DeviceBuffer;
  const m = x.mean();
  assertEquals(m.dataSync().length, 1);
  x.dispose();
  assertEquals(wasReleased(storage), true, "mean");
  const y = randn([3], { dtype: "float64" });
  const yStorage = nodeOf(y).arg as DeviceBuffer;
  assertEquals(gradcheck((t) => t.square().sum(), [y]).passed, true);
  y.dispose();
  assertEquals(wasReleased(yStorage), true, "gradcheck");
});
