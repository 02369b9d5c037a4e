// The library's environment variables (LUCID_DEBUG, LUCID_CPU_KERNELS, LUCID_THREADS), read
// without ever asking for a permission: a library must not stop a program at a prompt by being
// imported (reading LUCID_THREADS when the cpu device was made asked for env access at every
// import, and `deno task export --help` waited at that prompt).

/** `name`'s value, or undefined where it is unset, not granted, or there is no Deno. */
export function envVariable(name: string): string | undefined {
  try {
    const status = Deno.permissions.querySync?.({ name: "env", variable: name });
    if (status === undefined || status.state !== "granted") return undefined;
    return Deno.env.get(name);
  } catch {
    return undefined; // no Deno, or a runtime without these APIs
  }
}
