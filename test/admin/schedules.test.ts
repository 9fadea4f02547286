/**
 * The admin's schedule section (docs/admin.md "Schedules"): the experiment page shows each
 * environment's schedule — history with outcome, pending steps — and an editor adds, changes and
 * removes pending steps through its forms (same-origin POSTs, as every admin form); the API's
 * service validates them and a stale page is refused. A viewer sees no forms, and posting anyway
 * changes nothing. Through the real Worker in workerd (D1, KV).
 */
import { createScheduledController } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { adminPage, adminPost } from "../helpers/admin";
import {
  adminSession,
  API_ORIGIN,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const MINUTE = 60_000;

let project: ProjectWithEnvironments;
let x: Json;

/** A datetime-local value (UTC) `minutes` whole minutes ahead. */
function formTime(minutes: number): string {
  return new Date(Math.ceil(Date.now() / MINUTE) * MINUTE + minutes * MINUTE)
    .toISOString()
    .slice(0, 16);
}

const schedule = (environment = "production") =>
  apiJson("GET", `/experiments/${x.id}/schedules/${environment}`, 200);

beforeEach(async () => {
  project = await createProject();
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "shop", conditions: ["or", { match: "substring", value: "/shop" }] },
  });
  const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  x = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "admin_ramp",
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: [
        { key: "a", weight: 5000 },
        { key: "b", weight: 5000 },
      ],
    },
  });
});

describe("the experiment page's schedule", () => {
  it(
    "an editor adds, changes and removes steps; the page shows history and outcome",
    { timeout: 30_000 },
    async () => {
      const cookie = await adminSession();
      let html = await adminPage(`/experiments/${x.id}`, cookie);
      expect(html).toContain('<section id="schedules">');
      expect(html).toContain('data-schedule="production"');
      expect(html).toContain('data-schedule="development"');
      expect(html).toContain('data-schedule-add="production"');

      const steps = `/experiments/${x.id}/schedules/production/steps`;
      // Add: a traffic step, then a start listed later but timed earlier (the admin orders them).
      let response = await adminPost(steps, cookie, {
        version: "0",
        at: formTime(10),
        action: "traffic",
        percent: "25",
      });
      expect(response.status).toBe(303);
      expect(response.headers.get("location")).not.toContain("notice=");
      response = await adminPost(steps, cookie, {
        version: "1",
        at: formTime(2),
        action: "start",
        percent: "",
      });
      expect(response.headers.get("location")).not.toContain("notice=");
      let current = await schedule();
      expect(current.version).toBe(2);
      expect(current.steps.map((s: Json) => [s.action, s.percent])).toEqual([
        ["start", null],
        ["traffic", 25],
      ]);
      expect(current.steps[0].at).toBe(`${formTime(2)}:00.000Z`);

      // A stale page (version 1) is refused with the API's message; nothing changes.
      response = await adminPost(steps, cookie, {
        version: "1",
        at: formTime(20),
        action: "pause",
      });
      expect(decodeURIComponent(response.headers.get("location")!)).toMatch(
        /notice=Schedule not changed: the resource was changed by someone else/,
      );
      expect((await schedule()).version).toBe(2);
      // Invalid input: the API's validation, shown as the notice.
      response = await adminPost(steps, cookie, {
        version: "2",
        at: "2020-01-01T00:00",
        action: "pause",
      });
      const refused = await exports.default.fetch(
        `${API_ORIGIN}${response.headers.get("location")}`,
        {
          headers: { cookie },
        },
      );
      expect(await refused.text()).toContain("must be in the future");
      response = await adminPost(steps, cookie, {
        version: "2",
        at: formTime(30),
        action: "traffic",
        percent: "",
      });
      expect(decodeURIComponent(response.headers.get("location")!)).toMatch(/needs a percent/);

      // Change the traffic step to 40 %.
      const traffic = current.steps[1];
      response = await adminPost(`${steps}/${traffic.id}`, cookie, {
        version: "2",
        at: formTime(10),
        action: "traffic",
        percent: "40",
      });
      expect(response.headers.get("location")).not.toContain("notice=");
      current = await schedule();
      expect(current.steps.map((s: Json) => [s.action, s.percent])).toEqual([
        ["start", null],
        ["traffic", 40],
      ]);

      // The start runs: history with its outcome, the traffic step still pending and editable.
      await worker.scheduled(
        createScheduledController({
          scheduledTime: Date.parse(`${formTime(2)}:00Z`),
          cron: "* * * * *",
        }),
        env,
      );
      current = await schedule();
      html = await adminPage(`/experiments/${x.id}?environment=production`, cookie);
      expect(html).toMatch(
        new RegExp(
          `data-step="${current.steps[0].id}" data-step-status="done"[\\s\\S]*?start[\\s\\S]*?done`,
        ),
      );
      expect(html).toContain(`data-schedule-save="${current.steps[1].id}"`);
      expect(html).toContain('value="40"');

      // Remove the pending step; a ran step cannot be removed.
      response = await adminPost(`${steps}/${current.steps[1].id}/remove`, cookie, {
        version: String(current.version),
      });
      expect(response.headers.get("location")).not.toContain("notice=");
      response = await adminPost(`${steps}/${current.steps[0].id}/remove`, cookie, {
        version: String(current.version + 1),
      });
      expect(decodeURIComponent(response.headers.get("location")!)).toMatch(/no longer pending/);
      current = await schedule();
      expect(current.steps.map((s: Json) => s.status)).toEqual(["done"]);
      // Audited with the user.
      const audit = await apiJson(
        "GET",
        `/audit-log?resourceType=experiment&resourceId=${x.id}&limit=100`,
        200,
      );
      expect(
        audit.items.filter(
          (a: Json) => a.action === "schedule.update" && a.actor.id === "admin-token",
        ),
      ).toHaveLength(4);
      // The experiment's history page shows them, steps and all.
      const history = await adminPage(`/experiments/${x.id}/history`, cookie);
      expect(history).toContain("schedule.update");
      expect(history).toContain("schedule.step");
      expect(history).toContain("&quot;action&quot;:&quot;traffic&quot;,&quot;percent&quot;:40");
    },
  );

  it(
    "a viewer sees the schedule without forms and cannot change it; cross-site posts are refused",
    { timeout: 30_000 },
    async () => {
      const t = new Date(Date.now() + 10 * MINUTE).toISOString();
      await apiJson("PUT", `/experiments/${x.id}/schedules/production`, 200, {
        body: { steps: [{ at: t, action: "start" }] },
      });
      const viewer = await createToken("viewer");
      const cookie = await adminSession(viewer.token);
      const html = await adminPage(`/experiments/${x.id}`, cookie);
      expect(html).toContain('data-step-status="pending"');
      expect(html).toContain(" · start");
      expect(html).not.toContain("data-schedule-add");
      expect(html).not.toContain("data-schedule-remove");
      const before = await schedule();
      const response = await adminPost(
        `/experiments/${x.id}/schedules/production/steps/${before.steps[0].id}/remove`,
        cookie,
        { version: "1" },
      );
      expect(decodeURIComponent(response.headers.get("location")!)).toMatch(
        /notice=Schedule not changed/,
      );
      expect(await schedule()).toEqual(before);

      const editor = await adminSession();
      const crossSite = await adminPost(
        `/experiments/${x.id}/schedules/production/steps/${before.steps[0].id}/remove`,
        editor,
        { version: "1" },
        { "sec-fetch-site": "cross-site" },
      );
      expect(crossSite.status).toBe(403);
      expect(await schedule()).toEqual(before);
    },
  );
});
