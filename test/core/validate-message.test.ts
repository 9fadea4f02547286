import { MAX_ABS_VALUE, MAX_REVENUE_CENTS } from "../../src/shared/event-limits";
import { describe, expect, it } from "vitest";
import { validateMessage } from "../../src/events/validate-message";

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);

const impression = {
  v: 1,
  type: "impression",
  uuid: "u-1",
  sdkKey: "demo",
  revision: "7",
  visitorId: "vis",
  experimentId: "exp",
  variationId: "var",
  timestamp: NOW - 1000,
  source: "edge",
};
const conversion = {
  v: 1,
  type: "conversion",
  uuid: "u-2",
  sdkKey: "demo",
  revision: "7",
  visitorId: "vis",
  eventId: "ev",
  eventKey: "purchase",
  timestamp: NOW,
  revenue: 1299,
  value: 2.5,
  tags: { color: "red", n: 3, ok: true },
  source: "browser",
};

function reason(body: unknown): string {
  const result = validateMessage(body, NOW);
  if (result.ok) throw new Error("expected a rejection");
  return result.reason;
}

describe("validateMessage", () => {
  it("accepts well-formed impressions and conversions", () => {
    expect(validateMessage(impression, NOW)).toEqual({ ok: true, message: impression });
    expect(validateMessage(conversion, NOW)).toEqual({ ok: true, message: conversion });
    const { revenue: _r, value: _v, tags: _t, ...bare } = conversion;
    expect(validateMessage(bare, NOW)).toEqual({ ok: true, message: bare });
  });

  it("drops unknown keys instead of copying them", () => {
    const result = validateMessage({ ...impression, extra: "x" }, NOW);
    expect(result).toEqual({ ok: true, message: impression });
  });

  it("rejects non-objects, wrong versions and unknown types", () => {
    expect(reason(null)).toMatch(/object/);
    expect(reason("text")).toMatch(/object/);
    expect(reason([impression])).toMatch(/object/);
    expect(reason({ ...impression, v: 2 })).toMatch(/^v /);
    expect(reason({ ...impression, type: "click" })).toMatch(/^type /);
    expect(reason({ ...impression, source: "mars" })).toMatch(/^source /);
  });

  it("bounds the uuid and requires non-empty strings", () => {
    expect(validateMessage({ ...impression, uuid: "x".repeat(64) }, NOW).ok).toBe(true);
    expect(reason({ ...impression, uuid: "x".repeat(65) })).toMatch(/uuid is longer/);
    expect(reason({ ...impression, visitorId: "" })).toMatch(/visitorId must not be empty/);
    expect(reason({ ...impression, sdkKey: 3 })).toMatch(/sdkKey must be a string/);
    expect(reason({ ...impression, experimentId: "e".repeat(257) })).toMatch(/experimentId/);
    const { variationId: _v, ...noVariation } = impression;
    expect(reason(noVariation)).toMatch(/variationId/);
    expect(reason({ ...conversion, eventKey: undefined })).toMatch(/eventKey/);
  });

  it("keeps timestamps within [now − 30 days, now + 1 h]", () => {
    const day = 24 * 60 * 60 * 1000;
    expect(validateMessage({ ...impression, timestamp: NOW - 30 * day }, NOW).ok).toBe(true);
    expect(validateMessage({ ...impression, timestamp: NOW + 3600_000 }, NOW).ok).toBe(true);
    expect(reason({ ...impression, timestamp: NOW - 30 * day - 1 })).toMatch(/30 days/);
    expect(reason({ ...impression, timestamp: NOW + 3600_001 })).toMatch(/future/);
    expect(reason({ ...impression, timestamp: Number.NaN })).toMatch(/finite/);
    expect(reason({ ...impression, timestamp: "1" })).toMatch(/finite/);
  });

  it("checks revenue, value and tags", () => {
    expect(reason({ ...conversion, revenue: 12.5 })).toMatch(/revenue must be an integer/);
    expect(reason({ ...conversion, revenue: "12" })).toMatch(/revenue/);
    expect(validateMessage({ ...conversion, revenue: -500 }, NOW).ok).toBe(true);
    // Bounded (src/shared/event-limits.ts): 2^53 − 1 cents once overflowed the counting SQL.
    expect(validateMessage({ ...conversion, revenue: MAX_REVENUE_CENTS }, NOW).ok).toBe(true);
    expect(reason({ ...conversion, revenue: Number.MAX_SAFE_INTEGER })).toMatch(/within ±/);
    expect(reason({ ...conversion, revenue: -MAX_REVENUE_CENTS - 1 })).toMatch(/within ±/);
    expect(validateMessage({ ...conversion, value: -MAX_ABS_VALUE }, NOW).ok).toBe(true);
    expect(reason({ ...conversion, value: 1e300 })).toMatch(/value must be within/);
    expect(reason({ ...conversion, value: Number.POSITIVE_INFINITY })).toMatch(/value/);
    expect(reason({ ...conversion, tags: [] })).toMatch(/tags must be an object/);
    expect(reason({ ...conversion, tags: { a: { nested: 1 } } })).toMatch(/tags\.a/);
    expect(reason({ ...conversion, tags: { a: null } })).toMatch(/tags\.a/);
    expect(reason({ ...conversion, tags: { a: Number.NaN } })).toMatch(/tags\.a/);
  });
});
