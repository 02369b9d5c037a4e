// The checks in scripts/ run each case in a fresh Deno process that prints its result as one
// JSON line last; this runs one and reads that line.

/**
 * Runs `deno <args>` with stdout piped and stderr shown, and returns the last line of its
 * output parsed as JSON, or null (after saying so, as `label`) if the process failed.
 */
export async function runChildJson<T>(args: readonly string[], label: string): Promise<T | null> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    console.log(`${label}: the run failed (exit ${out.code})`);
    return null;
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}
