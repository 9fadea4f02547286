/**
 * CUPED through the real pipeline (docs/statistics.md "CUPED"), under both event layouts: events
 * fed through the queue consumer — each visitor's conversions before their first exposure (the
 * covariate x) and after it (the metric y) — then `GET /experiments/{id}/results` must report the
 * CUPED comparison computed from exactly those per-visitor values (the regression itself is
 * checked against statsmodels in test/core/cuped.test.ts), say how much variance it removed, and
 * leave it off with `cuped=false`, a day range, or when no visitor converted before.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { cupedRegression, type CovariateStats } from "../../src/core/stats/index";
import type { ConversionMessage, ImpressionMessage } from "../../src/shared/event-messages";
import {
  API_ORIGIN,
  adminSession,
  apiJson,
  createProject,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { LAYOUTS, useLayout } from "../helpers/event-layout";
import { deliverToConsumer } from "../helpers/queue";
import { mulberry32 } from "../support/ab-simulation";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

describe.each(LAYOUTS)("CUPED in the results ($name)", ({ shards }) => {
  let project: ProjectWithEnvironments;
  let event: Json;
  let experiment: Json;
  const sdkKey = () => project.environments.find((e) => e.key === "production")!.sdkKey;

  beforeAll(() => useLayout(shards));
  beforeEach(async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    project = await createProject();
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "shop", conditions: ["or", { match: "substring", value: "/shop" }] },
    });
    event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "view_item", type: "custom" },
    });
    const x = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "recs",
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "count" }],
        variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
      },
    });
    await apiJson("POST", `/experiments/${x.id}/start`, 200);
    experiment = await apiJson("GET", `/experiments/${x.id}`, 200);
  });

  /**
   * 300 visitors per variation; a visitor's habit h ~ {0, 1, 3} sets both their views before
   * the first exposure (x) and after it (y, +1 in b for half of them). Returns the sums the
   * results must be computed from.
   */
  async function feed(withHistory: boolean): Promise<Record<string, CovariateStats>> {
    const random = mulberry32(shards + 17);
    const now = Date.now();
    const bodies: unknown[] = [];
    const sums: Record<string, CovariateStats> = {};
    const conversion = (visitorId: string, at: number): ConversionMessage => ({
      v: 1,
      type: "conversion",
      uuid: uid("c"),
      sdkKey: sdkKey(),
      revision: "2",
      visitorId,
      eventId: event.id,
      eventKey: event.key,
      timestamp: at,
      source: "browser",
    });
    experiment.variations.forEach((v: Json, arm: number) => {
      const s: CovariateStats = { n: 0, sumY: 0, sumY2: 0, sumX: 0, sumX2: 0, sumXY: 0 };
      for (let i = 0; i < 300; i++) {
        const visitorId = uid(`${v.key}-v`);
        const habit = [0, 1, 3][Math.floor(random() * 3)]!;
        const x = withHistory ? habit + (random() < 0.3 ? 1 : 0) : 0;
        const y = habit + (random() < 0.4 ? 1 : 0) + (arm === 1 && random() < 0.5 ? 1 : 0);
        for (let k = 0; k < x; k++) bodies.push(conversion(visitorId, now - 3 * 3600_000 + k));
        bodies.push({
          v: 1,
          type: "impression",
          uuid: uid("i"),
          sdkKey: sdkKey(),
          revision: "2",
          visitorId,
          experimentId: experiment.id,
          variationId: v.id,
          timestamp: now - 2 * 3600_000,
          source: "edge",
        } satisfies ImpressionMessage);
        for (let k = 0; k < y; k++) bodies.push(conversion(visitorId, now - 3600_000 + k));
        s.n++;
        s.sumY += y;
        s.sumY2 += y * y;
        s.sumX += x;
        s.sumX2 += x * x;
        s.sumXY += x * y;
      }
      sums[v.id] = s;
    });
    await deliverToConsumer(bodies);
    return sums;
  }

  it(
    "adjusts by each visitor's views before exposure and says how much variance it removed",
    { timeout: 120_000 },
    async () => {
      const sums = await feed(true);
      const [a, b] = experiment.variations.map((v: Json) => v.id);
      const results = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
      expect(results.analysis.cuped).toBe(true);
      const row = results.metrics[0].variations[1];
      const fit = cupedRegression(sums[a]!, sums[b]!)!;
      expect(row.cuped.theta).toBeCloseTo(fit.theta, 10);
      expect(row.cuped.difference.estimate).toBeCloseTo(fit.difference, 10);
      expect(row.cuped.difference.se).toBeCloseTo(fit.testSe, 10);
      expect(row.cuped.varianceReduction).toBeCloseTo(fit.varianceReduction, 10);
      expect(row.cuped.varianceReduction).toBeGreaterThan(0.3);
      expect(row.events).toBe(sums[b]!.sumY);
      expect(row.lift.estimate).toBeCloseTo(fit.difference / (sums[a]!.sumY / 300), 10);
      expect(results.metrics[0].variations[0].cuped).toBeNull();

      const off = await apiJson("GET", `/experiments/${experiment.id}/results?cuped=false`, 200);
      expect(off.analysis.cuped).toBe(false);
      expect(off.metrics[0].variations[1].cuped).toBeNull();
      expect(off.metrics[0].variations[1].pValue).toBe(row.cuped.unadjustedPValue);
      const day = new Date().toISOString().slice(0, 10);
      const ranged = await apiJson(
        "GET",
        `/experiments/${experiment.id}/results?from=2000-01-01&to=${day}`,
        200,
      );
      expect(ranged.metrics[0].variations[1].cuped).toBeNull();
      await apiJson("GET", `/experiments/${experiment.id}/results?cuped=maybe`, 422);
      const adminHtml = await (
        await exports.default.fetch(
          `${API_ORIGIN}/_ss/admin/experiments/${experiment.id}?environment=production`,
          { headers: { cookie: await adminSession() } },
        )
      ).text();
      expect(adminHtml).toContain('data-cuped="applied"');
      expect(adminHtml).toMatch(/b\s+\d+\s*%\s+less variance/);
    },
  );

  it(
    "stays off when the earliest visitor's window is past the retention of stored conversions",
    { timeout: 120_000 },
    async () => {
      await feed(true);
      // One visitor exposed 25 days ago: their 7-day window reaches past the ≈ 31 days kept.
      await deliverToConsumer([
        {
          v: 1,
          type: "impression",
          uuid: uid("old"),
          sdkKey: sdkKey(),
          revision: "2",
          visitorId: uid("old-visitor"),
          experimentId: experiment.id,
          variationId: experiment.variations[0].id,
          timestamp: Date.now() - 25 * 24 * 3600_000,
          source: "edge",
        } satisfies ImpressionMessage,
      ]);
      const results = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
      expect(results.metrics[0].variations[1].cuped).toBeNull();
    },
  );

  it("stays off where no visitor converted before exposure", { timeout: 120_000 }, async () => {
    await feed(false);
    const results = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
    expect(results.analysis.cuped).toBe(true);
    expect(results.metrics[0].variations[1].cuped).toBeNull();
  });
});
