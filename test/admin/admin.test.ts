/**
 * Admin pages (/_ss/admin) through the Worker's fetch handler with real D1/KV: sign-in, the
 * experiments list with the primary verdict, the experiment page (results table, SVG charts,
 * SRM warning), start/pause, CSRF and escaping. The browser test (test/browser/admin.test.ts)
 * drives the same pages in Chromium.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";
import { adminFetch, SAME_SITE } from "../helpers/admin";
import {
  ADMIN_TOKEN,
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;
let experiment: Json;
let purchase: Json;

async function deliver(messages: EventMessage[]): Promise<void> {
  const batch = createMessageBatch(
    "splitstream-events",
    messages.map((body, i) => ({
      id: `m${i}-${body.uuid}`,
      timestamp: new Date(),
      attempts: 1,
      body,
    })),
  );
  await handleEventBatch(batch, env);
  expect((await getQueueResult(batch, createExecutionContext())).ackAll).toBe(true);
}

/** `visitors[i]` visitors and `converters[i]` purchases in variation i, all today. */
async function feed(visitors: number[], converters: number[]): Promise<void> {
  const sdkKey = project.environments.find((e) => e.key === "production")!.sdkKey;
  const now = Date.now() - 60_000;
  const messages: EventMessage[] = [];
  experiment.variations.forEach((variation: Json, v: number) => {
    for (let i = 0; i < visitors[v]!; i++) {
      const visitorId = `v${v}-${i}-${crypto.randomUUID().slice(0, 6)}`;
      messages.push({
        v: 1,
        type: "impression",
        uuid: crypto.randomUUID(),
        sdkKey,
        revision: "2",
        visitorId,
        experimentId: experiment.id,
        variationId: variation.id,
        timestamp: now,
        source: "edge",
      });
      if (i < converters[v]!)
        messages.push({
          v: 1,
          type: "conversion",
          uuid: crypto.randomUUID(),
          sdkKey,
          revision: "2",
          visitorId,
          eventId: purchase.id,
          eventKey: "purchase",
          timestamp: now + 1000,
          source: "browser",
        });
    }
  });
  for (let i = 0; i < messages.length; i += 100) await deliver(messages.slice(i, i + 100));
}

beforeEach(async () => {
  project = await createProject();
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
  });
  purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "checkout_button",
      name: `Checkout <script>alert("x")</script>`,
      pageIds: [page.id],
      metrics: [{ eventId: purchase.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        { key: "green", weight: 5000 },
      ],
    },
  });
});

describe("sign-in", () => {
  it("pages redirect to the login form without a session", async () => {
    const response = await adminFetch("/");
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/_ss/admin/login");
    const login = await adminFetch("/login");
    expect(login.status).toBe(200);
    expect(await login.text()).toContain(`name="token"`);
    expect(login.headers.get("content-security-policy")).toContain("default-src 'none'");
  });

  it("a wrong token is refused with a message; a right one gets a strict session cookie", async () => {
    const wrong = await adminFetch("/login", {
      method: "POST",
      headers: { ...SAME_SITE, "content-type": "application/x-www-form-urlencoded" },
      body: "token=nope",
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain("That token is not valid.");
    expect(wrong.headers.get("set-cookie")).toBeNull();

    const ok = await adminFetch("/login", {
      method: "POST",
      headers: { ...SAME_SITE, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
    });
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^ss_admin=/);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    expect(cookie).toContain("Path=/_ss/admin");
  });

  it("cross-site POSTs are refused (login and actions)", async () => {
    const login = await adminFetch("/login", {
      method: "POST",
      headers: {
        "sec-fetch-site": "cross-site",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
    });
    expect(login.status).toBe(403);
    const cookie = await adminSession();
    const start = await adminFetch(`/experiments/${experiment.id}/start`, {
      method: "POST",
      cookie,
      headers: {
        origin: "https://evil.example",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "environment=production",
    });
    expect(start.status).toBe(403);
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.status.production).toBe("Not started");
  });

  it("sign-out clears the cookie; a revoked token signs the session out", async () => {
    const out = await adminFetch("/logout", { method: "POST", headers: SAME_SITE });
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
    const viewer = await createToken("viewer");
    const cookie = await adminSession(viewer.token);
    expect((await adminFetch(`/projects/${project.id}`, { cookie })).status).toBe(200);
    await apiJson("DELETE", `/tokens/${viewer.id}`, 204);
    const later = await adminFetch(`/projects/${project.id}`, { cookie });
    expect(later.status).toBe(303);
    expect(later.headers.get("location")).toBe("/_ss/admin/login");
  });
});

describe("pages", () => {
  it("the project page lists experiments with status and the primary verdict", async () => {
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
    await feed([1000, 1000], [100, 160]);
    const cookie = await adminSession();
    const response = await adminFetch(`/projects/${project.id}`, { cookie });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(`data-experiment="checkout_button"`);
    expect(text).toContain(`<span class="badge Running">Running</span>`);
    expect(text).toMatch(/data-verdict="winner"[^]*green \+60\.0%/);
    // The name is escaped, never markup.
    expect(text).not.toContain(`<script>alert`);
    expect(text).toContain("&lt;script&gt;");
  });

  it("the experiment page shows the results table, both charts and no SRM warning for a fair split", async () => {
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
    await feed([1000, 1010], [100, 160]);
    const cookie = await adminSession();
    const text = await (await adminFetch(`/experiments/${experiment.id}`, { cookie })).text();
    expect(text).toMatch(
      /<tr data-variation="control">[^]*1,000[^]*10\.00%[^]*data-verdict="baseline"/,
    );
    expect(text).toMatch(
      /<tr data-variation="green">[^]*1,010[^]*15\.84%[^]*data-verdict="winner"/,
    );
    expect(text).toContain(`data-chart="line"`);
    expect(text).toMatch(
      /<path d="M[^"]+" fill="none" stroke="#[0-9A-F]+" stroke-width="2" data-series="green"/,
    );
    expect(text).toContain(`data-chart="intervals"`);
    expect(text).toContain(`data-interval="green"`);
    expect(text).not.toContain(`data-srm="flagged"`);
    expect(text).toContain(`data-action="pause"`);
    expect(text).not.toContain("<script");
  });

  it("a skewed split shows the SRM warning", async () => {
    await feed([1000, 1200], [100, 120]);
    const cookie = await adminSession();
    const text = await (await adminFetch(`/experiments/${experiment.id}`, { cookie })).text();
    expect(text).toContain(`data-srm="flagged"`);
    expect(text).toContain("Sample ratio mismatch");
  });

  it("start and pause buttons change the status; a viewer gets the API's refusal as a notice", async () => {
    const cookie = await adminSession();
    const form = { "content-type": "application/x-www-form-urlencoded", ...SAME_SITE };
    const start = await adminFetch(`/experiments/${experiment.id}/start`, {
      method: "POST",
      cookie,
      headers: form,
      body: "environment=production",
    });
    expect(start.status).toBe(303);
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).status.production).toBe(
      "Running",
    );
    const viewerCookie = await adminSession((await createToken("viewer")).token);
    const pause = await adminFetch(`/experiments/${experiment.id}/pause`, {
      method: "POST",
      cookie: viewerCookie,
      headers: form,
      body: "environment=production",
    });
    expect(pause.status).toBe(303);
    expect(pause.headers.get("location")).toContain("notice=");
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).status.production).toBe(
      "Running",
    );
    await adminFetch(`/experiments/${experiment.id}/pause`, {
      method: "POST",
      cookie,
      headers: form,
      body: "environment=production",
    });
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).status.production).toBe(
      "Paused",
    );
  });

  it("the CSV link serves the API's CSV with the session", async () => {
    await feed([20, 20], [2, 5]);
    const cookie = await adminSession();
    const csv = await adminFetch(`/experiments/${experiment.id}/results.csv`, { cookie });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toContain("text/csv");
    expect((await csv.text()).split("\r\n")[0]).toContain("verdict");
  });

  it("unknown experiments and paths are 404 pages", async () => {
    const cookie = await adminSession();
    expect((await adminFetch(`/experiments/nope`, { cookie })).status).toBe(404);
    expect((await adminFetch(`/nothing/here`, { cookie })).status).toBe(404);
  });
});
