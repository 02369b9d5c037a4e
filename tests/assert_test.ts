import {
  assert,
  assertAlmostEquals,
  assertEquals,
  AssertionError,
  assertIsError,
  assertNotEquals,
  assertNotStrictEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "./assert.ts";

/** Runs `fn`, which must fail with an AssertionError; returns its message. */
function failureMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof AssertionError) return error.message;
    throw error;
  }
  throw new Error("expected an AssertionError, but nothing was thrown");
}

Deno.test("assert passes on truthy values and fails with the given message", () => {
  assert(1);
  assert("x");
  assertEquals(failureMessage(() => assert(0, "zero is falsy")), "zero is falsy");
});

Deno.test("assertEquals compares deeply and strictly", () => {
  assertEquals({ shape: [2, 3], data: new Float32Array([1, 2]) }, {
    shape: [2, 3],
    data: new Float32Array([1, 2]),
  });
  assertEquals(new Map([["a", 1]]), new Map([["a", 1]]));
  assertEquals(NaN, NaN);
  failureMessage(() => assertEquals<unknown>(1, "1"));
  failureMessage(() => assertEquals<unknown>(new Float32Array([1]), new Float64Array([1])));
  failureMessage(() => assertEquals({ a: [1, 2] }, { a: [1, 3] }));
  assertNotEquals({ a: 1 }, { a: 2 });
});

Deno.test("a custom message is put in front of the diff", () => {
  const message = failureMessage(() => assertEquals([1, 2], [1, 3], "row 0"));
  assert(message.startsWith("row 0\n"), message);
  assert(message.includes("3"), message);
});

Deno.test("assertStrictEquals checks identity", () => {
  const t = { id: 1 };
  assertStrictEquals(t, t);
  failureMessage(() => assertStrictEquals({ id: 1 }, t));
  assertNotStrictEquals<object>({ id: 1 }, t);
  failureMessage(() => assertNotStrictEquals(t, t));
});

Deno.test("assertAlmostEquals follows @std/assert semantics", async (t) => {
  await t.step("explicit absolute tolerance", () => {
    assertAlmostEquals(0.1 + 0.2, 0.3, 1e-16);
    assertAlmostEquals(0.01, 0.02, 0.1);
    failureMessage(() => assertAlmostEquals(0.1 + 0.2, 0.3, 1e-17));
    assertAlmostEquals(Math.fround(0.1), 0.1, 1e-6);
  });
  await t.step("default tolerance is relative to expected", () => {
    assertAlmostEquals(0.1 + 0.2, 0.3);
    assertAlmostEquals(1.000000001e-8, 1.000000002e-8);
    failureMessage(() => assertAlmostEquals(1e-8, 1e-9));
    failureMessage(() => assertAlmostEquals(0.01, 0.02));
    assertAlmostEquals(1e9 + 1, 1e9);
  });
  await t.step("NaN and infinities", () => {
    assertAlmostEquals(NaN, NaN);
    assertAlmostEquals(Infinity, Infinity);
    assertAlmostEquals(-Infinity, -Infinity);
    failureMessage(() => assertAlmostEquals(NaN, 0));
    failureMessage(() => assertAlmostEquals(0, NaN, 1));
    failureMessage(() => assertAlmostEquals(Infinity, -Infinity));
    failureMessage(() => assertAlmostEquals(Infinity, 1e308));
  });
  await t.step("message names both values and the delta", () => {
    const message = failureMessage(() => assertAlmostEquals(1, 2, 0.5, "elem 7"));
    assertEquals(
      message,
      'Expected actual: "1" to be close to "2": delta "1" is greater than "5e-1": elem 7',
    );
  });
});

Deno.test("assertThrows returns the thrown error", () => {
  const thrown = new RangeError("axis 3 out of range");
  const err = assertThrows(
    () => {
      throw thrown;
    },
    RangeError,
    "out of range",
  );
  assertStrictEquals(err, thrown);
  // `err` is typed as RangeError here:
  assertEquals(err.message, "axis 3 out of range");

  const anything = assertThrows(() => {
    throw "not an Error";
  });
  assertEquals(anything, "not an Error");
});

Deno.test("assertThrows fails when nothing throws", () => {
  assertEquals(failureMessage(() => assertThrows(() => 42)), "Expected function to throw.");
  assertEquals(
    failureMessage(() => assertThrows(() => 42, Error, undefined, "shape check")),
    "Expected function to throw: shape check",
  );
});

Deno.test("assertThrows fails on the wrong class or message", () => {
  const throwType = () => {
    throw new TypeError("bad dtype");
  };
  assertThrows(throwType, Error); // subclasses match
  const wrongClass = failureMessage(() => assertThrows(throwType, RangeError));
  assert(wrongClass.includes('"RangeError"'), wrongClass);
  const wrongText = failureMessage(() => assertThrows(throwType, TypeError, "bad shape"));
  assert(wrongText.includes("bad shape"), wrongText);
  const nonError = failureMessage(() =>
    assertThrows(() => {
      throw 1;
    }, Error)
  );
  assertEquals(nonError, "A non-Error object was thrown.");
});

Deno.test("assertRejects resolves to the rejection", async () => {
  const err = await assertRejects(
    () => Promise.reject(new TypeError("no adapter")),
    TypeError,
    "adapter",
  );
  assertEquals(err.message, "no adapter");
  const reason = await assertRejects(() => Promise.reject(7));
  assertEquals(reason, 7);
});

Deno.test("assertRejects fails when the promise resolves or fn throws synchronously", async () => {
  const resolved = await assertRejects(
    () => assertRejects(() => Promise.resolve(1)),
    AssertionError,
  );
  assertEquals(resolved.message, "Expected function to reject.");
  const sync = await assertRejects(
    () =>
      assertRejects(() => {
        throw new Error("sync");
      }),
    AssertionError,
  );
  assertEquals(sync.message, "Function throws when expected to reject.");
  await assertRejects(
    () => assertRejects(() => Promise.reject(new Error("x")), RangeError),
    AssertionError,
    '"RangeError"',
  );
});

Deno.test("assertIsError checks class and message pattern", () => {
  assertIsError(new SyntaxError("Unexpected token"), SyntaxError, /unexpected/i);
  failureMessage(() => assertIsError("oops"));
  failureMessage(() => assertIsError(new Error("a"), Error, /b/));
});
