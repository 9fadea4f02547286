/**
 * Shared fast-check setup of the property tests (test/core/properties, test/security).
 *
 * Runs are seeded, so a failure reproduces: the seed is in every describe title and in
 * fast-check's failure report (with the path of the shrunk counterexample). Replay one with
 * `FC_SEED=<seed> npx vitest run …` (Node: `process.env`; inside workerd the default seed is used
 * unless the test file passes another).
 */
import fc from "fast-check";

const fromEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
  ?.env?.FC_SEED;

/** The seed of this run: `FC_SEED`, else a fixed default. */
export const SEED = fromEnv !== undefined && /^-?\d+$/.test(fromEnv) ? Number(fromEnv) : 20_260_901;

/** Seeds fast-check for the calling test file; `numRuns` is the default number of runs per property. */
export function seedProperties(numRuns: number): void {
  fc.configureGlobal({ seed: SEED, numRuns, endOnFailure: true });
}

/** Object keys that break naive code: prototype members and names with special meaning. */
export const HOSTILE_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "toJSON",
  "then",
  "length",
  "",
] as const;

/** Strings that break naive code: markup, separators, controls, lone surrogates, huge ones. */
export const HOSTILE_STRINGS = [
  "",
  " ",
  "</script><script>alert(1)</script>",
  '"><img src=x onerror=alert(1)>',
  "<!--",
  "\u2028\u2029",
  "\r\nSet-Cookie: x=1",
  "%0d%0aSet-Cookie:%20x=1",
  "a;b,c d=e",
  "\u0000\u001f\u007f",
  "\ud800",
  "\udfff\ud800",
  "😀",
  "ünïcödé €",
  "%",
  "%E0%A4%A",
  "undefined",
  "null",
  "NaN",
  "1e999",
  "-0",
  "x".repeat(10_000),
  ...HOSTILE_KEYS,
] as const;

/** A string: usually short and arbitrary (full unicode, lone surrogates included), sometimes hostile. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
);

/** An object key: arbitrary or hostile. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_KEYS) },
);

/** A number, including the ones JSON cannot hold and the edges of safe integers. */
export const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    0,
    -0,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    2 ** 53,
    -(2 ** 53),
    2 ** 53 + 2,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    10_000,
    10_001,
    -1,
  ),
);

/**
 * Sets `key` on `target` as an own, enumerable data property — also `__proto__`, which plain
 * assignment would turn into a prototype change (JSON.parse makes such own properties too).
 */
export function defineOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** JSON-like values (what JSON.parse can return) whose keys and strings are hostile. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    hostileString,
    fc.array(tie("value"), { maxLength: 5 }),
    fc.array(fc.tuple(hostileKey, tie("value")), { maxLength: 5 }).map((entries) => {
      const object: Record<string, unknown> = {};
      for (const [key, value] of entries) defineOwn(object, key, value);
      return object;
    }),
  ),
})).value;

/** The value a hostile JSON value becomes through its JSON text (what a server would parse). */
export function viaJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value) ?? "null");
}

/** True when nothing has been added to Object.prototype (a prototype-pollution check). */
export function prototypeIsClean(): boolean {
  const probe: Record<string, unknown> = {};
  for (const key in probe) return false;
  return Object.getOwnPropertyNames(Object.prototype).every((name) => BASELINE_PROTO.has(name));
}
const BASELINE_PROTO = new Set(Object.getOwnPropertyNames(Object.prototype));

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` with each lone surrogate replaced by U+FFFD (String#toWellFormed, ES2024). */
export function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\ufffd");
}
