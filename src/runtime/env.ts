// The library's environment variables (LUCID_DEBUG, LUCID_CPU_KERNELS, LUCID_THREADS), read
// without ever asking for a permission: a library must not stop a program at a prompt by being
// imported (reading LUCID_THREADS when the cpu device was made asked for env access at every
// import, and `deno task export --help` waited at that prompt).

/** Node's `process`, where the library runs in Node (typed here: no Node types in the build). */
export function nodeProcess():
  | {
    versions: { node?: string; };
    env: Record<string, string | undefined>;
    getBuiltinModule?(name: string): unknown;
  }
  | undefined {
  const process = (globalThis as { process?: { versions?: { node?: unknown; }; }; }).process;
  return typeof process?.versions?.node === "string" ? process as never : undefined;
}

/** `name`'s value, or undefined where it is unset, not granted, or there is no environment. */
export function envVariable(name: string): string | undefined {
  if (typeof (globalThis as { Deno?: unknown; }).Deno === "undefined") {
    // Node has no permissions to withhold (the variables were ignored there); a browser has
    // no environment
    return nodeProcess()?.env[name];
  }
  try {
    const status = Deno.permissions.querySync?.({ name: "env", variable: name });
    if (status === undefined || status.state !== "granted") return undefined;
    return Deno.env.get(name);
  } catch {
    return undefined; // a runtime without these APIs
  }
}

/** The variables already warned about (each is read once, but tests read them again). */
const warned = new Set<string>();

/**
 * `name`'s value as `parse` reads it, or undefined where it is unset, empty or not granted. A value
 * `parse` refuses (undefined) is ignored with one warning on stderr naming the variable, what
 * it takes and what it got: the settings in code throw for the same values, while these were
 * dropped without a word (`LUCID_THREADS=two` used every core, `LUCID_CPU_KERNELS=JS` ran
 * Wasm). Not an Error: a variable read at import must not make the library unusable.
 */
export function envSetting<T>(
  name: string,
  parse: (value: string) => T | undefined,
  expected: string,
): T | undefined {
  const value = envVariable(name);
  // set but empty (`LUCID_DEBUG=`, how a shell, a Dockerfile or CI turns a variable off): unset
  if (value === undefined || value === "") return undefined;
  const parsed = parse(value);
  if (parsed === undefined) {
    warnOnce(name, `${name} must be ${expected}, got ${JSON.stringify(value)}; ignored`);
  }
  return parsed;
}

/** Prints `message` on stderr, once per `key`. */
export function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  try {
    console.warn(`@lucid/nn: ${message}`);
  } catch {
    // a warning that cannot be written (stderr on a full disk) must not fail what warned
  }
}
