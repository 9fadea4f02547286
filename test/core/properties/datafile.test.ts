/**
 * Property tests of the datafile parser (src/core/datafile-parse.ts) and loader (src/core/index.ts)
 * on bad input (docs/security.md "Input validation"): arbitrary values and texts, and random
 * mutations of valid datafiles. Never a throw; either a datafile, or problems that each name a
 * place that exists in the input (or the missing field's parent) with a message; nothing leaks
 * into Object.prototype; what loads compiles and decides; a valid datafile survives a JSON round
 * trip unchanged.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_PROBLEMS, parseDatafile, type ParseResult } from "../../../src/core/datafile-parse";
import { decideAll, loadDatafile, type Problem } from "../../../src/core/index";
import {
  SEED,
  defineOwn,
  hostileJson,
  hostileKey,
  hostileNumber,
  hostileString,
  prototypeIsClean,
  seedProperties,
} from "../../support/fast-check";
import {
  parsePath,
  resolvePath as resolve,
  UNRESOLVED,
  type Segment,
} from "../../support/json-path";

seedProperties(300);

const FIXTURES = new URL("../../fixtures/datafiles/", import.meta.url);
const VALID_FIXTURES = ["valid-web.json", "decisions.json", "edge.json"] as const;
const texts = new Map<string, string>(
  VALID_FIXTURES.map((name) => [name, readFileSync(new URL(name, FIXTURES), "utf8")]),
);
const fixture = (name: string): unknown => JSON.parse(texts.get(name)!);

/** Checks the shape of a parse result against `input` (the value the parser saw). */
function checkResult(result: ParseResult | ReturnType<typeof loadDatafile>, input: unknown): void {
  expect(typeof result.ok).toBe("boolean");
  expect(Array.isArray(result.problems)).toBe(true);
  expect(result.problems.length).toBeLessThanOrEqual(MAX_PROBLEMS + 1);
  for (const problem of result.problems) checkProblem(problem, input);
  const errors = result.problems.filter((p) => p.severity === "error");
  // ok ⇔ no errors: a rejected input always says why, an accepted one has warnings only.
  expect(errors.length === 0).toBe(result.ok);
}

function checkProblem(problem: Problem, input: unknown): void {
  expect(Object.keys(problem).sort()).toEqual(["message", "path", "severity"]);
  expect(["error", "warning"]).toContain(problem.severity);
  expect(typeof problem.message).toBe("string");
  expect(problem.message.trim().length).toBeGreaterThan(0);
  const segments = parsePath(problem.path);
  if (segments.length === 0) return;
  // The place itself, or (a missing required field) its parent, exists in the input.
  const parent = resolve(input, segments.slice(0, -1));
  expect(parent, `${problem.path}: ${problem.message}`).not.toBe(UNRESOLVED);
}

function parsesTo(input: unknown): ParseResult {
  let result: ParseResult | undefined;
  expect(() => (result = parseDatafile(input))).not.toThrow();
  return result!;
}

/** Every path into a JSON value, parents before children. */
function pathsOf(value: unknown, prefix: Segment[] = [], out: Segment[][] = []): Segment[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out));
  else if (typeof value === "object" && value !== null)
    for (const key of Object.keys(value))
      pathsOf((value as Record<string, unknown>)[key], [...prefix, key], out);
  return out;
}

const fixturePaths = new Map(VALID_FIXTURES.map((name) => [name, pathsOf(fixture(name)).slice(1)]));

type Mutation =
  | { kind: "replace"; value: unknown }
  | { kind: "delete" }
  | { kind: "addKey"; key: string; value: unknown }
  | { kind: "duplicate" }
  | { kind: "wrap" };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("replace" as const),
    value: fc.oneof(
      hostileJson,
      hostileString,
      hostileNumber,
      fc.constantFrom(null, true, false, [], {}, "Running", "10000", 10_000, 0),
    ),
  }),
  fc.record({ kind: fc.constant("delete" as const) }),
  fc.record({ kind: fc.constant("addKey" as const), key: hostileKey, value: hostileJson }),
  fc.record({ kind: fc.constant("duplicate" as const) }),
  fc.record({ kind: fc.constant("wrap" as const) }),
);

/** Applies `m` at `path` (which exists in `root`) in place. */
function mutate(root: unknown, path: readonly Segment[], m: Mutation): void {
  const parent = resolve(root, path.slice(0, -1)) as Record<string | number, unknown> | unknown[];
  const last = path[path.length - 1]!;
  const target = (parent as Record<string | number, unknown>)[last];
  switch (m.kind) {
    case "replace":
      (parent as Record<string | number, unknown>)[last] = structuredClone(m.value);
      break;
    case "delete":
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete (parent as Record<string, unknown>)[last];
      break;
    case "addKey":
      if (typeof target === "object" && target !== null && !Array.isArray(target))
        defineOwn(target, m.key, structuredClone(m.value));
      else (parent as Record<string | number, unknown>)[last] = { [m.key]: target };
      break;
    case "duplicate":
      if (Array.isArray(parent)) parent.splice(last as number, 0, structuredClone(target));
      else if (Array.isArray(target)) target.push(structuredClone(target[0]));
      break;
    case "wrap":
      (parent as Record<string | number, unknown>)[last] = [target];
      break;
  }
}

const mutatedDatafile = fc
  .constantFrom(...VALID_FIXTURES)
  .chain((name) =>
    fc.tuple(
      fc.constant(name),
      fc.array(fc.tuple(fc.nat(), mutation), { minLength: 1, maxLength: 4 }),
    ),
  )
  .map(([name, steps]) => {
    const datafile = fixture(name);
    for (const [pick, m] of steps) {
      // Paths of the current (already mutated) value, so each step lands somewhere that exists.
      const paths = pathsOf(datafile).slice(1);
      if (paths.length === 0) break;
      mutate(datafile, paths[pick % paths.length]!, m);
    }
    return { name, datafile, steps };
  });

describe(`parseDatafile on arbitrary input (seed ${SEED})`, () => {
  it("valid fixtures are valid (the properties below start from them)", () => {
    for (const name of VALID_FIXTURES) {
      expect(parseDatafile(texts.get(name)).ok, name).toBe(true);
      expect(fixturePaths.get(name)!.length).toBeGreaterThan(100);
    }
  });

  it("any value: never throws; problems name existing places, with messages", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          hostileJson,
          fc.anything({
            withBigInt: true,
            withBoxedValues: true,
            withDate: true,
            withMap: true,
            withSet: true,
            withNullPrototype: true,
            withObjectString: true,
            withSparseArray: true,
            withTypedArray: true,
            withUnicodeString: true,
          }),
        ),
        (value) => {
          const result = parsesTo(value);
          checkResult(result, value);
          expect(prototypeIsClean()).toBe(true);
        },
      ),
    );
  });

  it("any text: never throws; bad JSON is one short error at $", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 200 }),
          fc.string({ unit: "binary", minLength: 5000, maxLength: 20_000 }),
          hostileJson.map((v) => JSON.stringify(v)),
          fc
            .constantFrom(...VALID_FIXTURES)
            .chain((name) =>
              fc.nat().map((cut) => texts.get(name)!.slice(0, cut % texts.get(name)!.length)),
            ),
        ),
        (text) => {
          const result = parsesTo(text);
          let parsed: unknown;
          let isJson = true;
          try {
            parsed = JSON.parse(text);
          } catch {
            isJson = false;
          }
          if (!isJson) {
            expect(result.ok).toBe(false);
            expect(result.problems).toHaveLength(1);
            expect(result.problems[0]).toMatchObject({ path: "$", severity: "error" });
            // A clear message, not an echo of the whole input (V8 quotes a short excerpt).
            expect(result.problems[0]!.message).toMatch(/^invalid JSON: \S/);
            expect(result.problems[0]!.message.length).toBeLessThan(400);
          } else {
            checkResult(result, parsed);
            // Text and parsed value are judged alike (a string value would be read as text again).
            if (typeof parsed !== "string") expect(parseDatafile(parsed)).toEqual(result);
          }
        },
      ),
    );
  });
});

describe(`parseDatafile on mutated valid datafiles (seed ${SEED})`, () => {
  it("never throws; problems point into the mutated input; ok ⇔ no errors", () => {
    fc.assert(
      fc.property(mutatedDatafile, ({ datafile }) => {
        const result = parsesTo(datafile);
        checkResult(result, datafile);
        // Its JSON text is judged the same way (own __proto__ keys survive JSON.parse).
        const text = JSON.stringify(datafile);
        expect(parseDatafile(text)).toEqual(parseDatafile(JSON.parse(text)));
        expect(prototypeIsClean()).toBe(true);
      }),
      { numRuns: 600 },
    );
  });

  it("loadDatafile: never throws; what parses compiles and decides any visitor", () => {
    let loadedOk = 0;
    fc.assert(
      fc.property(mutatedDatafile, hostileString, ({ datafile }, visitorId) => {
        let loaded: ReturnType<typeof loadDatafile> | undefined;
        expect(() => (loaded = loadDatafile(datafile))).not.toThrow();
        checkResult(loaded!, datafile);
        const parsed = parseDatafile(datafile);
        // Loading adds nothing to parsing but compilation, which never fails on parsed input.
        expect(loaded!.ok).toBe(parsed.ok);
        expect(loaded!.problems).toEqual(parsed.problems);
        if (loaded!.ok) {
          loadedOk++;
          const decisions = decideAll(loaded!.compiled, { visitorId, attributes: {} });
          expect(decisions).toHaveLength(loaded!.compiled.experiments.length);
        }
      }),
      { numRuns: 300 },
    );
    // Both outcomes are exercised: mutations that still load, and ones that do not.
    expect(loadedOk).toBeGreaterThan(30);
    expect(loadedOk).toBeLessThan(270);
  });

  it("a datafile that parses stays valid, and the same, through a JSON round trip", () => {
    let valid = 0;
    fc.assert(
      fc.property(mutatedDatafile, ({ datafile }) => {
        const first = parseDatafile(datafile);
        fc.pre(first.ok);
        if (!first.ok) return;
        valid++;
        const again = parseDatafile(JSON.stringify(first.datafile));
        expect(again.ok).toBe(true);
        if (!again.ok) return;
        expect(again.problems).toEqual(first.problems);
        // (JSON has no -0: compare with the datafile as JSON sees it.)
        expect(again.datafile).toEqual(JSON.parse(JSON.stringify(first.datafile)));
        // And the defaults it filled in are stable: a second round trip changes nothing.
        expect(JSON.stringify(parseDatafile(JSON.stringify(again.datafile)))).toBe(
          JSON.stringify(again),
        );
      }),
      { numRuns: 300 },
    );
    expect(valid).toBe(300);
  });

  it("the valid fixtures round-trip through JSON unchanged", () => {
    for (const name of VALID_FIXTURES) {
      const first = parseDatafile(texts.get(name));
      expect(first.ok).toBe(true);
      if (!first.ok) continue;
      const again = parseDatafile(JSON.stringify(first.datafile));
      expect(again).toEqual(first);
    }
  });
});
