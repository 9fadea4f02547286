/**
 * Holdouts in the core against the official SDK (docs/holdouts.md "SDK parity"): on generated flag
 * datafiles with global holdouts added — running and not, with an audience, with
 * `excludeTargetedDeliveries`, several in a row — every visitor's `decideAllFlags` equals the
 * SDK's `decideAll()` (enabled, variation, rule key, variables), held-out decisions carry reason
 * `holdout`, and the same visitors get reason `holdout` for every running experiment.
 */
import type { Client } from "@optimizely/optimizely-sdk";
import { bucketFromHash } from "../../src/core/decide";
import { afterAll, describe, expect, it } from "vitest";
import {
  decideAll,
  decideAllFlags,
  formatProblems,
  holdoutArms,
  holdoutArmsAt,
  holdoutSharesOf,
  loadDatafile,
  murmurhash3,
  prepareVisitor,
  type Datafile,
  type Holdout,
} from "../../src/core/index";
import { generateVisitors } from "../support/generate-datafile";
import {
  generateFlagDatafile,
  sdkDecideAll,
  sdkFlagClient,
  sdkUser,
} from "../support/generate-flags";

function holdout(id: string, endOfRange: number, extra: Partial<Holdout> = {}): Holdout {
  return {
    id,
    key: `holdout_${id}`,
    status: "Running",
    variations: [
      { id: `${id}_in`, key: "holdout", featureEnabled: false, variables: [] },
      { id: `${id}_rest`, key: "everyone_else", featureEnabled: false, variables: [] },
    ],
    trafficAllocation: [{ entityId: `${id}_in`, endOfRange }],
    audienceIds: [],
    audienceConditions: [],
    includedFlags: [],
    excludedFlags: [],
    ...extra,
  };
}

/** Everyone without the attribute `opted_out_of_holdout`: an audience that almost always matches. */
const HOLDOUT_AUDIENCE = {
  id: "9299",
  name: "holdout audience",
  conditions: [
    "not",
    { type: "custom_attribute", name: "opted_out_of_holdout", match: "exists" },
  ] as never,
};

const SCENARIOS: Array<{ name: string; seed: number; holdouts: (d: Datafile) => Holdout[] }> = [
  {
    // The concluded one first, as Splitstream publishes a holdout set to 0 (docs/holdouts.md).
    name: "one holdout of 20 % after a concluded one",
    seed: 301,
    holdouts: () => [holdout("9100", 0, { status: "Concluded" }), holdout("9101", 2000)],
  },
  {
    name: "a draft, one with an audience, one excluding targeted deliveries",
    seed: 302,
    holdouts: () => [
      holdout("9201", 5000, { status: "Draft" }),
      holdout("9202", 3000, { audienceIds: [HOLDOUT_AUDIENCE.id], audienceConditions: undefined }),
      holdout("9203", 2500, { excludeTargetedDeliveries: true } as Partial<Holdout>),
    ],
  },
];

describe.each(SCENARIOS)("holdouts = the SDK's decide(): $name", ({ seed, holdouts }) => {
  const clients: Client[] = [];
  afterAll(async () => {
    for (const c of clients) await c.close();
  });

  it("1500 visitors", async () => {
    const generated = generateFlagDatafile(seed);
    const datafile: Datafile = {
      ...generated,
      typedAudiences: [...(generated.typedAudiences ?? []), HOLDOUT_AUDIENCE],
      holdouts: holdouts(generated),
    };
    const text = JSON.stringify(datafile);
    const loaded = loadDatafile(text);
    if (!loaded.ok) throw new Error(formatProblems(loaded.problems));
    const compiled = loaded.compiled;
    const client = await sdkFlagClient(text);
    clients.push(client);
    const visitors = generateVisitors(seed, 1500, datafile, { invalidRate: 0 });
    const shares = holdoutSharesOf(datafile);
    const halfShares = new Map([...shares].map(([id, end]) => [id, Math.floor(end / 2)]));
    let held = 0;
    let notHeld = 0;
    const byHoldout = new Map<string, number>();
    for (const [i, visitor] of visitors.entries()) {
      const sdk = sdkDecideAll(sdkUser(client, visitor));
      const ours = decideAllFlags(compiled, visitor as never);
      const where = `seed ${seed}, visitor ${i} ${JSON.stringify(visitor)}`;
      if ("kind" in sdk) continue; // no SDK decision at all: compared in flag-parity.test.ts
      for (const d of ours) {
        const s = sdk[d.flagKey]!;
        expect(
          {
            flagKey: d.flagKey,
            enabled: d.enabled,
            variationKey: d.variationKey,
            ruleKey: d.ruleKey,
            variables: d.variables,
          },
          `${where}: ${d.flagKey}`,
        ).toEqual(s);
      }
      const prepared = prepareVisitor(compiled, visitor as never);
      const hit = prepared.holdout;
      const isHeld = hit !== null && hit !== "unbucketable";
      if (isHeld) {
        held++;
        byHoldout.set(hit.holdout.id, (byHoldout.get(hit.holdout.id) ?? 0) + 1);
        // Excluding targeted deliveries: only delivery rules (or none) decide.
        for (const d of ours)
          expect(d.reason, where).toBe(
            hit.excludeTargetedDeliveries
              ? d.reason === "delivery_rule"
                ? "delivery_rule"
                : "no_rule_matched"
              : "holdout",
          );
      } else notHeld++;
      // Experiments: a held-out visitor is in none that runs.
      for (const x of decideAll(compiled, visitor as never)) {
        if (isHeld && compiled.experimentById.get(x.experimentId!)?.running)
          expect(x.reason, where).toBe("holdout");
        else expect(x.reason, where).not.toBe("holdout");
      }
      // Results' groups: exactly one arm per holdout that could hold the visitor out.
      const arms = holdoutArms(compiled, prepared);
      if (isHeld)
        expect(arms, where).toEqual([
          { holdoutId: hit.holdout.id, variationId: hit.variation.id, held: true },
        ]);
      else
        expect(
          arms.every((a) => !a.held && a.variationId.endsWith("_rest")),
          where,
        ).toBe(true);
      // At the datafile's own shares, the groups of an older revision's computation are these.
      expect(holdoutArmsAt(compiled, prepared, shares), where).toEqual(arms);
      // At other shares: held exactly when the bucket is below that share.
      const armsAtHalf = holdoutArmsAt(compiled, prepared, halfShares);
      const first = armsAtHalf.find((a) => a.held);
      const attributes = (visitor as { attributes?: Record<string, unknown> }).attributes ?? {};
      const bucketingId =
        typeof attributes.$opt_bucketing_id === "string"
          ? attributes.$opt_bucketing_id
          : (visitor as { visitorId: string }).visitorId;
      if (first !== undefined)
        expect(
          bucketFromHash(murmurhash3(`${bucketingId}${first.holdoutId}`, 1)),
          where,
        ).toBeLessThan(halfShares.get(first.holdoutId)!);
      else if (isHeld)
        // Held at the full share, not at half of it: its bucket is in the upper half.
        expect(
          bucketFromHash(murmurhash3(`${bucketingId}${hit.holdout.id}`, 1)),
          where,
        ).toBeGreaterThanOrEqual(halfShares.get(hit.holdout.id)!);
    }
    expect(held, JSON.stringify([...byHoldout])).toBeGreaterThan(100);
    // Every running holdout held some visitors out; a draft none.
    for (const h of datafile.holdouts!)
      if (h.status === "Running") expect(byHoldout.get(h.id) ?? 0, h.id).toBeGreaterThan(10);
      else expect(byHoldout.has(h.id), h.id).toBe(false);
    expect(notHeld).toBeGreaterThan(100);
  }, 120_000);
});
