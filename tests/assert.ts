/**
 * Minimal assertion helpers for the @lucid/nn test suite.
 *
 * JSR (and therefore `jsr:@std/assert`) is not reachable from this project's
 * build machines, so these helpers re-create the subset of `@std/assert` that
 * the tests use, on top of `node:assert/strict`. Names, parameter order,
 * overloads and return values follow `@std/assert` 1.x, so moving to the real
 * package later is a matter of pointing the import at `jsr:@std/assert`.
 *
 * Every failure throws Node's `AssertionError` (re-exported here as
 * {@linkcode AssertionError}).
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/**
 * The error thrown by every failing assertion in this module.
 *
 * This is Node's `AssertionError` (from `node:assert`), so failures raised by
 * `node:assert` itself are instances of it too. Unlike `@std/assert`'s class,
 * its constructor takes an options object: `new AssertionError({ message })`.
 */
export const AssertionError = nodeAssert.AssertionError;

/** Instance type of {@linkcode AssertionError}. */
export type AssertionError = nodeAssert.AssertionError;

/**
 * Any constructor of `E`; used to name the expected class of an error.
 */
// deno-lint-ignore no-explicit-any
type ErrorConstructor<E> = abstract new (...args: any[]) => E;

/** Builds the `": msg"` / `"."` suffix that `@std/assert` appends to messages. */
function suffix(msg: string | undefined): string {
  return msg ? `: ${msg}` : ".";
}

/** Throws an {@linkcode AssertionError} with the given message. */
function failWith(message: string): never {
  throw new AssertionError({ message });
}

/** Renders a value for a failure message. */
function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" && Object.is(value, -0)) return "-0";
  try {
    return Deno.inspect(value, { depth: 4, colors: false });
  } catch {
    return String(value);
  }
}

/**
 * Runs a `node:assert` check; if it fails and `msg` is given, re-throws with
 * `msg` in front of Node's message (which holds the diff), so that a caller's
 * message adds context instead of hiding the diff.
 */
function withMessage(check: () => void, msg: string | undefined): void {
  try {
    check();
  } catch (error) {
    if (msg && error instanceof AssertionError) {
      throw new AssertionError({
        message: `${msg}\n${error.message}`,
        actual: error.actual,
        expected: error.expected,
        operator: error.operator,
      });
    }
    throw error;
  }
}

/**
 * Asserts that `expr` is truthy.
 *
 * @example Usage
 * ```ts
 * assert(1 + 1 === 2);
 * ```
 *
 * @param expr The expression to test.
 * @param msg Message to use if the assertion fails.
 */
export function assert(expr: unknown, msg = ""): asserts expr {
  if (!expr) failWith(msg);
}

/**
 * Asserts that `actual` and `expected` are deeply equal, with the rules of
 * Node's `assert.deepStrictEqual`: primitives are compared with `Object.is`
 * (so `NaN` equals `NaN` and `0` differs from `-0`), prototypes and typed
 * array kinds must match, and Maps, Sets, Dates and RegExps are compared by
 * content.
 *
 * @example Usage
 * ```ts
 * assertEquals({ shape: [2, 3] }, { shape: [2, 3] });
 * ```
 *
 * @param actual The actual value.
 * @param expected The expected value.
 * @param msg Context to put in front of the diff if the assertion fails.
 */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  withMessage(() => nodeAssert.deepStrictEqual(actual, expected), msg);
}

/**
 * Asserts that `actual` and `expected` are not deeply equal (the negation of
 * {@linkcode assertEquals}).
 *
 * @param actual The actual value.
 * @param expected The value it must differ from.
 * @param msg Context to put in front of the message if the assertion fails.
 */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  withMessage(() => nodeAssert.notDeepStrictEqual(actual, expected), msg);
}

/**
 * Asserts that `actual` and `expected` are the same value by `Object.is`
 * (identity for objects).
 *
 * @example Usage
 * ```ts
 * const t = { id: 1 };
 * assertStrictEquals(t, t);
 * ```
 *
 * @param actual The actual value.
 * @param expected The expected value.
 * @param msg Context to put in front of the message if the assertion fails.
 */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  withMessage(() => nodeAssert.strictEqual(actual, expected), msg);
}

/**
 * Asserts that `actual` and `expected` are not the same value by `Object.is`.
 *
 * @param actual The actual value.
 * @param expected The value it must not be.
 * @param msg Context to put in front of the message if the assertion fails.
 */
export function assertNotStrictEquals<T>(
  actual: T,
  expected: T,
  msg?: string,
): void {
  withMessage(() => nodeAssert.notStrictEqual(actual, expected), msg);
}

/**
 * Asserts that two numbers are equal within `tolerance`, as `@std/assert`
 * 1.x does:
 *
 * - values that are `Object.is`-equal pass (so `NaN` matches `NaN` and
 *   `Infinity` matches `Infinity`); `NaN` against any other number fails;
 * - otherwise it passes when `|expected - actual| <= tolerance`;
 * - when `tolerance` is omitted it is relative: `|expected| * 1e-7`
 *   (or `1e-7` when `expected` is not finite). Pass an explicit absolute
 *   tolerance for values near zero and for float32 results.
 *
 * @example Usage
 * ```ts
 * assertAlmostEquals(0.1 + 0.2, 0.3);
 * assertAlmostEquals(Math.fround(0.1), 0.1, 1e-6);
 * ```
 *
 * @param actual The actual number.
 * @param expected The expected number.
 * @param tolerance The largest allowed absolute difference.
 * @param msg Message to append if the assertion fails.
 */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance?: number,
  msg?: string,
): void {
  if (Object.is(actual, expected)) return;
  const delta = Math.abs(expected - actual);
  const tol = tolerance ?? (isFinite(expected) ? Math.abs(expected * 1e-7) : 1e-7);
  if (delta <= tol) return;
  const f = (n: number) => Number.isInteger(n) ? String(n) : n.toExponential();
  failWith(
    `Expected actual: "${f(actual)}" to be close to "${f(expected)}": ` +
      `delta "${f(delta)}" is greater than "${f(tol)}"${suffix(msg)}`,
  );
}

/**
 * Asserts that `actual` is neither `null` nor `undefined`.
 *
 * @param actual The value to test.
 * @param msg Message to append if the assertion fails.
 */
export function assertExists<T>(
  actual: T,
  msg?: string,
): asserts actual is NonNullable<T> {
  if (actual === undefined || actual === null) {
    failWith(`Expected actual: "${actual}" to not be null or undefined${suffix(msg)}`);
  }
}

/**
 * Asserts that `actual` is an instance of `expectedType`.
 *
 * @param actual The value to test.
 * @param expectedType The class it must be an instance of.
 * @param msg Message to append if the assertion fails.
 */
// deno-lint-ignore no-explicit-any
export function assertInstanceOf<T extends abstract new (...args: any) => any>(
  actual: unknown,
  expectedType: T,
  msg = "",
): asserts actual is InstanceType<T> {
  if (actual instanceof expectedType) return;
  const got = actual === null
    ? "null"
    : typeof actual === "object"
    ? (actual.constructor?.name ?? "Object")
    : typeof actual;
  failWith(
    `Expected object to be an instance of "${expectedType.name}" but was "${got}"${suffix(msg)}`,
  );
}

/**
 * Asserts that `actual > expected`.
 *
 * @param actual The actual value.
 * @param expected The value it must exceed.
 * @param msg Message to append if the assertion fails.
 */
export function assertGreater<T>(actual: T, expected: T, msg?: string): void {
  if (actual > expected) return;
  failWith(`Expect ${show(actual)} > ${show(expected)}${suffix(msg)}`);
}

/**
 * Asserts that `actual >= expected`.
 *
 * @param actual The actual value.
 * @param expected The lower bound.
 * @param msg Message to append if the assertion fails.
 */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (actual >= expected) return;
  failWith(`Expect ${show(actual)} >= ${show(expected)}${suffix(msg)}`);
}

/**
 * Asserts that `actual < expected`.
 *
 * @param actual The actual value.
 * @param expected The value it must stay below.
 * @param msg Message to append if the assertion fails.
 */
export function assertLess<T>(actual: T, expected: T, msg?: string): void {
  if (actual < expected) return;
  failWith(`Expect ${show(actual)} < ${show(expected)}${suffix(msg)}`);
}

/**
 * Asserts that `actual <= expected`.
 *
 * @param actual The actual value.
 * @param expected The upper bound.
 * @param msg Message to append if the assertion fails.
 */
export function assertLessOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (actual <= expected) return;
  failWith(`Expect ${show(actual)} <= ${show(expected)}${suffix(msg)}`);
}

/**
 * Asserts that the string `actual` contains `expected`.
 *
 * @param actual The string to search.
 * @param expected The substring it must contain.
 * @param msg Message to append if the assertion fails.
 */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (actual.includes(expected)) return;
  failWith(`Expected actual: "${actual}" to contain: "${expected}"${suffix(msg)}`);
}

/**
 * Asserts that the string `actual` matches the regular expression `expected`.
 *
 * @param actual The string to test.
 * @param expected The pattern it must match.
 * @param msg Message to append if the assertion fails.
 */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  if (expected.test(actual)) return;
  failWith(`Expected actual: "${actual}" to match: "${expected}"${suffix(msg)}`);
}

/**
 * Asserts that `error` is an `Error`, optionally of class `ErrorClass`, and
 * optionally that its message includes (string) or matches (RegExp)
 * `msgMatches`.
 *
 * @param error The value to test.
 * @param ErrorClass The class the error must be an instance of.
 * @param msgMatches Text the message must include, or a pattern it must match.
 * @param msg Message to append if the assertion fails.
 */
export function assertIsError<E extends Error = Error>(
  error: unknown,
  ErrorClass?: ErrorConstructor<E>,
  msgMatches?: string | RegExp,
  msg?: string,
): asserts error is E {
  const s = suffix(msg);
  if (!(error instanceof Error)) {
    failWith(`Expected "error" to be an Error object${s}`);
  }
  if (ErrorClass && !(error instanceof ErrorClass)) {
    failWith(
      `Expected error to be instance of "${ErrorClass.name}", ` +
        `but was "${error.constructor?.name}"${s}`,
    );
  }
  if (msgMatches === undefined) return;
  // deno-lint-ignore no-control-regex
  const message = error.message.replace(/\x1b\[[0-9;]*m/g, "");
  const ok = typeof msgMatches === "string"
    ? message.includes(msgMatches)
    : msgMatches.test(message);
  if (!ok) {
    const how = typeof msgMatches === "string" ? "include" : "match";
    failWith(
      `Expected error message to ${how} ${show(msgMatches)}, but got ${show(message)}${s}`,
    );
  }
}

/**
 * Executes `fn` and asserts that it throws. Returns what was thrown.
 *
 * @example Usage
 * ```ts
 * const err = assertThrows(() => JSON.parse("{"), SyntaxError);
 * ```
 *
 * @param fn The function that must throw.
 * @param msg Message to append if the assertion fails.
 * @returns The value that `fn` threw.
 */
export function assertThrows(fn: () => unknown, msg?: string): unknown;
/**
 * Executes `fn` and asserts that it throws an instance of `ErrorClass`
 * whose message includes `msgIncludes` (when given). Returns the error.
 *
 * @param fn The function that must throw.
 * @param ErrorClass The class the thrown error must be an instance of.
 * @param msgIncludes Text the error message must include.
 * @param msg Message to append if the assertion fails.
 * @returns The error that `fn` threw, typed as `E`.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass: ErrorConstructor<E>,
  msgIncludes?: string,
  msg?: string,
): E;
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  errorClassOrMsg?: ErrorConstructor<E> | string,
  msgIncludesOrMsg?: string,
  msg?: string,
): E | Error | unknown {
  let ErrorClass: ErrorConstructor<E> | undefined;
  let msgIncludes: string | undefined;
  if (typeof errorClassOrMsg === "string") {
    msg = errorClassOrMsg;
  } else {
    ErrorClass = errorClassOrMsg;
    msgIncludes = msgIncludesOrMsg;
  }
  try {
    fn();
  } catch (error) {
    if (ErrorClass) {
      if (!(error instanceof Error)) {
        failWith(`A non-Error object was thrown${suffix(msg)}`);
      }
      assertIsError(error, ErrorClass, msgIncludes, msg);
    }
    return error;
  }
  failWith(`Expected function to throw${suffix(msg)}`);
}

/**
 * Executes `fn`, which must return a promise, and asserts that the promise
 * rejects. Resolves to the rejection reason. A synchronous throw from `fn`
 * fails the assertion, as in `@std/assert`.
 *
 * @example Usage
 * ```ts
 * await assertRejects(() => Promise.reject(new Error("boom")));
 * ```
 *
 * @param fn The function whose promise must reject.
 * @param msg Message to append if the assertion fails.
 * @returns The rejection reason.
 */
export function assertRejects(
  fn: () => PromiseLike<unknown>,
  msg?: string,
): Promise<unknown>;
/**
 * Executes `fn`, which must return a promise, and asserts that the promise
 * rejects with an instance of `ErrorClass` whose message includes
 * `msgIncludes` (when given). Resolves to the error.
 *
 * @param fn The function whose promise must reject.
 * @param ErrorClass The class the rejection reason must be an instance of.
 * @param msgIncludes Text the error message must include.
 * @param msg Message to append if the assertion fails.
 * @returns The rejection error, typed as `E`.
 */
export function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass: ErrorConstructor<E>,
  msgIncludes?: string,
  msg?: string,
): Promise<E>;
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  errorClassOrMsg?: ErrorConstructor<E> | string,
  msgIncludesOrMsg?: string,
  msg?: string,
): Promise<E | Error | unknown> {
  let ErrorClass: ErrorConstructor<E> | undefined;
  let msgIncludes: string | undefined;
  if (typeof errorClassOrMsg === "string") {
    msg = errorClassOrMsg;
  } else {
    ErrorClass = errorClassOrMsg;
    msgIncludes = msgIncludesOrMsg;
  }
  let promise: PromiseLike<unknown>;
  try {
    promise = fn();
  } catch {
    failWith(`Function throws when expected to reject${suffix(msg)}`);
  }
  if (
    promise === null || typeof promise !== "object" ||
    typeof (promise as PromiseLike<unknown>).then !== "function"
  ) {
    failWith(`Function throws when expected to reject${suffix(msg)}`);
  }
  try {
    await promise;
  } catch (error) {
    if (ErrorClass) {
      if (!(error instanceof Error)) {
        failWith(`A non-Error object was rejected${suffix(msg)}`);
      }
      assertIsError(error, ErrorClass, msgIncludes, msg);
    }
    return error;
  }
  failWith(`Expected function to reject${suffix(msg)}`);
}

/**
 * Fails unconditionally.
 *
 * @param msg Message to append to "Failed assertion".
 */
export function fail(msg?: string): never {
  failWith(`Failed assertion${suffix(msg)}`);
}

/**
 * Fails unconditionally; marks code that must never be reached.
 *
 * @param msg Message to use instead of "Unreachable".
 */
export function unreachable(msg?: string): never {
  failWith(msg ?? "Unreachable");
}
