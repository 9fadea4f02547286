/**
 * Experiment schedules through the real Worker (docs/schedules.md), in workerd with the real D1
 * and KV: a schedule written through the API is run by the Worker's own `scheduled` handler with
 * the trigger's time set by the test — each step applied at its time and not before, exactly
 * once when the handler runs twice for the same time, each publishing a datafile revision and
 * audited by the actor `schedule` — and the edge serves the new allocation to the visitors whose
 * bucket falls in the new share (the same visitors stay in as the share grows). Also: validation
 * errors with their paths, roles, If-Match, a failing or senseless step not blocking the others,
 * and the hourly jobs staying on the hourly cron.
 */
import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { bucketFromHash } from "../../src/core/decide";
import { murmurhash3 } from "../../src/core/murmurhash";
import { runSchedules } from "../../src/api/services/schedule-run";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import worker from "../../src/index";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { decisionsOf, routedWorker } from "../helpers/pipeline";
import { d1FailingOn } from "../helpers/failing-d1";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const MINUTE = 60_000;
const MINUTE_CRON = "* * * * *";

let project: ProjectWithEnvironments;
let page: Json;
let purchase: Json;
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
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

async function experiment(key: string, extra: Json = {}): Promise<Json> {
  return apiJson("POST", collection("experiments"), 201, {
    body: {
      key,
      pageIds: [page.id],
      metrics: [{ eventId: purchase.id, aggregator: "unique" }],
      variations: [
        { key: "a", weight: 2000 },
        { key: "b", weight: 8000 },
      ],
      ...extra,
    },
  });
}

/** The Worker's scheduled handler at `time`, as the per-minute trigger (or `cron`). */
async function runAt(time: number, cron = MINUTE_CRON): Promise<void> {
  await worker.scheduled(createScheduledController({ scheduledTime: time, cron }), env);
}

/** A whole minute at least `minutes` ahead (as a person would pick). */
function minutesAhead(minutes: number): number {
  return Math.ceil(Date.now() / MINUTE) * MINUTE + minutes * MINUTE;
}
const iso = (t: number) => new Date(t).toISOString();

async function revision(): Promise<number> {
  return (await apiJson("GET", `/environments/${production().id}`, 200)).revision;
}

async function publishedExperiment(id: string): Promise<Json> {
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

const stepsOf = async (id: string, environment = "production"): Promise<Json[]> =>
  (await apiJson("GET", `/experiments/${id}/schedules/${environment}`, 200)).steps;

describe("a scheduled start and a 10 → 50 → 100 % ramp, run by the scheduled handler", () => {
  let origin: MockedOrigin;
  beforeEach(() => {
    origin = mockOrigin(
      () =>
        new Response("<!doctype html><html><body><h1>Shop</h1></body></html>", {
          headers: { "content-type": "text/html; charset=utf-8" },
        }),
    );
    resetDatafileStore();
  });
  afterEach(() => {
    origin.restore();
    resetDatafileStore();
  });

  it(
    "applies each step at its time, once, publishes, audits, and the edge follows",
    { timeout: 120_000 },
    async () => {
      const x = await experiment("ramp");
      const t1 = minutesAhead(2);
      const t2 = t1 + 60 * MINUTE;
      const t3 = t2 + 24 * 60 * MINUTE;
      const put = await api("PUT", `/experiments/${x.id}/schedules/production`, {
        body: {
          steps: [
            { at: iso(t1), action: "traffic", percent: 10 },
            { at: iso(t1), action: "start" },
            { at: iso(t2), action: "traffic", percent: 50 },
            { at: iso(t3), action: "traffic", percent: 100 },
          ],
        },
      });
      expect(put.status).toBe(200);
      expect(put.headers.get("etag")).toBe('W/"v1"');
      const schedule = await put.json<Json>();
      expect(schedule).toMatchObject({ experimentId: x.id, environment: "production", version: 1 });
      expect(schedule.steps.map((s: Json) => [s.action, s.percent, s.status])).toEqual([
        ["traffic", 10, "pending"],
        ["start", null, "pending"],
        ["traffic", 50, "pending"],
        ["traffic", 100, "pending"],
      ]);
      // Writing a schedule publishes nothing; it is audited with the user.
      const before = await revision();
      const written = (await auditOf(x.id)).find((a) => a.action === "schedule.update");
      expect(written).toMatchObject({
        actor: expect.objectContaining({ id: "admin-token" }),
        details: expect.objectContaining({ environment: "production", replaced: 0 }),
      });
      expect(written.details.steps).toHaveLength(4);

      const site = routedWorker([
        {
          pattern: "shop.example.com/*",
          sdk_key: production().sdkKey,
          origin: "https://o.example",
        },
      ]);
      const visitors = Array.from({ length: 400 }, (_, i) => `visitor-${i}`);
      /** The visitors the edge puts in the experiment (new visitors: ss_vid only, no ss_dec). */
      async function inExperiment(): Promise<Set<string>> {
        resetDatafileStore();
        const inside = new Set<string>();
        for (const id of visitors) {
          const response = await site("https://shop.example.com/shop", {
            headers: { cookie: `ss_vid=${id}`, "accept-encoding": "identity" },
          });
          expect(response.status).toBe(200);
          if (decisionsOf(response).has("ramp")) inside.add(id);
        }
        return inside;
      }
      /** Independently of the edge: the visitors whose bucket (Optimizely's hash) is below the share. */
      const expectedIn = (bp: number) =>
        new Set(visitors.filter((v) => bucketFromHash(murmurhash3(`${v}${x.id}`, 1)) < bp));

      // A minute early: nothing.
      await runAt(t1 - MINUTE);
      expect((await stepsOf(x.id)).map((s) => s.status)).toEqual([
        "pending",
        "pending",
        "pending",
        "pending",
      ]);
      expect(await revision()).toBe(before);
      expect((await apiJson("GET", `/experiments/${x.id}`, 200)).status.production).toBe(
        "Not started",
      );
      expect((await inExperiment()).size).toBe(0);

      // t1: 10 % then start, in that order; twice for the same time: applied once.
      await runAt(t1);
      await runAt(t1);
      let steps = await stepsOf(x.id);
      expect(steps.map((s) => s.status)).toEqual(["done", "done", "pending", "pending"]);
      expect(steps[0].revision).toBe(before + 1);
      expect(steps[1].revision).toBe(before + 2);
      expect(steps[0].appliedAt).toEqual(expect.any(String));
      expect(await revision()).toBe(before + 2);
      const current = await apiJson("GET", `/experiments/${x.id}`, 200);
      expect(current.status.production).toBe("Running");
      expect(current.traffic).toBe(1000);
      // The variations keep their 20 / 80 split of the 10 %.
      let published = await publishedExperiment(x.id);
      expect(published.status).toBe("Running");
      expect(published.trafficAllocation.map((t: Json) => t.endOfRange)).toEqual([200, 1000]);
      const at10 = await inExperiment();
      expect(at10).toEqual(expectedIn(1000));
      expect(at10.size).toBeGreaterThan(400 * 0.04);
      expect(at10.size).toBeLessThan(400 * 0.18);

      // Not yet t2.
      await runAt(t2 - 1000);
      expect((await stepsOf(x.id))[2].status).toBe("pending");
      expect(await revision()).toBe(before + 2);

      // Two runs overlapping (as two triggers could): the claim lets one of them apply the step.
      await Promise.all([runAt(t2), runAt(t2)]);
      steps = await stepsOf(x.id);
      expect(steps.map((s) => s.status)).toEqual(["done", "done", "done", "pending"]);
      expect(steps[2].revision).toBe(before + 3);
      published = await publishedExperiment(x.id);
      expect(published.trafficAllocation.map((t: Json) => t.endOfRange)).toEqual([1000, 5000]);
      const at50 = await inExperiment();
      expect(at50).toEqual(expectedIn(5000));
      expect(at50.size).toBeGreaterThan(400 * 0.38);
      expect(at50.size).toBeLessThan(400 * 0.62);
      // Whoever was in at 10 % is still in (same bucket, a wider share).
      for (const id of at10) expect(at50.has(id)).toBe(true);

      await runAt(t3 + 30_000);
      await runAt(t3 + 30_000);
      steps = await stepsOf(x.id);
      expect(steps.map((s) => s.status)).toEqual(["done", "done", "done", "done"]);
      expect(steps[3].revision).toBe(before + 4);
      expect(await revision()).toBe(before + 4);
      published = await publishedExperiment(x.id);
      expect(published.trafficAllocation.map((t: Json) => t.endOfRange)).toEqual([2000, 10000]);
      expect((await inExperiment()).size).toBe(400);

      // Audited by the `schedule` actor: the action and the change as the API's, and each step.
      const audit = await auditOf(x.id);
      const bySchedule = audit.filter((a) => a.actor.id === "schedule");
      expect(bySchedule.filter((a) => a.action === "start")).toEqual([
        expect.objectContaining({
          details: expect.objectContaining({
            reason: "schedule",
            stepId: steps[1].id,
            environment: "production",
            from: "Not started",
            to: "Running",
          }),
        }),
      ]);
      expect(bySchedule.filter((a) => a.action === "update")).toHaveLength(3);
      const stepEntries = bySchedule.filter((a) => a.action === "schedule.step");
      expect(stepEntries).toHaveLength(4);
      expect(stepEntries.map((a) => a.details.stepId).sort()).toEqual(
        steps.map((s) => s.id).sort(),
      );
      expect(stepEntries.find((a) => a.details.stepId === steps[2].id).details).toMatchObject({
        environment: "production",
        action: "traffic",
        percent: 50,
        status: "done",
        revision: before + 3,
        error: null,
      });
      // The published revisions name who made them.
      const revisions = await apiJson("GET", `/environments/${production().id}/revisions`, 200);
      const reasons = (revisions.items as Json[]).filter((r) => r.revision > before);
      expect(reasons).toHaveLength(4);
    },
  );
});

describe("steps that cannot or need not run", () => {
  it(
    "a senseless step is skipped, a failing one is recorded, neither blocks the others",
    { timeout: 30_000 },
    async () => {
      const running = await experiment("already_running");
      await apiJson("POST", `/experiments/${running.id}/start`, 200);
      // In a project of its own: its publish failing must not be the other projects' (it would
      // be, within one project, as for the API's own writes).
      const other = await createProject();
      const otherPage = await apiJson("POST", `/projects/${other.id}/pages`, 201, {
        body: { key: "shop", conditions: ["or", { match: "substring", value: "/shop" }] },
      });
      const otherEvent = await apiJson("POST", `/projects/${other.id}/events`, 201, {
        body: { key: "purchase", type: "custom" },
      });
      const broken = await apiJson("POST", `/projects/${other.id}/experiments`, 201, {
        body: {
          key: "broken",
          pageIds: [otherPage.id],
          metrics: [{ eventId: otherEvent.id, aggregator: "unique" }],
          variations: [
            { key: "a", weight: 5000 },
            { key: "b", weight: 5000 },
          ],
        },
      });
      const healthy = await experiment("healthy");
      const t = minutesAhead(2);
      await apiJson("PUT", `/experiments/${running.id}/schedules/production`, 200, {
        body: {
          steps: [
            { at: iso(t), action: "start" },
            { at: iso(t), action: "pause" },
          ],
        },
      });
      await apiJson("PUT", `/experiments/${broken.id}/schedules/production`, 200, {
        body: { steps: [{ at: iso(t), action: "traffic", percent: 25 }] },
      });
      await apiJson("PUT", `/experiments/${healthy.id}/schedules/production`, 200, {
        body: { steps: [{ at: iso(t + MINUTE), action: "start" }] },
      });
      // The broken experiment's page is gone from under it (written past the API, as a damaged or
      // hand-edited database would be): its update no longer validates.
      await env.DB.prepare("UPDATE experiments SET page_ids = ? WHERE id = ?")
        .bind(JSON.stringify(["no-such-page"]), broken.id)
        .run();

      await runAt(t + MINUTE);

      const [skip, pause] = await stepsOf(running.id);
      expect(skip).toMatchObject({ action: "start", status: "skipped", revision: null });
      expect(skip.error).toMatch(
        /cannot start experiment already_running in production: it is Running/,
      );
      expect(pause).toMatchObject({ action: "pause", status: "done", error: null });
      expect((await apiJson("GET", `/experiments/${running.id}`, 200)).status.production).toBe(
        "Paused",
      );
      const [failed] = await stepsOf(broken.id);
      expect(failed).toMatchObject({ status: "failed", revision: null });
      expect(failed.error).toMatch(/page/);
      expect((await apiJson("GET", `/experiments/${broken.id}`, 200)).traffic).toBe(10000);
      const [started] = await stepsOf(healthy.id);
      expect(started).toMatchObject({ status: "done" });
      expect((await apiJson("GET", `/experiments/${healthy.id}`, 200)).status.production).toBe(
        "Running",
      );
      // The failure and the skip are audited with their reason.
      const failure = (await auditOf(broken.id)).find((a) => a.action === "schedule.step");
      expect(failure).toMatchObject({
        actor: expect.objectContaining({ id: "schedule" }),
        details: expect.objectContaining({ status: "failed", action: "traffic", percent: 25 }),
      });
      expect(failure.details.error).toMatch(/page/);
      // Nothing left to do: a second run changes nothing.
      const revisionAfter = await revision();
      await runAt(t + 2 * MINUTE);
      expect(await revision()).toBe(revisionAfter);
    },
  );

  it(
    "a traffic step the experiment already has is skipped without publishing",
    { timeout: 30_000 },
    async () => {
      const x = await experiment("same_traffic", { traffic: 5000 });
      const t = minutesAhead(2);
      await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        body: { steps: [{ at: iso(t), action: "traffic", percent: 50 }] },
      });
      const before = await revision();
      // The service itself, as the handler calls it: its report says what it did.
      const report = await runSchedules(env, t);
      expect(report).toMatchObject({ due: 1, done: [], failed: [], deferred: 0 });
      expect(report.skipped).toEqual([
        expect.objectContaining({
          experimentId: x.id,
          environment: "production",
          action: "traffic",
        }),
      ]);
      expect((await stepsOf(x.id))[0]).toMatchObject({
        status: "skipped",
        error: "traffic is already 50 %",
      });
      expect(await revision()).toBe(before);
    },
  );

  it(
    "a step D1 refuses to claim stays pending, is deferred (not failed), and runs next time",
    { timeout: 30_000 },
    async () => {
      const x = await experiment("claim_refused");
      const t = minutesAhead(2);
      await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        body: { steps: [{ at: iso(t), action: "start" }] },
      });
      const prepare = env.DB.prepare.bind(env.DB);
      const spy = vi.spyOn(env.DB, "prepare").mockImplementation((sql: string) => {
        if (sql.startsWith("UPDATE schedule_steps SET status = 'running'"))
          throw new Error("d1 unreachable");
        return prepare(sql);
      });
      vi.spyOn(console, "error").mockImplementation(() => undefined);
      let report: Awaited<ReturnType<typeof runSchedules>>;
      try {
        report = await runSchedules(env, t);
      } finally {
        spy.mockRestore();
      }
      expect(report).toMatchObject({ due: 1, done: [], skipped: [], failed: [], deferred: 1 });
      expect((await stepsOf(x.id))[0]).toMatchObject({ status: "pending" });
      expect((await runSchedules(env, t + MINUTE)).done).toHaveLength(1);
      expect((await stepsOf(x.id))[0]).toMatchObject({ status: "done" });
    },
  );

  it(
    "the hourly trigger applies due steps too; the per-minute one leaves the hourly jobs alone",
    { timeout: 30_000 },
    async () => {
      const x = await experiment("hourly");
      const t = minutesAhead(2);
      await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        body: { steps: [{ at: iso(t), action: "start" }] },
      });
      // A spilled event file: the hourly job re-queues and deletes it, the per-minute run must not.
      const key = `spill/2026-01-01/${crypto.randomUUID()}.ndjson`;
      await env.ARCHIVE.put(key, "");
      await runAt(t);
      expect(await env.ARCHIVE.head(key)).not.toBeNull();
      expect((await stepsOf(x.id))[0].status).toBe("done");
      await env.ARCHIVE.delete(key);

      const y = await experiment("hourly_2");
      await apiJson("PUT", `/experiments/${y.id}/schedules/production`, 200, {
        body: { steps: [{ at: iso(t), action: "start" }] },
      });
      await runAt(t, "17 * * * *");
      expect((await stepsOf(y.id))[0].status).toBe("done");
    },
  );
});

describe("the scheduled handler", () => {
  it(
    "a failing schedule run is logged, fails the trigger, and stops none of the hourly jobs",
    { timeout: 30_000 },
    async () => {
      const failing = d1FailingOn(env.DB, "FROM schedule_steps AS s", "schedule boom");
      const log = vi.spyOn(console, "log").mockImplementation(() => {});
      const error = vi.spyOn(console, "error").mockImplementation(() => {});
      await expect(
        worker.scheduled(
          createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
          { ...env, DB: failing },
        ),
      ).rejects.toThrow("schedule boom");
      expect(log.mock.calls.flat().join(" ")).toMatch(/retention \(17 \* \* \* \*\) deleted/);
      expect(error.mock.calls.flat().join(" ")).toMatch(/schedule run failed/);
      // The per-minute trigger runs the schedules only: its failure is the trigger's.
      log.mockClear();
      await expect(
        worker.scheduled(
          createScheduledController({ scheduledTime: Date.now(), cron: MINUTE_CRON }),
          { ...env, DB: failing },
        ),
      ).rejects.toThrow("schedule boom");
      expect(log.mock.calls.flat().join(" ")).not.toMatch(/retention/);
    },
  );
});

describe("the schedule API", () => {
  it("refuses invalid steps with their paths", { timeout: 30_000 }, async () => {
    const x = await experiment("invalid");
    const now = Date.now();
    const response = await api("PUT", `/experiments/${x.id}/schedules/production`, {
      body: {
        steps: [
          { at: iso(now - MINUTE), action: "start" },
          { at: "2026-02-30T10:00:00Z", action: "pause" },
          { at: "tomorrow", action: "resume" },
          { at: iso(now + 400 * 24 * 60 * MINUTE), action: "archive" },
          { at: iso(now + 10 * MINUTE), action: "traffic" },
          { at: iso(now + 5 * MINUTE), action: "traffic", percent: 12.345 },
          { at: iso(now + 20 * MINUTE), action: "start", percent: 10 },
          { at: "2026-12-24T08:00:00+01:00", action: "start" },
        ],
      },
    });
    expect(response.status).toBe(422);
    const body = await response.json<Json>();
    const paths = (body.error.details as Json[]).map((d) => d.path);
    expect(paths).toEqual([
      "$.body.steps[0].at",
      "$.body.steps[1].at",
      "$.body.steps[2].at",
      "$.body.steps[3].at",
      "$.body.steps[4].percent",
      "$.body.steps[5].at",
      "$.body.steps[5].percent",
      "$.body.steps[6].percent",
      "$.body.steps[7].at",
    ]);
    expect(body.error.details[0].message).toMatch(/in the future/);
    expect(body.error.details[3].message).toMatch(/366 days/);
    expect(body.error.details[5].message).toMatch(/time order/);

    // The schema's own refusals: unknown action, percent out of range, unknown field, 2^53.
    const schema = await api("PUT", `/experiments/${x.id}/schedules/production`, {
      body: {
        steps: [
          { at: iso(now + MINUTE), action: "launch" },
          { at: iso(now + MINUTE), action: "traffic", percent: 101 },
          { at: iso(now + MINUTE), action: "traffic", percent: -1 },
          { at: iso(now + MINUTE), action: "traffic", percent: 2 ** 53 },
          { at: iso(now + MINUTE), action: "start", note: "x" },
        ],
        extra: true,
      },
    });
    expect(schema.status).toBe(422);
    const schemaPaths = ((await schema.json<Json>()).error.details as Json[]).map((d) => d.path);
    expect(schemaPaths).toEqual(
      expect.arrayContaining([
        "$.body.steps[0].action",
        "$.body.steps[1].percent",
        "$.body.steps[2].percent",
        "$.body.steps[3].percent",
        "$.body.steps[4].note",
        "$.body.extra",
      ]),
    );
    expect(
      (await api("PUT", `/experiments/${x.id}/schedules/production`, { body: {} })).status,
    ).toBe(422);
    // Nothing was written.
    const schedule = await apiJson("GET", `/experiments/${x.id}/schedules/production`, 200);
    expect(schedule).toMatchObject({ version: 0, steps: [], updatedAt: null });
    // Unknown experiment, unknown environment.
    expect((await api("GET", `/experiments/nope/schedules/production`)).status).toBe(404);
    expect((await api("GET", `/experiments/${x.id}/schedules/staging`)).status).toBe(404);
    expect(
      (
        await api("PUT", `/experiments/${x.id}/schedules/staging`, {
          body: { steps: [] },
        })
      ).status,
    ).toBe(404);
  });

  it(
    "viewers read, editors write; If-Match guards the schedule; DELETE cancels what is pending",
    { timeout: 30_000 },
    async () => {
      const x = await experiment("roles");
      const viewer = await createToken("viewer");
      const editor = await createToken("editor");
      const t = minutesAhead(5);
      const body = { steps: [{ at: iso(t), action: "start" }] };
      const refused = await api("PUT", `/experiments/${x.id}/schedules/production`, {
        token: viewer.token,
        body,
      });
      expect(refused.status).toBe(403);
      expect(
        (await api("DELETE", `/experiments/${x.id}/schedules/production`, { token: viewer.token }))
          .status,
      ).toBe(403);
      expect(
        (await api("GET", `/experiments/${x.id}/schedules/production`, { token: null })).status,
      ).toBe(401);
      const read = await api("GET", `/experiments/${x.id}/schedules/production`, {
        token: viewer.token,
      });
      expect(read.status).toBe(200);
      expect(read.headers.get("etag")).toBe('W/"v0"');

      const written = await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        token: editor.token,
        body,
        headers: { "if-match": 'W/"v0"' },
      });
      expect(written.version).toBe(1);
      expect(
        (
          await apiJson(
            "GET",
            `/audit-log?resourceType=experiment&resourceId=${x.id}&limit=10`,
            200,
          )
        ).items.find((a: Json) => a.action === "schedule.update").actor.id,
      ).toBe(editor.id);
      // A stale If-Match: 409, nothing changed.
      const stale = await api("PUT", `/experiments/${x.id}/schedules/production`, {
        token: editor.token,
        body: { steps: [] },
        headers: { "if-match": 'W/"v0"' },
      });
      expect(stale.status).toBe(409);
      expect((await stale.json<Json>()).error.code).toBe("version_conflict");
      expect(await stepsOf(x.id)).toHaveLength(1);

      // Every environment's schedule.
      const list = await apiJson("GET", `/experiments/${x.id}/schedules`, 200, {
        token: viewer.token,
      });
      expect(list.items.map((s: Json) => [s.environment, s.steps.length])).toEqual([
        ["production", 1],
        ["development", 0],
      ]);

      // The step runs; then DELETE cancels the pending ones and keeps the history.
      await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        body: {
          steps: [
            { at: iso(t), action: "start" },
            { at: iso(t + MINUTE), action: "pause" },
          ],
        },
      });
      await runAt(t);
      const cancelled = await apiJson("DELETE", `/experiments/${x.id}/schedules/production`, 200, {
        token: editor.token,
        headers: { "if-match": 'W/"v2"' },
      });
      expect(cancelled.version).toBe(3);
      expect(cancelled.steps.map((s: Json) => [s.action, s.status])).toEqual([["start", "done"]]);
      expect((await auditOf(x.id)).some((a) => a.action === "schedule.delete")).toBe(true);
      await runAt(t + MINUTE);
      expect((await apiJson("GET", `/experiments/${x.id}`, 200)).status.production).toBe("Running");

      // Archived there: nothing left to schedule.
      await apiJson("POST", `/experiments/${x.id}/archive`, 200);
      const archived = await api("PUT", `/experiments/${x.id}/schedules/production`, {
        body: { steps: [{ at: iso(minutesAhead(3)), action: "resume" }] },
      });
      expect(archived.status).toBe(409);
    },
  );

  it(
    "a pending step whose time has come is the run's: a write made then keeps it",
    { timeout: 30_000 },
    async () => {
      const x = await experiment("due");
      const t = minutesAhead(5);
      const written = await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        body: {
          steps: [
            { at: iso(t), action: "start" },
            { at: iso(t + MINUTE), action: "pause" },
          ],
        },
      });
      // Its time comes (the clock cannot be moved in the test: the step's time is moved instead).
      const due = new Date(Date.now() - 1000).toISOString();
      await env.DB.prepare("UPDATE schedule_steps SET at = ? WHERE id = ?")
        .bind(due, written.steps[0].id)
        .run();
      const cancelled = await apiJson("DELETE", `/experiments/${x.id}/schedules/production`, 200);
      expect(cancelled.steps.map((s: Json) => [s.action, s.status])).toEqual([
        ["start", "pending"],
      ]);
      const audit = (await auditOf(x.id)).find((a) => a.action === "schedule.delete");
      expect(audit.details.replaced).toBe(1);
      await runAt(Date.now());
      expect((await stepsOf(x.id)).map((s) => [s.action, s.status])).toEqual([["start", "done"]]);
    },
  );

  it("deleting the experiment deletes its schedules", { timeout: 30_000 }, async () => {
    const x = await experiment("deleted");
    await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
      body: { steps: [{ at: iso(minutesAhead(2)), action: "start" }] },
    });
    await apiJson("DELETE", `/experiments/${x.id}`, 200);
    expect((await api("GET", `/experiments/${x.id}/schedules`)).status).toBe(404);
    const left = await env.DB.prepare(
      "SELECT (SELECT COUNT(*) FROM experiment_schedules WHERE experiment_id = ?1) + (SELECT COUNT(*) FROM schedule_steps WHERE experiment_id = ?1) AS n",
    )
      .bind(x.id)
      .first<{ n: number }>();
    expect(left?.n).toBe(0);
  });

  it(
    "two writes racing on one version: one wins, the other changes nothing",
    { timeout: 30_000 },
    async () => {
      const x = await experiment("race");
      const t = minutesAhead(3);
      const [a, b] = await Promise.all(
        ["start", "archive"].map((action) =>
          api("PUT", `/experiments/${x.id}/schedules/production`, {
            body: { steps: [{ at: iso(t), action }] },
            headers: { "if-match": 'W/"v0"' },
          }),
        ),
      );
      expect([a!.status, b!.status].sort()).toEqual([200, 409]);
      const steps = await stepsOf(x.id);
      expect(steps).toHaveLength(1);
      expect((await auditOf(x.id)).filter((e) => e.action === "schedule.update")).toHaveLength(1);
    },
  );
});
