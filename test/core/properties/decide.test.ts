/**
 * Property tests of deciding (src/core/decide.ts) for arbitrary visitors (docs/security.md
 * "Input validation"): ids and attribute values with lone surrogates, huge strings and every
 * type; attribute, sticky and preview maps with prototype-polluting keys. decideAll and
 * decideExperiment never throw, give reasons from the fixed set only, agree with each other,
 * are deterministic, and every variation they name belongs where it should.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DECISION_REASONS,
  decideAll,
  decideExperiment,
  loadDatafile,
  type CompiledDatafile,
  type Decision,
  type Visitor,
} from "../../../src/core/index";
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

seedProperties(400);

const FIXTURES = new URL("../../fixtures/datafiles/", import.meta.url);
const compiled = new Map<string, CompiledDatafile>();
for (const name of ["valid-web.json", "decisions.json", "edge.json"]) {
  const loaded = loadDatafile(readFileSync(new URL(name, FIXTURES), "utf8"));
  if (!loaded.ok) throw new Error(`${name} does not load`);
  compiled.set(name, loaded.compiled);
}
const all = [...compiled.values()];
const experimentIds = [...new Set(all.flatMap((c) => c.experiments.map((e) => e.id)))];
const variationIds = [...new Set(all.flatMap((c) => [...c.variationById.keys()]))];
const experimentKeys = [...new Set(all.flatMap((c) => c.experiments.map((e) => e.key)))];

/** Own-property maps with hostile keys (`__proto__` as an own key included). */
function mapOf<T>(keys: fc.Arbitrary<string>, values: fc.Arbitrary<T>, maxLength = 6) {
  return fc.array(fc.tuple(keys, values), { maxLength }).map((entries) => {
    const object: Record<string, T> = {};
    for (const [key, value] of entries) defineOwn(object, key, value);
    return object;
  });
}

const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  hostileNumber,
  fc.boolean(),
  fc.constantFrom(null, undefined),
  hostileJson,
);

const visitorId: fc.Arbitrary<string> = fc.oneof(
  hostileString,
  fc.constantFrom("qa-user", "qa-tester-1", "visitor-1"),
);

const visitor: fc.Arbitrary<Visitor> = fc.record(
  {
    visitorId,
    attributes: fc.oneof(
      mapOf(
        fc.oneof(
          hostileKey,
          fc.constantFrom(
            "country",
            "age",
            "geo.country",
            "$opt_bucketing_id",
            "$opt_experiment_bucket_map",
          ),
        ),
        fc.oneof(
          anyValue,
          // the SDK's user-profile map: experiment id → {variation_id}
          mapOf(
            fc.constantFrom(...experimentIds),
            fc.oneof(
              fc.record({ variation_id: fc.oneof(fc.constantFrom(...variationIds), anyValue) }),
              anyValue,
            ),
          ),
        ),
      ),
      fc.constant(undefined),
    ),
    sticky: mapOf(
      fc.oneof(fc.constantFrom(...experimentIds), hostileKey),
      fc.oneof(fc.constantFrom(...variationIds), hostileString) as fc.Arbitrary<string>,
    ),
    preview: mapOf(
      fc.oneof(fc.constantFrom(...experimentIds), hostileKey),
      fc.oneof(fc.constantFrom(...variationIds), hostileString) as fc.Arbitrary<string>,
    ),
  },
  { requiredKeys: ["visitorId"] },
);

const VARIATION_REASONS = new Set(["preview", "forced_variation", "sticky", "bucketed"]);

function checkDecision(data: CompiledDatafile, decision: Decision, key: string): void {
  expect(DECISION_REASONS).toContain(decision.reason);
  expect(decision.experimentKey).toBe(key);
  const experiment = data.experimentByKey.get(key);
  if (!experiment) {
    expect(decision).toEqual({
      experimentId: null,
      experimentKey: key,
      variationId: null,
      variationKey: null,
      reason: "experiment_not_found",
      bucket: null,
    });
    return;
  }
  expect(decision.experimentId).toBe(experiment.id);
  // A variation exactly when the reason gives one.
  expect(decision.variationId !== null).toBe(VARIATION_REASONS.has(decision.reason));
  if (decision.variationId !== null) {
    // Sticky entries of the SDK's bucket map resolve project-wide; everything else is the
    // experiment's own variation.
    const variation =
      decision.reason === "sticky"
        ? data.variationById.get(decision.variationId)
        : experiment.variationById.get(decision.variationId);
    expect(variation?.key).toBe(decision.variationKey);
  } else {
    expect(decision.variationKey).toBeNull();
  }
  if (decision.bucket !== null) {
    expect(["bucketed", "outside_traffic"]).toContain(decision.reason);
    expect(Number.isInteger(decision.bucket)).toBe(true);
    expect(decision.bucket).toBeGreaterThanOrEqual(0);
    expect(decision.bucket).toBeLessThan(10_000);
  } else {
    expect(decision.reason).not.toBe("bucketed");
  }
}

describe(`deciding for arbitrary visitors (seed ${SEED})`, () => {
  it("decideAll never throws, reasons come from the fixed set, decisions are consistent", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.constantFrom(...compiled.keys()), visitor, (name, v) => {
        const data = compiled.get(name)!;
        let decisions: Decision[] = [];
        expect(() => (decisions = decideAll(data, v))).not.toThrow();
        expect(decisions).toHaveLength(data.experiments.length);
        decisions.forEach((d, i) => checkDecision(data, d, data.experiments[i]!.key));
        for (const d of decisions) seen.add(d.reason);
        // Deterministic, and the same as deciding one experiment at a time.
        expect(decideAll(data, v)).toEqual(decisions);
        for (const d of decisions) expect(decideExperiment(data, d.experimentKey, v)).toEqual(d);
        expect(prototypeIsClean()).toBe(true);
      }),
    );
    // The visitors reach every step of the decision, not just the first refusal.
    for (const reason of [
      "invalid_visitor",
      "preview",
      "not_running",
      "forced_variation",
      "sticky",
      "audience_mismatch",
      "excluded_by_group",
      "outside_traffic",
      "bucketed",
    ])
      expect(seen).toContain(reason);
  });

  it("decideExperiment never throws for any key, known or not", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...compiled.keys()),
        fc.oneof(fc.constantFrom(...experimentKeys), hostileString, hostileKey),
        visitor,
        (name, key, v) => {
          const data = compiled.get(name)!;
          let decision: Decision | undefined;
          expect(() => (decision = decideExperiment(data, key, v))).not.toThrow();
          checkDecision(data, decision!, key);
        },
      ),
    );
  });

  it("a visitor that is not a visitor at all is invalid for every experiment, never a crash", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...compiled.keys()),
        fc.oneof(
          anyValue.filter((x) => typeof x !== "string"),
          fc.record({ visitorId: anyValue.filter((x) => typeof x !== "string") }),
          fc.record({
            visitorId: fc.constant("v"),
            attributes: fc.constantFrom(7, "x", [1], true),
          }),
        ),
        (name, bogus) => {
          const data = compiled.get(name)!;
          let decisions: Decision[] = [];
          expect(() => (decisions = decideAll(data, bogus as Visitor))).not.toThrow();
          for (const d of decisions) expect(["invalid_visitor", "not_running"]).toContain(d.reason);
          expect(decisions.some((d) => d.reason === "invalid_visitor")).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("hostile keys in attributes, sticky and preview maps never reach Object.prototype", () => {
    const data = compiled.get("edge.json")!;
    for (const key of ["__proto__", "constructor", "prototype", "hasOwnProperty", "toString"]) {
      const polluted = JSON.parse(
        `{"${key}": {"polluted": "yes", "1001": "v_h_new", "variation_id": "v_h_new"}}`,
      ) as Record<string, string>;
      const v: Visitor = {
        visitorId: "v1",
        attributes: polluted,
        sticky: polluted,
        preview: polluted,
      };
      expect(() => decideAll(data, v)).not.toThrow();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(prototypeIsClean()).toBe(true);
    }
  });
});
