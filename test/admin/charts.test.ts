/** The admin's server-drawn SVG charts: escaping, empty states, axis ticks, no NaN. */
import { describe, expect, it } from "vitest";
import { escapeXml, intervalChart, lineChart, niceTicks } from "../../src/admin/charts";

describe("charts", () => {
  it("escapes every label and title", () => {
    const evil = `<script>alert("x")</script>&'`;
    const svg =
      lineChart(evil, [{ label: evil, points: [{ x: evil, y: 0.1 }] }]) +
      intervalChart(evil, [{ label: evil, estimate: 0.1, low: 0, high: 0.2, tone: "good" }]);
    expect(svg).not.toContain("<script>");
    expect(svg).toContain(escapeXml(evil));
    expect(escapeXml(evil)).toBe("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;");
  });

  it("says so when there is no data, and never writes NaN", () => {
    expect(lineChart("t", [])).toContain("No data yet");
    expect(lineChart("t", [{ label: "a", points: [] }])).toContain("No data yet");
    expect(
      intervalChart("t", [
        { label: "a", estimate: Number.NaN, low: Number.NaN, high: Number.NaN, tone: "neutral" },
      ]),
    ).toContain("Not enough data");
    const one = lineChart("t", [{ label: "a", points: [{ x: "2026-01-01", y: 0 }] }]);
    expect(one).not.toMatch(/NaN|Infinity/);
  });

  it("one path per series, one dot per point, one bar per interval", () => {
    const svg = lineChart("t", [
      {
        label: "a",
        points: [
          { x: "d1", y: 0.1 },
          { x: "d2", y: 0.12 },
        ],
      },
      {
        label: "b",
        points: [
          { x: "d1", y: 0.2 },
          { x: "d2", y: 0.18 },
        ],
      },
    ]);
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(4);
    const bars = intervalChart("t", [
      { label: "b", estimate: 0.1, low: -0.05, high: 0.25, tone: "neutral" },
      { label: "c", estimate: -0.2, low: -0.3, high: -0.1, tone: "bad" },
    ]);
    expect(bars.match(/data-interval=/g)).toHaveLength(2);
  });

  it.each([
    [0, 0.137, [0, 0.05, 0.1, 0.15]],
    [-0.12, 0.31, [-0.2, 0, 0.2, 0.4]],
    [5, 5, [4.5, 4.75, 5, 5.25, 5.5]],
  ])("niceTicks(%s, %s) covers the range with round steps", (min, max, expected) => {
    const ticks = niceTicks(min, max);
    expect(ticks[0]).toBeLessThanOrEqual(min);
    expect(ticks[ticks.length - 1]).toBeGreaterThanOrEqual(max);
    expect(ticks).toEqual(expected);
  });
});
