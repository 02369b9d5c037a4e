// Debug output: LUCID_DEBUG=1 prints each kernel launch, 2 also the IR of each new plan, 3 also
// the generated source. Read once from the environment when permission allows; settable from
// code with setDebug.

import { fmt } from "../validate.ts";
import { envSetting } from "./env.ts";

let level: number | null = null;

function readEnv(): number {
  return envSetting(
    "LUCID_DEBUG",
    (v) => /^[0-9]+$/.test(v) ? Number(v) : undefined,
    "a non-negative integer (0 quiet, 1 launches, 2 also IR, 3 also source)",
  ) ?? 0;
}

/** The current debug level (0: quiet). */
export function debugLevel(): number {
  if (level === null) level = readEnv();
  return level;
}

/** Sets the debug level: 0 quiet, 1 launches, 2 also IR, 3 also generated source. */
export function setDebug(value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`setDebug: level must be a non-negative integer, got ${fmt(value)}`);
  }
  level = value;
}

/**
 * Prints one debug message, or nothing where it cannot be written: debug output never fails a
 * computation (stderr on a full disk made every realization reject with "No space left on
 * device", leaving the buffers it had allocated until garbage collection).
 */
export function debugLog(message: string): void {
  try {
    console.error(`[lucid] ${message}`);
  } catch {
    // nowhere to say it either
  }
}
