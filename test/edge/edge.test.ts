import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decideExperiment, loadDatafile } from "../../src/core/index";
import { decodeBootstrap } from "../../src/edge/bootstrap";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
import { signPreview } from "../../src/edge/preview";
import type { EventMessage } from "../../src/shared/event-messages";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { recordQueued } from "../helpers/queue";

// wrangler.toml routes localhost/* to the origin http://localhost:8788 with sdk_key "demo".
const SITE = "http://localhost";
const ORIGIN = "http://localhost:8788";

const PAGE = `<!doctype html><html><head><title>Shop</title></head><body><h1>Welcome</h1><a id="buy" class="btn" href="/buy">Buy</a></body></html>`;

let origin: MockedOrigin;
let queued: EventMessage[];

function serveSite(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (path.endsWith(".css"))
    return new Response("h1{color:red}", { headers: { "content-type": "text/css" } });
  if (path === "/boom")
    return new Response("<h1>down</h1>", { status: 500, headers: { "content-type": "text/html" } });
  if (path === "/other-b")
    return new Response("<html><head></head><body><h1>Checkout B</h1></body></html>", {
      headers: { "content-type": "text/html; charset=utf-8" },
    });
  // `no-cache`: never stored as a cached variant (docs/caching.md). The Cache API is shared by
  // every test file of a run, and this page with this datafile is what many files ask for; the
  // cached-variant tests (test/edge/variant-cache.test.ts) use their own datafiles and paths.
  return new Response(PAGE, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "public, no-cache, max-age=60",
    },
  });
}

async function publish(datafile: unknown): Promise<void> {
  await env.DATAFILES.put(
    "datafiles/demo",
    typeof datafile === "string" ? datafile : JSON.stringify(datafile),
  );
  resetDatafileStore();
}

async function get(
  path: string,
  init: RequestInit & { cf?: Record<string, unknown> } = {},
): Promise<Response> {
  const response = await exports.default.fetch(
    new Request(`${SITE}${path}`, { redirect: "manual", ...init }),
  );
  // Let ctx.waitUntil work (queue sends) settle before assertions.
  await new Promise((r) => setTimeout(r, 0));
  return response;
}

function setCookies(response: Response): string[] {
  return response.headers.getSetCookie();
}

function cookieValue(response: Response, name: string): string | undefined {
  for (const c of setCookies(response)) {
    const [pair] = c.split(";");
    const [k, ...v] = pair!.split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}

beforeEach(async () => {
  origin = mockOrigin(serveSite);
  queued = [];
  recordQueued(queued);
  await publish(edgeDatafile);
});

afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

describe("the edge on a routed page", () => {
  it("puts the visitor's dimensions on its impressions: device, browser, country, source, new or returning", async () => {
    const iphone =
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
    const first = await get("/?utm_source=Newsletter", {
      headers: { "user-agent": iphone, referer: "https://mail.example.net/inbox" },
      cf: { country: "US" },
    });
    expect(first.status).toBe(200);
    // The impressions go to the queue once the page has streamed.
    await first.text();
    await new Promise((r) => setTimeout(r, 0));
    const firstImpressions = queued.filter((m) => m.type === "impression");
    expect(firstImpressions.length).toBeGreaterThan(0);
    for (const m of firstImpressions)
      expect(m.type === "impression" && m.dims).toEqual({
        device: "mobile",
        browser: "safari",
        country: "US",
        source: "newsletter",
        visitor: "new",
      });
    queued.length = 0;
    const cookie = `ss_vid=${cookieValue(first, "ss_vid")}`;
    await (
      await get("/", { headers: { cookie, referer: "https://www.google.com/search?q=boots" } })
    ).text();
    await new Promise((r) => setTimeout(r, 0));
    const again = queued.filter((m) => m.type === "impression");
    expect(again.length).toBeGreaterThan(0);
    for (const m of again)
      expect(m.type === "impression" && m.dims).toMatchObject({
        source: "google.com",
        visitor: "returning",
      });
    queued.length = 0;
    // A hostile utm_source: no formula, control character or "(…)" reaches a segment name.
    await (
      await get("/?utm_source=%3DHYPERLINK(%22x%22)%1B%5B31m", { headers: { cookie } })
    ).text();
    await new Promise((r) => setTimeout(r, 0));
    const hostile = queued.filter((q) => q.type === "impression");
    expect(hostile.length).toBeGreaterThan(0);
    for (const m of hostile)
      expect(m.type === "impression" && m.dims?.source).toBe("_hyperlink_x_31m");
    queued.length = 0;
    // A referrer on the site itself is no source: direct.
    await (await get("/", { headers: { cookie, referer: `${SITE}/products` } })).text();
    await new Promise((r) => setTimeout(r, 0));
    expect(queued.some((q) => q.type === "impression")).toBe(true);
    for (const m of queued.filter((q) => q.type === "impression"))
      expect(m.type === "impression" && m.dims?.source).toBe("direct");
  });

  it("decides, tells the origin, rewrites the HTML, sets cookies and queues the impressions", async () => {
    const response = await get("/", { headers: { "accept-encoding": "identity" } });
    expect(response.status).toBe(200);
    const html = await response.text();

    // The origin was asked for the same path with the decision headers.
    expect(origin.requests).toHaveLength(1);
    const sent = origin.requests[0]!;
    expect(sent.url).toBe(`${ORIGIN}/`);
    const visitorId = sent.headers.get("x-ss-visitor-id");
    expect(visitorId).toMatch(/^[A-Za-z0-9_-]{8,}$/);
    expect(sent.headers.get("x-ss-revision")).toBe("3");
    const toOrigin = new Map(parseDecisionsHeader(sent.headers.get("x-ss-decisions")));
    expect(toOrigin.get("headline")).toBe("bold");
    expect(toOrigin.has("paused_test")).toBe(false);
    expect(toOrigin.has("german_only")).toBe(false);

    // The immediate change is in the HTML; the bootstrap carries the decisions.
    expect(html).toContain("Bold new headline");
    expect(html).not.toContain("<h1>Welcome</h1>");
    expect(html).toContain("h1{font-weight:900}");
    expect(html).toContain('id="ss-bootstrap"');
    expect(html).toContain(visitorId!);

    // Same decisions on the response; cookies per docs/visitors.md.
    expect(response.headers.get("x-ss-decisions")).toBe(sent.headers.get("x-ss-decisions"));
    expect(cookieValue(response, "ss_vid")).toBe(visitorId);
    const vid = setCookies(response).find((c) => c.startsWith("ss_vid="))!;
    expect(vid).toMatch(/Path=\//);
    expect(vid).toMatch(/SameSite=Lax/);
    expect(vid).toMatch(/HttpOnly/);
    expect(vid).not.toMatch(/Secure/); // http
    expect(cookieValue(response, "ss_dec")).toContain("1001");

    // Personalised: never public in a shared cache.
    expect(response.headers.get("cache-control")).toMatch(/^private/);
    expect(response.headers.get("vary")).toMatch(/Cookie/);

    // One impression per immediate decision, after the response.
    const impressions = queued.filter((m) => m.type === "impression");
    expect(impressions.map((m) => m.type === "impression" && m.experimentId).sort()).toEqual(
      [...toOrigin.keys()].map((k) => edgeDatafile.experiments.find((e) => e.key === k)!.id).sort(),
    );
    for (const m of impressions)
      expect(m).toMatchObject({ visitorId, revision: "3", sdkKey: "demo", source: "edge" });
  });

  it("a returning visitor keeps their id, and bucketing equals the core's", async () => {
    const compiled = loadDatafile(edgeDatafile);
    if (!compiled.ok) throw new Error("fixture invalid");
    for (let i = 0; i < 30; i++) {
      const id = `visitor${i}`;
      const response = await get("/", { headers: { cookie: `ss_vid=${id}` } });
      await response.text();
      expect(cookieValue(response, "ss_vid")).toBeUndefined();
      const decisions = new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions")));
      expect(decisions.get("split")).toBe(
        decideExperiment(compiled.compiled, "split", { visitorId: id }).variationKey,
      );
    }
  });

  it("falls back to an optimizelyEndUserId cookie and migrates it to ss_vid", async () => {
    const response = await get("/", { headers: { cookie: "optimizelyEndUserId=oeu123abc" } });
    await response.text();
    expect(origin.requests[0]!.headers.get("x-ss-visitor-id")).toBe("oeu123abc");
    expect(cookieValue(response, "ss_vid")).toBe("oeu123abc");
  });

  it("sticky: ss_dec keeps a variation the allocation no longer gives", async () => {
    const response = await get("/", { headers: { cookie: "ss_vid=stick1; ss_dec=1001.v_h_ctrl" } });
    const html = await response.text();
    expect(
      new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions"))).get("headline"),
    ).toBe("control");
    expect(html).toContain("<h1>Welcome</h1>");
  });

  it("audiences see request attributes: geo.country from request.cf", async () => {
    const de = await get("/", { cf: { country: "DE" } });
    expect(await de.text()).toContain('<div id="de-banner">Hallo!</div>');
    const fr = await get("/", { cf: { country: "FR" } });
    expect(await fr.text()).not.toContain("de-banner");
  });

  it("regex pages match (/products/42) and unmatched pages get no experiments", async () => {
    const product = await get("/products/42");
    expect(await product.text()).toContain("Bold new headline");
    const about = await get("/about");
    const html = await about.text();
    expect(html).toContain("<h1>Welcome</h1>");
    expect(about.headers.get("x-ss-decisions")).toBeNull();
  });

  it("split URL, redirect mode: 302 to the variation URL, parameters preserved, counted", async () => {
    const response = await get("/old?utm_source=mail");
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe(`${SITE}/new?utm_source=mail`);
    expect(origin.requests).toHaveLength(0);
    expect(
      queued
        .filter((m) => m.type === "impression")
        .map((m) => m.type === "impression" && m.experimentId),
    ).toEqual(["1005"]);
  });

  it("split URL, rewrite mode: the variation's content at the original URL, one origin fetch", async () => {
    const response = await get("/checkout");
    expect(await response.text()).toContain("Checkout B");
    expect(origin.requests.map((r) => r.url)).toEqual([`${ORIGIN}/other-b`]);
  });

  it("manual activation: decided and announced, but neither applied nor counted", async () => {
    const response = await get("/manual");
    const html = await response.text();
    expect(
      new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions"))).get("manual_test"),
    ).toBe("m");
    expect(html).toContain("<h1>Welcome</h1>");
    const payload = decodeBootstrap(
      JSON.parse(/window\.__ss=(\{.*?\});<\/script>/.exec(html)![1]!),
    );
    expect(payload?.decisions).toEqual([
      expect.objectContaining({
        experimentKey: "manual_test",
        variationKey: "m",
        activation: "manual",
        pageIds: ["p_manual"],
      }),
    ]);
    expect(queued.filter((m) => m.type === "impression")).toHaveLength(0);
  });

  it("pageview goals of matched pages are queued", async () => {
    const response = await get("/thanks", { headers: { cookie: "ss_vid=buyer1" } });
    await response.text();
    expect(queued.filter((m) => m.type === "conversion")).toMatchObject([
      { eventKey: "thank_you_view", visitorId: "buyer1" },
    ]);
  });

  it("a client cannot inject x-ss-* headers towards the origin", async () => {
    const response = await get("/about", {
      headers: { "x-ss-decisions": "headline=evil", "x-ss-visitor-id": "spoof" },
    });
    await response.text();
    expect(origin.requests[0]!.headers.get("x-ss-decisions")).toBe("");
    expect(origin.requests[0]!.headers.get("x-ss-visitor-id")).not.toBe("spoof");
  });
});

describe("preview links", () => {
  it("a signed link forces a variation (even of a paused experiment) for this browser only, uncounted", async () => {
    const token = await signPreview(env.SIGNING_KEY, {
      sdkKey: "demo",
      variations: { "1004": "v_p" },
      expiresAt: Date.now() + 3600_000,
    });
    const first = await get(`/?ss_preview=${encodeURIComponent(token)}`, {
      headers: { cookie: "ss_vid=qa1" },
    });
    expect(await first.text()).toContain("PAUSED");
    expect(cookieValue(first, "ss_preview")).toBeDefined();
    expect(origin.requests[0]!.url).not.toContain("ss_preview");
    expect(queued).toHaveLength(0);

    // The cookie carries the preview on; another browser (no cookie) sees the live site.
    const again = await get("/", {
      headers: { cookie: `ss_vid=qa1; ss_preview=${cookieValue(first, "ss_preview")}` },
    });
    expect(await again.text()).toContain("PAUSED");
    const other = await get("/", { headers: { cookie: "ss_vid=qa2" } });
    expect(await other.text()).not.toContain("PAUSED");

    // ss_preview=off ends it.
    const off = await get("/?ss_preview=off", {
      headers: { cookie: `ss_vid=qa1; ss_preview=${cookieValue(first, "ss_preview")}` },
    });
    expect(await off.text()).not.toContain("PAUSED");
    expect(setCookies(off).some((c) => c.startsWith("ss_preview=") && /Max-Age=0/.test(c))).toBe(
      true,
    );
  });

  it.each([
    [
      "a tampered token",
      async () =>
        (
          await signPreview(env.SIGNING_KEY, {
            sdkKey: "demo",
            variations: { "1004": "v_p" },
            expiresAt: Date.now() + 3600_000,
          })
        ).replace(/.$/, (c) => (c === "A" ? "E" : "A")),
    ],
    [
      "another key's token",
      () =>
        signPreview("not-the-key", {
          sdkKey: "demo",
          variations: { "1004": "v_p" },
          expiresAt: Date.now() + 3600_000,
        }),
    ],
    [
      "an expired token",
      () =>
        signPreview(env.SIGNING_KEY, {
          sdkKey: "demo",
          variations: { "1004": "v_p" },
          expiresAt: Date.now() - 1000,
        }),
    ],
    [
      "another sdkKey's token",
      () =>
        signPreview(env.SIGNING_KEY, {
          sdkKey: "other",
          variations: { "1004": "v_p" },
          expiresAt: Date.now() + 3600_000,
        }),
    ],
  ])("%s is ignored", async (_name, make) => {
    const token = await make();
    const response = await get(`/?ss_preview=${encodeURIComponent(token)}`);
    expect(await response.text()).not.toContain("PAUSED");
  });
});

describe("untouched and fail-open paths", () => {
  it.each([
    ["a stylesheet (non-HTML)", "/site.css", 200, "h1{color:red}"],
    ["an origin 500", "/boom", 500, "<h1>down</h1>"],
  ])("%s is streamed through unchanged", async (_name, path, status, body) => {
    const response = await get(path);
    expect(response.status).toBe(status);
    expect(await response.text()).toBe(body);
    expect(setCookies(response)).toEqual([]);
  });

  it("POST passes through with its body, nothing decided", async () => {
    const response = await get("/", {
      method: "POST",
      body: "a=1",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(await response.text()).toBe(PAGE);
    expect(origin.requests[0]).toMatchObject({ method: "POST", body: "a=1" });
    expect(origin.requests[0]!.headers.get("x-ss-visitor-id")).toBeNull();
  });

  it("HEAD gets the decision headers and cookies but no body", async () => {
    const response = await get("/", { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-ss-decisions")).toContain("headline=bold");
    expect(await response.text()).toBe("");
    expect(queued).toHaveLength(0);
  });

  it.each([
    [
      "a bot",
      { "user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" },
    ],
    ["Sec-GPC: 1", { "sec-gpc": "1" }],
    ["ss_optout", { cookie: "ss_optout=1" }],
  ])("%s gets the original page, no cookies, no events", async (_name, headers) => {
    const response = await get("/", { headers });
    expect(await response.text()).toBe(PAGE);
    expect(setCookies(response)).toEqual([]);
    expect(response.headers.get("x-ss-decisions")).toBeNull();
    expect(queued).toHaveLength(0);
  });

  it("no datafile in KV: pass-through", async () => {
    await env.DATAFILES.delete("datafiles/demo");
    resetDatafileStore();
    const response = await get("/");
    expect(await response.text()).toBe(PAGE);
  });

  it("a bad datafile in KV and no good one before: pass-through", async () => {
    await publish("{ not json");
    const response = await get("/");
    expect(await response.text()).toBe(PAGE);
  });

  it("KV throwing: pass-through", async () => {
    vi.spyOn(env.DATAFILES, "getWithMetadata").mockRejectedValue(new Error("KV is down"));
    resetDatafileStore();
    const response = await get("/");
    expect(await response.text()).toBe(PAGE);
  });
});

describe("injection through datafile keys and query strings", () => {
  it("hostile experiment and variation keys cannot break out of the bootstrap or the header", async () => {
    const evil = structuredClone(edgeDatafile);
    evil.experiments[0]!.key = `</script><script>alert(1)</script>`;
    evil.experiments[0]!.variations[1]!.key = `"><img src=x onerror=alert(2)>, x=y`;
    await publish(evil);
    const response = await get(`/?q=</script><script>alert(3)</script>`);
    const html = await response.text();
    expect(html).not.toContain("<script>alert(1)</script>");
    expect(html).not.toContain("<img src=x onerror");
    expect(html).not.toContain("alert(3)</script>");
    // Exactly the scripts we inject (the bootstrap and the client script), none smuggled in.
    expect(html.match(/<script\b[^>]*>/g) ?? []).toEqual([
      `<script id="ss-bootstrap">`,
      expect.stringMatching(/^<script src="\/_ss\/client\.js\?v=[\w-]+" async>$/),
    ]);
    const header = response.headers.get("x-ss-decisions")!;
    expect(header).not.toMatch(/[<>" ]x=y/);
    expect(new Map(parseDecisionsHeader(header)).get(`</script><script>alert(1)</script>`)).toBe(
      `"><img src=x onerror=alert(2)>, x=y`,
    );
  });
});
