/**
 * Experiments in the management API (docs/api.md "Experiments"): validation with JSON paths,
 * variation ids, multivariate and split-URL rules, the start/pause/resume/archive actions and
 * their publishing, and the whole path from the API to a page served by the edge.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
import { handleEdgeRequest } from "../../src/edge/handle-request";
import { sendOrSpill } from "../../src/events/spill";
import { parseRoutes } from "../../src/edge/routes";
import type { Env } from "../../src/env";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ApiErrorBody,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;
let page: { id: string };
let otherPage: { id: string };
let event: { id: string };
let audience: { id: string };

const collection = (plural: string) => `/projects/${project.id}/${plural}`;
const sdkKey = (environmentKey: string) =>
  project.environments.find((e) => e.key === environmentKey)!.sdkKey;

beforeEach(async () => {
  project = await createProject();
  page = await apiJson("POST", collection("pages"), 201, {
    body: {
      key: "home",
      conditions: ["or", { match: "simple", value: "https://shop.example.com/" }],
    },
  });
  otherPage = await apiJson("POST", collection("pages"), 201, {
    body: { key: "thanks", conditions: ["or", { match: "substring", value: "/thanks" }] },
  });
  event = await apiJson("POST", collection("events"), 201, {
    body: { key: "purchase", type: "custom" },
  });
  audience = await apiJson("POST", collection("audiences"), 201, {
    body: {
      name: "Germany",
      conditions: [
        "or",
        { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
      ],
    },
  });
});

function abBody(extra: Record<string, unknown> = {}) {
  return {
    key: "headline",
    name: "Headline test",
    pageIds: [page.id],
    metrics: [{ eventId: event.id, aggregator: "unique", winningDirection: "increasing" }],
    variations: [
      { key: "control", weight: 5000 },
      {
        key: "bold",
        name: "Bold",
        weight: 5000,
        changes: [{ type: "attribute", selector: "h1", attributes: { text: "Bold new headline" } }],
      },
    ],
    ...extra,
  };
}

async function createAb(extra: Record<string, unknown> = {}) {
  return apiJson("POST", collection("experiments"), 201, { body: abBody(extra) });
}

async function expect422(response: Response, paths: string[]) {
  const text = await response.text();
  expect(response.status, text).toBe(422);
  const body = JSON.parse(text) as ApiErrorBody;
  expect(body.error.code).toBe("validation_failed");
  const details = body.error.details as Array<{ path: string; message: string }>;
  expect(details.map((d) => d.path)).toEqual(expect.arrayContaining(paths));
  return details;
}

async function expectError(
  response: Response,
  status: number,
  code: string,
): Promise<ApiErrorBody> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  const body = JSON.parse(text) as ApiErrorBody;
  expect(body.error.code).toBe(code);
  return body;
}

async function datafile(environmentKey = "production"): Promise<Record<string, Json>> {
  const text = await env.DATAFILES.get(`datafiles/${sdkKey(environmentKey)}`);
  expect(text).not.toBeNull();
  return JSON.parse(text!) as Record<string, Json>;
}

/** The experiment in the current datafile of an environment (top level or in a group). */
async function published(experimentId: string, environmentKey = "production") {
  const df = await datafile(environmentKey);
  const all = [...df.experiments, ...df.groups.flatMap((g: Json) => g.experiments)];
  return {
    experiment: all.find((x: Json) => x.id === experimentId),
    web: df.web.experiments.find((x: Json) => x.id === experimentId),
  };
}

describe("creating and changing experiments", () => {
  it("creates an A/B experiment: generated ids, Not started everywhere, published", async () => {
    const response = await api("POST", collection("experiments"), { body: abBody() });
    expect(response.status).toBe(201);
    expect(response.headers.get("etag")).toBe('W/"v1"');
    const x = (await response.json()) as Json;
    expect(x).toMatchObject({
      key: "headline",
      name: "Headline test",
      type: "ab",
      traffic: 10000,
      allocationPolicy: "manual",
      groupId: null,
      audienceConditions: null,
      pageIds: [page.id],
      sections: null,
      sharedChanges: [],
      forcedVariations: {},
      archived: false,
      status: { production: "Not started", development: "Not started" },
      version: 1,
    });
    expect(x.layerId).toMatch(/^\d{12}$/);
    expect(x.variations.map((v: Json) => [v.key, v.weight])).toEqual([
      ["control", 5000],
      ["bold", 5000],
    ]);
    for (const v of x.variations) expect(v.id).toMatch(/^\d{12}$/);
    expect(x.published).toHaveLength(2);

    for (const environmentKey of ["production", "development"]) {
      const { experiment, web } = await published(x.id, environmentKey);
      expect(experiment).toMatchObject({
        key: "headline",
        status: "Not started",
        layerId: x.layerId,
      });
      expect(experiment.trafficAllocation).toEqual([
        { entityId: x.variations[0].id, endOfRange: 5000 },
        { entityId: x.variations[1].id, endOfRange: 10000 },
      ]);
      expect(web.variations[1].changes).toEqual(x.variations[1].changes);
    }
    const df = await datafile();
    expect(df.events.find((e: Json) => e.id === event.id).experimentIds).toEqual([x.id]);

    const list = await apiJson("GET", collection("experiments"), 200);
    expect(list.items.map((i: Json) => i.key)).toEqual(["headline"]);
    expect(list.items[0].status).toEqual({ production: "Not started", development: "Not started" });
  });

  it("PATCH keeps variation ids by key or id, honours If-Match and publishes", async () => {
    const x = await createAb({ forcedVariations: { "qa-1": "bold" } });
    const [control, bold] = x.variations;
    const patched = await api("PATCH", `/experiments/${x.id}`, {
      headers: { "if-match": 'W/"v1"' },
      body: {
        traffic: 5000,
        pageIds: [page.id, otherPage.id],
        audienceConditions: ["and", audience.id],
        forcedVariations: { "qa-1": "heavy" },
        variations: [
          {
            key: "heavy",
            id: bold.id,
            weight: 4000,
            changes: [{ type: "custom_css", value: "h1{font-weight:900}" }],
          },
          { key: "control", weight: 3000 },
          { key: "italic", weight: 3000 },
        ],
      },
    });
    expect(patched.status).toBe(200);
    expect(patched.headers.get("etag")).toBe('W/"v2"');
    const changed = (await patched.json()) as Json;
    expect(
      changed.variations.map((v: Json) => [v.key, v.id === bold.id, v.id === control.id]),
    ).toEqual([
      ["heavy", true, false],
      ["control", false, true],
      ["italic", false, false],
    ]);
    expect(changed).toMatchObject({
      traffic: 5000,
      audienceConditions: ["and", audience.id],
      version: 2,
    });
    const { experiment, web } = await published(x.id);
    expect(web.pageIds).toEqual([page.id, otherPage.id]);
    expect(experiment.audienceIds).toEqual([audience.id]);
    expect(experiment.forcedVariations).toEqual({ "qa-1": "heavy" });
    expect(experiment.trafficAllocation.map((t: Json) => t.endOfRange)).toEqual([2000, 3500, 5000]);

    await expectError(
      await api("PATCH", `/experiments/${x.id}`, {
        headers: { "if-match": 'W/"v1"' },
        body: { name: "late" },
      }),
      409,
      "version_conflict",
    );
    // Changing only other fields keeps variations (and their ids) as they are.
    const renamed = await apiJson("PATCH", `/experiments/${x.id}`, 200, {
      body: { name: "Renamed", audienceConditions: null },
    });
    expect(renamed.variations).toEqual(changed.variations);
    expect(renamed.audienceConditions).toBeNull();
  });

  it("422 with JSON paths for bad bodies", async () => {
    const post = (body: unknown) => api("POST", collection("experiments"), { body });
    await expect422(
      await post(
        abBody({
          variations: [
            { key: "a", weight: 5000 },
            { key: "b", weight: 4000 },
          ],
        }),
      ),
      ["$.body.variations"],
    );
    await expect422(await post(abBody({ variations: [{ key: "a", weight: 10000 }] })), [
      "$.body.variations",
    ]);
    await expect422(
      await post(
        abBody({
          variations: [
            { key: "a", weight: 5000 },
            { key: "a", weight: 5000 },
          ],
        }),
      ),
      ["$.body.variations[1].key"],
    );
    await expect422(await post(abBody({ pageIds: [page.id, "123456789012"] })), [
      "$.body.pageIds[1]",
    ]);
    const forced = await expect422(
      await post(abBody({ forcedVariations: { qa: "bold", "qa-2": "missing" } })),
      ['$.body.forcedVariations["qa-2"]'],
    );
    expect(forced).toHaveLength(1);
    await expect422(
      await post(
        abBody({
          metrics: [
            { eventId: "123456789012", aggregator: "unique" },
            { eventId: event.id, aggregator: "sum" },
            { eventId: event.id, aggregator: "average" },
          ],
        }),
      ),
      ["$.body.metrics[2].aggregator"],
    );
    await expect422(
      await post(
        abBody({
          metrics: [
            { eventId: "123456789012", aggregator: "unique" },
            { eventId: event.id, aggregator: "sum" },
          ],
        }),
      ),
      ["$.body.metrics[0].eventId", "$.body.metrics[1].field"],
    );
    await expect422(
      await post(
        abBody({ audienceConditions: ["or", audience.id, "123456789012", ["not", audience.id]] }),
      ),
      ["$.body.audienceConditions[2]"],
    );
    await expect422(await post(abBody({ audienceConditions: ["or", 42] })), [
      "$.body.audienceConditions[1]",
    ]);
    await expect422(
      await post(
        abBody({
          variations: [
            { key: "a", weight: 5000 },
            { key: "b", weight: 5000, changes: [{ type: "replace_text", selector: "h1" }] },
          ],
        }),
      ),
      ["$.body.variations[1].changes[0].type"],
    );
    // Deeper change rules come from the datafile validator, at the request's paths.
    await expect422(
      await post(
        abBody({
          sharedChanges: [
            { type: "custom_css", value: "body{}" },
            { type: "attribute", selector: "a{", attributes: { hide: true } },
          ],
          variations: [
            { key: "a", weight: 5000 },
            {
              key: "b",
              weight: 5000,
              changes: [
                { type: "attribute", selector: "a", attributes: { href: "javascript:alert(1)" } },
                { type: "redirect", destination: "ftp://example.com/" },
              ],
            },
          ],
        }),
      ),
      [
        "$.body.sharedChanges[1].selector",
        "$.body.variations[1].changes[0].attributes.href",
        "$.body.variations[1].changes[1].destination",
      ],
    );
    await expect422(await post(abBody({ groupId: "123456789012" })), ["$.body.groupId"]);
    await expect422(await post(abBody({ traffic: 10001, type: "abc" })), [
      "$.body.traffic",
      "$.body.type",
    ]);
    await expect422(await post({ key: "k" }), ["$.body.pageIds", "$.body.metrics"]);
    await expect422(await post(abBody({ variations: undefined })), ["$.body.variations"]);
    await expect422(await post(abBody({ pageIds: [] })), ["$.body.pageIds"]);
    await expect422(await post(abBody({ key: "bad key!" })), ["$.body.key"]);
  });

  it("409 on a duplicate key; references in use cannot be deleted", async () => {
    const x = await createAb({ audienceConditions: ["or", audience.id] });
    const duplicate = await expectError(
      await api("POST", collection("experiments"), { body: abBody() }),
      409,
      "conflict",
    );
    expect(duplicate.error.details).toMatchObject({ path: "$.body.key", existingId: x.id });
    await expectError(await api("DELETE", `/audiences/${audience.id}`), 409, "conflict");
    await expectError(await api("DELETE", `/events/${event.id}`), 409, "conflict");
    await expectError(await api("DELETE", `/pages/${page.id}`), 409, "conflict");
    await apiJson("DELETE", `/experiments/${x.id}`, 200);
    await apiJson("DELETE", `/audiences/${audience.id}`, 200);
    await apiJson("DELETE", `/events/${event.id}`, 200);
    await apiJson("DELETE", `/pages/${page.id}`, 200);
  });
});

describe("multivariate and split-URL experiments", () => {
  const sections = [
    {
      name: "Headline",
      variations: [
        { name: "Original" },
        { name: "Bold", changes: [{ type: "custom_css", value: "h1{font-weight:900}" }] },
      ],
    },
    {
      name: "Button",
      variations: [
        { name: "Blue", key: "blue" },
        {
          name: "Green",
          key: "green",
          changes: [{ type: "attribute", selector: "#buy", attributes: { addClass: "green" } }],
        },
      ],
    },
  ];

  it("generates the variations as the cartesian product of the sections", async () => {
    const x = await apiJson("POST", collection("experiments"), 201, {
      body: { ...abBody({ key: "mvt", type: "multivariate", sections }), variations: undefined },
    });
    expect(x.variations.map((v: Json) => [v.key, v.name, v.weight, v.changes.length])).toEqual([
      ["original_blue", "Original / Blue", 2500, 0],
      ["original_green", "Original / Green", 2500, 1],
      ["bold_blue", "Bold / Blue", 2500, 1],
      ["bold_green", "Bold / Green", 2500, 2],
    ]);
    expect(x.variations[3].changes.map((c: Json) => c.type)).toEqual(["custom_css", "attribute"]);
    expect(x.sections).toHaveLength(2);
    expect(x.variations[3].sectionVariationIds).toEqual([
      x.sections[0].variations[1].id,
      x.sections[1].variations[1].id,
    ]);
    const { web } = await published(x.id);
    expect(web.type).toBe("multivariate");
    expect(web.sections).toHaveLength(2);

    // Client-sent variations are refused.
    await expect422(
      await api("PATCH", `/experiments/${x.id}`, {
        body: { variations: [{ key: "a", weight: 10000 }] },
      }),
      ["$.body.variations"],
    );
    // A third headline: existing combinations keep their ids, weights are rebalanced.
    const grown = await apiJson("PATCH", `/experiments/${x.id}`, 200, {
      body: {
        sections: [
          { ...sections[0]!, variations: [...sections[0]!.variations, { name: "Italic" }] },
          sections[1]!,
        ],
      },
    });
    expect(grown.variations).toHaveLength(6);
    expect(grown.variations.map((v: Json) => v.weight)).toEqual([
      1667, 1667, 1667, 1667, 1666, 1666,
    ]);
    for (const old of x.variations)
      expect(grown.variations.find((v: Json) => v.key === old.key).id).toBe(old.id);
    expect(grown.sections[0].id).toBe(x.sections[0].id);

    // Too many combinations.
    const many = Array.from({ length: 5 }, (_, s) => ({
      name: `S${s}`,
      variations: Array.from({ length: 4 }, (_, v) => ({ name: `V${v}` })),
    }));
    await expect422(await api("PATCH", `/experiments/${x.id}`, { body: { sections: many } }), [
      "$.body.sections",
    ]);
    // Multivariate needs sections; others must not have them.
    await expect422(
      await api("POST", collection("experiments"), {
        body: { ...abBody({ key: "m2", type: "multivariate" }), variations: undefined },
      }),
      ["$.body.sections"],
    );
    await expect422(
      await api("POST", collection("experiments"), { body: abBody({ key: "m3", sections }) }),
      ["$.body.sections"],
    );
  });

  it("split_url: every variation but the first redirects exactly once", async () => {
    const redirect = (destination: string) => ({ type: "redirect", destination, mode: "redirect" });
    await expect422(
      await api("POST", collection("experiments"), {
        body: abBody({
          key: "split",
          type: "split_url",
          variations: [
            { key: "original", weight: 3400 },
            { key: "b", weight: 3300, changes: [{ type: "custom_css", value: "h1{}" }] },
            { key: "c", weight: 3300, changes: [redirect("/c"), redirect("/c2")] },
          ],
        }),
      }),
      ["$.body.variations[1].changes", "$.body.variations[2].changes"],
    );
    await expect422(
      await api("POST", collection("experiments"), {
        body: abBody({
          key: "split",
          type: "split_url",
          variations: [
            { key: "original", weight: 5000, changes: [redirect("/a")] },
            { key: "b", weight: 5000, changes: [redirect("/b")] },
          ],
        }),
      }),
      ["$.body.variations[0].changes"],
    );
    const x = await apiJson("POST", collection("experiments"), 201, {
      body: abBody({
        key: "split",
        type: "split_url",
        variations: [
          { key: "original", weight: 5000 },
          { key: "new_landing", weight: 5000, changes: [redirect("https://shop.example.com/new")] },
        ],
      }),
    });
    expect((await published(x.id)).web.variations[1].changes).toEqual([
      redirect("https://shop.example.com/new"),
    ]);
  });
});

describe("actions", () => {
  it("start → Running in KV, pause → Paused, resume → Running, archive → gone; illegal transitions 409", async () => {
    const x = await createAb();
    const started = await apiJson("POST", `/experiments/${x.id}/start`, 200);
    expect(started).toMatchObject({
      environment: "production",
      previousStatus: "Not started",
      status: "Running",
    });
    expect(started.experiment.status).toEqual({
      production: "Running",
      development: "Not started",
    });
    expect(started.experiment.version).toBe(2);
    const production = started.published.find((p: Json) => p.environmentKey === "production");
    expect(production.changed).toBe(true);
    expect((await published(x.id)).experiment.status).toBe("Running");
    expect((await published(x.id, "development")).experiment.status).toBe("Not started");
    const revision = Number((await datafile()).revision);
    expect(revision).toBe(production.revision);
    // The immutable revision is stored too.
    expect(await env.DATAFILES.get(`datafiles/${sdkKey("production")}/${revision}`)).not.toBeNull();

    const again = await expectError(
      await api("POST", `/experiments/${x.id}/start`),
      409,
      "conflict",
    );
    expect(again.error.details).toMatchObject({ status: "Running", environment: "production" });
    await expectError(await api("POST", `/experiments/${x.id}/resume`), 409, "conflict");

    const paused = await apiJson("POST", `/experiments/${x.id}/pause`, 200, { body: {} });
    expect(paused.status).toBe("Paused");
    expect((await published(x.id)).experiment.status).toBe("Paused");
    await expectError(await api("POST", `/experiments/${x.id}/pause`), 409, "conflict");

    await apiJson("POST", `/experiments/${x.id}/resume`, 200);
    expect((await published(x.id)).experiment.status).toBe("Running");

    // development separately
    const dev = await apiJson("POST", `/experiments/${x.id}/start`, 200, {
      body: { environment: "development" },
    });
    expect(dev.experiment.status).toEqual({ production: "Running", development: "Running" });
    expect((await published(x.id, "development")).experiment.status).toBe("Running");

    const archived = await apiJson("POST", `/experiments/${x.id}/archive`, 200);
    expect(archived.experiment).toMatchObject({
      archived: false,
      status: { production: "Archived", development: "Running" },
    });
    expect((await published(x.id)).experiment).toBeUndefined();
    expect((await published(x.id, "development")).experiment.status).toBe("Running");
    for (const action of ["start", "pause", "resume", "archive"])
      await expectError(await api("POST", `/experiments/${x.id}/${action}`), 409, "conflict");
    const all = await apiJson("POST", `/experiments/${x.id}/archive`, 200, {
      body: { environment: "development" },
    });
    expect(all.experiment.archived).toBe(true);

    const { results } = await env.DB.prepare(
      "SELECT action, details FROM audit_log WHERE resource_id = ? ORDER BY id",
    )
      .bind(x.id)
      .all<{ action: string; details: string }>();
    expect(results.map((r) => r.action)).toEqual([
      "create",
      "start",
      "pause",
      "resume",
      "start",
      "archive",
      "archive",
    ]);
    expect(JSON.parse(results[1]!.details)).toEqual({
      environment: "production",
      from: "Not started",
      to: "Running",
    });
  });

  it("422 for an unknown environment, 403 for viewers, 409 for a stale If-Match, 404 for no experiment", async () => {
    const x = await createAb();
    await expect422(
      await api("POST", `/experiments/${x.id}/start`, { body: { environment: "staging" } }),
      ["$.body.environment"],
    );
    await expect422(
      await api("POST", `/experiments/${x.id}/start`, { body: { env: "production" } }),
      ["$.body.env"],
    );
    const viewer = await createToken("viewer");
    await expectError(
      await api("POST", `/experiments/${x.id}/start`, { token: viewer.token }),
      403,
      "forbidden",
    );
    await expectError(
      await api("PATCH", `/experiments/${x.id}`, { token: viewer.token, body: { name: "x" } }),
      403,
      "forbidden",
    );
    await apiJson("GET", `/experiments/${x.id}`, 200, { token: viewer.token });
    await expectError(
      await api("POST", `/experiments/${x.id}/start`, { headers: { "if-match": 'W/"v7"' } }),
      409,
      "version_conflict",
    );
    await expectError(await api("POST", "/experiments/123456789012/start"), 404, "not_found");
    const editor = await createToken("editor");
    await apiJson("POST", `/experiments/${x.id}/start`, 200, {
      token: editor.token,
      headers: { "if-match": 'W/"v1"' },
    });
  });

  it("a running experiment cannot be deleted; a paused one can (statuses go with it)", async () => {
    const x = await createAb();
    await apiJson("POST", `/experiments/${x.id}/start`, 200);
    const refused = await expectError(await api("DELETE", `/experiments/${x.id}`), 409, "conflict");
    expect(refused.error.details).toEqual({ running: ["production"] });
    await apiJson("POST", `/experiments/${x.id}/pause`, 200);
    const deleted = await apiJson("DELETE", `/experiments/${x.id}`, 200);
    expect(deleted.published.find((p: Json) => p.environmentKey === "production").changed).toBe(
      true,
    );
    expect((await published(x.id)).experiment).toBeUndefined();
    const statuses = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM experiment_status WHERE experiment_id = ?",
    )
      .bind(x.id)
      .first<{ n: number }>();
    expect(statuses?.n).toBe(0);
  });
});

describe("end to end: API → datafile → edge", () => {
  const PAGE = `<!doctype html><html><head><title>Shop</title></head><body><h1>Welcome</h1><a id="buy" href="/buy">Buy</a></body></html>`;
  let origin: MockedOrigin;

  beforeEach(() => {
    origin = mockOrigin(
      () => new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }),
    );
    resetDatafileStore();
  });
  afterEach(() => {
    origin.restore();
    vi.restoreAllMocks();
    resetDatafileStore();
  });

  /** GET a page through the edge, routed to the project's production datafile. */
  async function visit(path: string): Promise<{ html: string; decisions: Map<string, string> }> {
    const { routes, problems } = parseRoutes([
      {
        pattern: "shop.example.com/*",
        sdk_key: sdkKey("production"),
        origin: "https://origin.example.com",
      },
    ]);
    expect(problems).toEqual([]);
    const request = new Request(`https://shop.example.com${path}`, {
      headers: { "accept-encoding": "identity", cookie: "ss_vid=visitor-1" },
    });
    const ctx = createExecutionContext();
    const response = await handleEdgeRequest(
      request,
      env as unknown as Env,
      ctx,
      routes[0]!,
      new URL(request.url),
      sendOrSpill,
    );
    const html = await response.text();
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(200);
    return {
      html,
      decisions: new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions"))),
    };
  }

  it("create → start → the edge rewrites the page for the audience → pause → it stops", async () => {
    // events, an audience on a request attribute, a page, a pageview event on it
    const purchase = event;
    const spring = await apiJson("POST", collection("audiences"), 201, {
      body: {
        name: "Spring campaign",
        conditions: [
          "and",
          { type: "custom_attribute", name: "query.campaign", match: "exact", value: "spring" },
        ],
      },
    });
    const landing = await apiJson("POST", collection("pages"), 201, {
      body: {
        key: "landing",
        conditions: ["or", { match: "simple", value: "https://shop.example.com/landing" }],
      },
    });
    const view = await apiJson("POST", collection("events"), 201, {
      body: { key: "landing_view", type: "pageview", pageId: landing.id },
    });
    // Everyone in the audience gets the treatment (weights 0 / 10000), so the test is deterministic.
    const x = await apiJson("POST", collection("experiments"), 201, {
      body: {
        key: "spring_headline",
        pageIds: [landing.id],
        metrics: [
          { eventId: purchase.id, aggregator: "unique" },
          { eventId: view.id, aggregator: "count" },
        ],
        audienceConditions: ["or", spring.id],
        variations: [
          { key: "control", weight: 0 },
          {
            key: "spring",
            weight: 10000,
            changes: [{ type: "attribute", selector: "h1", attributes: { text: "Spring sale!" } }],
          },
        ],
      },
    });

    // Not started: the edge serves the original.
    let visited = await visit("/landing?campaign=spring");
    expect(visited.html).toContain("<h1>Welcome</h1>");
    expect(visited.decisions.has("spring_headline")).toBe(false);

    await apiJson("POST", `/experiments/${x.id}/start`, 200);
    resetDatafileStore(); // the edge's cache refresh
    visited = await visit("/landing?campaign=spring");
    expect(visited.decisions.get("spring_headline")).toBe("spring");
    expect(visited.html).toContain("Spring sale!");
    expect(visited.html).not.toContain("<h1>Welcome</h1>");
    // The origin was asked for the page, with the decision.
    const sent = origin.requests.at(-1)!;
    expect(sent.url).toBe("https://origin.example.com/landing?campaign=spring");
    expect(parseDecisionsHeader(sent.headers.get("x-ss-decisions"))).toContainEqual([
      "spring_headline",
      "spring",
    ]);

    // Outside the audience, or on another page: untouched.
    visited = await visit("/landing");
    expect(visited.html).toContain("<h1>Welcome</h1>");
    expect(visited.decisions.has("spring_headline")).toBe(false);
    visited = await visit("/other?campaign=spring");
    expect(visited.html).toContain("<h1>Welcome</h1>");

    await apiJson("POST", `/experiments/${x.id}/pause`, 200);
    resetDatafileStore();
    visited = await visit("/landing?campaign=spring");
    expect(visited.html).toContain("<h1>Welcome</h1>");
    expect(visited.html).not.toContain("Spring sale!");
    expect(visited.decisions.has("spring_headline")).toBe(false);
  });
});
