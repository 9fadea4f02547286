/**
 * An environment's holdout through the API (docs/holdouts.md): roles, validation with JSON
 * paths, publishing in the SDK's format with ids stable across changes, the audit entry — and
 * results: visitors through the real edge and official-SDK decision events through
 * `POST /_ss/v1/events`, counted by the real consumer, give holdout vs everyone else with exactly
 * the visitors and converters each group must have.
 */
import {
  createForwardingEventProcessor,
  createInstance,
  createStaticProjectConfigManager,
  type Client,
  type EventDispatcher,
} from "@optimizely/optimizely-sdk/universal";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Datafile } from "../../src/core/datafile-types";
import { loadDatafile, prepareVisitor } from "../../src/core/index";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { resetRevisionHoldouts, revisionHoldoutCounters } from "../../src/edge/revision-holdouts";
import type { EventMessage, ImpressionMessage } from "../../src/shared/event-messages";
import flagsDatafile from "../fixtures/datafiles/flags.json";
import { api, apiJson, createProject, createToken, type ApiErrorBody } from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { routedWorker } from "../helpers/pipeline";
import { deliverToConsumer, recordQueued } from "../helpers/queue";

const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

async function publishedDatafile(sdkKey: string): Promise<Datafile> {
  const text = await env.DATAFILES.get(`datafiles/${sdkKey}`);
  if (text === null) throw new Error(`no datafile for ${sdkKey}`);
  return JSON.parse(text) as Datafile;
}

/**
 * The results' sample-ratio check is the chi-square of the groups against the shares the visitors
 * were decided with (`cohorts`: how many visitors at which held share). Membership is a hash of
 * random ids, so whether it flags is chance (p < 0.001 by design): the statistic is what is exact.
 */
function expectSrmAgainst(
  results: {
    groups: Array<{ visitors: number }>;
    srm: { checked: boolean; chiSquare: number | null; pValue: number | null; flagged: boolean };
  },
  cohorts: Array<{ visitors: number; share: number }>,
): void {
  const [rest, held] = results.groups.map((g) => g.visitors) as [number, number];
  const expectedHeld = cohorts.reduce((sum, c) => sum + c.visitors * c.share, 0);
  const expectedRest = rest + held - expectedHeld;
  const chiSquare =
    (held - expectedHeld) ** 2 / expectedHeld + (rest - expectedRest) ** 2 / expectedRest;
  expect(results.srm.checked).toBe(true);
  expect(results.srm.chiSquare).toBeCloseTo(chiSquare, 9);
  expect(results.srm.flagged).toBe(results.srm.pValue! < 0.001);
}

/** The worker with `localhost/*` routed to `sdkKey` (the edge, `/_ss/v1/events`, `/_ss/events`). */
function siteOf(sdkKey: string) {
  return routedWorker([
    { pattern: "localhost/*", sdk_key: sdkKey, origin: "http://localhost:8788" },
  ]);
}

/** Serves `datafile` as `sdkKey`'s current one (KV, store reset); its text and compiled form. */
async function serveDatafile(sdkKey: string, datafile: Datafile) {
  const text = JSON.stringify(datafile);
  const loaded = loadDatafile(text);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  await env.DATAFILES.put(`datafiles/${sdkKey}`, text);
  resetDatafileStore();
  return { text, compiled: loaded.compiled };
}

/**
 * Runs `decide` with an official SDK client on `text` whose decision events go, one batch each,
 * to `/_ss/v1/events` of `site`; every batch must be accepted (204).
 */
async function decideWithSdk(
  site: ReturnType<typeof siteOf>,
  text: string,
  decide: (client: Client) => void,
): Promise<void> {
  const statuses: number[] = [];
  const dispatcher: EventDispatcher = {
    async dispatchEvent(e) {
      const response = await site("http://localhost/_ss/v1/events", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(e.params),
      });
      statuses.push(response.status);
      return { statusCode: response.status };
    },
  };
  const client = createInstance({
    projectConfigManager: createStaticProjectConfigManager({ datafile: text }),
    eventProcessor: createForwardingEventProcessor(dispatcher),
    requestHandler: {
      makeRequest: () => ({
        abort: () => undefined,
        responsePromise: Promise.reject(new Error("no network in tests")),
      }),
    },
  });
  await client.onReady({ timeout: 10_000 });
  decide(client);
  await client.close();
  await vi.waitFor(() => expect(statuses.length).toBeGreaterThan(0));
  expect(new Set(statuses)).toEqual(new Set([204]));
}

async function setup() {
  const project = await createProject();
  const production = project.environments.find((e) => e.key === "production")!;
  const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  return { project, production, event };
}

describe("holdout setting", () => {
  it("needs admin to set, any role to read; validates with JSON paths", async () => {
    const { production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    const editor = await createToken("editor");
    const viewer = await createToken("viewer");
    for (const token of [editor.token, viewer.token])
      expect((await api("PUT", path, { token, body: { percent: 5 } })).status).toBe(403);
    expect((await api("PUT", path, { token: null, body: { percent: 5 } })).status).toBe(401);
    expect(await apiJson("GET", path, 200, { token: viewer.token })).toMatchObject({
      percent: 0,
      metrics: [],
      holdoutId: null,
    });

    for (const [body, where] of [
      [{ percent: 50.01 }, "$.body.percent"],
      [{ percent: -1 }, "$.body.percent"],
      [{ percent: 1.005 }, "$.body.percent"],
      [{ percent: "5" }, "$.body.percent"],
      [{ percent: 2 ** 53 }, "$.body.percent"],
      [{ percent: 5, metrics: [event.id, event.id] }, "$.body.metrics"],
      [{ percent: 5, extra: 1 }, "$.body"],
      [{}, "$.body.percent"],
    ] as const) {
      const response = await api("PUT", path, { body });
      expect(response.status, JSON.stringify(body)).toBe(422);
      const error = (await response.json()) as ApiErrorBody;
      expect(JSON.stringify(error.error.details), JSON.stringify(body)).toContain(where);
    }
    const unknown = await api("PUT", path, { body: { percent: 5, metrics: ["nope"] } });
    expect(unknown.status).toBe(422);
    expect(((await unknown.json()) as ApiErrorBody).error.details).toEqual([
      { path: "$.body.metrics[0]", message: expect.stringContaining("nope") },
    ]);
    // Nothing was set by the refused requests.
    expect(await apiJson("GET", path, 200)).toMatchObject({ percent: 0, holdoutId: null });
    // A stale If-Match loses.
    expect(
      (await api("PUT", path, { headers: { "if-match": 'W/"v99"' }, body: { percent: 5 } })).status,
    ).toBe(409);
  }, 60_000);

  it("publishes the SDK's holdouts section, keeps its ids, and audits every change", async () => {
    const { project, production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    // Metrics chosen at 0 %: the holdout never held anyone, so the datafile has none.
    await apiJson("PUT", path, 200, { body: { percent: 0, metrics: [event.id] } });
    const unset = await publishedDatafile(production.sdkKey);
    expect(unset.holdouts).toBeUndefined();
    expect(unset.sendFlagDecisions).toBe(false);
    const before = await apiJson("GET", `/environments/${production.id}`, 200);
    const set = await apiJson("PUT", path, 200, { body: { percent: 7.25, metrics: [event.id] } });
    expect(set).toMatchObject({
      percent: 7.25,
      metrics: [event.id],
      holdoutKey: "holdout_production",
    });
    const after = await apiJson("GET", `/environments/${production.id}`, 200);
    expect(after.revision).toBeGreaterThan(before.revision);
    const datafile = await publishedDatafile(production.sdkKey);
    expect(datafile.holdouts).toEqual([
      {
        id: set.holdoutId,
        key: "holdout_production",
        status: "Running",
        variations: [
          { id: expect.any(String), key: "holdout", featureEnabled: false, variables: [] },
          { id: expect.any(String), key: "everyone_else", featureEnabled: false, variables: [] },
        ],
        trafficAllocation: [
          { entityId: datafile.holdouts![0]!.variations[0]!.id, endOfRange: 725 },
        ],
        audienceIds: [],
        audienceConditions: [],
        includedFlags: [],
        excludedFlags: [],
      },
    ]);
    expect(loadDatafile(JSON.stringify(datafile)).ok).toBe(true);
    // The development environment has none.
    const development = project.environments.find((e) => e.key === "development")!;
    expect((await publishedDatafile(development.sdkKey)).holdouts).toBeUndefined();

    // 0 % keeps the holdout, concluded and holding nobody (SDK events of older revisions still
    // name it); setting it again keeps the ids (visitors keep their group).
    await apiJson("PUT", path, 200, { body: { percent: 0 } });
    const concluded = await publishedDatafile(production.sdkKey);
    expect(concluded.holdouts).toEqual([
      {
        ...datafile.holdouts![0]!,
        status: "Concluded",
        trafficAllocation: [{ entityId: datafile.holdouts![0]!.variations[0]!.id, endOfRange: 0 }],
      },
    ]);
    expect(concluded.sendFlagDecisions).toBe(false);
    const loadedConcluded = loadDatafile(JSON.stringify(concluded));
    expect(loadedConcluded.ok && loadedConcluded.problems).toEqual([]);
    const again = await apiJson("PUT", path, 200, { body: { percent: 10 } });
    expect(again.holdoutId).toBe(set.holdoutId);
    const republished = (await publishedDatafile(production.sdkKey)).holdouts![0]!;
    expect(republished.variations).toEqual(datafile.holdouts![0]!.variations);

    const audit = await apiJson(
      "GET",
      `/audit-log?resourceType=environment&resourceId=${production.id}`,
      200,
    );
    const changes = (audit.items as Array<{ details: { holdout?: { from: number; to: number } } }>)
      .map((e) => e.details.holdout)
      .filter((h) => h !== undefined);
    expect(changes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ from: 0, to: 7.25 }),
        expect.objectContaining({ from: 7.25, to: 0 }),
        expect.objectContaining({ from: 0, to: 10 }),
      ]),
    );
  }, 60_000);
});

describe("holdout results", () => {
  let origin: MockedOrigin;
  let queued: EventMessage[];
  beforeEach(() => {
    origin = mockOrigin(
      () =>
        new Response("<!doctype html><html><head></head><body><h1>Hi</h1></body></html>", {
          headers: { "content-type": "text/html; charset=utf-8" },
        }),
    );
    queued = [];
    recordQueued(queued);
  });
  afterEach(() => {
    origin.restore();
    vi.restoreAllMocks();
  });

  it("edge visitors and SDK decisions, counted by the consumer: holdout vs everyone else", async () => {
    const { production, event } = await setup();
    expect((await api("GET", `/environments/${production.id}/holdout/results`)).status).toBe(404);
    await apiJson("PUT", `/environments/${production.id}/holdout`, 200, {
      body: { percent: 30, metrics: [event.id] },
    });
    // The published datafile with flags.json's flags and web experiment added, so the edge has
    // an experiment to keep held-out visitors out of and the SDK flags to decide.
    const published = await publishedDatafile(production.sdkKey);
    const fixture = flagsDatafile as unknown as Datafile;
    const datafile: Datafile = {
      ...fixture,
      accountId: published.accountId,
      projectId: published.projectId,
      sdkKey: production.sdkKey,
      revision: published.revision,
      events: [...fixture.events, ...published.events],
      holdouts: published.holdouts,
    };
    const { text, compiled } = await serveDatafile(production.sdkKey, datafile);
    const site = siteOf(production.sdkKey);
    const [heldVariation, everyoneElse] = published.holdouts![0]!.variations;
    const isHeld = (visitorId: string) => prepareVisitor(compiled, { visitorId }).holdout !== null;

    // 300 visitors through the edge (two pages each: still one visitor each in results).
    const edgeVisitors = Array.from({ length: 300 }, (_, i) => `edge-${i}`);
    for (const id of edgeVisitors)
      for (const page of ["/", "/?again=1"]) {
        const response = await site(`http://localhost${page}`, {
          headers: {
            "user-agent": BROWSER_UA,
            "accept-encoding": "identity",
            cookie: `ss_vid=${id}`,
          },
        });
        expect(response.status).toBe(200);
      }

    // 200 visitors of an SDK-only client: decideAll(), its decision events to /_ss/v1/events.
    const sdkVisitors = Array.from({ length: 200 }, (_, i) => `sdk-${i}`);
    await decideWithSdk(site, text, (client) => {
      for (const id of sdkVisitors) client.createUserContext(id, {})!.decideAll();
    });

    // A holdout decision naming no running holdout, or a variation outside its allocation, is
    // rejected with its path; nothing of it is queued.
    const queuedBefore = queued.length;
    const decision = (experimentId: string, variationId: string, visitorId = "forged") => ({
      account_id: published.accountId,
      project_id: published.projectId,
      revision: published.revision,
      visitors: [
        {
          visitor_id: visitorId,
          attributes: [],
          snapshots: [
            {
              decisions: [
                {
                  campaign_id: "",
                  experiment_id: experimentId,
                  variation_id: variationId,
                  metadata: { flag_key: "new_checkout", rule_key: "x", rule_type: "holdout" },
                },
              ],
              events: [
                {
                  entity_id: "",
                  key: "campaign_activated",
                  uuid: crypto.randomUUID(),
                  timestamp: Date.now(),
                },
              ],
            },
          ],
        },
      ],
    });
    for (const [body, path] of [
      [decision("999", heldVariation!.id), "visitors[0].snapshots[0].decisions.experiment_id"],
      [
        decision(published.holdouts![0]!.id, everyoneElse!.id),
        "visitors[0].snapshots[0].decisions.variation_id",
      ],
      // A well-formed holdout decision for a visitor the holdout does not hold: membership is
      // recomputed from the bucketing id, never taken from the event.
      [
        decision(
          published.holdouts![0]!.id,
          heldVariation!.id,
          Array.from({ length: 100 }, (_, i) => `not-held-${i}`).find((id) => !isHeld(id))!,
        ),
        "visitors[0].snapshots[0].decisions.experiment_id",
      ],
    ] as const) {
      const refused = await site("http://localhost/_ss/v1/events", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(refused.status).toBe(400);
      expect(JSON.stringify(await refused.json())).toContain(path);
    }
    expect(queued.length).toBe(queuedBefore);

    // What was queued: every visitor's group, held-out visitors in no experiment.
    const impressions = queued.filter((m) => m.type === "impression");
    const holdoutId = published.holdouts![0]!.id;
    for (const id of [...edgeVisitors, ...sdkVisitors]) {
      const mine = impressions.filter((m) => m.visitorId === id);
      const groups = new Set(
        mine.filter((m) => m.experimentId === holdoutId).map((m) => m.variationId),
      );
      expect([...groups], id).toEqual([isHeld(id) ? heldVariation!.id : everyoneElse!.id]);
      if (isHeld(id))
        expect(
          mine.filter((m) => m.experimentId !== holdoutId),
          id,
        ).toEqual([]);
    }

    // Conversions of every third visitor, after their first page or decision.
    const all = [...edgeVisitors, ...sdkVisitors];
    const converting = all.filter((_, i) => i % 3 === 0);
    const now = Date.now();
    const conversions: EventMessage[] = converting.map((visitorId) => ({
      v: 1,
      type: "conversion",
      uuid: crypto.randomUUID(),
      sdkKey: production.sdkKey,
      revision: published.revision,
      visitorId,
      eventId: event.id,
      eventKey: "purchase",
      timestamp: now + 60_000,
      source: "offline",
    }));
    await deliverToConsumer([...queued, ...conversions]);

    const results = await apiJson("GET", `/environments/${production.id}/holdout/results`, 200);
    const heldVisitors = all.filter(isHeld);
    const heldConverting = converting.filter(isHeld);
    expect(heldVisitors.length).toBeGreaterThan(90);
    expect(results.groups).toEqual([
      {
        key: "everyone_else",
        variationId: everyoneElse!.id,
        visitors: all.length - heldVisitors.length,
      },
      { key: "holdout", variationId: heldVariation!.id, visitors: heldVisitors.length },
    ]);
    // Every visitor recorded alike: the groups' sizes are the share's.
    // Every visitor recorded alike: the check compares the groups with the share.
    expectSrmAgainst(results, [{ visitors: all.length, share: 0.3 }]);
    expect(results.metrics).toHaveLength(1);
    const metric = results.metrics[0];
    expect(metric).toMatchObject({
      eventId: event.id,
      eventKey: "purchase",
      everyoneElse: {
        visitors: all.length - heldVisitors.length,
        converters: converting.length - heldConverting.length,
      },
      holdout: { visitors: heldVisitors.length, converters: heldConverting.length },
    });
    expect(metric.holdout.rate).toBeCloseTo(heldConverting.length / heldVisitors.length, 12);
    expect(metric.lift.estimate).toBeCloseTo(
      metric.holdout.rate / metric.everyoneElse.rate - 1,
      12,
    );
    expect(metric.lift.lower === null || metric.lift.lower < metric.lift.estimate).toBe(true);
  }, 240_000);
});

describe("holdout results across share changes", () => {
  /** The holdout's group impression of `visitorId` as the edge queues it, under `datafile`. */
  function groupImpression(
    datafile: Datafile,
    visitorId: string,
    timestamp: number,
  ): ImpressionMessage {
    const loaded = loadDatafile(JSON.stringify(datafile));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const [heldVariation, everyoneElse] = datafile.holdouts![0]!.variations;
    const held = prepareVisitor(loaded.compiled, { visitorId }).holdout !== null;
    return {
      v: 1,
      type: "impression",
      uuid: crypto.randomUUID(),
      sdkKey: datafile.sdkKey!,
      revision: datafile.revision,
      visitorId,
      experimentId: datafile.holdouts![0]!.id,
      variationId: held ? heldVariation!.id : everyoneElse!.id,
      timestamp,
      source: "edge",
    };
  }

  it("a share change starts a new count; since=all counts everyone, the check weighted by share", async () => {
    const { production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    await apiJson("PUT", path, 200, { body: { percent: 10, metrics: [event.id] } });
    const at10 = await publishedDatafile(production.sdkKey);
    const t0 = Date.now() - 3_600_000;
    const early = Array.from({ length: 300 }, (_, i) => `early-${i}`);
    const late = Array.from({ length: 300 }, (_, i) => `late-${i}`);
    const messages: EventMessage[] = early.map((id) => groupImpression(at10, id, t0));

    await apiJson("PUT", path, 200, { body: { percent: 30, metrics: [event.id] } });
    const at30 = await publishedDatafile(production.sdkKey);
    // The early visitors come back (their group stays the one of their first exposure), new
    // visitors arrive; every visitor converts once after their first page.
    for (const id of [...early, ...late]) messages.push(groupImpression(at30, id, t0 + 60_000));
    const conversion = (visitorId: string, revision: string): EventMessage => ({
      v: 1,
      type: "conversion",
      uuid: crypto.randomUUID(),
      sdkKey: production.sdkKey,
      revision,
      visitorId,
      eventId: event.id,
      eventKey: "purchase",
      timestamp: t0 + 120_000,
      source: "offline",
    });
    for (const id of [...early, ...late]) messages.push(conversion(id, at30.revision));
    await deliverToConsumer(messages);

    const isHeld = (datafile: Datafile, id: string) =>
      groupImpression(datafile, id, 0).variationId === datafile.holdouts![0]!.variations[0]!.id;
    const r10 = Number(at10.revision);
    const r30 = Number(at30.revision);

    // Default: the visitors first exposed at 30 % only.
    const current = await apiJson("GET", `${path}/results`, 200);
    expect(current).toMatchObject({
      since: "share",
      percent: 30,
      period: { percent: 30, fromRevision: r30, toRevision: null },
      mixedShares: false,
    });
    expect(current.shares.slice(-2)).toEqual([
      { percent: 10, fromRevision: r10, toRevision: r30 - 1, from: expect.any(String) },
      { percent: 30, fromRevision: r30, toRevision: null, from: expect.any(String) },
    ]);
    const lateHeld = late.filter((id) => isHeld(at30, id)).length;
    expect(current.groups.map((g: { visitors: number }) => g.visitors)).toEqual([
      late.length - lateHeld,
      lateHeld,
    ]);
    expect(current.metrics[0]).toMatchObject({
      everyoneElse: { converters: late.length - lateHeld },
      holdout: { converters: lateHeld },
    });
    expectSrmAgainst(current, [{ visitors: late.length, share: 0.3 }]);

    // Everyone: early visitors in their first group; the check expects each visitor's own share.
    const everyone = await apiJson("GET", `${path}/results?since=all`, 200);
    const earlyHeld = early.filter((id) => isHeld(at10, id)).length;
    expect(everyone).toMatchObject({ since: "all", period: null, mixedShares: true });
    expect(everyone.groups.map((g: { visitors: number }) => g.visitors)).toEqual([
      early.length - earlyHeld + late.length - lateHeld,
      earlyHeld + lateHeld,
    ]);
    // Each visitor against the share they were decided with.
    expectSrmAgainst(everyone, [
      { visitors: early.length, share: 0.1 },
      { visitors: late.length, share: 0.3 },
    ]);

    // Turned off: the results keep showing the last share that held anyone out.
    await apiJson("PUT", path, 200, { body: { percent: 0, metrics: [event.id] } });
    const off = await apiJson("GET", `${path}/results`, 200);
    expect(off).toMatchObject({ percent: 0, period: { percent: 30, fromRevision: r30 } });
    expect(off.period.toRevision).toBeGreaterThanOrEqual(r30);
    expect(off.shares.at(-1)).toMatchObject({ percent: 0, toRevision: null });
    expect(off.groups).toEqual(current.groups);

    const invalid = await api("GET", `${path}/results?since=yesterday`);
    expect(invalid.status).toBe(422);
    expect(JSON.stringify(await invalid.json())).toContain("$.query.since");
  }, 120_000);

  /** Whether `datafile` holds a visitor out (decided by the core, as the SDK and edge do). */
  function heldUnder(datafile: Datafile): (visitorId: string) => boolean {
    const loaded = loadDatafile(JSON.stringify(datafile));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    return (visitorId) => prepareVisitor(loaded.compiled, { visitorId }).holdout !== null;
  }

  /** Sends an SDK event batch to the site's `/_ss/v1/events`. */
  function postSdkBatch(site: ReturnType<typeof siteOf>, body: unknown): Promise<Response> {
    return site("http://localhost/_ss/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  /**
   * What an SDK on `datafile` sends for one flag decision of `visitorId`: a holdout decision for
   * a user it holds, a no-rule decision (sendFlagDecisions) for the others.
   */
  function sdkFlagBatch(datafile: Datafile, visitorId: string, held: boolean, revision: string) {
    const holdout = datafile.holdouts![0]!;
    const [heldVariation] = holdout.variations;
    return {
      account_id: datafile.accountId,
      project_id: datafile.projectId,
      revision,
      visitors: [
        {
          visitor_id: visitorId,
          attributes: [],
          snapshots: [
            {
              decisions: [
                held
                  ? {
                      campaign_id: "",
                      experiment_id: holdout.id,
                      variation_id: heldVariation!.id,
                      metadata: { flag_key: "f", rule_key: holdout.key, rule_type: "holdout" },
                    }
                  : {
                      campaign_id: "",
                      experiment_id: "",
                      variation_id: "",
                      metadata: { flag_key: "f", rule_key: "", rule_type: "rollout" },
                    },
              ],
              events: [
                {
                  entity_id: "",
                  key: "campaign_activated",
                  uuid: crypto.randomUUID(),
                  timestamp: Date.now(),
                },
              ],
            },
          ],
        },
      ],
    };
  }

  it("SDK events of the last share still count after the holdout is set to 0", async () => {
    const { production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    await apiJson("PUT", path, 200, { body: { percent: 20, metrics: [event.id] } });
    const at20 = await publishedDatafile(production.sdkKey);
    await apiJson("PUT", path, 200, { body: { percent: 0, metrics: [event.id] } });
    const off = await publishedDatafile(production.sdkKey);
    expect(off.holdouts![0]!.status).toBe("Concluded");
    resetDatafileStore();
    resetRevisionHoldouts();
    const site = siteOf(production.sdkKey);
    const heldAt20 = heldUnder(at20);
    const queued: EventMessage[] = [];
    recordQueued(queued);
    // SDKs still on the 20 % datafile: held users' holdout decisions and the others' flag
    // decisions, all accepted and grouped at 20 %.
    const users = Array.from({ length: 100 }, (_, i) => `last-${i}`);
    for (const id of users) {
      const response = await postSdkBatch(
        site,
        sdkFlagBatch(at20, id, heldAt20(id), at20.revision),
      );
      expect(response.status, `${id}: ${await response.clone().text()}`).toBe(204);
    }
    // A holdout decision claimed under the 0 % revision is refused: it held nobody then.
    const held = users.find(heldAt20)!;
    const forged = await postSdkBatch(site, sdkFlagBatch(at20, held, true, off.revision));
    expect(forged.status).toBe(400);
    expect(await forged.text()).toContain("is not a running holdout");
    // The edge holds nobody now: no group is queued for a page view.
    const origin = mockOrigin(
      () =>
        new Response("<!doctype html><html><head></head><body>Hi</body></html>", {
          headers: { "content-type": "text/html; charset=utf-8" },
        }),
    );
    const before = queued.length;
    const page = await site("http://localhost/", { headers: { "accept-encoding": "identity" } });
    expect(page.status).toBe(200);
    await page.text();
    origin.restore();
    const groups = queued
      .slice(before)
      .filter((m) => m.type === "impression" && m.experimentId === at20.holdouts![0]!.id);
    expect(groups).toEqual([]);
    await deliverToConsumer(queued);
    vi.restoreAllMocks();

    // The default results show the last period that held anyone out: the 20 % one, with them.
    const results = await apiJson("GET", `${path}/results`, 200);
    expect(results.period).toMatchObject({ percent: 20, fromRevision: Number(at20.revision) });
    const heldCount = users.filter(heldAt20).length;
    expect(heldCount).toBeGreaterThan(5);
    expect(results.groups.map((g: { visitors: number }) => g.visitors)).toEqual([
      users.length - heldCount,
      heldCount,
    ]);
  }, 60_000);

  it("SDK events of an older revision are grouped at that revision's share", async () => {
    const { production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    await apiJson("PUT", path, 200, { body: { percent: 10, metrics: [event.id] } });
    const at10 = await publishedDatafile(production.sdkKey);
    await apiJson("PUT", path, 200, { body: { percent: 40, metrics: [event.id] } });
    const at40 = await publishedDatafile(production.sdkKey);
    resetDatafileStore();
    resetRevisionHoldouts();
    const site = siteOf(production.sdkKey);
    const batch = (visitorId: string, held: boolean, revision: string) =>
      sdkFlagBatch(at10, visitorId, held, revision);
    const heldAt10 = heldUnder(at10);
    const queued: EventMessage[] = [];
    recordQueued(queued);
    const users = Array.from({ length: 200 }, (_, i) => `stale-${i}`);
    for (const id of users) {
      const response = await postSdkBatch(site, batch(id, heldAt10(id), at10.revision));
      expect(response.status, id).toBe(204);
    }
    // One KV read for the old revision's shares, however many batches carried it.
    expect(revisionHoldoutCounters.kvReads).toBe(1);
    // A revision newer than the current one (or made up) costs no read: the current shares.
    const ahead = String(Number(at40.revision) + 5);
    const aheadResponse = await postSdkBatch(site, batch("ahead-visitor", false, ahead));
    expect(aheadResponse.status).toBe(204);
    expect(revisionHoldoutCounters.kvReads).toBe(1);
    queued.splice(0, queued.length, ...queued.filter((m) => m.visitorId !== "ahead-visitor"));
    await deliverToConsumer(queued);
    vi.restoreAllMocks();

    // Recorded under the 10 % revision, in the SDK's groups: counted in the 10 % period.
    const results = await apiJson("GET", `${path}/results?since=all`, 200);
    const held = users.filter(heldAt10).length;
    expect(held).toBeGreaterThan(5);
    expect(results.groups.map((g: { visitors: number }) => g.visitors)).toEqual([
      users.length - held,
      held,
    ]);
    expectSrmAgainst(results, [{ visitors: users.length, share: 0.1 }]);
    // Not in the 40 % period the default results count.
    const current = await apiJson("GET", `${path}/results`, 200);
    expect(current.period).toMatchObject({ percent: 40, fromRevision: Number(at40.revision) });
    expect(current.groups.map((g: { visitors: number }) => g.visitors)).toEqual([0, 0]);
  }, 60_000);

  it("a batch of many flag decisions queues one everyone-else group per visitor, the earliest", async () => {
    const { production, event } = await setup();
    await apiJson("PUT", `/environments/${production.id}/holdout`, 200, {
      body: { percent: 10, metrics: [event.id] },
    });
    const published = await publishedDatafile(production.sdkKey);
    resetDatafileStore();
    const loaded = loadDatafile(JSON.stringify(published));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const visitorId = Array.from({ length: 50 }, (_, i) => `many-${i}`).find(
      (id) => prepareVisitor(loaded.compiled, { visitorId: id }).holdout === null,
    )!;
    const t = Date.now() - 60_000;
    const snapshot = (flag: string, timestamp: number) => ({
      decisions: [
        {
          campaign_id: "",
          experiment_id: "",
          variation_id: "",
          metadata: { flag_key: flag, rule_key: "", rule_type: "rollout" },
        },
      ],
      events: [{ entity_id: "", key: "campaign_activated", uuid: crypto.randomUUID(), timestamp }],
    });
    const queued: EventMessage[] = [];
    recordQueued(queued);
    const site = siteOf(production.sdkKey);
    const response = await site("http://localhost/_ss/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        account_id: published.accountId,
        project_id: published.projectId,
        revision: published.revision,
        visitors: [
          { visitor_id: visitorId, attributes: [], snapshots: [snapshot("a", t + 2000)] },
          {
            visitor_id: visitorId,
            attributes: [],
            snapshots: [snapshot("b", t), snapshot("c", t + 1000)],
          },
        ],
      }),
    });
    expect(response.status).toBe(204);
    vi.restoreAllMocks();
    expect(queued).toEqual([
      expect.objectContaining({
        type: "impression",
        visitorId,
        experimentId: published.holdouts![0]!.id,
        variationId: published.holdouts![0]!.variations[1]!.id,
        timestamp: t,
      }),
    ]);
  });

  it("a rollback to a revision with another share starts a period of that share", async () => {
    const { production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    await apiJson("PUT", path, 200, { body: { percent: 10, metrics: [event.id] } });
    const at10 = Number((await publishedDatafile(production.sdkKey)).revision);
    await apiJson("PUT", path, 200, { body: { percent: 20, metrics: [event.id] } });
    await apiJson("POST", `/environments/${production.id}/rollback`, 200, {
      body: { revision: at10 },
    });
    const rolledBack = await publishedDatafile(production.sdkKey);
    const results = await apiJson("GET", `${path}/results`, 200);
    expect(results.shares.slice(-3).map((p: { percent: number }) => p.percent)).toEqual([
      10, 20, 10,
    ]);
    expect(results.period).toMatchObject({
      percent: 10,
      fromRevision: Number(rolledBack.revision),
    });
  });
});

describe("SDK-only clients and the holdout's groups", () => {
  it("publishes sendFlagDecisions while a holdout is set, so SDK users of delivery rules only are counted", async () => {
    const { production, event } = await setup();
    const path = `/environments/${production.id}/holdout`;
    expect((await publishedDatafile(production.sdkKey)).sendFlagDecisions).toBe(false);
    await apiJson("PUT", path, 200, { body: { percent: 20, metrics: [event.id] } });
    const published = await publishedDatafile(production.sdkKey);
    expect(published.sendFlagDecisions).toBe(true);

    // flags.json's flags without their A/B rules: an SDK user gets delivery rules or Everyone
    // Else only — no experiment impression ever stands for them.
    const fixture = flagsDatafile as unknown as Datafile;
    const datafile: Datafile = {
      ...fixture,
      accountId: published.accountId,
      projectId: published.projectId,
      sdkKey: production.sdkKey,
      revision: published.revision,
      sendFlagDecisions: published.sendFlagDecisions,
      experiments: [],
      groups: [],
      featureFlags: fixture.featureFlags.map((f) => ({ ...f, experimentIds: [] })),
      events: [...fixture.events.map((e) => ({ ...e, experimentIds: [] })), ...published.events],
      web: { ...fixture.web!, experiments: [] },
      holdouts: published.holdouts,
    };
    const { text, compiled } = await serveDatafile(production.sdkKey, datafile);
    const site = siteOf(production.sdkKey);
    const queued: EventMessage[] = [];
    recordQueued(queued);
    const users = Array.from({ length: 300 }, (_, i) => `sdk-user-${i}`);
    await decideWithSdk(site, text, (client) => {
      for (const id of users) client.createUserContext(id, { country: "FR" })!.decideAll();
    });
    await deliverToConsumer(queued);
    vi.restoreAllMocks();

    const held = users.filter(
      (id) => prepareVisitor(compiled, { visitorId: id }).holdout !== null,
    ).length;
    const results = await apiJson("GET", `${path}/results`, 200);
    // Every user counted once, in their own group: the groups' sizes are the share's.
    expect(results.groups.map((g: { visitors: number }) => g.visitors)).toEqual([
      users.length - held,
      held,
    ]);
    expectSrmAgainst(results, [{ visitors: users.length, share: 0.2 }]);
  }, 120_000);
});
