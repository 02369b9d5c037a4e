// `deno task test:browser`: the exported modules in a real browser. LocalResponseNorm forward
// and forward + backward are exported for a few golden cases to `js`, `wgsl` and `wasm`, served
// with a test page on localhost (Deno.serve), and run in headless Chromium (Debian's
// `chromium`, driven by playwright-core, which never downloads a browser here): the `js` module
// and the `wasm` loader on the page's own thread (the loader's memory is not shared, so the page
// needs no cross-origin isolation), the `wgsl` runner on Chromium's software WebGPU adapter.
// Outputs are checked against the library's on cpu (bit for bit for `js` and `wasm` when the
// library ran kernels of that target: the same kernels, IEEE arithmetic; within float32
// tolerance otherwise, as for `wgsl` on another adapter) and against the goldens. The library
// itself runs there too, bundled by `deno bundle` as a site would ship it, on both devices.
// Exit status 0 when everything matches.

// pinned here, not in deno.json: the library itself has no dependencies to resolve
// deno-lint-ignore no-import-prefix
import { chromium, type Page } from "npm:playwright-core@1.65.1";
import { exportCompiled, jit, kernels, realize, tensor, writeExport } from "../mod.ts";
import { assertGolden, goldenCases } from "../tests/lrn_golden.ts";
import {
  assertLikeLibrary,
  caseName,
  exportCase,
  libraryLrn,
  type LibraryResult,
} from "../tests/export_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
/** The cases run in the browser: AlexNet's parameters, an even size, the accuracy trap. */
const LRN_CASES = [
  "size5_4d_alexnet_params",
  "size4_even_4d_beta06",
  "mixed_1e4_1e-2_alt_size2_alpha05",
];
const TIMEOUT_MS = 120_000;

// The page: a module script that imports exported modules on request and runs them.
const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>@lucid/nn exports</title></head>
<body>
<p id="status">loading</p>
<script type="module">
const types = { float32: Float32Array, float64: Float64Array, int32: Int32Array };
let device = null;
window.runExports = async (jobs) => {
  const results = [];
  for (const job of jobs) {
    const m = await import(job.module);
    const inputs = job.inputs.map((values, i) => types[m.inputs[i].dtype].from(values));
    let outputs;
    if (job.target === "wgsl") {
      if (device === null) {
        const adapter = await navigator.gpu?.requestAdapter();
        if (!adapter) throw new Error("this browser gives no WebGPU adapter");
        device = await adapter.requestDevice();
      }
      outputs = await m.run(device, ...inputs);
    } else {
      outputs = m.run(...inputs);
    }
    results.push({ names: m.outputs.map((o) => o.name), values: outputs.map((o) => Array.from(o)) });
  }
  return results;
};
// the library itself, bundled: LocalResponseNorm forward and backward on each device
window.runLibrary = async (url, cases) => {
  const lib = await import(url);
  const results = [];
  for (const c of cases) {
    for (const device of ["cpu", "webgpu"]) {
      const x = lib.tensor(Float32Array.from(c.x), { shape: c.shape, device, requiresGrad: true });
      const y = new lib.nn.LocalResponseNorm(c.size, c.alpha, c.beta, c.k).forward(x);
      y.backward(lib.tensor(Float32Array.from(c.g), { shape: c.shape, device }));
      const values = [Array.from(await y.data()), Array.from(await x.grad.data())];
      const targets = lib.kernels(y.mul(1)).map((k) => k.target);
      results.push({ names: ["y", "dx"], values, targets, simd: lib.cpu.simd });
    }
  }
  return results;
};
document.getElementById("status").textContent = "ready";
</script>
</body>
</html>
`;

const CONTENT_TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  wgsl: "text/plain; charset=utf-8",
  wat: "text/plain; charset=utf-8",
  wasm: "application/wasm",
};

/** Serves the page at `/` and the export directory `root` at `/exports/`. */
function serve(root: string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    if (path === "/") return new Response(PAGE, { headers: { "content-type": "text/html" } });
    const file = path.slice("/exports/".length);
    if (!path.startsWith("/exports/") || file.split("/").some((p) => p === ".." || p === "")) {
      return new Response("not found", { status: 404 });
    }
    try {
      const body = await Deno.readFile(`${root}/${file}`);
      const type = CONTENT_TYPES[file.split(".").pop()!] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

/** Rejects after `ms` with `what` timed out. */
function timeout(ms: number, what: string): Promise<never> {
  return new Promise((_, reject) => {
    const id = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    Deno.unrefTimer(id);
  });
}

interface PageResult {
  names: string[];
  values: number[][];
}

/** One module to run in the page and what its outputs must be. */
interface Job {
  readonly what: string;
  /** URL path of the module. */
  readonly module: string;
  readonly target: "js" | "wgsl" | "wasm";
  readonly inputs: readonly (readonly number[])[];
  readonly outputNames: readonly string[];
  /** The library's outputs (cpu) for the same inputs, and its kernels' targets. */
  readonly library: LibraryResult;
  /** The golden values, where there are some. */
  readonly golden?: readonly (readonly number[])[];
}

// WGSL that must compile under Chrome's Tint too, not only under naga: kernels with infinite
// and NaN constants (a max-reduction's identity, NaN-propagating max and min, pow of any base,
// sign, tanh), with infinities and NaN among the inputs.
const SPECIAL_A = [-2, -0.5, 0, 0.5, 2, Infinity, -Infinity, NaN, 3, 1e-3, -3, 7];
const SPECIAL_B = [2, 0.5, -1, 3, -2, 1, 2, 0, NaN, 0.25, 3, -0.5];
const SPECIALS = [
  {
    name: "softmax",
    fn: jit((x) => {
      const e = x.sub(x.max(1, true)).exp();
      return { p: e.div(e.sum(1, true)) };
    }),
    inputs: [[3, 4], [...SPECIAL_A.slice(0, 5), -Infinity, 1, 2, 3, -Infinity, 0, 5]],
  },
  {
    name: "specials",
    fn: jit((a, b) => ({
      power: a.pow(b),
      clamp: a.maximum(b).minimum(2),
      signs: a.sign().mul(b.tanh()),
    }), { inputNames: ["a", "b"] }),
    inputs: [[12], SPECIAL_A, SPECIAL_B],
  },
] as const;

/** Exports every LRN case (forward, forward + backward) and the special-value functions. */
async function exportJobs(root: string): Promise<Job[]> {
  const jobs: Job[] = [];
  const urlOf = (path: string) => `/exports/${path.slice(root.length + 1)}`;
  for (const target of ["js", "wgsl", "wasm"] as const) {
    for (const name of LRN_CASES) {
      const c = goldenCases.find((g) => g.name === name)!;
      for (const grad of [false, true]) {
        const module = urlOf(await exportCase(c, grad, target, `${root}/${target}`));
        jobs.push({
          what: `${target} ${caseName(c, grad)}`,
          module,
          target,
          inputs: grad ? [c.x, c.g] : [c.x],
          outputNames: grad ? ["y", "dx"] : ["y"],
          library: await libraryLrn(c, grad, "cpu"),
          golden: grad ? [c.y, c.dx] : [c.y],
        });
      }
    }
    for (const { name, fn, inputs } of SPECIALS) {
      const [shape, ...data] = inputs;
      const dir = `${root}/${target}/${name}`;
      const exported = await exportCompiled(fn, data.map(() => ({ shape })), { target, name });
      await writeExport(exported, dir);
      // the library's own results: the same function evaluated eagerly
      const eager = fn.fn(...data.map((d) => tensor(Float32Array.from(d), { shape: [...shape] })));
      const outputs = Object.values(eager);
      const targets = new Set(kernels(...outputs).map((k) => k.target));
      await realize(...outputs);
      jobs.push({
        what: `${target} ${name}`,
        module: urlOf(`${dir}/${name}.js`),
        target,
        inputs: data,
        outputNames: Object.keys(eager),
        library: {
          values: await Promise.all(outputs.map(async (t) => (await t.data()) as Float32Array)),
          targets,
        },
      });
    }
  }
  return jobs;
}

/** Throws unless `job`'s outputs from the page are what the library and goldens say. */
function checkJob(job: Job, { names, values }: PageResult): void {
  if (names.join() !== job.outputNames.join()) {
    throw new Error(`outputs ${names}, want ${job.outputNames}`);
  }
  values.forEach((got, o) => {
    const what = `${job.what} ${names[o]}`;
    assertLikeLibrary(got, job.library, o, job.target, what);
    if (job.golden !== undefined) assertGolden(got, job.golden[o], what);
  });
}

/**
 * The library itself bundled into the page (`deno bundle`), as a site would ship it, on a page
 * without cross-origin isolation (no SharedArrayBuffer: every cpu realization threw there
 * once): LocalResponseNorm forward and backward of each case on cpu and webgpu, against the
 * goldens and, within float32 tolerance, the library in Deno.
 */
async function libraryInPage(
  page: Page,
  root: string,
): Promise<{ passed: number; failed: number; }> {
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "browser", "-o", `${root}/lucid.js`, "mod.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "null",
  }).output();
  if (!bundle.success) {
    console.log(`FAIL bundling mod.ts: ${new TextDecoder().decode(bundle.stderr)}`);
    return { passed: 0, failed: 1 };
  }
  const cases = LRN_CASES.map((name) => goldenCases.find((g) => g.name === name)!);
  let results: PageResult[];
  try {
    results = await Promise.race([
      page.evaluate(
        ([url, c]) =>
          (window as unknown as { runLibrary(u: string, c: unknown): Promise<PageResult[]>; })
            .runLibrary(url, c),
        ["/exports/lucid.js", cases] as const,
      ),
      timeout(TIMEOUT_MS, "running the library in the page"),
    ]);
  } catch (e) {
    console.log(`FAIL the library in the page: ${e instanceof Error ? e.message : e}`);
    return { passed: 0, failed: 1 };
  }
  let passed = 0;
  let failed = 0;
  for (const [i, c] of cases.entries()) {
    const library = await libraryLrn(c, true, "cpu");
    for (const [d, device] of ["cpu", "webgpu"].entries()) {
      const what = `library in the page, ${device}, ${caseName(c, true)}`;
      try {
        const { values, targets, simd } = results[2 * i + d] as PageResult & {
          targets: string[];
          simd: boolean;
        };
        // the cpu's kernels are Wasm ones (on the page's unshared memory) where it has SIMD
        const want = device === "webgpu" ? "wgsl" : simd ? "wasm" : "js";
        if (!targets.every((t) => t === want)) throw new Error(`kernels ${targets}, want ${want}`);
        values.forEach((got, o) => {
          assertLikeLibrary(got, library, o, "wgsl", `${what} ${o === 0 ? "y" : "dx"}`);
          assertGolden(got, [c.y, c.dx][o], `${what} ${o === 0 ? "y" : "dx"}`);
        });
        console.log(`ok   ${what}`);
        passed++;
      } catch (e) {
        console.log(`FAIL ${what}: ${e instanceof Error ? e.message : e}`);
        failed++;
      }
    }
  }
  return { passed, failed };
}

async function main(): Promise<number> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    console.error(`${CHROMIUM} is missing: apt-get install -y chromium (or run .ci/run)`);
    return 1;
  }
  const root = await Deno.makeTempDir({ prefix: "lucid-browser-" });
  const server = serve(root);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 60_000,
  });
  let failed = 0;
  let passed = 0;
  try {
    const jobs = await exportJobs(root);
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    await page.waitForFunction('document.getElementById("status")?.textContent === "ready"');
    const adapter = await page.evaluate(async () => {
      const a = await (navigator as { gpu?: GPU; }).gpu?.requestAdapter();
      return a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : null;
    });
    // the page is served without COOP/COEP headers: no SharedArrayBuffer, as on most sites
    const isolated = await page.evaluate(
      () => (self as unknown as { crossOriginIsolated: boolean; }).crossOriginIsolated,
    );
    console.log(
      `chromium ${browser.version()}, WebGPU adapter: ${adapter ?? "none"}, ` +
        `cross-origin isolated: ${isolated}`,
    );
    const request = jobs.map(({ module, target, inputs }) => ({ module, target, inputs }));
    const results = await Promise.race([
      page.evaluate(
        (r) =>
          (window as unknown as { runExports(r: unknown): Promise<PageResult[]>; }).runExports(r),
        request,
      ),
      timeout(TIMEOUT_MS, "running the exports in the page"),
    ]);
    for (const [i, job] of jobs.entries()) {
      try {
        checkJob(job, results[i]);
        console.log(`ok   ${job.what}`);
        passed++;
      } catch (e) {
        console.log(`FAIL ${job.what}: ${e instanceof Error ? e.message : e}`);
        failed++;
      }
    }
    const library = await libraryInPage(page, root);
    passed += library.passed;
    failed += library.failed;
  } finally {
    await browser.close();
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
  console.log(`browser: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

Deno.exit(await main());
