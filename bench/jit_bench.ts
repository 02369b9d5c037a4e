// What jit and export save: a LocalResponseNorm training step (forward + backward, both read
// back) run eagerly (build the graph, look the plan up by structural key, run), replayed by a
// jit-compiled function (bind the inputs, run the kept plan), and run by the exported js module
// (no library at all), on T = (1, 8, 4, 4), where per-call overhead dominates, and on A =
// (2, 96, 27, 27), where the kernels do. Rows go through bench/harness.ts as the tracked suites
// do: outputs checked against the float64 reference (at the first call and after warm-up),
// medians of every call, each call paired with the eager row's call just before it. The eager
// and jit rows copy their inputs into the cpu's memory and read their outputs back; the exported
// module computes on the host arrays it is given and returns new ones (it has no memory of its
// own to copy into): that is what using it saves.
// Run: deno bench --allow-env --allow-read --allow-run bench/jit_bench.ts (tracked by
// bench/check.ts, so `deno task bench:check` prints its medians and paired ratios)

import { exportCompiled, jit, nn, type Tensor, tensor } from "../mod.ts";
import { caseData, LRN, makeCase, selectedGroups } from "./cases.ts";
import {
  type Call,
  checkOutputs,
  noteOutputError,
  registerRow,
  warmUp,
  writeSamplesAtUnload,
} from "./harness.ts";
import { lucidCall } from "./lucid_rows.ts";
import { referenceLrn } from "./reference.ts";

writeSamplesAtUnload(import.meta.url);

const lrn = new nn.LocalResponseNorm(LRN.size, LRN.alpha, LRN.beta, LRN.k);
const step = jit((x, dy) => {
  const y = lrn.forward(x);
  y.backward(dy);
  return { y, dx: x.grad! };
}, { inputNames: ["x", "dy"] });

const wanted = selectedGroups();
for (const shapeName of ["T", "A"]) {
  const c = makeCase(shapeName, "f+b");
  const group = `jit ${c.id}`; // one of JIT_GROUPS
  if (wanted !== null && !wanted.has(group)) continue;
  const data = caseData(c.shape);
  const shape = [...c.shape];
  const want = referenceLrn(data.x, c.shape, LRN, data.g);
  const eager = lucidCall(c, data, { label: "eager", device: "cpu", enter: () => () => {} }, lrn);
  const jitted: Call = async () => {
    using x = tensor(data.x, { shape, requiresGrad: true });
    using g = tensor(data.g, { shape });
    const out: { y: Tensor; dx: Tensor; } = await step(x, g);
    using y = out.y;
    using dx = out.dx;
    const [yValues, dxValues] = await Promise.all([y.data(), dx.data()]);
    return { y: yValues, dx: dxValues };
  };
  const { files } = await exportCompiled(step, [{ shape, requiresGrad: true }, { shape }], {
    target: "js",
  });
  const exported = await import(`data:text/javascript;base64,${btoa(files[0].contents)}`);
  const standalone: Call = () => {
    const [y, dx] = exported.run(data.x, data.g) as Float32Array[];
    return Promise.resolve({ y, dx });
  };
  const rows: [string, Call][] = [
    ["@lucid/nn eager", eager],
    ["@lucid/nn jit", jitted],
    ["@lucid/nn exported js module", standalone],
  ];
  for (const [label, call] of rows) {
    const setup = async () => {
      noteOutputError(group, label, checkOutputs(label, c, await call(true), want));
      const afterWarmUp = await warmUp(call);
      noteOutputError(group, label, checkOutputs(`${label} (after warm-up)`, c, afterWarmUp, want));
      return call;
    };
    const isEager = call === eager;
    registerRow(group, label, isEager, setup, isEager ? null : eager);
  }
}
