// Cost of an optimizer step over many small parameters: forward (a sum of squares over every
// parameter), backward, step, zeroGrad, reading the loss and disposing it, per parameter, as a
// median over 200 steps after 100 of warm-up. Not a tracked suite: a probe to compare two
// checkouts, run one after the other and alternated a few times (the machine's load moves).
//
//   deno run -A bench/probes/optimizer_step.ts [root] [optimizer] [parameters]
//     root        a checkout of the library (default: this one)
//     optimizer   adam or sgd (default adam)
//     parameters  how many 16-element parameters (default 100)

const root = Deno.args[0] ?? new URL("../..", import.meta.url).pathname;
const kind = Deno.args[1] ?? "adam";
const count = Number(Deno.args[2] ?? 100);
const { optim, tensor } = await import(`file://${root.replace(/\/$/, "")}/mod.ts`);

const params = Array.from(
  { length: count },
  (_, i) => tensor(new Float32Array(16).fill(i + 1), { requiresGrad: true }),
);
const opt = kind === "adam"
  ? new optim.Adam(params, { lr: 0.01 })
  : new optim.SGD(params, { lr: 0.01, momentum: 0.9 });
const times: number[] = [];
for (let step = 0; step < 300; step++) {
  const start = performance.now();
  let loss = params[0].square().sum();
  for (let i = 1; i < count; i++) loss = loss.add(params[i].square().sum());
  loss.backward();
  opt.step();
  opt.zeroGrad();
  await loss.data();
  loss.dispose();
  if (step >= 100) times.push(performance.now() - start);
}
times.sort((a, b) => a - b);
const perParameter = (times[times.length >> 1] * 1000) / count;
console.log(`${kind}, ${count} parameters: ${perParameter.toFixed(1)} us per parameter per step`);
