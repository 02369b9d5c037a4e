// The package's documentation as JSR shows it. JSR builds its pages from `deno doc` over the
// exports in deno.json, so this runs `deno doc --json` on them and compares with what the modules
// export at run time: every class, function and value (inside the `nn` and `optim` namespaces
// too: `nn.LocalResponseNorm` was once missing because `deno doc` does not follow named
// re-exports into a namespace) must be there with its description, the main entry points carry
// an `@example`, and internals (Tensor's constructor and node, inspect hooks) stay out.

import { Tensor } from "../mod.ts";
import { assert, assertEquals } from "./assert.ts";

/** The parts of `deno doc --json` output this test reads. */
interface JsDoc {
  doc?: string;
  tags?: { kind: string; }[];
}
interface Member {
  name: string;
  jsDoc?: JsDoc;
}
interface Declaration {
  kind: string;
  jsDoc?: JsDoc;
  def: {
    elements?: DocSymbol[];
    constructors?: Member[] | null;
    methods?: Member[];
    properties?: Member[];
  };
}
interface DocSymbol {
  name: string;
  declarations: Declaration[];
}
interface DocModule {
  module_doc?: JsDoc;
  symbols: DocSymbol[];
}

const root = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
const entryPoints = Object.values(config.exports as Record<string, string>);

/** `deno doc --json` of every entry point, by module URL. */
async function documented(): Promise<Record<string, DocModule>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...entryPoints],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert(out.success, `deno doc failed: ${text(out.stderr)}`);
  const json = JSON.parse(text(out.stdout));
  assertEquals(json.version, 2, "the deno doc --json format this test reads");
  return json.nodes;
}

const modules = await documented();

/** Every documented symbol by its full name (`nn.LocalResponseNorm`), namespaces flattened. */
const symbols = new Map<string, Declaration[]>();
function collect(list: readonly DocSymbol[], prefix: string): void {
  for (const symbol of list) {
    const name = prefix + symbol.name;
    symbols.set(name, [...(symbols.get(name) ?? []), ...symbol.declarations]);
    for (const d of symbol.declarations) {
      if (d.kind === "namespace") collect(d.def.elements ?? [], `${name}.`);
    }
  }
}
for (const m of Object.values(modules)) collect(m.symbols, "");

const described = (d: { jsDoc?: JsDoc; }) => (d.jsDoc?.doc ?? "").trim().length > 0;
const hasExample = (d: { jsDoc?: JsDoc; }) =>
  (d.jsDoc?.tags ?? []).some((t) => t.kind === "example");

/** Names of the run-time exports of `module` (recursing into namespace objects). */
function runtimeExports(module: Record<string, unknown>, prefix = ""): string[] {
  return Object.entries(module).flatMap(([name, value]) =>
    Object.prototype.toString.call(value) === "[object Module]"
      ? [prefix + name, ...runtimeExports(value as Record<string, unknown>, `${prefix}${name}.`)]
      : [prefix + name]
  );
}

Deno.test("docs: every run-time export of every entry point is documented, namespaces too", async () => {
  let count = 0;
  for (const entry of entryPoints) {
    const module = await import(new URL(entry, root).href);
    for (const name of runtimeExports(module)) {
      const declarations = symbols.get(name);
      assert(declarations !== undefined, `${entry}: ${name} is exported but not in deno doc`);
      assert(declarations.some(described), `${entry}: ${name} has no description`);
      count++;
    }
  }
  // the namespaces' members were the ones that went missing: name them so a rename is noticed
  for (const name of ["nn.Module", "nn.LocalResponseNorm", "nn.localResponseNorm", "optim.SGD"]) {
    assert(symbols.has(name), `${name} is not in deno doc`);
  }
  assert(count > 40, `only ${count} run-time exports were found`);
});

Deno.test("docs: every documented symbol has a description and no stray tag", () => {
  for (const [name, declarations] of symbols) {
    assert(declarations.some(described), `${name} has no description`);
    for (const d of declarations) {
      // `@internal` on something still shown, or a line starting with `@` read as a tag
      const stray = (d.jsDoc?.tags ?? []).filter((t) =>
        ["internal", "unsupported"].includes(t.kind)
      );
      assertEquals(stray, [], `${name}: tags that hide nothing`);
    }
  }
  for (const [url, m] of Object.entries(modules)) {
    assert(described({ jsDoc: m.module_doc }), `${url} has no module description`);
  }
});

Deno.test("docs: the main entry points carry an @example", () => {
  const main = [
    "Tensor",
    "tensor",
    "zeros",
    "randn",
    "realize",
    "kernels",
    "graph",
    "grad",
    "noGrad",
    "jit",
    "exportCompiled",
    "writeExport",
    "tidy",
    "keep",
    "memory",
    "cpu",
    "webgpu",
    "gradcheck",
    "nn.Module",
    "nn.LocalResponseNorm",
    "nn.localResponseNorm",
    "optim.SGD",
    "optim.Adam",
  ];
  const missing = main.filter((name) => !(symbols.get(name) ?? []).some(hasExample));
  assertEquals(missing, [], "entry points without an @example");
  const mod = Object.entries(modules).find(([url]) => url.endsWith("/mod.ts"))![1];
  assert(hasExample({ jsDoc: mod.module_doc }), "mod.ts's module doc has an @example");
});

/** The documented members of each class or interface called `name`, merged. */
function membersOf(name: string): { members: Map<string, Member[]>; constructors: number; } {
  const members = new Map<string, Member[]>();
  let constructors = 0;
  for (const d of symbols.get(name) ?? []) {
    constructors += d.def.constructors?.length ?? 0;
    for (const m of [...(d.def.properties ?? []), ...(d.def.methods ?? [])]) {
      members.set(m.name, [...(members.get(m.name) ?? []), m]);
    }
  }
  return { members, constructors };
}

Deno.test("docs: Tensor shows each public method and accessor with its docs, and no internals", () => {
  const { members, constructors } = membersOf("Tensor");
  const onInstances = new Set(["device", "grad"]); // fields: set by the constructor
  const runtime = Object.getOwnPropertyNames(Tensor.prototype).filter((n) => n !== "constructor");
  for (const name of [...runtime, ...onInstances]) {
    const documented = members.get(name) ?? [];
    assert(documented.some(described), `Tensor.${name} is public but not documented`);
  }
  for (const name of members.keys()) {
    const isPublic = runtime.includes(name) || onInstances.has(name) ||
      name === "[Symbol.dispose]";
    assert(isPublic, `Tensor.${name} is documented but is no public member`);
  }
  assertEquals(constructors, 0, "Tensor is made by the creation functions, not `new`");
  for (const internal of ["node", "derive"]) {
    assert(!(internal in Tensor.prototype), `Tensor.prototype.${internal} is public`);
  }
});

Deno.test("docs: computed members of classes are well-known symbols only", () => {
  for (const [name, declarations] of symbols) {
    if (!declarations.some((d) => d.kind === "class")) continue;
    for (const member of membersOf(name).members.keys()) {
      if (!member.startsWith("[")) continue;
      assert(/^\[Symbol\.\w+\]$/.test(member), `${name}: ${member} is an internal hook`);
    }
  }
});
