/**
 * The client script's side of the Worker: `GET /_ss/client.js`, `GET /_ss/client-config/…`,
 * `GET /_ss/decide`, the bootstrap on pages (versioned client script, CSP nonce), and the URL
 * condition trees the client evaluates (parity with src/core). The browser itself is exercised
 * in test/browser.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CLIENT_JS, CLIENT_JS_HASH } from "../../src/client/generated/client-bundle";
import type { ClientConfig } from "../../src/client/config-types";
import { evalUrl } from "../../src/client/url";
import { compileUrlConditions } from "../../src/core/url-match";
import { decodeBootstrap, nonceFromCsp } from "../../src/edge/bootstrap";
import { clientUrlTree } from "../../src/edge/client-config";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";

const SITE = "http://localhost";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

/** edge.json plus an SPA page (url_changed, /spa) for manual_test (1007). */
function spaDatafile(): typeof edgeDatafile {
  const d = structuredClone(edgeDatafile);
  d.web.pages.push({
    id: "p_spa",
    key: "spa",
    activation: "url_changed",
    conditions: ["or", { match: "simple", value: "localhost/spa" }],
  });
  d.web.experiments.find((e) => e.id === "1007")!.pageIds.push("p_spa");
  return d;
}

async function publish(datafile: unknown): Promise<void> {
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
  resetDatafileStore();
}

function get(path: string, headers: Record<string, string> = {}): Promise<Response> {
  return exports.default.fetch(
    new Request(`${SITE}${path}`, { headers: { "user-agent": BROWSER_UA, ...headers } }),
  );
}

let origin: MockedOrigin | undefined;

beforeEach(async () => {
  await publish(spaDatafile());
});

afterEach(() => {
  origin?.restore();
  origin = undefined;
  vi.restoreAllMocks();
});

describe("GET /_ss/client.js", () => {
  it("serves the bundle; the versioned URL is immutable, the bare one cached 5 minutes", async () => {
    const bare = await get("/_ss/client.js");
    expect(bare.status).toBe(200);
    expect(bare.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(bare.headers.get("cache-control")).toBe("public, max-age=300");
    expect(bare.headers.get("etag")).toBe(`"${CLIENT_JS_HASH}"`);
    expect(await bare.text()).toBe(CLIENT_JS);

    const versioned = await get(`/_ss/client.js?v=${CLIENT_JS_HASH}`);
    expect(versioned.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    await versioned.body?.cancel();

    const notModified = await get("/_ss/client.js", { "if-none-match": `W/"${CLIENT_JS_HASH}"` });
    expect(notModified.status).toBe(304);

    const post = await exports.default.fetch(
      new Request(`${SITE}/_ss/client.js`, { method: "POST" }),
    );
    expect(post.status).toBe(405);
    await post.body?.cancel();
  });
});

describe("GET /_ss/client-config/{sdkKey}.json", () => {
  it("carries the non-immediate experiments' changes, the pages and goals the client needs", async () => {
    const response = await get("/_ss/client-config/demo.json?r=3");
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("public, max-age=3600");
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    const config = (await response.json()) as ClientConfig;
    expect(config.v).toBe(1);
    expect(config.r).toBe("3");
    // Only manual_test has a non-immediate page; immediate experiments stay at the edge.
    expect(Object.keys(config.x)).toEqual(["1007"]);
    expect(config.x["1007"]).toEqual({
      k: "manual_test",
      p: ["p_manual", "p_spa"],
      v: { v_m: [{ type: "attribute", selector: "h1", attributes: { text: "Manual" } }] },
    });
    expect(config.g).toEqual(
      expect.arrayContaining([
        { i: "ev_buy", k: "buy_click", t: "c", p: "p_home", s: "#buy" },
        { i: "ev_thanks", k: "thank_you_view", t: "v", p: "p_thanks" },
      ]),
    );
    expect(config.p.map((p) => p.i).sort()).toEqual(["p_home", "p_manual", "p_spa", "p_thanks"]);
    expect(config.p.find((p) => p.i === "p_spa")).toEqual({
      i: "p_spa",
      k: "spa",
      a: "u",
      c: ["or", { m: "s", v: "localhost/spa" }],
    });
    expect(config.n).toEqual({ dataLayer: true });

    const again = await get("/_ss/client-config/demo.json", {
      "if-none-match": response.headers.get("etag")!,
    });
    expect(again.status).toBe(304);
    expect(again.headers.get("cache-control")).toBe("public, max-age=60");
  });

  it("404 for an unknown sdk key or path", async () => {
    for (const path of ["/_ss/client-config/nope.json", "/_ss/client-config/a/b.json"]) {
      const response = await get(path);
      expect(response.status).toBe(404);
      await response.body?.cancel();
    }
  });
});

describe("client URL trees", () => {
  const conditions: unknown[] = [
    ["or", { match: "simple", value: "https://www.Example.com/Shop/" }],
    ["and", { match: "substring", value: "/P" }, ["not", { match: "regex", value: "\\?x=1$" }]],
    [
      { match: "exact", value: "https://example.com" },
      { match: "simple", value: "b.org/q" },
    ],
    ["not", { match: "bogus", value: "x" }],
    ["not"],
    ["and"],
    [],
    ["or", { match: "regex", value: "(" }, { match: "substring", value: "shop" }],
    "not a tree",
  ];
  const urls = [
    "https://example.com/shop",
    "http://www.example.com:80/shop/?a=1#h",
    "https://example.com/",
    "https://example.com/p/1?x=1",
    "https://example.com/p/1?x=2",
    "https://b.org/q/",
    "https://EXAMPLE.com/SHOP",
  ];
  it.each(conditions.map((c) => [JSON.stringify(c), c]))(
    "%s: the client's evaluation matches src/core for every URL",
    (_name, tree) => {
      const core = compileUrlConditions(tree);
      const client = clientUrlTree(tree);
      for (const url of urls)
        expect([url, evalUrl(client, url) === true]).toEqual([url, core(url)]);
    },
  );
});

describe("GET /_ss/decide", () => {
  it("decides the url_changed experiments of the given URL and stores them in ss_dec", async () => {
    const response = await get(`/_ss/decide?url=${encodeURIComponent(`${SITE}/spa?x=1`)}`, {
      cookie: "ss_vid=spa-visitor",
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    const body = (await response.json()) as { t: boolean; d: unknown[] };
    expect(body).toEqual({
      t: true,
      d: [{ e: "1007", ek: "manual_test", vi: "v_m", vk: "m", a: "u", p: ["p_spa"] }],
    });
    const cookie = response.headers.getSetCookie().find((c) => c.startsWith("ss_dec="));
    expect(cookie).toMatch(/^ss_dec=1007\.v_m;/);
    expect(cookie).toMatch(/HttpOnly/);
  });

  it("nothing for other URLs; no cookie when the decision is already sticky", async () => {
    const other = await get(`/_ss/decide?url=${encodeURIComponent(`${SITE}/manual`)}`, {
      cookie: "ss_vid=spa-visitor",
    });
    expect(await other.json()).toEqual({ t: true, d: [] }); // manual: decided on page load
    const sticky = await get(`/_ss/decide?url=${encodeURIComponent(`${SITE}/spa`)}`, {
      cookie: "ss_vid=spa-visitor; ss_dec=1007.v_m",
    });
    expect(((await sticky.json()) as { d: unknown[] }).d).toHaveLength(1);
    expect(sticky.headers.getSetCookie()).toEqual([]);
  });

  it("untracked visitors get nothing; no visitor cookie or a bad url → 400", async () => {
    const spa = encodeURIComponent(`${SITE}/spa`);
    const optedOut = await get(`/_ss/decide?url=${spa}`, { cookie: "ss_vid=a; ss_optout=1" });
    expect(await optedOut.json()).toEqual({ t: false, d: [] });
    const bot = await get(`/_ss/decide?url=${spa}`, {
      cookie: "ss_vid=a",
      "user-agent": "Googlebot/2.1",
    });
    expect(await bot.json()).toEqual({ t: false, d: [] });
    const noVisitor = await get(`/_ss/decide?url=${spa}`);
    expect(noVisitor.status).toBe(400);
    await noVisitor.body?.cancel();
    for (const url of ["", "javascript:alert(1)", "/relative"]) {
      const bad = await get(`/_ss/decide?url=${encodeURIComponent(url)}`, { cookie: "ss_vid=a" });
      expect(bad.status).toBe(400);
      await bad.body?.cancel();
    }
  });
});

describe("the bootstrap on pages", () => {
  const PAGE = "<!doctype html><html><head><title>t</title></head><body><h1>Hi</h1></body></html>";

  it("loads the versioned client script; the route's shim and cookie settings are in window.__ss", async () => {
    origin = mockOrigin(
      () => new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }),
    );
    const html = await (await get("/manual", { "accept-encoding": "identity" })).text();
    expect(html).toContain(`<script src="/_ss/client.js?v=${CLIENT_JS_HASH}" async></script>`);
    const payload = JSON.parse(/window\.__ss=(\{.*?\});<\/script>/.exec(html)![1]!);
    expect(payload.s).toBeUndefined(); // wrangler.toml's demo route has no optimizely_shim
    expect(decodeBootstrap(payload)?.decisions).toEqual([
      expect.objectContaining({ experimentId: "1007", activation: "manual" }),
    ]);
  });

  it("takes the nonce from the origin's Content-Security-Policy for everything it injects", async () => {
    origin = mockOrigin(
      () =>
        new Response(PAGE, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy":
              "default-src 'self'; script-src 'self' 'nonce-R4nd0m+/=' 'strict-dynamic'",
          },
        }),
    );
    const html = await (await get("/", { "accept-encoding": "identity" })).text();
    expect(html).toContain(`<script id="ss-bootstrap" nonce="R4nd0m+/=">`);
    expect(html).toContain(`async nonce="R4nd0m+/="></script>`);
  });
});

describe("nonceFromCsp", () => {
  it.each<[string | null, string | null]>([
    [null, null],
    ["default-src 'self'", null],
    ["script-src 'nonce-abc'", "abc"],
    ["default-src 'nonce-def'; img-src *", "def"],
    ["script-src-elem 'nonce-elem'; script-src 'nonce-other'", "elem"],
    ["script-src 'self'; default-src 'nonce-x'", null], // script-src governs, and has none
    ["img-src *, script-src 'nonce-second'", "second"],
    [`script-src 'nonce-"><x'`, null],
    ["SCRIPT-SRC 'NONCE-Up'", "Up"],
  ])("%j → %j", (header, nonce) => {
    expect(nonceFromCsp(header)).toBe(nonce);
  });
});
