// memory() (src/memory.ts): live tensors, live buffers, bytes in use and bytes pooled per
// device, as tensors are made, computed, shared and disposed.

import { gradcheck, memory, nn, randn, type Tensor, tensor, zeros } from "../mod.ts";
import { realizedBuffer, wasReleased } from "../src/runtime/realize.ts";
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

Deno.test("memory: what the library makes inside a call keeps nothing the program disposes", () => {
  // tensors made and dropped inside mean(), gradcheck() and LocalResponseNorm: each a handle on
  // its node until garbage collection (a synchronous loop never runs it), so a tensor sharing
  // the program's value kept that value's storage after its dispose
  const released = (t: Tensor) => {
    const storage = realizedBuffer(nodeOf(t), "cpu")!;
    return () => wasReleased(storage);
  };
  // mean: a cast of a float tensor to its own dtype, a sum over no axes (x's own node)
  for (const axes of [undefined, [] as number[]]) {
    const x = randn([1000]);
    const gone = released(x);
    x.mean(axes).dataSync();
    x.dispose();
    assertEquals(gone(), true, `mean(${axes})`);
  }
  // mean and LocalResponseNorm of int32 data: a cast equal to one the program holds
  const ints = tensor([[1, 2], [3, 4]], { dtype: "int32" }).reshape([1, 2, 2, 1]);
  const cast = ints.cast("float32");
  cast.dataSync(); // stored: the program's
  ints.mean().dataSync();
  new nn.LocalResponseNorm(2).forward(ints).dataSync();
  const castGone = released(cast);
  cast.dispose();
  assertEquals(castGone(), true, "the program's cast");
  // gradcheck: a cast of a float64 input to float64
  const y = randn([8], { dtype: "float64" });
  assertEquals(gradcheck((t) => t.square().sum(), [y]).passed, true);
  const yGone = released(y);
  y.dispose();
  assertEquals(yGone(), true, "gradcheck");
});
