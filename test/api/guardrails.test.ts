/**
 * Guardrails and multivariate main effects through the real Worker (docs/statistics.md
 * "Guardrails", "Multivariate results"; docs/api.md "Results"), in workerd with the real D1, KV
 * and queue consumer: counts fed through `handleEventBatch`, the hourly `scheduled` handler runs
 * the guardrail check (src/api/services/guardrails.ts) — a harmed guardrail with `pause` pauses
 * the experiment in that environment, the datafile is republished without it, and the audit log
 * says why; `mark` only records the breach; a healthy experiment is left alone — and the results
 * of a multivariate experiment report each section's main effects.
 */
import { createScheduledController } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runGuardrailChecks } from "../../src/api/services/guardrails";
import type { ConversionMessage, ImpressionMessage } from "../../src/shared/event-messages";
import worker from "../../src/index";
import {
  API_ORIGIN,
  adminSession,
  api,
  apiJson,
  createProject,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { deliverToConsumer } from "../helpers/queue";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

let project: ProjectWithEnvironments;
let page: Json;
let purchase: Json;
let cart: Json;
const collection = (plural: string) => `/projects/${project.id}/${plural}`;
const production = () => project.environments.find((e) => e.key === "production")!;

beforeEach(async () => {
  project = await createProject();
  page = await apiJson("POST", collection("pages"), 201, {
    body: { key: "shop", conditions: ["or", { match: "substring", value: "/shop" }] },
  });
  purchase = await apiJson("POST", collection("events"), 201, {
    body: { key: "purchase", type: "custom" },
  });
  cart = await apiJson("POST", collection("events"), 201, {
    body: { key: "add_to_cart", type: "custom" },
  });
  vi.spyOn(console, "log").mockImplementation(() => {});
  vi.spyOn(console, "warn").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

/** `visitors` per variation; the first `converters[i][e]` of variation i convert on event e. */
async function feed(
  experiment: Json,
  visitors: number,
  converters: Array<Record<string, number>>,
): Promise<void> {
  const at = Date.now() - 60 * 60 * 1000;
  const bodies: unknown[] = [];
  experiment.variations.forEach((v: Json, i: number) => {
    for (let n = 0; n < visitors; n++) {
      const visitorId = uid(`${v.key}-visitor`);
      bodies.push({
        v: 1,
        type: "impression",
        uuid: uid("i"),
        sdkKey: production().sdkKey,
        revision: "2",
        visitorId,
        experimentId: experiment.id,
        variationId: v.id,
        timestamp: at,
        source: "edge",
      } satisfies ImpressionMessage);
      for (const event of [purchase, cart])
        if (n < (converters[i]![event.id] ?? 0))
          bodies.push({
            v: 1,
            type: "conversion",
            uuid: uid("c"),
            sdkKey: production().sdkKey,
            revision: "2",
            visitorId,
            eventId: event.id,
            eventKey: event.key,
            timestamp: at + 60_000,
            source: "browser",
          } satisfies ConversionMessage);
    }
  });
  await deliverToConsumer(bodies);
}

async function experiment(key: string, guardrail: Json, extra: Json = {}): Promise<Json> {
  const x = await apiJson("POST", collection("experiments"), 201, {
    body: {
      key,
      pageIds: [page.id],
      metrics: [
        { eventId: purchase.id, aggregator: "unique" },
        { eventId: cart.id, aggregator: "unique", ...(guardrail ? { guardrail } : {}) },
      ],
      variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
      ...extra,
    },
  });
  await apiJson("POST", `/experiments/${x.id}/start`, 200);
  return apiJson("GET", `/experiments/${x.id}`, 200);
}

async function datafileExperiment(id: string): Promise<Json> {
  const text = await env.DATAFILES.get(`datafiles/${production().sdkKey}`, "text");
  return (JSON.parse(text!).experiments as Json[]).find((x) => x.id === id) ?? null;
}

const auditOf = async (id: string): Promise<Json[]> =>
  (
    await apiJson(
      "GET",
      `/audit-log?resourceType=experiment&resourceId=${encodeURIComponent(id)}&limit=100`,
      200,
    )
  ).items;

describe("guardrails", () => {
  it(
    "a harmed guardrail with action pause pauses the experiment from the scheduled handler, republishes and audits why",
    { timeout: 60_000 },
    async () => {
      const paused = await experiment("harmful", { action: "pause" });
      const marked = await experiment("marked", { action: "mark" });
      const healthy = await experiment("healthy", { action: "pause" });
      // Variation b halves add_to_cart (30 % → 12 %) while purchases stay level.
      const harm = [
        { [purchase.id]: 40, [cart.id]: 120 },
        { [purchase.id]: 42, [cart.id]: 48 },
      ];
      await feed(paused, 400, harm);
      await feed(marked, 400, harm);
      await feed(healthy, 400, [
        { [purchase.id]: 40, [cart.id]: 120 },
        { [purchase.id]: 41, [cart.id]: 118 },
      ]);
      expect((await datafileExperiment(paused.id)).status).toBe("Running");

      const results = await apiJson("GET", `/experiments/${paused.id}/results`, 200);
      expect(results.guardrails).toEqual([
        expect.objectContaining({
          eventId: cart.id,
          variationId: paused.variations[1].id,
          action: "pause",
          harmed: true,
        }),
      ]);
      expect(results.guardrails[0].pValue).toBeLessThan(0.001);
      expect(results.guardrails[0].lift).toBeCloseTo(48 / 120 - 1, 10);
      expect(results.guardrailBreaches).toEqual([]);

      // The hourly cron.
      await worker.scheduled(
        createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
        env,
      );

      // Paused in production; the published datafile no longer runs it.
      const after = await apiJson("GET", `/experiments/${paused.id}`, 200);
      expect(after.status.production).toBe("Paused");
      const published = await datafileExperiment(paused.id);
      expect(published === null || published.status !== "Running").toBe(true);
      const audit = await auditOf(paused.id);
      const pause = audit.find((a) => a.action === "pause");
      expect(pause).toMatchObject({
        actor: expect.objectContaining({ id: "guardrail" }),
        details: expect.objectContaining({
          reason: "guardrail",
          environment: "production",
          from: "Running",
          to: "Paused",
          guardrails: [
            expect.objectContaining({
              eventKey: "add_to_cart",
              variationKey: "b",
              action: "pause",
            }),
          ],
        }),
      });
      expect(audit.map((a) => a.action)).toContain("guardrail.breached");
      const marks = (await apiJson("GET", `/experiments/${paused.id}/results`, 200))
        .guardrailBreaches;
      expect(marks).toEqual([
        expect.objectContaining({ eventId: cart.id, variationId: paused.variations[1].id }),
      ]);

      // The admin's results page shows the mark and the guardrails' table.
      const adminPage = await exports.default.fetch(
        `${API_ORIGIN}/_ss/admin/experiments/${paused.id}?environment=production`,
        { headers: { cookie: await adminSession() } },
      );
      expect(adminPage.status).toBe(200);
      const adminHtml = await adminPage.text();
      expect(adminHtml).toContain('data-guardrail="breached"');
      expect(adminHtml).toMatch(/b harms add_to_cart[\s\S]*the experiment was paused/);
      expect(adminHtml).toMatch(/data-guardrail-metric="add_to_cart"\s+data-variation="b"/);

      // mark: recorded and audited, still running.
      expect((await apiJson("GET", `/experiments/${marked.id}`, 200)).status.production).toBe(
        "Running",
      );
      expect((await datafileExperiment(marked.id)).status).toBe("Running");
      expect(
        (await apiJson("GET", `/experiments/${marked.id}/results`, 200)).guardrailBreaches,
      ).toHaveLength(1);
      expect((await auditOf(marked.id)).map((a) => a.action)).toContain("guardrail.breached");

      // healthy: nothing.
      expect((await apiJson("GET", `/experiments/${healthy.id}`, 200)).status.production).toBe(
        "Running",
      );
      expect(
        (await apiJson("GET", `/experiments/${healthy.id}/results`, 200)).guardrailBreaches,
      ).toEqual([]);

      // The next run records nothing again (the mark is kept once).
      const again = await runGuardrailChecks(env, Date.now());
      expect(again.breaches).toEqual([]);
      expect(again.paused).toEqual([]);
      expect(again.failed).toEqual([]);

      // A person resumes it despite the harm: the next runs do not overrule them.
      await apiJson("POST", `/experiments/${paused.id}/resume`, 200);
      const afterResume = await runGuardrailChecks(env, Date.now());
      expect(afterResume.paused).toEqual([]);
      expect((await apiJson("GET", `/experiments/${paused.id}`, 200)).status.production).toBe(
        "Running",
      );
      expect(marks[0].pausedAt).not.toBeNull();
      expect(marks[0].metric).toBe("unique");
    },
  );

  it("refuses a guardrail with an unknown action, naming the path", async () => {
    const r = await api("POST", collection("experiments"), {
      body: {
        key: "bad_guardrail",
        pageIds: [page.id],
        metrics: [{ eventId: purchase.id, aggregator: "unique", guardrail: { action: "stop" } }],
        variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
      },
    });
    expect(r.status).toBe(422);
    const details = ((await r.json()) as Json).error.details as Json[];
    expect(details.map((d) => d.path)).toContain("$.body.metrics[0].guardrail.action");
  });
});

describe("multivariate results", () => {
  it(
    "report each section's main effects beside the combinations",
    { timeout: 60_000 },
    async () => {
      const x = await apiJson("POST", collection("experiments"), 201, {
        body: {
          key: "mvt",
          type: "multivariate",
          pageIds: [page.id],
          metrics: [{ eventId: purchase.id, aggregator: "unique" }],
          sections: [
            { name: "Headline", variations: [{ name: "Original" }, { name: "Bold" }] },
            { name: "Button", variations: [{ name: "Blue" }, { name: "Green" }] },
          ],
        },
      });
      await apiJson("POST", `/experiments/${x.id}/start`, 200);
      const started = await apiJson("GET", `/experiments/${x.id}`, 200);
      // Bold converts at 20 %, Original at 10 %, whatever the button.
      const rates = started.variations.map((v: Json) => (v.key.startsWith("bold") ? 80 : 40));
      await feed(
        started,
        400,
        rates.map((k: number) => ({ [purchase.id]: k })),
      );
      const results = await apiJson("GET", `/experiments/${x.id}/results`, 200);
      expect(results.variations).toHaveLength(4);
      expect(results.sections).toHaveLength(2);
      const [headline, button] = results.sections;
      expect(headline.name).toBe("Headline");
      expect(headline.variations.map((v: Json) => [v.name, v.visitors, v.weight])).toEqual([
        ["Original", 800, 5000],
        ["Bold", 800, 5000],
      ]);
      expect(headline.baselineVariationId).toBe(started.sections[0].variations[0].id);
      const bold = headline.metrics[0].variations[1];
      expect(bold).toMatchObject({ visitors: 800, verdict: "winner", significant: true });
      expect(bold.mean).toBeCloseTo(160 / 800, 12);
      expect(button.metrics[0].variations[1].significant).toBe(false);
      const adminHtml = await (
        await exports.default.fetch(
          `${API_ORIGIN}/_ss/admin/experiments/${x.id}?environment=production`,
          {
            headers: { cookie: await adminSession() },
          },
        )
      ).text();
      expect(adminHtml).toContain("Sections (main effects)");
      expect(adminHtml).toMatch(/data-section="Headline"\s+data-metric="purchase"/);
      expect(adminHtml).toMatch(/data-variant="Bold"[\s\S]*?winner/);
      // A/B experiments have none.
      const ab = await experiment("plain", null);
      expect((await apiJson("GET", `/experiments/${ab.id}/results`, 200)).sections).toBeNull();
    },
  );
});
