/**
 * Property tests of audience condition evaluation (src/core/conditions.ts) over arbitrary
 * condition trees and attribute values (docs/security.md "Input validation"): it never throws,
 * answers true, false or null (unknown), and obeys three-valued (Kleene) logic — `not` flips a
 * definite result and keeps null, `and`/`or` are the Kleene connectives of their operands'
 * results, whatever compile-time folding does — also through a compiled datafile's audiences.
 * (Agreement with the official SDK on random trees is in test/core/conditions.test.ts.)
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compileAudienceConditions,
  type EvalContext,
  type Tri,
} from "../../../src/core/conditions";
import { decideExperiment, loadDatafile } from "../../../src/core/index";
import {
  SEED,
  defineOwn,
  hostileNumber,
  hostileString,
  prototypeIsClean,
  seedProperties,
} from "../../support/fast-check";

seedProperties(500);

const NAMES = [
  "a",
  "b",
  "n",
  "__proto__",
  "constructor",
  "hasOwnProperty",
  "toString",
  "$opt_bucketing_id",
];
const MATCHES = [
  undefined,
  "exact",
  "exists",
  "substring",
  "gt",
  "ge",
  "lt",
  "le",
  "semver_eq",
  "semver_gt",
  "semver_ge",
  "semver_lt",
  "semver_le",
  "qualified",
  "in_list",
  "bogus",
];
const VERSIONS = ["1.2.3", "1.2", "2", "2.0.0-beta.1", "1.2.3+build.5", "v1", "1..2", "-1", ""];
const LISTS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ["vip", new Set(["x", "1", "DE", "1.2.3"])],
  ["empty", new Set<string>()],
]);

const scalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom("x", "DE", "vip", "empty", "nope", "1", ...VERSIONS),
  hostileString,
  hostileNumber,
  fc.integer({ min: -3, max: 3 }),
  fc.boolean(),
  fc.constantFrom(null, undefined),
);

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        type: fc.constantFrom(
          "custom_attribute",
          "custom_attribute",
          "third_party_dimension",
          "other",
        ),
        name: fc.oneof(fc.constantFrom(...NAMES), hostileString),
        match: fc.constantFrom(...MATCHES),
        value: scalar,
      },
      { requiredKeys: ["type", "name"] },
    ),
  },
  // Not leaves at all: what a broken datafile may hold.
  { weight: 1, arbitrary: fc.constantFrom(null, 7, "and", "a1", {}, true) },
);

/** Condition trees: leaves, operator nodes, implicit-or arrays (leading leaf dropped), garbage. */
const tree: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", maxDepth: 5 },
    leaf,
    fc
      .tuple(fc.constantFrom("and", "or", "not"), fc.array(tie("node"), { maxLength: 4 }))
      .map(([op, operands]) => [op, ...operands]),
    fc.array(tie("node"), { maxLength: 4 }),
  ),
})).node;

const attributeValue: fc.Arbitrary<unknown> = fc.oneof(
  scalar,
  fc.constantFrom([], {}, ["x"], { x: 1 }),
);

/** Attributes as a visitor may send them: own `__proto__` and `hasOwnProperty` included. */
const attributes: fc.Arbitrary<Record<string, unknown>> = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom(...NAMES), hostileString), attributeValue), {
    maxLength: 6,
  })
  .chain((entries) =>
    fc.constantFrom("plain", "null-prototype", "frozen").map((shape) => {
      const object: Record<string, unknown> = shape === "null-prototype" ? Object.create(null) : {};
      for (const [key, value] of entries) defineOwn(object, key, value);
      return shape === "frozen" ? Object.freeze(object) : object;
    }),
  );

/** Evaluates `node` as a typed audience's conditions; throws if the result is not a Tri. */
function evaluate(node: unknown, attrs: Record<string, unknown>): Tri {
  const context: EvalContext = { attributes: attrs, lists: LISTS };
  const result = compileAudienceConditions(node)(context);
  if (result !== true && result !== false && result !== null)
    throw new Error(`not a Tri: ${String(result)}`);
  return result;
}

/** A node's own value (never read as JSON text at the top level): the "or" of just it. */
const valueOf = (node: unknown, attrs: Record<string, unknown>): Tri =>
  evaluate(["or", node], attrs);

const kleeneNot = (a: Tri): Tri => (a === null ? null : !a);
const kleeneAnd = (xs: Tri[]): Tri =>
  xs.includes(false) ? false : xs.includes(null) ? null : true;
const kleeneOr = (xs: Tri[]): Tri => (xs.includes(true) ? true : xs.includes(null) ? null : false);

describe(`condition evaluation (seed ${SEED})`, () => {
  it("never throws and answers true, false or null; the same again; attributes untouched", () => {
    fc.assert(
      fc.property(tree, attributes, (node, attrs) => {
        const before = Object.entries(attrs);
        let first: Tri | undefined;
        expect(() => (first = evaluate(node, attrs))).not.toThrow();
        expect(evaluate(node, attrs)).toBe(first);
        expect(Object.entries(attrs)).toEqual(before);
        expect(prototypeIsClean()).toBe(true);
      }),
    );
  });

  it("the legacy form (the tree as JSON text) means the same as the typed form", () => {
    fc.assert(
      fc.property(tree, attributes, (node, attrs) => {
        const text = JSON.stringify(node);
        fc.pre(text !== undefined);
        expect(evaluate(text, attrs)).toBe(evaluate(JSON.parse(text), attrs));
      }),
    );
  });

  it("unparseable JSON text is unknown (null), never an error", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), attributes, (text, attrs) => {
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        fc.pre(!parses);
        expect(evaluate(text, attrs)).toBeNull();
      }),
    );
  });

  it("not: flips a definite result, keeps null; not of nothing is null; double negation", () => {
    fc.assert(
      fc.property(tree, attributes, (node, attrs) => {
        const a = valueOf(node, attrs);
        expect(evaluate(["not", node], attrs)).toBe(kleeneNot(a));
        expect(evaluate(["not", ["not", node]], attrs)).toBe(a);
        // only the first operand counts
        expect(evaluate(["not", node, ["not", node]], attrs)).toBe(kleeneNot(a));
        expect(evaluate(["not"], attrs)).toBeNull();
      }),
    );
  });

  it("and / or are the Kleene connectives of their operands, in any order", () => {
    fc.assert(
      fc.property(fc.array(tree, { maxLength: 4 }), attributes, (operands, attrs) => {
        const values = operands.map((o) => valueOf(o, attrs));
        const and = evaluate(["and", ...operands], attrs);
        const or = evaluate(["or", ...operands], attrs);
        expect(and).toBe(kleeneAnd(values));
        expect(or).toBe(kleeneOr(values));
        const reversed = [...operands].reverse();
        expect(evaluate(["and", ...reversed], attrs)).toBe(and);
        expect(evaluate(["or", ...reversed], attrs)).toBe(or);
        // De Morgan
        expect(evaluate(["not", ["and", ...operands]], attrs)).toBe(
          evaluate(["or", ...operands.map((o) => ["not", o])], attrs),
        );
        // An array led by a non-string is an "or" of the rest (its first element is dropped).
        expect(evaluate([{ type: "custom_attribute" }, ...operands], attrs)).toBe(
          operands.length === 0 ? false : or,
        );
      }),
    );
  });

  it("laws on definite results: identities, absorbing elements, idempotence", () => {
    fc.assert(
      fc.property(tree, tree, attributes, (p, q, attrs) => {
        const a = valueOf(p, attrs);
        const b = valueOf(q, attrs);
        fc.pre(a !== null && b !== null);
        expect(evaluate(["and", p, q], attrs)).toBe(a && b);
        expect(evaluate(["or", p, q], attrs)).toBe(a || b);
        expect(evaluate(["and", p, ["and"]], attrs)).toBe(a); // and() is true
        expect(evaluate(["or", p, ["or"]], attrs)).toBe(a); // or() is false
        expect(evaluate(["and", p, p], attrs)).toBe(a);
        expect(evaluate(["or", p, ["not", p]], attrs)).toBe(true);
        expect(evaluate(["and", p, ["not", p]], attrs)).toBe(false);
      }),
      { numRuns: 300, maxSkipsPerRun: 1000 },
    );
  });
});

/** A minimal datafile: typed audience a1 = `conditions`, experiment e1 (100% to v1) targeting it. */
function datafileWith(conditions: unknown): unknown {
  return {
    version: "4",
    accountId: "1",
    projectId: "2",
    revision: "1",
    attributes: [],
    audiences: [],
    typedAudiences: [{ id: "a1", name: "a1", conditions }],
    events: [],
    experiments: [
      {
        id: "e1",
        key: "e1",
        status: "Running",
        layerId: "l1",
        variations: [{ id: "v1", key: "v1" }],
        trafficAllocation: [{ entityId: "v1", endOfRange: 10000 }],
        audienceIds: ["a1"],
        forcedVariations: {},
      },
    ],
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: {
      lists: [...LISTS].map(([key, values]) => ({ id: `list_${key}`, key, values: [...values] })),
    },
  };
}

describe(`condition evaluation through a compiled datafile (seed ${SEED})`, () => {
  it("an audience admits exactly the visitors its conditions evaluate to true for", () => {
    let loaded = 0;
    let decided = 0;
    let admittedCount = 0;
    fc.assert(
      fc.property(tree, attributes, hostileString, (node, attrs, visitorId) => {
        const result = loadDatafile(datafileWith(node));
        if (!result.ok) return;
        loaded++;
        const decision = decideExperiment(result.compiled, "e1", { visitorId, attributes: attrs });
        const admitted = evaluate(node, attrs) === true;
        if (decision.reason === "invalid_visitor") return; // an id or attributes the SDK refuses
        decided++;
        if (admitted) admittedCount++;
        expect(decision.reason).toBe(admitted ? "bucketed" : "audience_mismatch");
        expect(decision.variationId).toBe(admitted ? "v1" : null);
      }),
      { numRuns: 800 },
    );
    // The parser rejects malformed trees; enough random ones are well-formed to mean something.
    expect(loaded).toBeGreaterThan(100);
    expect(decided).toBeGreaterThan(50);
    // Both answers occur.
    expect(admittedCount).toBeGreaterThan(10);
    expect(decided - admittedCount).toBeGreaterThan(10);
  });
});
