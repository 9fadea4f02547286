/**
 * Holdout parity (docs/holdouts.md "SDK parity"): an environment's holdout, set through the API,
 * is published in the official SDK's `holdouts` format; on a datafile with that section, for
 * 2000 visitors, the official SDK's `decide()`, the core, the edge's page path and
 * `GET /_ss/decide` agree on who is held out — and a held-out visitor gets no experiment
 * anywhere: no variation on the page (`x-ss-decisions`), no enabled flag (`x-ss-flags`, `/_ss/decide`,
 * the SDK), no experiment impression queued; instead one impression of the holdout's group (held
 * out, or everyone else for the others) per page served.
 *
 * The datafile is test/fixtures/datafiles/flags.json (a web experiment on `http://localhost/`
 * at 100 %, an A/B rule, delivery rules, variables) plus the `holdouts` section exactly as the
 * API published it for a project's production environment.
 */
import {
  createInstance,
  createStaticProjectConfigManager,
  type Client,
} from "@optimizely/optimizely-sdk/universal";
import { env, exports } from "cloudflare:workers";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Datafile, Holdout } from "../../src/core/datafile-types";
import { loadDatafile, prepareVisitor, type CompiledDatafile } from "../../src/core/index";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
import type { BootstrapFlag } from "../../src/shared/bootstrap-types";
import type { EventMessage, ImpressionMessage } from "../../src/shared/event-messages";
import flagsDatafile from "../fixtures/datafiles/flags.json";
import { apiJson, createProject, API_ORIGIN } from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { routedWorker } from "../helpers/pipeline";
import { recordQueued } from "../helpers/queue";

const ORIGIN = "http://localhost:8788";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const site = routedWorker([{ pattern: "localhost/*", sdk_key: "demo", origin: ORIGIN }]);
const VISITORS = 2000;

let origin: MockedOrigin;
let queued: EventMessage[];
beforeEach(() => {
  origin = mockOrigin(
    () =>
      new Response(
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Hi</h1></body></html>",
        {
          headers: { "content-type": "text/html; charset=utf-8" },
        },
      ),
  );
  queued = [];
  recordQueued(queued);
});
afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

describe("holdout: edge, /_ss/decide, core and the official SDK agree", () => {
  let holdout: Holdout;
  let datafile: Datafile;
  let compiled: CompiledDatafile;
  let client: Client;

  beforeAll(async () => {
    // The holdout section as the API publishes it.
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const set = await apiJson("PUT", `/environments/${production.id}/holdout`, 200, {
      headers: { "if-match": `W/"v${production.version}"` },
      body: { percent: 12.5, metrics: [] },
    });
    expect(set).toMatchObject({ percent: 12.5, holdoutKey: "holdout_production" });
    const served = await (
      await exports.default.fetch(`${API_ORIGIN}/_ss/datafiles/${production.sdkKey}.json`)
    ).json<Datafile>();
    expect(served.holdouts).toHaveLength(1);
    holdout = served.holdouts![0]!;
    expect(holdout).toMatchObject({
      id: set.holdoutId,
      key: "holdout_production",
      status: "Running",
      trafficAllocation: [{ entityId: holdout.variations[0]!.id, endOfRange: 1250 }],
    });

    datafile = { ...(flagsDatafile as unknown as Datafile), holdouts: [holdout] };
    const text = JSON.stringify(datafile);
    const loaded = loadDatafile(text);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    compiled = loaded.compiled;
    await env.DATAFILES.put("datafiles/demo", text);
    resetDatafileStore();
    client = createInstance({
      projectConfigManager: createStaticProjectConfigManager({ datafile: text }),
      requestHandler: {
        makeRequest: () => ({
          abort: () => undefined,
          responsePromise: Promise.reject(new Error("no network in tests")),
        }),
      },
    });
    await client.onReady({ timeout: 10_000 });
  });
  afterAll(async () => {
    await client.close();
  });

  it(`${VISITORS} visitors: the same visitors held out everywhere, and no experiment for them`, async () => {
    const [heldVariation, everyoneElse] = holdout.variations;
    let held = 0;
    for (let i = 0; i < VISITORS; i++) {
      const visitorId = `hv-${i}`;
      const where = `visitor ${visitorId}`;
      const cookie = `ss_vid=${visitorId}`;

      // The official SDK: decide() of every flag.
      const user = client.createUserContext(visitorId, {})!;
      const sdk = user.decideAll();
      const sdkHeld = Object.values(sdk).map((d) => d.ruleKey === holdout.key);
      expect(new Set(sdkHeld).size, where).toBe(1);
      const isHeld = sdkHeld[0]!;
      if (isHeld) held++;
      for (const d of Object.values(sdk))
        if (isHeld)
          expect({ enabled: d.enabled, variationKey: d.variationKey }, where).toEqual({
            enabled: false,
            variationKey: "holdout",
          });
        else expect(d.ruleKey, where).not.toBe(holdout.key);

      // The core.
      const hit = prepareVisitor(compiled, { visitorId }).holdout;
      expect(hit !== null, where).toBe(isHeld);

      // The edge's page: no web experiment, no enabled flag for a held-out visitor.
      const before = queued.length;
      const page = await site("http://localhost/", {
        headers: { "user-agent": BROWSER_UA, "accept-encoding": "identity", cookie },
      });
      expect(page.status, where).toBe(200);
      const decisions = new Map(parseDecisionsHeader(page.headers.get("x-ss-decisions") ?? ""));
      expect(decisions.get("headline"), where).toBe(isHeld ? undefined : "bold");
      const flagsSent = new Map(
        parseDecisionsHeader(origin.requests.at(-1)!.headers.get("x-ss-flags") ?? ""),
      );
      const sdkEnabled = Object.values(sdk)
        .filter((d) => d.enabled)
        .map((d) => [d.flagKey, d.variationKey]);
      expect([...flagsSent], where).toEqual(sdkEnabled);
      if (isHeld) expect(flagsSent.size, where).toBe(0);
      const impressions = queued
        .slice(before)
        .filter(
          (m): m is ImpressionMessage => m.type === "impression" && m.visitorId === visitorId,
        );
      const experimentImpressions = impressions.filter((m) => m.experimentId !== holdout.id);
      const groups = impressions.filter((m) => m.experimentId === holdout.id);
      if (isHeld) expect(experimentImpressions, where).toEqual([]);
      else
        expect(
          experimentImpressions.map((m) => m.experimentId),
          where,
        ).toContain("1001");
      expect(
        groups.map((m) => m.variationId),
        where,
      ).toEqual([isHeld ? heldVariation!.id : everyoneElse!.id]);

      // /_ss/decide: every flag as the SDK decides it.
      const answer = await site(
        `http://localhost/_ss/decide?url=${encodeURIComponent("http://localhost/")}`,
        { headers: { "user-agent": BROWSER_UA, "accept-encoding": "identity", cookie } },
      );
      expect(answer.status, where).toBe(200);
      const body = (await answer.json()) as { f?: BootstrapFlag[] };
      const flags = new Map((body.f ?? []).map((f) => [f.k, f]));
      for (const [key, d] of Object.entries(sdk)) {
        const f = flags.get(key);
        expect(
          { enabled: f?.e === 1, variationKey: f?.v ?? null, variables: f?.x ?? {} },
          `${where}: ${key}`,
        ).toEqual(
          JSON.parse(
            JSON.stringify({
              enabled: d.enabled,
              variationKey: d.variationKey,
              variables: d.variables,
            }),
          ),
        );
      }

      // What an SDK-only client sees with activate()/getVariation(): the SDK applies holdouts
      // to flags only, so a plain experiment still buckets a held-out visitor
      // (docs/holdouts.md "What SDK-only clients see").
      expect(client.getVariation("headline", visitorId), where).toBe("bold");
    }
    // 12.5 % of 2000 = 250 expected; ± 5 standard deviations (≈ 74).
    expect(held).toBeGreaterThan(176);
    expect(held).toBeLessThan(324);
  }, 480_000);
});
