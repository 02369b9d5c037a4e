// Runs the full test suite N times, each in a fresh process and exactly as CI runs it
// (`NO_COLOR=1 LUCID_REQUIRE_WEBGPU=1 deno task test`, with DENO_WEBGPU_BACKEND=vulkan unless it
// is set, as .ci/run does), and reports every run that did not exit with status 0, with the
// last lines it printed. Written for issue 8 (an abort at process exit
// that showed up in about one run of eight): a flaky crash is only gone when many runs in a
// row say so.
//
//   deno task test:repeat 30             # 30 runs
//   deno task test:repeat 30 --tail=40   # show 40 lines of each failing run (default 25)
//   DENO_WEBGPU_BACKEND=gl deno task test:repeat 30   # on OpenGL (llvmpipe) instead
//
// Exits 0 when every run exited 0, else 1. The last line is the summary.

const usage = "usage: deno task test:repeat N [--tail=LINES]  (N: runs, a positive integer)";

function parseArgs(args: readonly string[]): { runs: number; tail: number; } {
  let runs: number | null = null;
  let tail = 25;
  for (const arg of args) {
    const tailMatch = /^--tail=(\d+)$/.exec(arg);
    if (tailMatch) tail = Number(tailMatch[1]);
    else if (/^\d+$/.test(arg) && runs === null) runs = Number(arg);
    else throw new Error(`test:repeat: unexpected argument "${arg}"; ${usage}`);
  }
  if (runs === null || runs < 1) throw new Error(`test:repeat: N is missing or 0; ${usage}`);
  return { runs, tail };
}

/** The closing line of `deno test` (`ok | 179 passed ... | 0 failed ...`), if it printed one. */
function summaryOf(lines: readonly string[]): string {
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^(ok|FAILED) \| \d+ passed/.test(lines[i])) return lines[i];
  }
  return "(no test summary line)";
}

/** Collects a child's stdout and stderr into one text, in the order the chunks arrive. */
async function drain(streams: ReadableStream<Uint8Array>[]): Promise<string> {
  const chunks: string[] = [];
  await Promise.all(streams.map(async (stream) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) chunks.push(decoder.decode(chunk, { stream: true }));
  }));
  return chunks.join("");
}

interface RunResult {
  code: number;
  signal: Deno.Signal | null;
  seconds: number;
  lines: string[];
}

/** The adapter a fresh process gets with `backend` (asked in a child: it may abort at exit). */
async function adapterOf(backend: string): Promise<string> {
  const probe = "const a = await navigator.gpu?.requestAdapter(); " +
    "console.log(a ? `${a.info.description} (shader-f16: ${a.features.has('shader-f16')})` : " +
    "'none: install mesa-vulkan-drivers libvulkan1 (see .ci/run) or set DENO_WEBGPU_BACKEND')";
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", probe],
    env: { NO_COLOR: "1", DENO_WEBGPU_BACKEND: backend },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout).trim() || "unknown (the probe printed nothing)";
}

async function runSuite(backend: string): Promise<RunResult> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "test"],
    env: { NO_COLOR: "1", LUCID_REQUIRE_WEBGPU: "1", DENO_WEBGPU_BACKEND: backend },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [output, status] = await Promise.all([drain([child.stdout, child.stderr]), child.status]);
  const lines = output.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "");
  return {
    code: status.code,
    signal: status.signal,
    seconds: (performance.now() - started) / 1000,
    lines,
  };
}

async function main(): Promise<number> {
  const { runs, tail } = parseArgs(Deno.args);
  const backend = Deno.env.get("DENO_WEBGPU_BACKEND") ?? "vulkan";
  console.log(
    `test:repeat: ${runs} runs of \`NO_COLOR=1 LUCID_REQUIRE_WEBGPU=1 deno task test\` ` +
      `(DENO_WEBGPU_BACKEND=${backend}, adapter: ${await adapterOf(backend)})`,
  );
  const failures: { run: number; code: number; }[] = [];
  for (let run = 1; run <= runs; run++) {
    const result = await runSuite(backend);
    const how = result.signal ? `signal ${result.signal}` : `exit ${result.code}`;
    console.log(
      `run ${run}/${runs}: ${how} (${result.seconds.toFixed(1)} s) ${summaryOf(result.lines)}`,
    );
    if (result.code !== 0) {
      failures.push({ run, code: result.code });
      console.log(`---- last ${tail} lines of run ${run} ----`);
      for (const line of result.lines.slice(-tail)) console.log(`  ${line}`);
      console.log(`---- end of run ${run} ----`);
    }
  }
  const codes = failures.map((f) => `run ${f.run}: exit ${f.code}`).join(", ");
  console.log(
    `test:repeat: ${runs} runs, ${runs - failures.length} exited 0, ${failures.length} failed` +
      (failures.length > 0 ? ` (${codes})` : ""),
  );
  return failures.length === 0 ? 0 : 1;
}

Deno.exit(await main());
