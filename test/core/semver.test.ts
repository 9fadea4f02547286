/**
 * compareSemver against a table of the SDK's semantics, each row (and a seeded batch of random
 * versions) also checked against the official SDK through `semver_eq`/`semver_gt`/`semver_lt`
 * conditions (see ./sdk-oracle).
 */
import { describe, expect, it } from "vitest";
import { compareSemver, parseSemver } from "../../src/core/semver";
import { type PatchedEvaluate, triFrom, withPatchableClient } from "./sdk-oracle";
import { mulberry32 } from "../support/generate-datafile";

type Order = -1 | 0 | 1 | null;

// [condition version, user version, expected compareSemver(condition, user), why]
const table: Array<[string, string, Order, string]> = [
  ["2.0.0", "2.0.0", 0, "equal"],
  ["2.0.0", "2.0.1", 1, "patch greater"],
  ["2.0.1", "2.0.0", -1, "patch smaller"],
  ["1.9.0", "1.10.0", 1, "numeric, not string, comparison"],
  ["1.10.0", "1.9.0", -1, "numeric, not string, comparison"],
  ["2.0", "2.0.1", 0, "only the condition's parts are walked"],
  ["2", "2.9.9", 0, "a major-only condition matches every 2.x.y"],
  ["2", "3.0.0", 1, "major greater"],
  ["2.0.0", "2.0", -1, "user runs out of parts first: smaller"],
  ["2.0.0", "2", -1, "user runs out of parts first: smaller"],
  ["1.2.3", "01.02.03", 0, "leading zeros parse away"],
  ["1.2.3", "1.2.3-beta", -1, "a prerelease is smaller than its release"],
  ["1.2.3-beta", "1.2.3", 1, "a release is greater than its prerelease"],
  ["1.2.3-beta", "1.2.3-beta", 0, "same prerelease"],
  ["1.2.3-beta", "1.2.3-alpha", -1, "prerelease strings compare as strings"],
  ["1.2.3-alpha", "1.2.3-beta", 1, "prerelease strings compare as strings"],
  ["1.2.3-beta.10", "1.2.3-beta.2", 1, "a suffix is ONE string: 'beta.2' > 'beta.10'"],
  ["1.2.3-beta", "1.2.4-alpha", 1, "numeric parts decide first"],
  ["1.2.3", "1.2.3+build", 0, "user build metadata ignored"],
  [
    "1.2.3+build",
    "1.2.3",
    1,
    "condition build metadata: a plain user counts as greater (SDK quirk)",
  ],
  ["1.2.3+build.1", "1.2.3+build.2", 1, "build strings compare as strings"],
  ["1.2.3+build", "1.2.3-beta", -1, "user prerelease vs condition build"],
  ["1.2.3-beta", "1.2.3+build", 1, "condition prerelease vs user build"],
  ["1.2.3-beta", "1.2.3-5", 0, "digit user suffix vs parseInt('beta') = NaN: equal (SDK quirk)"],
  ["1.2.3-7", "1.2.3-5", -1, "digit suffixes compare numerically"],
  ["1.2.3-0x10", "1.2.3-16", 0, "parseInt without radix reads a hex condition suffix (SDK quirk)"],
  ["2-beta", "2.1", 0, "condition suffix NaN vs user minor 1 (SDK quirk)"],
  ["1-beta", "1-alpha", -1, "single-part versions with prerelease"],
  ["1.2.3-beta-1", "1.2.3-beta-1", 0, "a '-' inside the prerelease is part of it"],
  ["1.2.3-", "1.2.3", 0, "an empty condition prerelease adds no part to walk"],
  ["1.2.3", "1.2.3-", -1, "an empty prerelease still marks a prerelease"],
  ["1.2.3", "1.2.3.4", null, "more than three numeric parts"],
  ["1.2.3.4", "1.2.3", null, "invalid condition"],
  ["1.2.3", " 1.2.3", null, "leading whitespace"],
  ["1.2.3", "1.2.3 ", null, "trailing whitespace"],
  ["1.2.3", "1.2.3-be ta", null, "whitespace in a prerelease"],
  ["1.2.3", "1.2.3\u00a0", null, "Unicode whitespace"],
  ["1.2.3", "1..3", null, "empty part"],
  ["1.2.3", ".1.2", null, "leading dot"],
  ["1.2.3", "1.2.", null, "trailing dot"],
  ["1.2.3", "v1.2.3", null, "a v prefix"],
  ["1.2.3", "1.x.3", null, "non-numeric part"],
  ["1.2.3", "-1.2.3", null, "no numeric prefix"],
  ["1.2.3", "+1", null, "no numeric prefix"],
  ["1.2.3", "", null, "empty"],
  ["", "1.2.3", null, "empty condition"],
  ["1.2.3", "1.2.3-beta+build", -1, "prerelease then build"],
  ["1.2.3", "\u0661.2.3", null, "only ASCII digits"],
];

async function sdkOrder(
  evaluate: PatchedEvaluate,
  condition: string,
  user: string,
): Promise<Order> {
  const leaf = (match: string) => ({
    type: "custom_attribute",
    name: "v",
    match,
    value: condition,
  });
  const attributes = { v: user };
  const eq = triFrom(evaluate, leaf("semver_eq"), attributes);
  if (eq === null) return null;
  if (eq) return 0;
  if (triFrom(evaluate, leaf("semver_gt"), attributes)) return 1;
  if (triFrom(evaluate, leaf("semver_lt"), attributes)) return -1;
  throw new Error(`SDK: ${user} is neither =, > nor < ${condition}`);
}

describe("compareSemver", () => {
  it.each(table)("condition %j, user %j -> %s (%s)", (condition, user, expected) => {
    expect(compareSemver(condition, user)).toBe(expected);
  });

  it.each(table)(
    "SDK agrees: condition %j, user %j -> %s (%s)",
    async (condition, user, expected) => {
      expect(await withPatchableClient((evaluate) => sdkOrder(evaluate, condition, user))).toBe(
        expected,
      );
    },
  );

  it("rejects non-strings", () => {
    expect(parseSemver(1 as unknown as string)).toBe(null);
    expect(compareSemver(null as unknown as string, "1")).toBe(null);
  });
});

/** mulberry32: a tiny seeded PRNG, so failures are reproducible. */

function randomVersion(rand: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const parts = Math.floor(rand() * 4) + 1;
  let v = "";
  for (let i = 0; i < parts; i++) {
    if (i > 0) v += rand() < 0.97 ? "." : pick(["", ".."]);
    v += pick(["0", "1", "2", "10", "01", "9", "1", "2", ""]);
  }
  if (rand() < 0.4)
    v += pick(["-", "+"]) + pick(["beta", "alpha", "1", "10", "rc.1", "", "b-1", "x+y", "0x1"]);
  if (rand() < 0.03) v = pick([" ", "v", "."]) + v;
  return v;
}

describe("random versions agree with the SDK", () => {
  const count = Number(process.env.FUZZ_CASES ?? 300);
  it(`${count} seeded pairs`, async () => {
    await withPatchableClient(async (evaluate) => {
      const rand = mulberry32(7);
      for (let i = 0; i < count; i++) {
        const condition = randomVersion(rand);
        const user = randomVersion(rand);
        const expected = await sdkOrder(evaluate, condition, user);
        const actual = compareSemver(condition, user);
        if (actual !== expected)
          throw new Error(`condition ${condition}, user ${user}: got ${actual}, SDK ${expected}`);
      }
    });
  });
});
