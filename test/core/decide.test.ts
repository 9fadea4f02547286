import { describe, expect, it } from "vitest";
import { compileDatafile } from "../../src/core/compile";
import type { Datafile } from "../../src/core/datafile-types";
import { decideAll, decideExperiment, DECISION_REASONS, type Visitor } from "../../src/core/decide";
import { decideFlag } from "../../src/core/features";
import fixture from "../fixtures/datafiles/decisions.json";

const compiled = compileDatafile(fixture as unknown as Datafile);

// Buckets in experiment 1886780721 (docs/decisions.md): ppid1 → 5254, ppid2 → 4299, ppid3 → 5439.
describe("decideExperiment: one case per reason", () => {
  it.each<
    [string, string, Visitor, { variationKey: string | null; reason: string; bucket?: number }]
  >([
    [
      "unknown key",
      "nope",
      { visitorId: "ppid1" },
      { variationKey: null, reason: "experiment_not_found" },
    ],
    [
      "rollout rule keys are not experiments",
      "rule_de",
      { visitorId: "ppid1" },
      { variationKey: null, reason: "experiment_not_found" },
    ],
    [
      "bucket 5254 falls in [5254, 5255)",
      "vector_test",
      { visitorId: "ppid1" },
      { variationKey: "high", reason: "bucketed", bucket: 5254 },
    ],
    [
      "bucket 4299 falls in [0, 4300)",
      "vector_test",
      { visitorId: "ppid2" },
      { variationKey: "low", reason: "bucketed", bucket: 4299 },
    ],
    [
      "bucket 5439 is beyond the last range",
      "vector_test",
      { visitorId: "ppid3" },
      { variationKey: null, reason: "outside_traffic", bucket: 5439 },
    ],
    [
      "$opt_bucketing_id replaces the visitor id for hashing",
      "vector_test",
      { visitorId: "someone", attributes: { $opt_bucketing_id: "ppid2" } },
      { variationKey: "low", reason: "bucketed", bucket: 4299 },
    ],
    [
      "a non-string $opt_bucketing_id is ignored",
      "vector_test",
      { visitorId: "ppid1", attributes: { $opt_bucketing_id: 42 } },
      { variationKey: "high", reason: "bucketed", bucket: 5254 },
    ],
    [
      "forcedVariations whitelist",
      "vector_test",
      { visitorId: "qa-user" },
      { variationKey: "high", reason: "forced_variation" },
    ],
    [
      "paused beats the whitelist",
      "paused",
      { visitorId: "qa-user" },
      { variationKey: null, reason: "not_running" },
    ],
    [
      "sticky keeps a variation outside today's allocation",
      "vector_test",
      { visitorId: "ppid3", sticky: { "1886780721": "v_low" } },
      { variationKey: "low", reason: "sticky" },
    ],
    [
      "sticky naming a removed variation is ignored",
      "vector_test",
      { visitorId: "ppid2", sticky: { "1886780721": "v_gone" } },
      { variationKey: "low", reason: "bucketed" },
    ],
    [
      "preview works even for a paused experiment",
      "paused",
      { visitorId: "ppid1", preview: { e_paused: "v_p" } },
      { variationKey: "p", reason: "preview" },
    ],
    [
      "audienceConditions and: both audiences",
      "targeted",
      { visitorId: "x", attributes: { country: "DE", age: 30 } },
      { variationKey: "only", reason: "bucketed" },
    ],
    [
      "audienceConditions and: one fails",
      "targeted",
      { visitorId: "x", attributes: { country: "DE", age: 12 } },
      { variationKey: null, reason: "audience_mismatch" },
    ],
    [
      "missing attributes are unknown, not a match",
      "targeted",
      { visitorId: "x" },
      { variationKey: null, reason: "audience_mismatch" },
    ],
    [
      "undefined attribute values make the visitor invalid (as the SDK)",
      "vector_test",
      { visitorId: "ppid1", attributes: { age: undefined } },
      { variationKey: null, reason: "invalid_visitor" },
    ],
    [
      'the SDK rejects the user id "undefined"',
      "vector_test",
      { visitorId: "undefined" },
      { variationKey: null, reason: "invalid_visitor" },
    ],
  ])("%s", (_name, key, visitor, expected) => {
    const d = decideExperiment(compiled, key, visitor);
    expect(d.variationKey).toBe(expected.variationKey);
    expect(d.reason).toBe(expected.reason);
    if (expected.bucket !== undefined) expect(d.bucket).toBe(expected.bucket);
    expect(DECISION_REASONS).toContain(d.reason);
  });

  it("a whitelist entry naming a missing variation key is ignored", () => {
    expect(["bucketed", "outside_traffic"]).toContain(
      decideExperiment(compiled, "vector_test", { visitorId: "qa-bad" }).reason,
    );
  });

  it("a mutually exclusive group puts each visitor in exactly one of its experiments", () => {
    let a = 0;
    let b = 0;
    for (let i = 0; i < 2000; i++) {
      const [ga, gb] = [
        decideExperiment(compiled, "group_a", { visitorId: `v${i}` }),
        decideExperiment(compiled, "group_b", { visitorId: `v${i}` }),
      ];
      expect([ga.variationKey, gb.variationKey].filter((x) => x !== null)).toHaveLength(1);
      expect([ga.reason, gb.reason].sort()).toEqual(["bucketed", "excluded_by_group"]);
      if (ga.variationKey) a++;
      else b++;
    }
    // 50/50 group split: both halves well represented.
    expect(a).toBeGreaterThan(850);
    expect(b).toBeGreaterThan(850);
  });

  it("decideAll covers every experiment, grouped ones included, in datafile order", () => {
    const all = decideAll(compiled, { visitorId: "ppid1" });
    expect(all.map((d) => d.experimentKey)).toEqual([
      "vector_test",
      "targeted",
      "paused",
      "group_a",
      "group_b",
    ]);
    expect(all[0]).toMatchObject({ variationKey: "high", reason: "bucketed" });
  });

  it("never throws on hostile input", () => {
    const hostile: unknown[] = [
      null,
      undefined,
      42,
      {},
      { visitorId: 5 },
      { visitorId: "x", attributes: [] },
      { visitorId: "x", attributes: "s" },
    ];
    for (const visitor of hostile) {
      expect(() => decideAll(compiled, visitor as Visitor)).not.toThrow();
      expect(
        decideAll(compiled, visitor as Visitor).every(
          (d) => d.variationKey === null && d.reason === "invalid_visitor",
        ),
      ).toBe(true);
    }
  });
});

describe("decideFlag", () => {
  it("experiment rule first", () => {
    const d = decideFlag(compiled, "new_checkout", {
      visitorId: "x",
      attributes: { country: "DE", age: 30 },
    });
    // The experiment variation has no featureEnabled → disabled, defaults.
    expect(d).toMatchObject({
      reason: "experiment_rule",
      ruleKey: "targeted",
      variationKey: "only",
      enabled: false,
    });
    expect(d.variables).toEqual({ color: "blue", limit: 3, config: { a: 1 } });
  });

  it("in a rule's audience but outside its traffic jumps to Everyone Else (skipping later rules)", () => {
    // rule_adults matches (age ≥ 18) but has 0 traffic, so rule_de is skipped even for a German visitor.
    const d = decideFlag(compiled, "new_checkout", {
      visitorId: "x",
      attributes: { country: "DE", age: 12 },
    });
    expect(d).toMatchObject({
      reason: "delivery_rule",
      ruleKey: "rule_de",
      variationKey: "de_on",
      enabled: true,
    });
    expect(d.variables).toEqual({ color: "blue", limit: 9, config: { a: 1 } });
    const adult = decideFlag(compiled, "new_checkout", {
      visitorId: "x",
      attributes: { country: "FR", age: 40 },
    });
    expect(adult).toMatchObject({ ruleKey: "everyone_else", variationKey: "off", enabled: false });
  });

  it("unknown flags and invalid visitors", () => {
    expect(decideFlag(compiled, "nope", { visitorId: "x" }).reason).toBe("flag_not_found");
    expect(decideFlag(compiled, "new_checkout", { visitorId: "undefined" }).reason).toBe(
      "invalid_visitor",
    );
  });
});
