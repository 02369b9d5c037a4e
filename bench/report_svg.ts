// bench/report.svg, drawn by hand from bench/history.jsonl: on top, the ratio of each @lucid/nn
// row to the hand-written loop over the recorded runs (one line per group and row); below, the
// latest run's rows side by side, one line per group with a mark per library on a log scale.
// Plain SVG text, no chart library, so README can show it and a diff can review it.

import type { HistoryEntry } from "./check.ts";

const WIDTH = 1100;
const LEFT = 150;
const RIGHT = 400; // room for the legend
const PALETTE = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#393b79",
  "#637939",
  "#000000",
  "#e7ba52",
  "#843c39",
  "#7b4173",
];

/** A row label for the legend: the adapter's long description shortened. */
function shortLabel(label: string): string {
  return label.replace(/webgpu \(([^()]*?) \([^()]*\)\)/, "webgpu ($1)");
}

/** `text` safe inside SVG text and attributes. */
function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function splitKey(key: string): [string, string] {
  const at = key.indexOf(" | ");
  return at < 0 ? ["", key] : [key.slice(0, at), key.slice(at + 3)];
}

/** A log10 scale from [lo, hi] (widened to powers of ten) onto [from, to] pixels. */
function logScale(values: number[], from: number, to: number) {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...positive, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...positive, 1))));
  const span = Math.log10(hi) - Math.log10(lo) || 1;
  const at = (v: number) => from + ((Math.log10(v) - Math.log10(lo)) / span) * (to - from);
  const ticks: number[] = [];
  for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  return { at, ticks };
}

/** A horizontal guide line across the plot with its label on the left. */
function guide(y: string, right: number, color: string, label: string, size: number): string[] {
  return [
    `<line x1="${LEFT}" x2="${right}" y1="${y}" y2="${y}" stroke="${color}"/>`,
    `<text x="${LEFT - 6}" y="${y}" font-size="${size}" text-anchor="end" dy="4">${label}</text>`,
  ];
}

function tickLabel(v: number): string {
  return v >= 1 ? `${v}x` : `${v.toPrecision(1)}x`;
}

/** The SVG of the history (oldest first). */
export function drawReport(history: readonly HistoryEntry[]): string {
  const parts: string[] = [];
  const latest = history[history.length - 1];
  const groups = latest === undefined
    ? []
    : [...new Set(Object.keys(latest.ratios).map((k) => splitKey(k)[0]))];
  const libraries = latest === undefined
    ? []
    : [...new Set(Object.keys(latest.ratios).map((k) => splitKey(k)[1]))];

  // ---- panel 1: @lucid/nn ratios over time
  const top = 50;
  const height1 = 260;
  // one line per group and backend for the fused rows: Wasm on every core (the default) solid,
  // JavaScript dotted, webgpu dashed (the Wasm rows were left out, so their moves never showed)
  const lucidKeys = [...new Set(history.flatMap((h) => Object.keys(h.ratios)))]
    .filter((k) =>
      /^@lucid\/nn fused, (js|wasm, \d+ threads|webgpu \([^)]*\)+)$/.test(splitKey(k)[1])
    );
  const groupsEver = [...new Set(lucidKeys.map((k) => splitKey(k)[0]))];
  const values1 = history.flatMap((h) => lucidKeys.map((k) => h.ratios[k]).filter((v) => v > 0));
  const y1 = logScale(values1.length ? values1 : [1], top + height1, top);
  const plotRight = WIDTH - RIGHT;
  const xAt = (i: number) =>
    history.length <= 1
      ? (LEFT + plotRight) / 2
      : LEFT + (i / (history.length - 1)) * (plotRight - LEFT);
  parts.push(
    `<text x="${LEFT}" y="${top - 22}" font-size="15" font-weight="bold">` +
      `@lucid/nn fused (wasm on every core solid, js dotted, webgpu dashed): time / ` +
      `hand-written loop's time, per run</text>`,
  );
  for (const t of y1.ticks) {
    parts.push(...guide(y1.at(t).toFixed(1), plotRight, "#ddd", tickLabel(t), 11));
  }
  history.forEach((h, i) => {
    const x = xAt(i).toFixed(1);
    const label = `${h.date.slice(0, 10)} ${h.commit}`;
    const before = history[i - 1]?.machine;
    if (
      before !== undefined && (before.cpu !== h.machine.cpu || before.cores !== h.machine.cores)
    ) {
      // ratios across machines compare machines too: the line says where one changed
      const mid = ((xAt(i - 1) + xAt(i)) / 2).toFixed(1);
      parts.push(
        `<line x1="${mid}" x2="${mid}" y1="${top}" y2="${top + height1}" stroke="#999" ` +
          `stroke-dasharray="2,4"/>`,
        `<text x="${mid}" y="${top + 10}" font-size="9" text-anchor="middle">other machine</text>`,
      );
    }
    parts.push(
      `<text x="${x}" y="${top + height1 + 16}" font-size="10" text-anchor="middle">${
        escape(label)
      }</text>`,
    );
  });
  lucidKeys.forEach((key) => {
    const color = PALETTE[groupsEver.indexOf(splitKey(key)[0]) % PALETTE.length];
    const name = splitKey(key)[1];
    const dash = name.includes("webgpu")
      ? ` stroke-dasharray="5,3"`
      : name.endsWith(", js")
      ? ` stroke-dasharray="1,3"`
      : "";
    const points = history
      .map((h, i) => [i, h.ratios[key]] as const)
      .filter(([, v]) => v > 0)
      .map(([i, v]) => `${xAt(i).toFixed(1)},${y1.at(v).toFixed(1)}`);
    if (points.length > 1) {
      parts.push(
        `<polyline points="${points.join(" ")}" fill="none" stroke="${color}"${dash}/>`,
      );
    }
    for (const p of points) {
      const [x, y] = p.split(",");
      parts.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    }
  });

  groupsEver.forEach((group, n) => {
    const color = PALETTE[n % PALETTE.length];
    const y = top + 4 + n * 14;
    parts.push(
      `<rect x="${plotRight + 12}" y="${y - 8}" width="10" height="10" fill="${color}"/>`,
      `<text x="${plotRight + 26}" y="${y + 1}" font-size="10">${escape(group)}</text>`,
    );
  });

  // ---- panel 2: the latest run, every row of every group
  const top2 = top + height1 + 70;
  const rowHeight = 26;
  const values2 = latest === undefined ? [1] : Object.values(latest.ratios);
  const x2 = logScale(values2, LEFT, plotRight);
  const bottom2 = top2 + Math.max(1, groups.length) * rowHeight;
  parts.push(
    `<text x="${LEFT}" y="${top2 - 26}" font-size="15" font-weight="bold">Latest run${
      latest ? ` (${escape(latest.date.slice(0, 10))}, ${escape(latest.commit)})` : ""
    }: each row's time / hand-written loop's time (log scale, lower is faster)</text>`,
  );
  for (const t of x2.ticks) {
    const x = x2.at(t).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${top2 - 8}" y2="${bottom2}" stroke="#ddd"/>`,
      `<text x="${x}" y="${bottom2 + 14}" font-size="11" text-anchor="middle">${
        tickLabel(t)
      }</text>`,
    );
  }
  groups.forEach((group, g) => {
    const y = top2 + g * rowHeight + rowHeight / 2;
    parts.push(...guide(String(y), plotRight, "#eee", escape(group), 12));
    libraries.forEach((library, l) => {
      const v = latest!.ratios[`${group} | ${library}`];
      if (!(v > 0)) return;
      const color = PALETTE[l % PALETTE.length];
      const x = x2.at(v).toFixed(1);
      const shape = library.startsWith("@lucid/nn")
        ? `<rect x="${Number(x) - 4}" y="${y - 4}" width="8" height="8" fill="${color}">`
        : `<circle cx="${x}" cy="${y}" r="4" fill="${color}" fill-opacity="0.8">`;
      const tag = shape.startsWith("<rect") ? "rect" : "circle";
      parts.push(
        `${shape}<title>${escape(`${group} | ${library}: ${v.toFixed(3)}x`)}</title></${tag}>`,
      );
    });
  });
  libraries.forEach((library, l) => {
    const color = PALETTE[l % PALETTE.length];
    const y = top2 + l * 14;
    const mark = library.startsWith("@lucid/nn")
      ? `<rect x="${plotRight + 12}" y="${y - 8}" width="9" height="9" fill="${color}"/>`
      : `<circle cx="${plotRight + 16}" cy="${y - 4}" r="4.5" fill="${color}"/>`;
    parts.push(
      mark,
      `<text x="${plotRight + 26}" y="${y + 1}" font-size="10">${
        escape(shortLabel(library))
      }</text>`,
    );
  });
  const legendBottom = top2 + libraries.length * 14;
  const height = Math.max(bottom2 + 40, legendBottom + 20);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    ...parts,
    `</svg>`,
    "",
  ].join("\n");
}
