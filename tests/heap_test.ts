// The cpu memory (src/runtime/heap.ts): 64-byte aligned blocks, exact reuse, coalescing of
// free neighbours, the top coming down, growth while tensors are alive (views are made per use,
// so nothing reads a stale view), and the 4 GiB limit of wasm32 as a clear error.

import { tensor } from "../mod.ts";
import {
  type CpuMemory,
  HeapMemory,
  MAX_MEMORY_BYTES,
  MAX_TENSOR_BYTES,
  PlainMemory,
} from "../src/runtime/heap.ts";
import { cpuBackend } from "../src/runtime/cpu.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { lrnInChild } from "./helpers.ts";

Deno.test("memory: blocks are aligned, reused exactly, split and coalesced", () => {
  const heap = new HeapMemory(new WebAssembly.Memory({ initial: 1 }));
  const a = heap.allocate(100); // 128 bytes
  const b = heap.allocate(64);
  const c = heap.allocate(1000); // 1024
  for (const block of [a, b, c]) assertEquals(block.offset % 64, 0);
  assertEquals([a.size, b.size, c.size], [128, 64, 1024]);
  assertEquals(heap.bytesInUse, 128 + 64 + 1024);
  heap.release(b);
  assertEquals(heap.allocate(64).offset, b.offset, "an equal size takes the freed block");
  // a and b free, side by side: one 192-byte range serves a 150-byte block
  heap.release(a);
  heap.release({ offset: b.offset, size: 64 });
  assertEquals(heap.bytesPooled, 192);
  const d = heap.allocate(150);
  assertEquals([d.offset, d.size], [a.offset, 192]);
  // freeing the highest block brings the top down, and its bytes stay pooled (the memory
  // never shrinks: they read 0 here)
  heap.release(c);
  assertEquals(heap.bytesPooled, 128 + 64 + 1024 - 192);
  const e = heap.allocate(2048);
  assertEquals(e.offset, c.offset);
  // a larger free range is split: the rest stays free
  heap.release(d);
  const f = heap.allocate(64);
  assertEquals(f.offset, d.offset);
  assertEquals(heap.bytesPooled, 128);
  assertEquals(heap.allocate(0), { offset: 0, size: 0 });
});

Deno.test("memory: past 4 GiB a clear RangeError, and nothing is lost", () => {
  const heap = new HeapMemory(new WebAssembly.Memory({ initial: 1 }));
  const a = heap.allocate(256);
  assertThrows(() => heap.allocate(MAX_MEMORY_BYTES), RangeError, "4 GiB");
  // one tensor the memory could never hold is named alone, not as the tensors "together"
  assertThrows(
    () => heap.allocate(MAX_TENSOR_BYTES + 1),
    RangeError,
    "cpu: out of memory: a tensor of 4294967233 bytes, above the 4294967232 (4 GiB less 64)",
  );
  assertEquals(heap.bytesInUse, 256);
  assert(heap.allocate(64).offset > a.offset, "still usable");
});

Deno.test("memory: tensors stay readable while the memory grows under them", async () => {
  const before = cpuBackend.heap.bytesReserved;
  const small = Array.from({ length: 20 }, (_, i) => tensor([i, i + 0.5, -i]));
  const sums = small.map((t) => t.mul(2).sum());
  // allocate past everything the memory holds (free or not), so it must grow
  const heap = cpuBackend.heap;
  const count = Math.ceil((heap.bytesReserved - heap.bytesInUse) / (4 << 20)) + 2;
  const big = Array.from({ length: count }, (_, i) => tensor(new Float32Array(1 << 20).fill(i)));
  assert(cpuBackend.heap.bytesReserved > before, "the memory grew");
  for (let i = 0; i < small.length; i++) {
    assertEquals(Array.from(await small[i].data()), [i, i + 0.5, -i]);
    assertEquals(await sums[i].item(), 2 * (i + 0.5));
  }
  for (let i = 0; i < big.length; i++) {
    const values = big[i].dataSync();
    assertEquals([values[0], values[(1 << 20) - 1]], [i, i]);
    big[i].dispose();
  }
});

Deno.test("memory: a plain memory (no WebAssembly) grows in place under the same allocator", () => {
  const plain = new PlainMemory(1, 64);
  const heap = new HeapMemory(plain);
  const a = heap.allocate(40_000);
  new Float32Array(plain.buffer, a.offset, 10_000).fill(3);
  const view = new Float32Array(plain.buffer, a.offset, 10_000);
  const b = heap.allocate(200_000); // past the first page: the buffer is resized in place
  assert(plain.buffer.byteLength >= b.offset + b.size);
  assertEquals(view[9_999], 3, "a view made before the growth still reads the block");
  assertEquals(heap.bytesInUse, 40_000 + 200_000);
  assertThrows(() => heap.allocate(64 * 65536), RangeError, "could not grow the tensor memory");
  assertEquals(heap.allocate(64).offset, b.offset + b.size, "usable after the failure");
});

Deno.test("memory: a runtime without WebAssembly runs the library on JavaScript kernels", async () => {
  // V8's --jitless has no WebAssembly global: importing the library threw a ReferenceError
  const big = "big: await tensor(new Float32Array(5_000_000).fill(0.5)).sum().item()";
  const got = await lrnInChild([1, 6, 3, 3], ["--v8-flags=--jitless"], "", big);
  assertEquals([got.simd, got.targets, got.big], [false, ["js"], 2_500_000]);
});

/** A memory of `bytes` that only counts (the allocator never touches the bytes themselves). */
function countingMemory(bytes: number): CpuMemory {
  const buffer = { byteLength: bytes };
  return {
    buffer: buffer as unknown as ArrayBuffer,
    grow(pages: number): number {
      const before = buffer.byteLength / 65536;
      if (buffer.byteLength + pages * 65536 > MAX_MEMORY_BYTES) throw new RangeError("too big");
      buffer.byteLength += pages * 65536;
      return before;
    },
  };
}

Deno.test("memory: where no free range fits, the Error gives the bytes in use and the largest range (helper-125)", () => {
  // a 4-byte tensor cut from the front of a freed 2.4 GB range leaves it 64 bytes short, and
  // the next 2.4 GB tensor goes above the top, past 4 GiB: the RangeError said the tensors
  // needed 4.8 GB together, with 128 bytes in use (blocks never move: such fragmentation is
  // the allocator's limit, README "cpu memory"; small blocks sent to the top instead made
  // other programs grow 2-4x, helper-130)
  const big = 2_400_000_000;
  const heap = new HeapMemory(countingMemory(65536));
  const first = heap.allocate(big);
  heap.allocate(4);
  heap.release(first);
  const other = heap.allocate(4);
  assertEquals(other.offset, first.offset, "best fit: the front of the freed range");
  const error = assertThrows(() => heap.allocate(big), RangeError);
  assertEquals(
    error.message,
    "cpu: out of memory: a tensor of 2400000000 bytes fits nowhere in the 4 GiB one WebAssembly " +
      `memory holds: 128 bytes are in use, and the largest free range is ${big - 64} bytes ` +
      "(tensors never move, so the ranges freed between them can be too small; dispose " +
      "tensors no longer needed)",
  );
  // and it stays usable: a tensor that fits the range takes it
  assertEquals(heap.allocate(big - 64).offset, first.offset + 64);
  assertEquals(heap.bytesInUse, big + 64);
});
