// bench/report_svg.ts: the chart is well-formed SVG, draws one line per @lucid/nn row across the
// runs, one mark per row of the latest run, and escapes labels.

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { drawReport } from "../bench/report_svg.ts";
import type { HistoryEntry } from "../bench/check.ts";

const machine = { cpu: "c", cores: 2, runtime: "Deno/2.9.6", os: "linux" };

function entry(commit: string, fused: number): HistoryEntry {
  return {
    date: "2026-01-02T03:04:05Z",
    commit,
    machine,
    medianMs: {},
    ratios: {
      "A fwd | hand-written JS loop (float32)": 1,
      "A fwd | @lucid/nn fused, js": fused,
      "A fwd | tfjs <wasm> & co": 2,
      "B fwd | hand-written JS loop (float32)": 1,
      "B fwd | @lucid/nn fused, js": fused * 2,
    },
  };
}

const count = (text: string, what: string) => text.split(what).length - 1;

Deno.test("drawReport: lines over runs, marks for the latest run, escaped labels", () => {
  const svg = drawReport([entry("aaa", 0.5), entry("bbb", 0.6), entry("ccc", 0.4)]);
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert(svg.trimEnd().endsWith("</svg>"));
  assertEquals(count(svg, "<polyline"), 2); // the two @lucid/nn rows over three runs
  assertStringIncludes(svg, "tfjs &lt;wasm&gt; &amp; co");
  assert(!svg.includes("<wasm>"));
  assertStringIncludes(svg, "ccc"); // the latest run is named
  // latest run: 5 rows, each a mark with a title
  assertEquals(count(svg, "<title>"), 5);
  assertStringIncludes(svg, "<title>B fwd | @lucid/nn fused, js: 0.800x</title>");
});

Deno.test("drawReport: one run and no run still give a valid document", () => {
  const one = drawReport([entry("aaa", 0.5)]);
  assertEquals(count(one, "<polyline"), 0);
  assertEquals(count(one, "<title>"), 5);
  const none = drawReport([]);
  assert(none.includes("<svg") && none.includes("</svg>"));
  assert(!none.includes("NaN"));
});

Deno.test("drawReport: the Wasm row on every core is drawn, and a change of machine is marked", () => {
  const withWasm = (commit: string, cpu: string): HistoryEntry => {
    const e = entry(commit, 0.5);
    return {
      ...e,
      machine: { ...machine, cpu },
      ratios: { ...e.ratios, "A fwd | @lucid/nn fused, wasm, 2 threads": 0.1 },
    };
  };
  const svg = drawReport([withWasm("aaa", "c"), withWasm("bbb", "c"), withWasm("ccc", "other")]);
  // js on A and B, and the Wasm row (left out before, so its moves never showed)
  assertEquals(count(svg, "<polyline"), 3);
  assertEquals(count(svg, "other machine"), 1);
});
