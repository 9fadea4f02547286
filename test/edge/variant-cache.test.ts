/**
 * Cached variants (docs/caching.md) through the real Worker and workerd's Cache API: one origin
 * request per page variant and datafile, every visitor's own bootstrap, cookies and headers, and
 * nothing cached that the origin, the visitor or a preview does not allow.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { decodeBootstrap, type BootstrapData } from "../../src/edge/bootstrap";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { signPreview } from "../../src/edge/preview";
import {
  cacheLifetime,
  newBootstrapMarker,
  spliceBootstrap,
  VARIANT_KEY_PARAM,
  variantCacheKey,
} from "../../src/edge/variant-cache";
import type { EventMessage } from "../../src/shared/event-messages";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { recordQueued } from "../helpers/queue";

const SITE = "http://localhost";

const PAGE = `<!doctype html><html><head><title>Shop</title></head><body><h1>Welcome</h1><a id="buy" class="btn" href="/buy">Buy</a><p>${"Lorem ipsum ".repeat(2000)}</p></body></html>`;

let origin: MockedOrigin;
let queued: EventMessage[];
/** Response headers the origin sends for the next pages (per test). */
let originHeaders: Record<string, string>;
let revision = 100;
/**
 * A distinct path per test: the Cache API keeps entries from one test to the next, and is shared
 * with every other test file of the run (which is why the other edge tests serve pages that
 * cannot be stored, and why this file publishes its own revisions).
 */
let path = "/";
let pathCounter = 0;

const PAGE_LENGTH = String(new TextEncoder().encode(PAGE).length);
/** Whether the origin sends Content-Length (a page of unknown size is stored as it streams). */
let sendLength = true;

/** How long the origin takes to answer (ms): > 0 makes concurrent requests really overlap. */
let originDelayMs = 0;

async function serveSite(): Promise<Response> {
  if (originDelayMs > 0) await new Promise((r) => setTimeout(r, originDelayMs));
  return new Response(PAGE, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      ...(sendLength ? { "content-length": PAGE_LENGTH } : {}),
      ...originHeaders,
    },
  });
}

/** The edge fixture with `/`'s page widened to every path, under a fresh revision. */
async function publish(overrides: { revision?: string } = {}): Promise<string> {
  const datafile = structuredClone(edgeDatafile) as typeof edgeDatafile;
  datafile.revision = overrides.revision ?? String(++revision);
  const home = datafile.web.pages.find((p) => p.id === "p_home")!;
  home.conditions = ["or", { match: "regex", value: "^http://localhost/cached-" }];
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
  resetDatafileStore();
  return datafile.revision;
}

async function get(
  target: string,
  init: RequestInit & { cf?: Record<string, unknown> } = {},
): Promise<Response> {
  const response = await exports.default.fetch(
    new Request(`${SITE}${target}`, { redirect: "manual", ...init }),
  );
  await new Promise((r) => setTimeout(r, 0));
  return response;
}

/** A page view read to the end, with the waitUntil work (the cache write, the events) settled. */
async function view(
  cookie: string,
  init: RequestInit & { cf?: Record<string, unknown> } = {},
  at = path,
) {
  const headers = new Headers(init.headers);
  if (cookie !== "") headers.set("cookie", cookie);
  const response = await get(at, { ...init, headers });
  const html = await response.text();
  // cache.put runs in waitUntil after the page; give it the turns it needs.
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 5));
  return { response, html, cache: response.headers.get("x-ss-cache") };
}

function bootstrapOf(html: string): BootstrapData {
  const match = /window\.__ss=(\{.*?\});<\/script>/s.exec(html);
  expect(match, "a bootstrap").not.toBeNull();
  return decodeBootstrap(JSON.parse(match![1]!))!;
}

function bootstrapCount(html: string): number {
  return html.split("window.__ss=").length - 1;
}

function buyClass(html: string): string {
  return /<a id="buy" class="([^"]*)"/.exec(html)![1]!;
}

const A = "ss_vid=alice; ss_dec=1002.v_s_a";
const B = "ss_vid=bob; ss_dec=1002.v_s_b";

beforeEach(async () => {
  origin = mockOrigin(serveSite);
  queued = [];
  recordQueued(queued);
  originHeaders = { "cache-control": "public, max-age=300" };
  sendLength = true;
  originDelayMs = 0;
  path = `/cached-${++pathCounter}`;
  await publish();
});

afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

describe("cached variants", () => {
  it("two visitors in different variants, interleaved: each gets only their own variant, bootstrap and cookies; the origin is asked once per variant", async () => {
    const a1 = await view(A);
    const b1 = await view(B);
    const a2 = await view(A);
    const b2 = await view(B);
    expect([a1.cache, b1.cache, a2.cache, b2.cache]).toEqual(["miss", "miss", "hit", "hit"]);
    expect(origin.requests).toHaveLength(2);

    for (const [view_, id, variant, other] of [
      [a1, "alice", "variant-a", "variant-b"],
      [a2, "alice", "variant-a", "variant-b"],
      [b1, "bob", "variant-b", "variant-a"],
      [b2, "bob", "variant-b", "variant-a"],
    ] as const) {
      expect(buyClass(view_.html)).toBe(`btn ${variant}`);
      expect(view_.html).not.toContain(other);
      expect(view_.html).toContain("Bold new headline");
      expect(bootstrapCount(view_.html)).toBe(1);
      expect(view_.html).not.toContain("ss-bootstrap-");
      const boot = bootstrapOf(view_.html);
      expect(boot.visitorId).toBe(id);
      expect(view_.html).not.toContain(id === "alice" ? "bob" : "alice");
      expect(
        boot.decisions.find((d) => d.experimentKey === "split")?.variationKey,
        `${id}'s decision`,
      ).toBe(variant === "variant-a" ? "a" : "b");
      expect(view_.response.headers.get("x-ss-decisions")).toContain(
        `split=${variant === "variant-a" ? "a" : "b"}`,
      );
      // The browser gets a private page, without the origin's validators.
      expect(view_.response.headers.get("cache-control")).toBe("private, max-age=300");
      expect(view_.response.headers.get("etag")).toBeNull();
      expect(view_.response.headers.get("vary")).toMatch(/Cookie/);
      expect(view_.response.headers.get("x-ss-bootstrap-marker")).toBeNull();
    }
    // The page is whole: the splice keeps every byte around the bootstrap.
    expect(a2.html.length - a2.html.indexOf("</head>")).toBe(
      a1.html.length - a1.html.indexOf("</head>"),
    );
    expect(a2.html.replace(/<script id="ss-bootstrap">.*?<\/script>/s, "")).toBe(
      a1.html.replace(/<script id="ss-bootstrap">.*?<\/script>/s, ""),
    );
  });

  it("a page of unknown length (no Content-Length) is stored and spliced as it streams", async () => {
    sendLength = false;
    const a1 = await view(A);
    const b1 = await view(B);
    const a2 = await view(A);
    const b2 = await view(B);
    expect([a1.cache, b1.cache, a2.cache, b2.cache]).toEqual(["miss", "miss", "hit", "hit"]);
    expect(buyClass(a2.html)).toBe("btn variant-a");
    expect(buyClass(b2.html)).toBe("btn variant-b");
    expect(bootstrapOf(a2.html).visitorId).toBe("alice");
    expect(bootstrapOf(b2.html).visitorId).toBe("bob");
    expect(a2.html.replace(/<script id="ss-bootstrap">.*?<\/script>/s, "")).toBe(
      a1.html.replace(/<script id="ss-bootstrap">.*?<\/script>/s, ""),
    );
    expect(origin.requests).toHaveLength(2);
  });

  it("a new visitor served from the cache gets their own id, their ss_vid and ss_dec cookies, and their impressions", async () => {
    await view(A);
    queued.length = 0;
    const fresh = await view("ss_dec=1002.v_s_a");
    expect(fresh.cache).toBe("hit");
    const boot = bootstrapOf(fresh.html);
    expect(boot.visitorId).not.toBe("alice");
    expect(fresh.html).not.toContain("alice");
    const cookies = fresh.response.headers.getSetCookie().join("\n");
    expect(cookies).toContain(`ss_vid=${boot.visitorId}`);
    expect(cookies).toMatch(/ss_dec=[^;]*1001\.v_h_new/);
    const impressions = queued.filter((m) => m.type === "impression");
    expect(impressions.map((m) => m.type === "impression" && m.experimentId).sort()).toEqual([
      "1001",
      "1002",
    ]);
    for (const m of impressions) expect(m.visitorId).toBe(boot.visitorId);
  });

  it("concurrent visitors of two variants never see each other's page; after a publish they wait for one copy per variant", async () => {
    // The page is known to be cacheable (a copy was stored), then a publish makes every key new.
    await view(A);
    await publish();
    origin.requests.length = 0;
    originDelayMs = 50; // all of them arrive while the first ones are still at the origin
    const visitors = Array.from({ length: 24 }, (_, i) => ({
      id: `v${i}`,
      variant: i % 2 === 0 ? "a" : "b",
    }));
    const views = await Promise.all(
      visitors.map(async ({ id, variant }) => {
        const response = await get(path, {
          headers: { cookie: `ss_vid=${id}; ss_dec=1002.v_s_${variant}` },
        });
        return { id, variant, html: await response.text() };
      }),
    );
    for (const { id, variant, html } of views) {
      expect(buyClass(html)).toBe(`btn variant-${variant}`);
      expect(bootstrapOf(html).visitorId).toBe(id);
      expect(bootstrapCount(html)).toBe(1);
    }
    // Coalesced: the visitors who came while their variant was being fetched waited for its
    // copy instead of asking the origin again — one origin request per variant.
    expect(origin.requests).toHaveLength(2);
  });

  it("the first visitors of a page never known to be cacheable do not wait for each other", async () => {
    originDelayMs = 50;
    const views = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const response = await get(path, {
          headers: { cookie: `ss_vid=n${i}; ss_dec=1002.v_s_a` },
        });
        return { id: `n${i}`, html: await response.text() };
      }),
    );
    for (const v of views) expect(bootstrapOf(v.html).visitorId).toBe(v.id);
    expect(origin.requests).toHaveLength(6);
    expect((await view(A)).cache).toBe("hit");
  });

  it("concurrent visitors of an uncacheable page all go to the origin, none waits for nothing", async () => {
    originHeaders = { "cache-control": "no-store" };
    const views = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const response = await get(path, {
          headers: { cookie: `ss_vid=u${i}; ss_dec=1002.v_s_a` },
        });
        return {
          id: `u${i}`,
          html: await response.text(),
          cache: response.headers.get("x-ss-cache"),
        };
      }),
    );
    for (const v of views) {
      expect(v.cache).toBe("uncacheable");
      expect(bootstrapOf(v.html).visitorId).toBe(v.id);
    }
    expect(origin.requests).toHaveLength(8);
  });

  it("a publish (new revision) fetches the variant again; the old one is never served", async () => {
    await view(A);
    expect((await view(A)).cache).toBe("hit");
    const revision = await publish();
    const after = await view(A);
    expect(after.cache).toBe("miss");
    expect(origin.requests).toHaveLength(2);
    expect(origin.requests[1]!.headers.get("x-ss-revision")).toBe(revision);
    expect(bootstrapOf(after.html).revision).toBe(revision);
    expect((await view(A)).cache).toBe("hit");
    expect(origin.requests).toHaveLength(2);
  });

  it("the same revision with other content is another key too (the datafile's hash is in it)", async () => {
    await publish({ revision: "same" });
    await view(A);
    const datafile = structuredClone(edgeDatafile) as typeof edgeDatafile;
    datafile.revision = "same";
    datafile.web.pages.find((p) => p.id === "p_home")!.conditions = [
      "or",
      { match: "regex", value: "^http://localhost/cached-" },
    ];
    (datafile.web.experiments[1]!.variations[0]!.changes[0] as { attributes: unknown }).attributes =
      { addClass: "variant-a2" };
    await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
    resetDatafileStore();
    const after = await view(A);
    expect(after.cache).toBe("miss");
    expect(buyClass(after.html)).toBe("btn variant-a2");
  });

  it.each([
    ["no-store", { "cache-control": "no-store" }],
    ["private", { "cache-control": "private, max-age=300" }],
    ["no-cache", { "cache-control": "no-cache, max-age=300" }],
    ["a qualified private", { "cache-control": 'public, max-age=300, private="x-user"' }],
    ["no lifetime", { "cache-control": "public" }],
    ["no Cache-Control at all", {}],
    ["max-age=0", { "cache-control": "public, max-age=0" }],
    ["already stale", { "cache-control": "public, max-age=60", age: "61" }],
    ["Set-Cookie", { "cache-control": "public, max-age=300", "set-cookie": "session=1; Path=/" }],
    ["Vary: Cookie", { "cache-control": "public, max-age=300", vary: "Accept-Encoding, Cookie" }],
    ["Vary: *", { "cache-control": "public, max-age=300", vary: "*" }],
  ])("an origin page with %s is never cached", async (_name, headers) => {
    originHeaders = headers;
    const first = await view(A);
    const second = await view(A);
    expect(first.cache).toBe("uncacheable");
    expect(second.cache).toBe("uncacheable");
    expect(origin.requests).toHaveLength(2);
    expect(buyClass(second.html)).toBe("btn variant-a");
    expect(bootstrapOf(second.html).visitorId).toBe("alice");
  });

  it("an origin body that breaks off mid-way is not stored", async () => {
    origin.restore();
    origin = mockOrigin(() => {
      const half = new TextEncoder().encode(PAGE.slice(0, 5000));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(half);
          controller.error(new Error("connection reset"));
        },
      });
      return new Response(body, {
        headers: { "content-type": "text/html; charset=utf-8", ...originHeaders },
      });
    });
    const broken = await get(path, { headers: { cookie: A } });
    expect(broken.headers.get("x-ss-cache")).toBe("miss");
    // (Not read to the end: an origin stream that errors never settles a read through
    // HTMLRewriter under the test runner, cached variants or not.)
    await broken.body?.cancel().catch(() => undefined);
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 5));
    origin.restore();
    origin = mockOrigin(serveSite);
    const next = await view(A);
    expect(next.cache).toBe("miss");
    expect(next.html).toContain("Lorem ipsum");
    expect(origin.requests).toHaveLength(1);
  });

  it("a page marked max-age only (for the browser) is not shared: its session is in it", async () => {
    origin.restore();
    origin = mockOrigin((request) => {
      const session = /session=(\w+)/.exec(request.headers.get("cookie") ?? "")?.[1] ?? "anon";
      return new Response(PAGE.replace("<title>Shop</title>", `<title>Hello ${session}</title>`), {
        headers: { "content-type": "text/html; charset=utf-8", "cache-control": "max-age=300" },
      });
    });
    const alice = await view(`${A}; session=alice`);
    const bob = await view("ss_vid=bob2; ss_dec=1002.v_s_a; session=bob");
    expect([alice.cache, bob.cache]).toEqual(["uncacheable", "uncacheable"]);
    expect(bob.html).toContain("Hello bob");
    expect(bob.html).not.toContain("alice");
  });

  it("CDN-Cache-Control: no-store keeps a browser-cacheable page out of the cache", async () => {
    originHeaders = { "cache-control": "public, max-age=300", "cdn-cache-control": "no-store" };
    await view(A);
    expect((await view(A)).cache).toBe("uncacheable");
    expect(origin.requests).toHaveLength(2);
  });

  it("CDN-Cache-Control alone can make a browser-private page cacheable; the browser never sees it", async () => {
    originHeaders = {
      "cache-control": 'private="x-user", max-age=30',
      "cdn-cache-control": "public, max-age=300",
      "surrogate-control": "max-age=300",
    };
    await view(A);
    const hit = await view(A);
    expect(hit.cache).toBe("hit");
    expect(hit.response.headers.get("cache-control")).toBe("private, max-age=30");
    for (const name of ["cdn-cache-control", "cloudflare-cdn-cache-control", "surrogate-control"])
      expect(hit.response.headers.get(name)).toBeNull();
  });

  it("a hit says how old the page is (Age), counting the origin's own Age", async () => {
    originHeaders = { "cache-control": "public, max-age=300", age: "100" };
    await view(A);
    const hit = await view(A);
    expect(hit.cache).toBe("hit");
    expect(Number(hit.response.headers.get("age"))).toBeGreaterThanOrEqual(100);
    expect(Number(hit.response.headers.get("age"))).toBeLessThan(110);
    expect(hit.response.headers.get("cache-control")).toBe("private, max-age=300");
  });

  it("headers the origin sends under the cache's own names are neither stored nor sent on", async () => {
    originHeaders = {
      "cache-control": "public, max-age=300",
      "x-ss-stored-length": "5",
      "x-ss-origin-cache-control": "public, max-age=999999",
      "x-ss-bootstrap-marker": "<title>",
    };
    sendLength = false;
    await view(A);
    const hit = await view(A);
    expect(hit.cache).toBe("hit");
    expect(buyClass(hit.html)).toBe("btn variant-a");
    expect(bootstrapOf(hit.html).visitorId).toBe("alice");
    expect(hit.html).toContain("<title>Shop</title>");
    expect(hit.response.headers.get("cache-control")).toBe("private, max-age=300");
    for (const name of ["x-ss-stored-length", "x-ss-origin-cache-control", "x-ss-bootstrap-marker"])
      expect(hit.response.headers.get(name)).toBeNull();
  });

  it("split URL in rewrite mode: each variation's page is cached under the visitor-facing URL", async () => {
    origin.restore();
    origin = mockOrigin((request) => {
      const page = new URL(request.url).pathname === "/other-b" ? "Checkout B" : "Checkout A";
      return new Response(`<html><head></head><body><h1>${page}</h1></body></html>`, {
        headers: { "content-type": "text/html; charset=utf-8", ...originHeaders },
      });
    });
    const at = `/checkout-${pathCounter}`;
    const control = "ss_vid=c1; ss_dec=1006.v_c_ctrl";
    const rewrite = "ss_vid=r1; ss_dec=1006.v_c";
    const views = [
      await view(control, {}, at),
      await view(rewrite, {}, at),
      await view(control, {}, at),
      await view(rewrite, {}, at),
    ];
    expect(views.map((v) => v.cache)).toEqual(["miss", "miss", "hit", "hit"]);
    expect(views.map((v) => /<h1>(.*?)<\/h1>/.exec(v.html)![1])).toEqual([
      "Checkout A",
      "Checkout B",
      "Checkout A",
      "Checkout B",
    ]);
    expect(views.map((v) => bootstrapOf(v.html).visitorId)).toEqual(["c1", "r1", "c1", "r1"]);
    expect(origin.requests.map((r) => new URL(r.url).pathname)).toEqual([at, "/other-b"]);
  });

  it("a manual-activation experiment is in the key (the origin is told its decision)", async () => {
    const at = "/manual";
    // Only one variation: every visitor has the same decision, so the second visitor hits.
    const first = await view("ss_vid=m1", {}, at);
    const second = await view("ss_vid=m2", {}, at);
    expect([first.cache, second.cache]).toEqual(["miss", "hit"]);
    expect(first.response.headers.get("x-ss-decisions")).toBe("manual_test=m");
    // Not applied at the edge (manual), in neither.
    expect(second.html).toContain("<h1>Welcome</h1>");
    expect(bootstrapOf(second.html).decisions.map((d) => d.activation)).toEqual(["manual"]);
  });

  it("s-maxage counts for the shared cache, over max-age", async () => {
    originHeaders = { "cache-control": "max-age=0, s-maxage=120" };
    await view(A);
    expect((await view(A)).cache).toBe("hit");
    expect(origin.requests).toHaveLength(1);
  });

  it("Vary: Accept-Encoding alone is cacheable, and the browser still gets it with Cookie", async () => {
    originHeaders = { "cache-control": "public, max-age=300", vary: "Accept-Encoding" };
    await view(A);
    const hit = await view(A);
    expect(hit.cache).toBe("hit");
    expect(hit.response.headers.get("vary")).toBe("Accept-Encoding, Cookie");
  });

  it("requests with Authorization or Range, and HEAD requests, neither read nor fill the cache", async () => {
    await view(A);
    for (const headers of [{ authorization: "Bearer x" }, { range: "bytes=0-10" }] as Record<
      string,
      string
    >[]) {
      const v = await view(A, { headers });
      expect(v.cache).toBeNull();
      expect(bootstrapOf(v.html).visitorId).toBe("alice");
    }
    const head = await get(path, { method: "HEAD", headers: { cookie: A } });
    expect(head.headers.get("x-ss-cache")).toBeNull();
    expect(origin.requests).toHaveLength(4);
  });

  it("non-HTML and error responses are passed through, never cached", async () => {
    mockOrigin(() => new Response("nope", { status: 404, headers: { ...originHeaders } }));
    const missing = await view(A);
    expect(missing.response.status).toBe(404);
    expect(missing.cache).toBeNull();
    mockOrigin(
      () =>
        new Response('{"a":1}', {
          headers: { "content-type": "application/json", ...originHeaders },
        }),
    );
    expect((await view(A)).cache).toBeNull();
    expect((await view(A)).html).toBe('{"a":1}');
  });

  it.each([
    ["a bot", { "user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)" }],
    ["an opted-out visitor", { cookie: `${A}; ss_optout=1` }],
    ["a GPC visitor", { "sec-gpc": "1" }],
  ])("%s gets the original page, as without the cache", async (_name, headers) => {
    await view(A);
    await view(A);
    const before = origin.requests.length;
    const seen = await view("", { headers });
    expect(seen.cache).toBeNull();
    expect(seen.html).toBe(PAGE);
    expect(seen.response.headers.getSetCookie()).toEqual([]);
    expect(origin.requests.length).toBe(before + 1);
  });

  it("a preview link and a preview cookie bypass the cache, and leave nothing in it", async () => {
    const token = await signPreview(env.SIGNING_KEY, {
      sdkKey: "demo",
      variations: { "1002": "v_s_b" },
      expiresAt: Date.now() + 3600_000,
    });
    const link = await view(A, {}, `${path}?ss_preview=${encodeURIComponent(token)}`);
    expect(link.cache).toBeNull();
    expect(buyClass(link.html)).toBe("btn variant-b");
    const previewCookie = link.response.headers
      .getSetCookie()
      .find((c) => c.startsWith("ss_preview="))!
      .split(";")[0]!;
    const withCookie = await view(`${A}; ${previewCookie}`);
    expect(withCookie.cache).toBeNull();
    expect(buyClass(withCookie.html)).toBe("btn variant-b");
    expect(origin.requests).toHaveLength(2);
    // The live page for variant a, and a live visitor of variant b: both from the origin.
    expect((await view(A)).cache).toBe("miss");
    const liveB = await view(B);
    expect(liveB.cache).toBe("miss");
    expect(bootstrapOf(liveB.html).visitorId).toBe("bob");
    expect(origin.requests).toHaveLength(4);
  });

  it("feature flags the origin saw are part of the key", async () => {
    const datafile = structuredClone(edgeDatafile) as Record<string, unknown> & {
      web: { pages: { id: string; conditions: unknown }[] };
    };
    datafile.revision = "flags-1";
    datafile.web.pages.find((p) => p.id === "p_home")!.conditions = [
      "or",
      { match: "regex", value: "^http://localhost/cached-" },
    ];
    // A 50 % rollout of `banner`: some visitors have it on, some off.
    Object.assign(datafile, {
      featureFlags: [
        { id: "f1", key: "banner", rolloutId: "r1", experimentIds: [], variables: [] },
      ],
      rollouts: [
        {
          id: "r1",
          experiments: [
            {
              id: "rule1",
              key: "half",
              status: "Running",
              layerId: "r1",
              audienceIds: [],
              forcedVariations: {},
              variations: [{ id: "on1", key: "on", featureEnabled: true, variables: [] }],
              trafficAllocation: [{ entityId: "on1", endOfRange: 5000 }],
            },
          ],
        },
      ],
    });
    await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
    resetDatafileStore();
    const flagsOf = new Map<string, string | null>();
    for (let i = 0; i < 12; i++) {
      const v = await view(`ss_vid=f${i}; ss_dec=1002.v_s_a`);
      flagsOf.set(`f${i}`, origin.requests.at(-1)?.headers.get("x-ss-flags") ?? null);
      expect(bootstrapOf(v.html).visitorId).toBe(`f${i}`);
    }
    // Two flag states of one experiment variant: two origin requests, whatever the visitor count.
    const states = new Set(
      origin.requests.map((r) => r.headers.get("x-ss-flags")).filter((f) => f !== null),
    );
    expect(states.size).toBe(2);
    expect(origin.requests).toHaveLength(2);
    expect(flagsOf.size).toBe(12);
  });

  it("under a nonce-based CSP, a hit carries the stored page's nonce", async () => {
    originHeaders = {
      "cache-control": "public, max-age=300",
      "content-security-policy": "script-src 'nonce-abc123'",
    };
    await view(A);
    const hit = await view(A);
    expect(hit.cache).toBe("hit");
    expect(hit.html).toMatch(/<script id="ss-bootstrap" nonce="abc123">/);
  });

  it("the stored copy holds no visitor's data: the page with a marker, the origin's headers", async () => {
    const stored: { key: string; headers: Headers; body: Promise<string> }[] = [];
    const cache = caches.default;
    const put = cache.put.bind(cache);
    vi.spyOn(cache, "put").mockImplementation(async (key, response) => {
      const [mine, theirs] = response.body!.tee();
      stored.push({
        key: key instanceof Request ? key.url : String(key),
        headers: new Headers(response.headers),
        body: new Response(mine).text(),
      });
      return put(key, new Response(theirs, response));
    });
    originHeaders = { "cache-control": "public, max-age=300", etag: '"v1"' };
    await view(A);
    expect(stored).toHaveLength(1);
    const [entry] = stored;
    const body = await entry!.body;
    expect(entry!.key).toMatch(new RegExp(`^http://localhost${path}\\?__ss_variant=[0-9a-f]{64}$`));
    expect(body).not.toContain("alice");
    expect(body).not.toContain("window.__ss");
    expect(body).toContain(entry!.headers.get("x-ss-bootstrap-marker")!);
    expect(body).toContain("variant-a");
    expect(entry!.headers.get("set-cookie")).toBeNull();
    expect(entry!.headers.get("etag")).toBeNull();
    expect(entry!.headers.get("cache-control")).toBe("public, max-age=300");
    // A page of known size is stored whole, with its length: a hit reads it whole
    // (spliceBootstrapWhole).
    expect(Number(entry!.headers.get("x-ss-stored-length"))).toBe(
      new TextEncoder().encode(body).length,
    );
    // Another visitor of the variant: what is not theirs would have come from the store.
    const other = await view("ss_vid=zed; ss_dec=1002.v_s_a");
    expect(other.cache).toBe("hit");
    expect(other.html).not.toContain("alice");
    expect(other.response.headers.getSetCookie().join()).not.toContain("alice");
    expect(stored).toHaveLength(1);
  });

  it("a visitor without the consent the route needs gets the original page; with it, the cached variant", async () => {
    const routes = JSON.stringify([
      {
        pattern: "localhost/*",
        sdk_key: "demo",
        origin: "http://localhost:8788",
        consent_cookie: "analytics_ok",
      },
    ]);
    const viewWith = async (cookie: string) => {
      const ctx = createExecutionContext();
      const response = await worker.fetch(
        new Request(`${SITE}${path}`, { headers: { cookie } }),
        { ...env, ROUTES: routes },
        ctx,
      );
      const html = await response.text();
      await waitOnExecutionContext(ctx);
      return { response, html };
    };
    const consented = `${A}; analytics_ok=1`;
    expect((await viewWith(consented)).response.headers.get("x-ss-cache")).toBe("miss");
    expect((await viewWith(consented)).response.headers.get("x-ss-cache")).toBe("hit");
    const refused = await viewWith(`${A}; analytics_ok=0`);
    expect(refused.response.headers.get("x-ss-cache")).toBeNull();
    expect(refused.html).toBe(PAGE);
    expect(refused.response.headers.getSetCookie()).toEqual([]);
    expect(origin.requests).toHaveLength(2);
  });

  it("a page without experiments is cached too, and still gets each visitor's bootstrap, privately", async () => {
    const plain = `/plain-${pathCounter}`;
    const first = await view(A, {}, plain);
    const second = await view("ss_vid=carol", {}, plain);
    expect([first.cache, second.cache]).toEqual(["miss", "hit"]);
    expect(first.response.headers.get("x-ss-decisions")).toBeNull();
    expect(bootstrapOf(second.html).visitorId).toBe("carol");
    expect(bootstrapOf(second.html).decisions).toEqual([]);
    expect(second.html).not.toContain("alice");
    expect(second.response.headers.get("cache-control")).toBe("private, max-age=300");
    expect(origin.requests).toHaveLength(1);
  });

  it("a route with cache_variants = false asks the origin every time", async () => {
    const routes = JSON.stringify([
      {
        pattern: "localhost/*",
        sdk_key: "demo",
        origin: "http://localhost:8788",
        cache_variants: false,
      },
    ]);
    for (let i = 0; i < 2; i++) {
      const ctx = createExecutionContext();
      const response = await worker.fetch(
        new Request(`${SITE}${path}`, { headers: { cookie: A } }),
        { ...env, ROUTES: routes },
        ctx,
      );
      await response.text();
      await waitOnExecutionContext(ctx);
      expect(response.headers.get("x-ss-cache")).toBeNull();
    }
    expect(origin.requests).toHaveLength(2);
  });

  it("the key carries the page's URL: other query strings are other pages", async () => {
    await view(A);
    const other = await view(A, {}, `${path}?page=2`);
    expect(other.cache).toBe("miss");
    const crafted = await view(A, {}, `${path}?${VARIANT_KEY_PARAM}=x`);
    expect(crafted.cache).toBe("miss");
  });
});

describe("cacheLifetime", () => {
  const req = (init: RequestInit = {}) => new Request("https://shop.example/", init);
  const res = (headers: Record<string, string>, status = 200) =>
    new Response("x", { status, headers });
  it.each([
    [{ "cache-control": "public, max-age=60" }, 60],
    [{ "cache-control": "max-age=0, s-maxage=60" }, 60],
    [{ "cache-control": "no-cache", "cdn-cache-control": "max-age=60" }, 60],
    [
      {
        "cache-control": "no-store",
        "cdn-cache-control": "no-store",
        "cloudflare-cdn-cache-control": "max-age=45",
      },
      45,
    ],
    [{ "cache-control": "s-maxage=30, max-age=600" }, 30],
    [{ "cache-control": "public, max-age=60", age: "20" }, 40],
    [{ "cache-control": "public, max-age=9999999" }, 86_400],
    [{ "cache-control": "PUBLIC, MAX-AGE=60" }, 60],
    [{ "cache-control": 'public, max-age="60"' }, 60],
  ])("%o → %d s", (headers, ttl) => {
    expect(cacheLifetime(req(), res(headers))).toEqual({ ttl });
  });
  it.each([
    [{ "cache-control": "public, max-age=60, no-store" }],
    [{ "cache-control": "max-age=-1" }],
    [{ "cache-control": "max-age=1e3" }],
    [{ "cache-control": "max-age=60x" }],
    [{ "cache-control": "max-age=99999999999999999999" }],
    [{ "cache-control": "max-age=60" }],
    [{ "cache-control": "public, max-age=300", "cdn-cache-control": "no-store" }],
    [{ "cache-control": "public, max-age=300", "cdn-cache-control": "private" }],
    [{ "cache-control": "public, max-age=300", "cloudflare-cdn-cache-control": "no-cache" }],
    [{ "cache-control": "public, max-age=300", "cdn-cache-control": "public" }],
  ])("%o is uncacheable", (headers) => {
    expect(cacheLifetime(req(), res(headers))).toHaveProperty("uncacheable");
  });
  it("needs a GET with a 200", () => {
    expect(
      cacheLifetime(
        req({ method: "POST", body: "x" }),
        res({ "cache-control": "public, max-age=6" }),
      ),
    ).toHaveProperty("uncacheable");
    expect(cacheLifetime(req(), res({ "cache-control": "public, max-age=6" }, 203))).toHaveProperty(
      "uncacheable",
    );
  });
});

describe("variantCacheKey", () => {
  const parts = {
    url: new URL("https://shop.example/p?x=1"),
    revision: "7",
    datafileTag: '"demo-7-abc"',
    route: "shop.example/* ",
    codeVersion: "version-a",
    decisions: [["1", "a"]] as [string, string][],
    flags: null,
  };
  it("is the page URL plus a hash of every part; any part changed is another key", async () => {
    const base = (await variantCacheKey(parts)).url;
    expect(base).toMatch(/^https:\/\/shop\.example\/p\?x=1&__ss_variant=[0-9a-f]{64}$/);
    for (const changed of [
      { codeVersion: "version-b" },
      { revision: "8" },
      { datafileTag: '"demo-7-abd"' },
      { route: "other/* " },
      { decisions: [["1", "b"]] as [string, string][] },
      { decisions: [] },
      { flags: "f=on" },
      { url: new URL("https://shop.example/p?x=2") },
    ])
      expect((await variantCacheKey({ ...parts, ...changed })).url).not.toBe(base);
    expect((await variantCacheKey({ ...parts })).url).toBe(base);
  });
});

describe("spliceBootstrap", () => {
  const encoder = new TextEncoder();
  async function splice(chunks: string[], marker: string, bootstrap: string): Promise<string> {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        controller.close();
      },
    });
    let ended = 0;
    const text = await new Response(spliceBootstrap(body, marker, bootstrap, () => ended++)).text();
    // onEnd runs once the writer has closed, a turn after the reader saw the end.
    for (let i = 0; i < 3 && ended === 0; i++) await new Promise((r) => setTimeout(r, 0));
    expect(ended).toBe(1);
    return text;
  }

  it("replaces the marker wherever the chunks cut it", async () => {
    const marker = newBootstrapMarker();
    const page = `<html><head>${marker}<title>t</title></head><body>${"x".repeat(50)}</body></html>`;
    const expected = page.replace(marker, "<script>B</script>");
    for (let cut = 0; cut <= page.length; cut += 3) {
      for (const second of [cut + 1, cut + 7, cut + 40]) {
        const chunks = [page.slice(0, cut), page.slice(cut, second), page.slice(second)].filter(
          (c) => c !== "",
        );
        expect(await splice(chunks, marker, "<script>B</script>")).toBe(expected);
      }
    }
  });

  it("replaces only the first marker; a page without one gets the bootstrap at its end", async () => {
    const marker = newBootstrapMarker();
    expect(await splice([`a${marker}b${marker}c`], marker, "B")).toBe(`aBb${marker}c`);
    expect(await splice(["<p>no marker</p>", "<!--ss-bootstrap"], marker, "B")).toBe(
      "<p>no marker</p><!--ss-bootstrapB",
    );
    expect(await splice([], marker, "B")).toBe("B");
  });

  it("writes non-ASCII characters of the bootstrap as \\u escapes (any ASCII-compatible page charset)", async () => {
    const marker = newBootstrapMarker();
    const out = await splice([`<head>${marker}</head>`], marker, 'window.__ss={"u":"é€😀"}');
    expect(out).toBe('<head>window.__ss={"u":"\\u00e9\\u20ac\\ud83d\\ude00"}</head>');
    expect(JSON.parse(out.slice(18, -7))).toEqual({ u: "é€😀" });
  });

  it("markers are fresh each time", () => {
    expect(newBootstrapMarker()).not.toBe(newBootstrapMarker());
    expect(newBootstrapMarker()).toMatch(/^<!--ss-bootstrap-[0-9a-f]{24}-->$/);
  });
});
