/**
 * Breakdowns through the real pipeline (docs/statistics.md "Breakdowns"), under both event
 * layouts: impressions with dimensions fed through the queue consumer — the visitor's first
 * exposure decides their segment even when a later impression says otherwise — then
 * `GET /experiments/{id}/results?breakdown=device` shows a segment with a real effect (mobile)
 * and one without (desktop), q-values corrected across all segments; the CSV, the admin page and
 * the refusals (a day range, an unknown dimension).
 */
import { exports } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { benjaminiHochberg } from "../../src/core/stats/index";
import type {
  ConversionMessage,
  ImpressionDims,
  ImpressionMessage,
} from "../../src/shared/event-messages";
import {
  API_ORIGIN,
  adminSession,
  api,
  apiJson,
  createProject,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { LAYOUTS, useLayout } from "../helpers/event-layout";
import { deliverToConsumer } from "../helpers/queue";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

describe.each(LAYOUTS)("results by segment ($name)", ({ shards }) => {
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
      body: { key: "buy", type: "custom" },
    });
    const x = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "checkout",
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
      },
    });
    await apiJson("POST", `/experiments/${x.id}/start`, 200);
    experiment = await apiJson("GET", `/experiments/${x.id}`, 200);
  });

  it(
    "segments by the first exposure's device, with the correction across segments",
    { timeout: 120_000 },
    async () => {
      const now = Date.now();
      const bodies: unknown[] = [];
      const impression = (
        visitorId: string,
        variationId: string,
        at: number,
        dims?: ImpressionDims,
      ) =>
        ({
          v: 1,
          type: "impression",
          uuid: uid("i"),
          sdkKey: sdkKey(),
          revision: "2",
          visitorId,
          experimentId: experiment.id,
          variationId,
          timestamp: at,
          source: "edge",
          ...(dims ? { dims } : {}),
        }) satisfies ImpressionMessage;
      const [a, b] = experiment.variations.map((v: Json) => v.id);
      // mobile: 10 % → 20 % in b; desktop: 10 % both. 400 visitors per cell.
      const rates: Record<string, [number, number]> = { mobile: [40, 80], desktop: [40, 41] };
      for (const [device, [ka, kb]] of Object.entries(rates))
        [a, b].forEach((variationId, arm) => {
          for (let i = 0; i < 400; i++) {
            const visitorId = uid(`${device}-${arm}`);
            // A later impression from another device: the first exposure's device counts.
            bodies.push(
              impression(visitorId, variationId, now - 3_600_000 + 1000, { device: "tablet" }),
            );
            bodies.push(
              impression(visitorId, variationId, now - 3_600_000, { device, browser: "chrome" }),
            );
            if (i < (arm === 0 ? ka : kb))
              bodies.push({
                v: 1,
                type: "conversion",
                uuid: uid("c"),
                sdkKey: sdkKey(),
                revision: "2",
                visitorId,
                eventId: event.id,
                eventKey: event.key,
                timestamp: now - 1_800_000,
                source: "browser",
              } satisfies ConversionMessage);
          }
        });
      // An SDK visitor without dimensions: (unknown).
      bodies.push(impression(uid("sdk"), a, now - 3_600_000));
      // Later impressions first: the first exposure must win whatever the order.
      bodies.reverse();
      await deliverToConsumer(bodies);

      const results = await apiJson(
        "GET",
        `/experiments/${experiment.id}/results?breakdown=device`,
        200,
      );
      const breakdown = results.breakdown;
      expect(breakdown.dimension).toBe("device");
      expect(breakdown.segments.map((s: Json) => [s.value, s.visitors])).toEqual([
        ["desktop", 800],
        ["mobile", 800],
        ["(unknown)", 1],
      ]);
      const cell = (value: string) =>
        breakdown.segments.find((s: Json) => s.value === value).metrics[0].variations[1];
      expect(cell("mobile")).toMatchObject({ verdict: "winner", significant: true, visitors: 400 });
      expect(cell("mobile").mean).toBeCloseTo(0.2, 12);
      expect(cell("desktop").significant).toBe(false);
      expect(cell("(unknown)").verdict).toBe("not_enough_data");
      const ps = ["desktop", "mobile", "(unknown)"].map((v) => cell(v).pValue);
      expect(["desktop", "mobile", "(unknown)"].map((v) => cell(v).qValue)).toEqual(
        benjaminiHochberg(ps),
      );
      // Without the parameter: none.
      expect(
        (await apiJson("GET", `/experiments/${experiment.id}/results`, 200)).breakdown,
      ).toBeNull();

      // CSV: one row per segment, metric and variation.
      const csv = await (
        await api("GET", `/experiments/${experiment.id}/results.csv?breakdown=device`)
      ).text();
      const lines = csv.trimEnd().split("\r\n");
      expect(lines[0]).toBe(
        "dimension,value,metric_event_id,metric_event_key,variation_id,variation_key,visitors,mean,lift,lift_ci_low,lift_ci_high,p_value,q_value,verdict",
      );
      expect(lines).toHaveLength(1 + 3 * 2);
      expect(
        lines.find((l) => l.startsWith(`device,mobile,${event.id},buy,${b},b,400,0.2,`)),
      ).toMatch(/,winner$/);

      // The admin page: links per dimension and the segments' tables.
      const adminHtml = await (
        await exports.default.fetch(
          `${API_ORIGIN}/_ss/admin/experiments/${experiment.id}?environment=production&breakdown=device`,
          { headers: { cookie: await adminSession() } },
        )
      ).text();
      expect(adminHtml).toMatch(/data-breakdown="device"/);
      expect(adminHtml).toMatch(/data-segment="mobile"[\s\S]*?winner/);

      // Refusals.
      await apiJson(
        "GET",
        `/experiments/${experiment.id}/results?breakdown=device&from=2000-01-01`,
        422,
      );
      await apiJson("GET", `/experiments/${experiment.id}/results?breakdown=shoe_size`, 422);
    },
  );
});
