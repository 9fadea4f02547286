/**
 * Audience conditions against the shared spec vectors (test/fixtures/condition-cases.json), each
 * one also checked against the official Optimizely SDK as an oracle (see ./sdk-oracle for how the
 * SDK is driven: getVariation through the public API; evaluating both X and ["not", X] recovers
 * the three-valued result).
 *
 * Not checked against the SDK:
 * - `in_list`, Splitstream's own match type.
 * - Cases marked `oracleSkip`, where the SDK throws and makes no decision at all (a null leaf; an
 *   attribute named "hasOwnProperty", which its bucketing code also trips on): those are checked to
 *   really differ, i.e. the SDK lets neither X nor ["not", X] in.
 *
 * Values JSON cannot carry (NaN, ±Infinity, -0, undefined) are written in the fixture as
 * {"$js": "NaN"} etc. and decoded here.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  compileAudienceConditions,
  compileConditionTree,
  compileExperimentAudiences,
  compileLeafCondition,
  describeConditions,
  type EvalContext,
  type Predicate,
  type Tri,
} from "../../src/core/conditions";
import { oracleDatafile, sdkPasses, triFrom, withClient, withPatchableClient } from "./sdk-oracle";
import { mulberry32 } from "../support/generate-datafile";

interface RawCase {
  name: string;
  conditions: unknown;
  attributes: Record<string, unknown>;
  lists?: Record<string, string[]>;
  expected: Tri;
  oracleSkip?: string;
}

interface Case extends RawCase {
  /** Whether `conditions` survives JSON unchanged (no $js specials inside). */
  jsonConditions: boolean;
}

const SPECIALS: Record<string, unknown> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  "-Infinity": Number.NEGATIVE_INFINITY,
  "-0": -0,
  undefined: undefined,
};

function isSpecial(value: unknown): value is { $js: string } {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    "$js" in value
  );
}

/** Replaces {"$js": ...} markers; rebuilds objects with own data properties (keeps "__proto__"). */
function decode(value: unknown): unknown {
  if (isSpecial(value)) {
    if (!(value.$js in SPECIALS)) throw new Error(`unknown $js marker ${value.$js}`);
    return SPECIALS[value.$js];
  }
  if (Array.isArray(value)) return value.map(decode);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

function hasSpecial(value: unknown): boolean {
  if (isSpecial(value)) return true;
  if (typeof value === "object" && value !== null) return Object.values(value).some(hasSpecial);
  return false;
}

function usesInList(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (!Array.isArray(value) && (value as { match?: unknown }).match === "in_list") return true;
  return Object.values(value).some(usesInList);
}

// JSON.parse (not a JSON import) so that an own "__proto__" key stays an own property.
const rawCases = JSON.parse(
  readFileSync(new URL("../fixtures/condition-cases.json", import.meta.url), "utf8"),
) as RawCase[];
const cases: Case[] = rawCases.map((c) => ({
  ...c,
  jsonConditions: !hasSpecial(c.conditions),
  conditions: decode(c.conditions),
  attributes: decode(c.attributes) as Record<string, unknown>,
}));

function contextOf(c: Case): EvalContext {
  const lists = c.lists
    ? new Map(Object.entries(c.lists).map(([key, values]) => [key, new Set(values)] as const))
    : undefined;
  return { attributes: c.attributes, lists };
}

const named = cases.map((c) => [c.name, c] as const);

describe("condition spec vectors", () => {
  it("has enough vectors and unique names", () => {
    expect(cases.length).toBeGreaterThanOrEqual(150);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(named)("%s", (_name, c) => {
    const ctx = contextOf(c);
    expect(compileAudienceConditions(c.conditions)(ctx)).toBe(c.expected);
    if (c.jsonConditions) {
      // Legacy audiences carry the same tree as a JSON string.
      expect(compileAudienceConditions(JSON.stringify(c.conditions))(ctx)).toBe(c.expected);
    }
    if (!Array.isArray(c.conditions)) {
      expect(compileLeafCondition(c.conditions)(ctx)).toBe(c.expected);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The SDK oracle
// ---------------------------------------------------------------------------------------------

async function sdkTri(
  tree: unknown,
  jsonSafe: boolean,
  attributes: Record<string, unknown>,
  legacy = false,
): Promise<Tri> {
  if (!jsonSafe) return withPatchableClient((evaluate) => triFrom(evaluate, tree, attributes));
  // Through a real datafile: the audience as a typed tree, or as a legacy JSON string.
  const load = (t: unknown) =>
    legacy ? oracleDatafile({ legacy: t }) : oracleDatafile({ typed: t });
  const yes = await withClient(load(tree), (client) => sdkPasses(client, attributes));
  const no = await withClient(load(["not", tree]), (client) => sdkPasses(client, attributes));
  if (yes && no) throw new Error("the SDK accepted both X and not X");
  return yes ? true : no ? false : null;
}

describe("condition spec vectors against the Optimizely SDK", () => {
  const oracleCases = named.filter(
    ([, c]) => !usesInList(c.conditions) && c.oracleSkip === undefined,
  );

  it("checks nearly every vector", () => {
    expect(oracleCases.length).toBeGreaterThanOrEqual(cases.length - 25);
  });

  it.each(oracleCases)("%s", async (_name, c) => {
    expect(await sdkTri(c.conditions, c.jsonConditions, c.attributes)).toBe(c.expected);
    if (c.jsonConditions) {
      expect(await sdkTri(c.conditions, true, c.attributes, true)).toBe(c.expected);
    }
  });

  // Put in place after loading (as for non-JSON trees): the SDK may refuse such a datafile.
  it.each(named.filter(([, c]) => c.oracleSkip !== undefined))(
    "differs from the SDK: %s",
    async (_name, c) => {
      // The SDK throws while deciding, so neither X nor ["not", X] gets a variation.
      expect(await sdkTri(c.conditions, false, c.attributes)).toBe(null);
      expect(c.expected).not.toBe(null);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Randomized differential test against the SDK
// ---------------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, so failures are reproducible. */

const VALUE_POOL: unknown[] = [
  "x",
  "y",
  "",
  "X",
  "xyz",
  "1.2.3",
  "2.0",
  "2",
  "1.2.3-beta",
  "1.2.3+b",
  "1.2",
  "1.2.3.4",
  " 1",
  "v1",
  0,
  1,
  -1,
  5,
  1.5,
  -0,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  1e300,
  Number.NaN,
  Infinity,
  -Infinity,
  true,
  false,
  null,
  undefined,
  {},
  ["x"],
];
const NAME_POOL = ["a", "b", "c", "n", "constructor", "toString", "__proto__"];
const MATCH_POOL: unknown[] = [
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
  "bogus",
  null,
];

function randomCase(rand: () => number): { tree: unknown; attributes: Record<string, unknown> } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const randomLeaf = (): unknown => {
    const r = rand();
    const type =
      r < 0.85 ? "custom_attribute" : r < 0.93 ? "third_party_dimension" : "custom_dimension";
    const leaf: Record<string, unknown> = { type, name: pick(NAME_POOL) };
    const match = pick(MATCH_POOL);
    if (match !== undefined) leaf.match = match;
    const value = pick(VALUE_POOL);
    if (value !== undefined) leaf.value = value;
    return leaf;
  };
  const randomTree = (depth: number): unknown => {
    if (depth === 0 || rand() < 0.35) return randomLeaf();
    const r = rand();
    const head: unknown[] =
      r < 0.3 ? ["and"] : r < 0.6 ? ["or"] : r < 0.75 ? ["not"] : r < 0.85 ? ["id"] : [];
    const n = Math.floor(rand() * 4);
    for (let i = 0; i < n; i++) head.push(randomTree(depth - 1));
    return head;
  };
  const attributes: Record<string, unknown> = {};
  for (const name of NAME_POOL) {
    if (name === "__proto__" || rand() < 0.35) continue;
    attributes[name] = pick(VALUE_POOL);
  }
  return { tree: randomTree(3), attributes };
}

const INHERITED: Record<string, unknown> = { a: "x", b: 1, c: true, n: 5, toString: "x" };

describe("random audience trees agree with the SDK", () => {
  // FUZZ_CASES=20000 for a longer run.
  const count = Number(process.env.FUZZ_CASES ?? 300);
  it(`${count} seeded cases`, async () => {
    await withPatchableClient((evaluate) => {
      const rand = mulberry32(20240611);
      for (let i = 0; i < count; i++) {
        const { tree, attributes } = randomCase(rand);
        const expected = triFrom(evaluate, tree, attributes);
        const predicate = compileAudienceConditions(tree);
        // The same attributes as an ordinary object, a null-prototype object, and an object whose
        // prototype carries data (which the SDK, copying own properties, never sees).
        const shapes: Array<[string, Record<string, unknown>]> = [
          ["plain", attributes],
          [
            "null-prototype",
            Object.assign(Object.create(null) as Record<string, unknown>, attributes),
          ],
          [
            "inheriting",
            Object.assign(Object.create(INHERITED) as Record<string, unknown>, attributes),
          ],
        ];
        for (const [shape, attrs] of shapes) {
          const actual = predicate({ attributes: attrs });
          if (actual !== expected) {
            throw new Error(
              `case ${i} (${shape}): got ${String(actual)}, SDK ${String(expected)} for ${describeConditions(tree)} with ${JSON.stringify(attributes)}`,
            );
          }
        }
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Experiments: audienceConditions / audienceIds
// ---------------------------------------------------------------------------------------------

describe("compileExperimentAudiences", () => {
  const yes = { type: "custom_attribute", name: "t", match: "exact", value: true };
  const no = { type: "custom_attribute", name: "t", match: "exact", value: false };
  const unknown = { type: "custom_attribute", name: "missing", match: "exact", value: "x" };
  const audienceDefs = [
    { id: "yes", conditions: ["and", yes] },
    { id: "no", conditions: ["and", no] },
    { id: "unknown", conditions: ["and", unknown] },
    { id: "5", conditions: ["and", yes] },
  ];
  const audiences = new Map<string, Predicate>(
    audienceDefs.map((a) => [a.id, compileAudienceConditions(a.conditions)]),
  );
  const ctx: EvalContext = { attributes: { t: true } };

  const table: Array<[string, unknown, unknown, boolean]> = [
    ["no conditions, no ids: everyone", undefined, [], true],
    ["no conditions, ids: or of ids", undefined, ["no", "yes"], true],
    ["no conditions, ids all false", undefined, ["no", "unknown"], false],
    ["ids: single id", undefined, ["yes"], true],
    ["ids: missing id is unknown", undefined, ["nope"], false],
    ["ids: missing id or yes", undefined, ["nope", "yes"], true],
    ["empty conditions array: everyone, ids ignored", [], ["no"], true],
    ["empty string conditions: falls back to ids", "", ["no"], false],
    ["empty string conditions: falls back to empty ids", "", [], true],
    ["null conditions: falls back to ids", null, ["yes"], true],
    ["single id string", "yes", ["no"], true],
    ["single id string: false", "no", ["yes"], false],
    ["number id is coerced", 5, [], true],
    ["and", ["and", "yes", "no"], [], false],
    ["and: all yes", ["and", "yes", "5"], [], true],
    ["or", ["or", "no", "yes"], [], true],
    ["or with unknown", ["or", "no", "unknown"], [], false],
    ["not no", ["not", "no"], [], true],
    ["not unknown: null counts as false", ["not", "unknown"], [], false],
    ["not missing", ["not", "nope"], [], false],
    ["not of or with unknown and yes", ["not", ["or", "unknown", "yes"]], [], false],
    ["and with not unknown", ["and", "yes", ["not", "unknown"]], [], false],
    ["implicit or of ids", ["no", "yes"], [], true],
    ["first non-string dropped (SDK quirk)", [["and", "yes"], "no"], [], false],
    ["empty and: everyone", ["and"], [], true],
    ["or of nothing", ["or"], [], false],
    ["not of nothing", ["not"], [], false],
    ["nested", ["and", ["or", "no", ["not", "no"]], ["or", "yes"]], [], true],
  ];

  it.each(table)("%s", async (_name, audienceConditions, audienceIds, expected) => {
    const predicate = compileExperimentAudiences(
      audienceConditions,
      audienceIds as string[],
      audiences,
    );
    expect(predicate(ctx)).toBe(expected);
    const text = oracleDatafile({ audiences: audienceDefs, audienceIds, audienceConditions });
    expect(await withClient(text, (client) => sdkPasses(client, { t: true }))).toBe(expected);
  });

  it("treats an audience id naming an Object.prototype member as unknown (the SDK throws)", () => {
    expect(compileExperimentAudiences(["or", "constructor", "yes"], [], audiences)(ctx)).toBe(true);
    expect(compileExperimentAudiences(["not", "__proto__"], [], audiences)(ctx)).toBe(false);
  });

  it("never throws on hostile input", () => {
    const hostile = {
      get length(): number {
        throw new Error("boom");
      },
    };
    expect(compileExperimentAudiences(hostile, [], audiences)(ctx)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Tree compiler and robustness
// ---------------------------------------------------------------------------------------------

describe("compileConditionTree", () => {
  const leaf =
    (v: unknown): Predicate =>
    () =>
      v === "t" ? true : v === "f" ? false : null;

  it.each<[string, unknown, Tri]>([
    ["leaf", "t", true],
    ["and", ["and", "t", "f"], false],
    ["or", ["or", "f", "t"], true],
    ["not null", ["not", "n"], null],
    ["implicit or keeps a string first element", ["t", "f"], true],
    ["non-string first element dropped", [["and", "t"], "f"], false],
  ])("%s", (_name, tree, expected) => {
    expect(compileConditionTree<unknown>(tree, leaf)({ attributes: {} })).toBe(expected);
  });

  it("keeps a non-string first element with implicitOr: all", () => {
    expect(
      compileConditionTree<unknown>([["and", "t"], "f"], leaf, { implicitOr: "all" })({
        attributes: {},
      }),
    ).toBe(true);
    expect(
      compileConditionTree<unknown>([["and", "f"]], leaf, { implicitOr: "all" })({
        attributes: {},
      }),
    ).toBe(false);
  });

  it("evaluates each leaf at most once and short-circuits", () => {
    const calls: string[] = [];
    const counting =
      (v: unknown): Predicate =>
      () => {
        calls.push(String(v));
        return v === "t" ? true : v === "f" ? false : null;
      };
    compileConditionTree<unknown>(["and", "n", "f", "t"], counting)({ attributes: {} });
    expect(calls).toEqual(["n", "f"]);
    calls.length = 0;
    compileConditionTree<unknown>(["or", "n", "t", "f"], counting)({ attributes: {} });
    expect(calls).toEqual(["n", "t"]);
  });

  it("compiles malformed trees to null instead of throwing", () => {
    const cyclic: unknown[] = ["and"];
    cyclic.push(cyclic);
    expect(compileConditionTree<unknown>(cyclic, leaf)({ attributes: {} })).toBe(null);
    const throwing = (): Predicate => {
      throw new Error("bad leaf");
    };
    expect(compileConditionTree<unknown>(["and", "t"], throwing)({ attributes: {} })).toBe(null);
  });
});

describe("compileAudienceConditions", () => {
  it.each([["["], [""], ["{not json"], ["undefined"]])("unparseable string %j is null", (text) => {
    expect(compileAudienceConditions(text)({ attributes: {} })).toBe(null);
  });

  it("treats absent conditions as unknown", () => {
    expect(compileAudienceConditions(undefined)({ attributes: {} })).toBe(null);
    expect(compileAudienceConditions(null)({ attributes: {} })).toBe(null);
  });

  it("compiles the Optimizely dummy audience", () => {
    const dummy =
      '["or", {"match": "exact", "name": "$opt_dummy_attribute", "type": "custom_attribute", "value": "$opt_dummy_value"}]';
    expect(compileAudienceConditions(dummy)({ attributes: {} })).toBe(null);
    expect(
      compileAudienceConditions(dummy)({
        attributes: { $opt_dummy_attribute: "$opt_dummy_value" },
      }),
    ).toBe(true);
  });

  it("reads attributes with own-property semantics whatever their prototype", () => {
    const predicate = compileAudienceConditions([
      "and",
      { type: "custom_attribute", name: "x", match: "exact", value: 1 },
    ]);
    const bare = Object.create(null) as Record<string, unknown>;
    bare.x = 1;
    expect(predicate({ attributes: bare })).toBe(true);
    const inherited = Object.create({ x: 1 }) as Record<string, unknown>;
    expect(predicate({ attributes: inherited })).toBe(null);
  });
});

describe("describeConditions", () => {
  it("renders audience trees", () => {
    expect(
      describeConditions(
        '["and", {"type":"custom_attribute","name":"country","match":"exact","value":"US"}, ["not", {"type":"custom_attribute","name":"bot","match":"exists"}]]',
      ),
    ).toBe('(country exact "US" AND NOT bot exists)');
    expect(describeConditions(["or", "1", "2"], (id) => `#${String(id)}`)).toBe("(#1 OR #2)");
    expect(describeConditions(["and"])).toBe("(everyone)");
    expect(describeConditions("[")).toBe("(unparseable conditions)");
  });
});
