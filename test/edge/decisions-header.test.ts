import { describe, expect, it } from "vitest";
import {
  DECISIONS_HEADER_MAX_BYTES,
  encodeDecisionToken,
  formatDecisionsHeader,
  parseDecisionsHeader,
} from "../../src/edge/decisions-header";

describe("x-ss-decisions (docs/visitors.md)", () => {
  it.each([
    [[["hero", "bold"]], "hero=bold"],
    [
      [
        ["hero", "bold"],
        ["cta", "green"],
      ],
      "hero=bold, cta=green",
    ],
    [[["a b", "c,d"]], "a%20b=c%2Cd"],
    [[["x=y", "ü"]], "x%3Dy=%C3%BC"],
    [[["</script>", '"quoted"']], "%3C%2Fscript%3E=%22quoted%22"],
    [[["it's", "(1)*"]], "it%27s=%281%29%2A"],
  ] as Array<[Array<[string, string]>, string]>)("%j → %s", (pairs, header) => {
    expect(formatDecisionsHeader(pairs)).toBe(header);
    expect(parseDecisionsHeader(header)).toEqual(pairs);
  });

  it("never exceeds 4 KB; whole pairs are left out, never cut", () => {
    const pairs: Array<[string, string]> = Array.from({ length: 200 }, (_, i) => [
      `experiment_number_${i}`,
      `variation_${i}`,
    ]);
    const header = formatDecisionsHeader(pairs);
    expect(header.length).toBeLessThanOrEqual(DECISIONS_HEADER_MAX_BYTES);
    const parsed = parseDecisionsHeader(header);
    expect(parsed.length).toBeGreaterThan(50);
    expect(parsed).toEqual(pairs.slice(0, parsed.length));
  });

  it("a pair too long for the cap is skipped and later short ones still fit", () => {
    const header = formatDecisionsHeader([
      ["a", "1"],
      ["b".repeat(5000), "2"],
      ["c", "3"],
    ]);
    expect(parseDecisionsHeader(header)).toEqual([
      ["a", "1"],
      ["c", "3"],
    ]);
  });

  it("encoded tokens only use header-safe characters", () => {
    for (const token of ["\r\nSet-Cookie: x=1", "tab\there", "emoji 🎉", "\u0000"]) {
      expect(encodeDecisionToken(token)).toMatch(/^[A-Za-z0-9._~%-]*$/);
    }
  });

  it("tolerates malformed input when parsing", () => {
    expect(parseDecisionsHeader(null)).toEqual([]);
    expect(parseDecisionsHeader("junk, a=b=c, =x, ok=1, bad=%E0%A4%A")).toEqual([["ok", "1"]]);
  });
});
