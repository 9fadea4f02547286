import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadDatafile, prepareVisitor } from "../../src/core/index";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { encodeAttributes } from "../../src/edge/visitor";
import { isAllowedOrigin } from "../../src/events/ingest-browser";
import { checkTags, timestampProblem } from "../../src/events/ingest-common";
import { revenueProblem } from "../../src/shared/event-limits";
import type { Rejection } from "../../src/events/ingest-common";
import type { ConversionMessage, EventMessage } from "../../src/shared/event-messages";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { recordQueued } from "../helpers/queue";

// wrangler.toml routes localhost/* with sdk_key "demo" (no cors_origins, gpc respected).
const SITE = "http://localhost";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

let queued: EventMessage[];

async function post(
  body: unknown,
  headers: Record<string, string> = {},
  method = "POST",
): Promise<Response> {
  return exports.default.fetch(
    new Request(`${SITE}/_ss/events`, {
      method,
      headers: {
        "content-type": "application/json",
        cookie: "ss_vid=visitor1",
        "user-agent": BROWSER_UA,
        ...headers,
      },
      body: method === "POST" ? (typeof body === "string" ? body : JSON.stringify(body)) : null,
    }),
  );
}

interface ErrorBody {
  error: {
    code: string;
    message: string;
    details: {
      path: string;
      accepted: number;
      rejected: Rejection[];
      expected?: string;
      got?: unknown;
    };
  };
}

beforeEach(async () => {
  queued = [];
  recordQueued(queued);
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(edgeDatafile));
  resetDatafileStore();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("POST /_ss/events", () => {
  it("queues valid JSON events as conversions for the cookie's visitor, in one sendBatch", async () => {
    const now = Date.now();
    const response = await post({
      events: [
        { key: "buy_click" },
        {
          key: "thank_you_view",
          revenue: 1299,
          value: 2.5,
          tags: { plan: "pro", n: 3, ok: true },
          uuid: "u-1",
          timestamp: now - 1000,
        },
      ],
    });
    expect(response.status).toBe(204);
    expect(env.EVENTS.sendBatch).toHaveBeenCalledTimes(1);
    expect(queued).toHaveLength(2);
    const [a, b] = queued as ConversionMessage[];
    expect(a).toMatchObject({
      v: 1,
      type: "conversion",
      sdkKey: "demo",
      revision: "3",
      visitorId: "visitor1",
      eventId: "ev_buy",
      eventKey: "buy_click",
      source: "browser",
    });
    expect(a!.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs(a!.timestamp - now)).toBeLessThan(5000);
    expect(a).not.toHaveProperty("revenue");
    expect(b).toMatchObject({
      eventId: "ev_thanks",
      eventKey: "thank_you_view",
      revenue: 1299,
      value: 2.5,
      tags: { plan: "pro", n: 3, ok: true },
      uuid: "u-1",
      timestamp: now - 1000,
    });
  });

  it("accepts text/plain bodies (sendBeacon)", async () => {
    const response = await post(JSON.stringify({ events: [{ key: "buy_click" }] }), {
      "content-type": "text/plain;charset=UTF-8",
    });
    expect(response.status).toBe(204);
    expect(queued).toHaveLength(1);
  });

  it("adopts an optimizelyEndUserId cookie; without any visitor cookie → 400 no_visitor", async () => {
    const adopted = await post(
      { events: [{ key: "buy_click" }] },
      { cookie: "optimizelyEndUserId=oeu1" },
    );
    expect(adopted.status).toBe(204);
    expect(queued[0]!.visitorId).toBe("oeu1");
    const response = await post({ events: [{ key: "buy_click" }] }, { cookie: "" });
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorBody).error.code).toBe("no_visitor");
    expect(queued).toHaveLength(1);
  });

  it("reports per-item rejects with paths and still queues the valid ones", async () => {
    // 1e400 is valid JSON that parses to Infinity (JSON.stringify would write null).
    const body = JSON.stringify({
      events: [
        { key: "buy_click", uuid: "ok-1" },
        { key: "nope" },
        { key: "buy_click", revenue: 12.5 },
        { key: "buy_click", revenue: -1 },
        { key: "buy_click", value: "NaN" },
        { key: "buy_click", value: "__INF__" },
        { key: "buy_click", tags: { nested: { a: 1 } } },
        { key: "buy_click", tags: "x" },
        { key: "buy_click", timestamp: Date.now() - 25 * 60 * 60 * 1000 },
        { key: "buy_click", uuid: "x".repeat(65) },
        "not an object",
        { key: "thank_you_view", uuid: "ok-2" },
      ],
    }).replace('"__INF__"', "1e400");
    const response = await post(body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.code).toBe("events_rejected");
    expect(error.message).toBe("2 accepted, 10 rejected");
    expect(error.details.accepted).toBe(2);
    expect(error.details.rejected.map((r) => r.path)).toEqual([
      "events[1].key",
      "events[2].revenue",
      "events[3].revenue",
      "events[4].value",
      "events[5].value",
      "events[6].tags.nested",
      "events[7].tags",
      "events[8].timestamp",
      "events[9].uuid",
      "events[10]",
    ]);
    expect(error.details.rejected[0]).toMatchObject({ index: 1 });
    expect(error.details.rejected[0]!.reason).toContain("unknown event key");
    expect(queued.map((m) => m.uuid)).toEqual(["ok-1", "ok-2"]);
  });

  it("nothing valid → 400 with every reject, nothing queued", async () => {
    const response = await post({ events: [{ key: "nope" }] });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.message).toBe("0 accepted, 1 rejected");
    expect(env.EVENTS.sendBatch).not.toHaveBeenCalled();
  });

  it("refuses bodies over 64 KiB (413) and more than 100 events (413)", async () => {
    const big = await post({ events: [{ key: "buy_click", tags: { a: "x".repeat(70_000) } }] });
    expect(big.status).toBe(413);
    expect(((await big.json()) as ErrorBody).error.code).toBe("body_too_large");
    const many = await post({ events: Array.from({ length: 101 }, () => ({ key: "buy_click" })) });
    expect(many.status).toBe(413);
    expect(((await many.json()) as ErrorBody).error.code).toBe("too_many_events");
    const hundred = await post({
      events: Array.from({ length: 100 }, () => ({ key: "buy_click" })),
    });
    expect(hundred.status).toBe(204);
    expect(queued).toHaveLength(100);
  });

  it("malformed bodies → 400", async () => {
    const notJson = await post("{nope", {});
    expect(((await notJson.json()) as ErrorBody).error.code).toBe("invalid_json");
    const noEvents = await post({ event: [] });
    expect(noEvents.status).toBe(400);
    expect(((await noEvents.json()) as ErrorBody).error.details.path).toBe("events");
    const form = await post("a=b", { "content-type": "application/x-www-form-urlencoded" });
    expect(form.status).toBe(415);
  });

  it("bots, opted-out visitors and GPC get 204 and nothing is queued", async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [
        {
          "user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        },
        "bot",
      ],
      [{ cookie: "ss_vid=visitor1; ss_optout=1" }, "optout"],
      [{ "sec-gpc": "1" }, "gpc"],
    ];
    for (const [headers, reason] of cases) {
      const response = await post({ events: [{ key: "buy_click" }] }, headers);
      expect(response.status).toBe(204);
      expect(response.headers.get("x-ss-dropped")).toBe(reason);
    }
    expect(env.EVENTS.sendBatch).not.toHaveBeenCalled();
  });

  it("the queue refusing → 503 with Retry-After", async () => {
    vi.mocked(env.EVENTS.sendBatch).mockRejectedValueOnce(new Error("queue down"));
    const response = await post({ events: [{ key: "buy_click" }] });
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("5");
    expect(((await response.json()) as ErrorBody).error.code).toBe("queue_unavailable");
  });

  it("same origin is allowed, a foreign origin is refused (also at preflight)", async () => {
    const same = await post({ events: [{ key: "buy_click" }] }, { origin: SITE });
    expect(same.status).toBe(204);
    expect(same.headers.get("access-control-allow-origin")).toBeNull();
    const foreign = await post(
      { events: [{ key: "buy_click" }] },
      { origin: "https://evil.example" },
    );
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as ErrorBody).error.code).toBe("origin_not_allowed");
    const preflight = await post(null, { origin: "https://evil.example" }, "OPTIONS");
    expect(preflight.status).toBe(403);
    expect(queued).toHaveLength(1);
  });
});

describe("POST /_ss/events: impressions from the client script", () => {
  // edge.json: manual_test (1007) has a manual page; headline (1001) immediate pages only.
  it("accepts an impression that the visitor's ss_dec confirms", async () => {
    const response = await post(
      { events: [{ type: "impression", experimentId: "1007", variationId: "v_m", uuid: "i-1" }] },
      { cookie: "ss_vid=visitor1; ss_dec=1001.v_h_new~1007.v_m" },
    );
    expect(response.status).toBe(204);
    expect(queued).toEqual([
      {
        v: 1,
        type: "impression",
        uuid: "i-1",
        sdkKey: "demo",
        revision: "3",
        visitorId: "visitor1",
        experimentId: "1007",
        variationId: "v_m",
        timestamp: expect.any(Number),
        source: "browser",
        // What the beacon's request tells (the helper's Chrome User-Agent): no source, no
        // new/returning — the beacon's referrer is the site's own page.
        dims: { device: "desktop", browser: "chrome" },
      },
    ]);
  });

  it("rejects impressions the edge did not decide, immediate experiments and unknown ids", async () => {
    const response = await post(
      {
        events: [
          { type: "impression", experimentId: "1007", variationId: "v_m" }, // not in ss_dec
          { type: "impression", experimentId: "1001", variationId: "v_h_new" }, // immediate
          { type: "impression", experimentId: "nope", variationId: "v_m" },
          { type: "impression", experimentId: "1007", variationId: "v_h_new" }, // not its own
          { type: "impression", experimentId: "1007", variationId: "v_m", uuid: "a b" },
          { key: "buy_click" },
        ],
      },
      { cookie: "ss_vid=visitor1; ss_dec=1001.v_h_new" },
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorBody;
    expect(body.error.details.accepted).toBe(1);
    expect(body.error.details.rejected.map((r) => [r.index, r.path])).toEqual([
      [0, "events[0].variationId"],
      [1, "events[1].experimentId"],
      [2, "events[2].experimentId"],
      [3, "events[3].variationId"],
      [4, "events[4].uuid"],
    ]);
    expect(body.error.details.rejected[0]!.reason).toMatch(/ss_dec/);
    expect(queued.map((m) => m.type)).toEqual(["conversion"]);
  });
});

describe("POST /_ss/events: impressions of held-out visitors", () => {
  // edge.json with a 50 % global holdout (docs/holdouts.md): a held-out visitor's impression is
  // refused even with a matching ss_dec (written before a raised share, or by hand).
  const holdout = {
    id: "9900",
    key: "holdout_production",
    status: "Running",
    variations: [
      { id: "9901", key: "holdout", featureEnabled: false, variables: [] },
      { id: "9902", key: "everyone_else", featureEnabled: false, variables: [] },
    ],
    trafficAllocation: [{ entityId: "9901", endOfRange: 5000 }],
    audienceIds: [],
    audienceConditions: [],
  };
  beforeEach(async () => {
    await env.DATAFILES.put(
      "datafiles/demo",
      JSON.stringify({ ...edgeDatafile, holdouts: [holdout] }),
    );
    resetDatafileStore();
  });

  it("refuses the held-out visitor's impression and accepts the others'", async () => {
    const loaded = loadDatafile(JSON.stringify({ ...edgeDatafile, holdouts: [holdout] }));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const ids = Array.from({ length: 40 }, (_, i) => `visitor-${i}`);
    const isHeld = (id: string) =>
      prepareVisitor(loaded.compiled, { visitorId: id }).holdout !== null;
    const held = ids.find(isHeld)!;
    const free = ids.find((id) => !isHeld(id))!;
    expect(held).toBeDefined();
    expect(free).toBeDefined();
    const impression = { type: "impression", experimentId: "1007", variationId: "v_m" };
    const refused = await post(
      { events: [impression, { key: "buy_click" }] },
      { cookie: `ss_vid=${held}; ss_dec=1007.v_m` },
    );
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as ErrorBody;
    expect(body.error.details.rejected).toEqual([
      { index: 0, path: "events[0].experimentId", reason: expect.stringMatching(/holdout/) },
    ]);
    // The visitor's conversion still counts: only the impression is refused.
    expect(queued.map((m) => [m.type, m.visitorId])).toEqual([["conversion", held]]);
    queued.length = 0;
    const accepted = await post(
      { events: [impression] },
      { cookie: `ss_vid=${free}; ss_dec=1007.v_m` },
    );
    expect(accepted.status).toBe(204);
    expect(queued.map((m) => [m.type, m.visitorId])).toEqual([["impression", free]]);

    // Bucketed by the visitor's $opt_bucketing_id (ss_attrs), as the edge decides: the held
    // visitor id with a free bucketing id is accepted, the free id with a held one refused.
    queued.length = 0;
    const attrs = (bucketingId: string) =>
      `ss_attrs=${encodeAttributes({ $opt_bucketing_id: bucketingId })}`;
    const byBucketingId = await post(
      { events: [impression] },
      { cookie: `ss_vid=${held}; ss_dec=1007.v_m; ${attrs(free)}` },
    );
    expect(byBucketingId.status).toBe(204);
    const heldByBucketingId = await post(
      { events: [impression] },
      { cookie: `ss_vid=${free}; ss_dec=1007.v_m; ${attrs(held)}` },
    );
    expect(heldByBucketingId.status).toBe(400);
    expect(queued.map((m) => [m.type, m.visitorId])).toEqual([["impression", held]]);
  });
});

describe("isAllowedOrigin", () => {
  const url = new URL("https://shop.example.com/_ss/events");
  it("allows no Origin, the same origin, and listed origins only", () => {
    expect(isAllowedOrigin(null, url, { corsOrigins: [] })).toBe(true);
    expect(isAllowedOrigin("https://shop.example.com", url, { corsOrigins: [] })).toBe(true);
    expect(isAllowedOrigin("http://shop.example.com", url, { corsOrigins: [] })).toBe(false);
    expect(isAllowedOrigin("https://app.example.com", url, { corsOrigins: [] })).toBe(false);
    expect(
      isAllowedOrigin("https://app.example.com", url, {
        corsOrigins: ["https://app.example.com/"],
      }),
    ).toBe(true);
    expect(isAllowedOrigin("https://shop.example.com.evil.io", url, { corsOrigins: [] })).toBe(
      false,
    );
    expect(isAllowedOrigin("null", url, { corsOrigins: ["null"] })).toBe(false);
    expect(isAllowedOrigin("garbage", url, { corsOrigins: [] })).toBe(false);
  });
});

describe("field checks", () => {
  it("revenue, timestamp and tags", () => {
    expect(revenueProblem(0)).toBeNull();
    expect(revenueProblem(1.5)).toMatch(/integer/);
    expect(revenueProblem("100")).toMatch(/number/);
    const now = 1_700_000_000_000;
    expect(timestampProblem(now + 4 * 60 * 1000, now)).toBeNull();
    expect(timestampProblem(now + 6 * 60 * 1000, now)).toMatch(/future/);
    expect(timestampProblem(now - 23 * 60 * 60 * 1000, now)).toBeNull();
    expect(timestampProblem(1.5, now)).toMatch(/integer/);
    expect(
      checkTags(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i]))).ok,
    ).toBe(false);
    expect(checkTags({ ["k".repeat(65)]: 1 }).ok).toBe(false);
    expect(checkTags({ s: "x".repeat(257) }).ok).toBe(false);
    expect(checkTags({ n: null }).ok).toBe(false);
    expect(checkTags(JSON.parse('{"__proto__":"x"}'))).toEqual({
      ok: true,
      tags: JSON.parse('{"__proto__":"x"}'),
    });
  });
});
