/**
 * Feature flags at the edge (docs/visitors.md "Feature flags"), through the real Worker: `x-ss-flags`
 * to the origin (format, encoding, the 4 KB cap, enabled flags only), A/B rules sticky in `ss_dec`
 * and counted like experiments, untracked visitors (bots, GPC, opt-out, refused consent) getting
 * the delivery rules only, failing open, the flags in the bootstrap (`</script>`-safe, capped) and
 * in `GET /_ss/decide`. The core (src/core/features.ts) is the oracle of what a flag decides.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  decideAllFlags,
  loadDatafile,
  prepareVisitor,
  type CompiledDatafile,
  type FlagDecision,
} from "../../src/core/index";
import { decodeBootstrap, FLAGS_BOOTSTRAP_MAX_BYTES } from "../../src/edge/bootstrap";
import { getDatafile, resetDatafileStore } from "../../src/edge/datafile-store";
import { DECISIONS_HEADER_MAX_BYTES, parseDecisionsHeader } from "../../src/edge/decisions-header";
import { decideFlags } from "../../src/edge/flags";
import type { EventMessage, ImpressionMessage } from "../../src/shared/event-messages";
import flagsDatafile from "../fixtures/datafiles/flags.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { routedWorker, setCookiesOf, type WorkerFetch } from "../helpers/pipeline";
import { recordQueued } from "../helpers/queue";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- fixtures are edited freely
type Json = any;

const ORIGIN = "http://localhost:8788";
const PAGE = `<!doctype html><html><head><title>Shop</title></head><body><h1>Welcome</h1></body></html>`;
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/** localhost as wrangler.toml routes it; two more hosts for the route settings under test. */
const site: WorkerFetch = routedWorker([
  { pattern: "localhost/*", sdk_key: "demo", origin: ORIGIN },
  { pattern: "consent.test/*", sdk_key: "demo", origin: ORIGIN, consent_cookie: "site_consent" },
  { pattern: "bots.test/*", sdk_key: "demo", origin: ORIGIN, bot_policy: "decide" },
]);

let origin: MockedOrigin;
let queued: EventMessage[];

async function publish(datafile: unknown): Promise<void> {
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
  resetDatafileStore();
}

function compiledOf(datafile: unknown): CompiledDatafile {
  const loaded = loadDatafile(datafile);
  if (!loaded.ok) throw new Error("fixture invalid");
  return loaded.compiled;
}

/** GET `path` on `host` as a browser (or with `headers`); waits for the request's queueing. */
function get(
  path: string,
  headers: Record<string, string> = {},
  options: { host?: string; cf?: Record<string, unknown> } = {},
): Promise<Response> {
  return site(`http://${options.host ?? "localhost"}${path}`, {
    headers: { "user-agent": BROWSER_UA, "accept-encoding": "identity", ...headers },
    redirect: "manual",
    ...(options.cf ? { cf: options.cf } : {}),
  } as RequestInit);
}

/** The last request the origin got. */
function sentToOrigin(): Headers {
  expect(origin.requests.length).toBeGreaterThan(0);
  return origin.requests.at(-1)!.headers;
}

/** `x-ss-flags` as the origin got it, parsed back. */
function flagsAtOrigin(): Map<string, string> {
  const value = sentToOrigin().get("x-ss-flags");
  expect(value).not.toBeNull();
  return new Map(parseDecisionsHeader(value));
}

/** What the core decides for `visitorId` (the oracle): `flagKey=variationKey` of enabled flags. */
function expectedEnabled(
  compiled: CompiledDatafile,
  visitorId: string,
  country: string,
  options: { experimentRules?: boolean; sticky?: Record<string, string> } = {},
): Map<string, string> {
  const decisions = decideAllFlags(
    compiled,
    { visitorId, attributes: { "geo.country": country }, sticky: options.sticky },
    { experimentRules: options.experimentRules },
  );
  return new Map(decisions.filter((d) => d.enabled).map((d) => [d.flagKey, d.variationKey!]));
}

function bootstrapOf(html: string) {
  const match = /window\.__ss=(\{.*?\});<\/script>/s.exec(html);
  expect(match, "a bootstrap").not.toBeNull();
  return decodeBootstrap(JSON.parse(match![1]!));
}

const impressions = (): ImpressionMessage[] =>
  queued.filter((m): m is ImpressionMessage => m.type === "impression");

/** A visitor id the A/B rule (experiment 3001) buckets into `variationKey`, found with the core. */
function visitorIn(compiled: CompiledDatafile, variationKey: string, prefix: string): string {
  for (let i = 0; i < 1000; i++) {
    const id = `${prefix}-${i}`;
    const search = decideAllFlags(compiled, { visitorId: id }).find(
      (d) => d.flagKey === "search_ranking",
    );
    if (search?.variationKey === variationKey) return id;
  }
  throw new Error(`no visitor in ${variationKey}`);
}

const compiled = compiledOf(flagsDatafile);

beforeEach(async () => {
  origin = mockOrigin(
    () => new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }),
  );
  queued = [];
  recordQueued(queued);
  await publish(flagsDatafile);
});

afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
  resetDatafileStore();
});

describe("x-ss-flags towards the origin", () => {
  it("names the enabled flags only, flagKey=variationKey in datafile order, and is no response header", async () => {
    const response = await get("/", { cookie: "ss_vid=qa-variant" }, { cf: { country: "FR" } });
    expect(response.status).toBe(200);
    const header = sentToOrigin().get("x-ss-flags")!;
    // qa-variant is forced into the A/B rule's "semantic"; dark_mode is released to everyone;
    // new_checkout is only on in Germany and legacy_banner has no rule at all.
    expect(header.startsWith("search_ranking=semantic, dark_mode=on")).toBe(true);
    expect(flagsAtOrigin()).toEqual(expectedEnabled(compiled, "qa-variant", "FR"));
    expect(flagsAtOrigin().has("new_checkout")).toBe(false);
    expect(flagsAtOrigin().has("legacy_banner")).toBe(false);
    // The experiments' header is unchanged; x-ss-flags stays between the edge and the origin.
    expect(parseDecisionsHeader(sentToOrigin().get("x-ss-decisions"))).toEqual([
      ["headline", "bold"],
    ]);
    expect(response.headers.get("x-ss-decisions")).toBe("headline=bold");
    expect(response.headers.has("x-ss-flags")).toBe(false);
  });

  it("a targeted delivery rule sees the request attributes (geo.country from request.cf)", async () => {
    await get("/", { cookie: "ss_vid=qa-original" }, { cf: { country: "DE" } });
    const de = flagsAtOrigin();
    expect(de.get("new_checkout")).toBe("on_de");
    expect(de.has("search_ranking")).toBe(false); // forced into "off": featureEnabled false
    expect(de).toEqual(expectedEnabled(compiled, "qa-original", "DE"));
    await get("/", { cookie: "ss_vid=qa-original" }, { cf: { country: "AT" } });
    expect(flagsAtOrigin().has("new_checkout")).toBe(false);
  });

  it("agrees with the core for many visitors, on pages with and without experiments", async () => {
    let enabledHalf = 0;
    for (let i = 0; i < 60; i++) {
      const id = `visitor-${i}`;
      const country = i % 3 === 0 ? "DE" : "US";
      await get(i % 2 ? "/" : "/about", { cookie: `ss_vid=${id}` }, { cf: { country } });
      const got = flagsAtOrigin();
      expect([id, got]).toEqual([id, expectedEnabled(compiled, id, country)]);
      if (got.has("half_release")) enabledHalf++;
    }
    // The 50 % release really splits the visitors.
    expect(enabledHalf).toBeGreaterThan(5);
    expect(enabledHalf).toBeLessThan(55);
  });

  it("a client cannot send its own x-ss-flags to the origin", async () => {
    await get("/", { cookie: "ss_vid=qa-variant", "x-ss-flags": "admin_mode=on" });
    expect(sentToOrigin().get("x-ss-flags")).not.toContain("admin_mode");
    await get("/", { "x-ss-flags": "admin_mode=on", "user-agent": BOT_UA });
    expect(sentToOrigin().get("x-ss-flags")).not.toContain("admin_mode");
  });

  it("nor on a route without origin, on any path the edge passes through (POST, excluded paths)", async () => {
    const noOrigin = routedWorker([
      { pattern: "plain.test/*", sdk_key: "demo", exclude_paths: ["/static/*"] },
    ]);
    const forged = { "x-ss-flags": "admin_mode=on", "x-ss-visitor-id": "someone-else" };
    await noOrigin("http://plain.test/checkout", {
      method: "POST",
      headers: { "user-agent": BROWSER_UA, ...forged },
      body: "a=1",
    });
    expect(sentToOrigin().get("x-ss-flags")).toBeNull();
    expect(sentToOrigin().get("x-ss-visitor-id")).toBeNull();
    await noOrigin("http://plain.test/static/app.js", {
      headers: { "user-agent": BROWSER_UA, ...forged },
    });
    expect(sentToOrigin().get("x-ss-flags")).toBeNull();
  });

  it("hostile flag and variation keys are percent-encoded exactly like x-ss-decisions", async () => {
    const hostile: Json = structuredClone(flagsDatafile);
    const keys = ["a=b, c=d", "new\r\nx-injected: 1", "ünï cödé", "semi;colon\u0000nul"];
    hostile.featureFlags[2].key = keys[0]; // dark_mode, released to everyone
    hostile.rollouts[2].experiments[0].variations[0].key = keys[1];
    hostile.featureFlags[3].key = keys[2]; // half_release
    hostile.featureFlags[1].key = keys[3]; // search_ranking (qa-variant: semantic)
    await publish(hostile);
    const response = await get("/", { cookie: "ss_vid=qa-variant" });
    expect(response.status).toBe(200);
    const header = sentToOrigin().get("x-ss-flags")!;
    // Only unreserved characters and escapes inside the pairs: no raw "=", ",", CR/LF, NUL, space.
    expect(header).toMatch(/^[\w.~%-]+=[\w.~%-]+(, [\w.~%-]+=[\w.~%-]+)*$/);
    const pairs = new Map(parseDecisionsHeader(header));
    expect(pairs.get(keys[3]!)).toBe("semantic");
    expect(pairs.get(keys[0]!)).toBe(keys[1]);
    expect(header).toContain("a%3Db%2C%20c%3Dd=new%0D%0Ax-injected%3A%201");
    expect(pairs).toEqual(expectedEnabled(compiledOf(hostile), "qa-variant", "XX"));
  });

  it("is capped at 4 KB: pairs that would cross it are left out whole, in datafile order", async () => {
    const many: Json = structuredClone(flagsDatafile);
    many.featureFlags = Array.from({ length: 120 }, (_, i) => ({
      id: `f_many_${i}`,
      key: `released_feature_with_a_rather_long_descriptive_key_${String(i).padStart(3, "0")}`,
      rolloutId: "r_dark",
      experimentIds: [],
      variables: [{ id: "fv_theme", key: "theme", type: "string", defaultValue: "light" }],
    }));
    await publish(many);
    await get("/about", { cookie: "ss_vid=capped" });
    const header = sentToOrigin().get("x-ss-flags")!;
    expect(header.length).toBeLessThanOrEqual(DECISIONS_HEADER_MAX_BYTES);
    const pairs = parseDecisionsHeader(header);
    // Whole pairs, the first ones, none cut in the middle.
    expect(pairs.length).toBeGreaterThan(40);
    expect(pairs.length).toBeLessThan(120);
    expect(pairs).toEqual(many.featureFlags.slice(0, pairs.length).map((f: Json) => [f.key, "on"]));
    // The bootstrap's own cap: the first flags' states, their variables where room is left.
    const html = await (await get("/about", { cookie: "ss_vid=capped" })).text();
    const inPage = bootstrapOf(html)!.flags!;
    expect(inPage.length).toBeGreaterThan(20);
    expect(inPage.map(({ variables: _, ...state }) => state)).toEqual(
      many.featureFlags
        .slice(0, inPage.length)
        .map((f: Json) => ({ flagKey: f.key, enabled: true, variationKey: "on" })),
    );
    for (const f of inPage) expect([null, { theme: "dark" }]).toContainEqual(f.variables);
  });

  it("a datafile without flags: an empty x-ss-flags, no flags in the bootstrap, nothing else changes", async () => {
    const none: Json = structuredClone(flagsDatafile);
    none.featureFlags = [];
    none.rollouts = [];
    await publish(none);
    const html = await (await get("/", { cookie: "ss_vid=plain" })).text();
    expect(sentToOrigin().get("x-ss-flags")).toBe("");
    expect(bootstrapOf(html)?.flags).toBeUndefined();
    expect(html).not.toContain('"f":');
    // Bots get the plain pass-through, as before flags existed: no x-ss-* at all.
    await get("/", { "user-agent": BOT_UA });
    expect(sentToOrigin().get("x-ss-flags")).toBeNull();
    expect(sentToOrigin().get("x-ss-revision")).toBeNull();
  });
});

describe("A/B rules: decided, sticky and counted like experiments", () => {
  it("records the A/B rule in ss_dec and queues its impression with flagKey and ruleType", async () => {
    const id = visitorIn(compiled, "semantic", "ab");
    const response = await get("/", { cookie: `ss_vid=${id}` }, { cf: { country: "US" } });
    const html = await response.text();
    expect(flagsAtOrigin().get("search_ranking")).toBe("semantic");
    const ssDec = setCookiesOf(response).get("ss_dec")!;
    expect(ssDec.split("~")).toEqual(expect.arrayContaining(["1001.v_h_new", "3001.v_s_on"]));
    expect(html).toContain("Bold new headline");
    // One impression for the page's experiment, one for the flag's A/B rule; none for the
    // delivery rules (dark_mode, half_release …).
    const byExperiment = new Map(impressions().map((m) => [m.experimentId, m]));
    expect([...byExperiment.keys()].sort()).toEqual(["1001", "3001"]);
    expect(impressions()).toHaveLength(2);
    expect(byExperiment.get("3001")).toMatchObject({
      v: 1,
      type: "impression",
      sdkKey: "demo",
      revision: "7",
      visitorId: id,
      variationId: "v_s_on",
      flagKey: "search_ranking",
      ruleType: "feature-test",
      source: "edge",
      dims: { device: "desktop", browser: "chrome", visitor: "returning" },
    });
    expect(byExperiment.get("1001")!.flagKey).toBeUndefined();
    // Personalised: the page depends on the visitor's flags.
    expect(response.headers.get("cache-control")).toMatch(/^private/);
    expect(response.headers.get("vary")).toMatch(/Cookie/);
  });

  it("an off variation of the A/B rule is still an impression (the visitor is in the test)", async () => {
    const id = visitorIn(compiled, "off", "ab-off");
    await (await get("/about", { cookie: `ss_vid=${id}` })).text();
    expect(flagsAtOrigin().has("search_ranking")).toBe(false);
    expect(impressions()).toEqual([
      expect.objectContaining({
        experimentId: "3001",
        variationId: "v_s_off",
        flagKey: "search_ranking",
      }),
    ]);
  });

  it("ss_dec keeps an A/B-rule variation the allocation would no longer give", async () => {
    const id = visitorIn(compiled, "semantic", "sticky");
    const response = await get("/about", { cookie: `ss_vid=${id}; ss_dec=3001.v_s_off` });
    await response.text();
    expect(flagsAtOrigin().has("search_ranking")).toBe(false);
    expect(flagsAtOrigin()).toEqual(
      expectedEnabled(compiled, id, "XX", { sticky: { "3001": "v_s_off" } }),
    );
    expect(impressions().map((m) => m.variationId)).toEqual(["v_s_off"]);
    // Already sticky: no new ss_dec.
    expect(setCookiesOf(response).has("ss_dec")).toBe(false);
  });

  it("an experiment that is both on the page and a flag's A/B rule is counted once per page view", async () => {
    const shared: Json = structuredClone(flagsDatafile);
    shared.featureFlags[1].experimentIds = ["1001"]; // search_ranking's A/B rule: the page's headline
    await publish(shared);
    await (await get("/", { cookie: "ss_vid=both" })).text();
    expect(flagsAtOrigin().has("search_ranking")).toBe(false); // its variations are not featureEnabled
    expect(setCookiesOf(await get("/about", { cookie: "ss_vid=both2" })).get("ss_dec")).toBe(
      "1001.v_h_new",
    );
    const headline = impressions().filter((m) => m.experimentId === "1001");
    // One from "/" (the page's impression), one from "/about" (the flag's, with its key).
    expect(headline.map((m) => [m.visitorId, m.flagKey])).toEqual([
      ["both", undefined],
      ["both2", "search_ranking"],
    ]);
  });

  it("HEAD and non-HTML responses are decided but not counted", async () => {
    const id = visitorIn(compiled, "semantic", "head");
    await get("/", { cookie: `ss_vid=${id}` }, {});
    queued.length = 0;
    const head = await site("http://localhost/", {
      method: "HEAD",
      headers: { cookie: `ss_vid=${id}`, "user-agent": BROWSER_UA },
    });
    expect(head.status).toBe(200);
    expect(flagsAtOrigin().get("search_ranking")).toBe("semantic");
    origin.restore();
    origin = mockOrigin(
      () => new Response("{}", { headers: { "content-type": "application/json" } }),
    );
    await get("/api/cart", { cookie: `ss_vid=${id}` });
    expect(flagsAtOrigin().get("search_ranking")).toBe("semantic");
    expect(impressions()).toEqual([]);
  });
});

describe("visitors the edge does not track: delivery rules only", () => {
  it.each<[string, Record<string, string>, string]>([
    ["a bot", { "user-agent": BOT_UA }, "localhost"],
    ["Sec-GPC: 1", { "sec-gpc": "1" }, "localhost"],
    ["ss_optout=1", { cookie: "ss_optout=1" }, "localhost"],
    ["no consent", { cookie: "site_consent=no" }, "consent.test"],
  ])(
    "%s: x-ss-flags without A/B rules, the original page, no cookies, no impressions",
    async (_name, headers, host) => {
      const cookie = `ss_vid=qa-variant${headers.cookie ? `; ${headers.cookie}` : ""}`;
      const response = await get("/", { ...headers, cookie }, { host, cf: { country: "DE" } });
      expect(await response.text()).toBe(PAGE);
      expect(response.status).toBe(200);
      expect(setCookiesOf(response).size).toBe(0);
      expect(queued).toEqual([]);
      const sent = sentToOrigin();
      expect(sent.get("x-ss-decisions")).toBeNull();
      expect(sent.get("x-ss-visitor-id")).toBeNull();
      expect(sent.get("x-ss-revision")).toBe("7");
      // A release reaches them (dark_mode, and new_checkout through its German rule); the A/B rule
      // does not: qa-variant would be in "semantic" if tracked.
      const flags = flagsAtOrigin();
      expect(flags.get("dark_mode")).toBe("on");
      expect(flags.get("new_checkout")).toBe("on_de");
      expect(flags.has("search_ranking")).toBe(false);
      expect(flags).toEqual(
        expectedEnabled(compiled, "qa-variant", "DE", { experimentRules: false }),
      );
    },
  );

  it("an untracked visitor's page the origin built with x-ss-flags is not for shared caches", async () => {
    origin.restore();
    origin = mockOrigin(
      () =>
        new Response(PAGE, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "public, max-age=600",
          },
        }),
    );
    const page = await get("/", { "user-agent": BOT_UA });
    expect(flagsAtOrigin().get("dark_mode")).toBe("on");
    expect(page.headers.get("cache-control")).toBe("private, max-age=600");
    expect(await page.text()).toBe(PAGE);
  });

  it("with consent, the same visitor is tracked: the A/B rule decides and counts", async () => {
    const response = await get(
      "/",
      { cookie: "ss_vid=qa-variant; site_consent=1" },
      { host: "consent.test" },
    );
    await response.text();
    expect(flagsAtOrigin().get("search_ranking")).toBe("semantic");
    expect(impressions().map((m) => m.experimentId)).toEqual(["3001"]);
  });

  it('bot_policy = "decide": bots are decided like visitors (A/B rules too), without cookies or events', async () => {
    const response = await get(
      "/",
      { cookie: "ss_vid=qa-variant", "user-agent": BOT_UA },
      { host: "bots.test" },
    );
    const html = await response.text();
    expect(flagsAtOrigin().get("search_ranking")).toBe("semantic");
    expect(setCookiesOf(response).size).toBe(0);
    expect(queued).toEqual([]);
    expect(bootstrapOf(html)?.tracking).toBe(false);
  });
});

describe("failing open", () => {
  /** The compiled datafile the edge serves now, with its first flag made to throw when read. */
  async function poisonFlags(): Promise<void> {
    const entry = await getDatafile(env, createExecutionContext(), "demo");
    expect(entry).not.toBeNull();
    const flags = entry!.compiled.featureFlags;
    const broken = Object.defineProperty({ ...flags[0]! }, "deliveryRules", {
      get() {
        throw new Error("a broken flag");
      },
    });
    Object.defineProperty(entry!.compiled, "featureFlags", { value: [broken, ...flags.slice(1)] });
  }

  it("an error while deciding flags drops the flags, logged; experiments and the page go on", async () => {
    await poisonFlags();
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const response = await get("/", { cookie: "ss_vid=qa-variant" });
    const html = await response.text();
    expect(response.status).toBe(200);
    expect(html).toContain("Bold new headline");
    expect(sentToOrigin().get("x-ss-flags")).toBeNull();
    expect(sentToOrigin().get("x-ss-decisions")).toBe("headline=bold");
    expect(bootstrapOf(html)?.flags).toBeUndefined();
    expect(impressions().map((m) => m.experimentId)).toEqual(["1001"]);
    expect(logged).toHaveBeenCalledWith(
      expect.stringContaining("deciding feature flags failed"),
      expect.any(Error),
    );
  });

  it("GET /_ss/decide answers without flags (the client keeps its own)", async () => {
    await poisonFlags();
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    for (const cookie of ["ss_vid=qa-variant", "ss_vid=qa-variant; ss_optout=1"]) {
      const response = await site(
        `http://localhost/_ss/decide?url=${encodeURIComponent("http://localhost/x")}`,
        { headers: { cookie, "user-agent": BROWSER_UA } },
      );
      expect(response.status).toBe(200);
      const body = (await response.json()) as Json;
      expect(body.f).toBeUndefined();
      expect(body.d).toEqual([]);
    }
    expect(logged).toHaveBeenCalledTimes(2);
  });

  it("for an untracked visitor: the origin's response, unchanged", async () => {
    await poisonFlags();
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const response = await get("/", { "user-agent": BOT_UA });
    expect(await response.text()).toBe(PAGE);
    expect(sentToOrigin().get("x-ss-flags")).toBeNull();
    expect(logged).toHaveBeenCalledWith(
      expect.stringContaining("deciding feature flags failed"),
      expect.any(Error),
    );
  });
});

describe("the flags in the bootstrap", () => {
  it("has every flag: enabled, variation and typed variables; a </script> in a value stays data", async () => {
    const response = await get(
      "/about",
      { cookie: "ss_vid=qa-variant" },
      { cf: { country: "FR" } },
    );
    const html = await response.text();
    // Exactly the two scripts the edge injects: the variable's "</script><script>" broke nothing.
    expect(html.match(/<script\b[^>]*>/g)).toEqual([
      `<script id="ss-bootstrap">`,
      expect.stringMatching(/^<script src="\/_ss\/client\.js\?v=[\w-]+" async>$/),
    ]);
    expect(html).not.toContain("<script>alert(1)");
    expect(html).not.toContain("<!--");
    const flags = bootstrapOf(html)!.flags!;
    const half = expectedEnabled(compiled, "qa-variant", "FR").has("half_release");
    expect(flags).toEqual([
      {
        flagKey: "new_checkout",
        enabled: false,
        variationKey: "off",
        variables: {
          button_color: "blue",
          max_items: 3,
          discount: 0.5,
          express: false,
          layout: { columns: 2 },
        },
      },
      {
        flagKey: "search_ranking",
        enabled: true,
        variationKey: "semantic",
        variables: {
          algorithm: "semantic",
          boost: 1.5,
          results: 25,
          config: {
            facets: ["brand", "price"],
            note: "</script><script>alert(1)</script><!--",
          },
        },
      },
      { flagKey: "dark_mode", enabled: true, variationKey: "on", variables: { theme: "dark" } },
      {
        flagKey: "half_release",
        enabled: half,
        variationKey: half ? "on" : null,
        variables: {},
      },
      { flagKey: "legacy_banner", enabled: false, variationKey: null, variables: { limit: 7 } },
    ]);
  });

  it("over its cap, every flag keeps its state; variables that do not fit are marked left out", async () => {
    const big: Json = structuredClone(flagsDatafile);
    // A 6 KB JSON default: alone over FLAGS_BOOTSTRAP_MAX_BYTES.
    big.featureFlags[0].variables[4].defaultValue = JSON.stringify({ blob: "x".repeat(6000) });
    await publish(big);
    const html = await (await get("/about", { cookie: "ss_vid=qa-variant" })).text();
    const script = /window\.__ss=(\{.*?\});<\/script>/s.exec(html)![1]!;
    const f = JSON.parse(script).f as Json[];
    expect(new TextEncoder().encode(JSON.stringify(f)).length).toBeLessThanOrEqual(
      FLAGS_BOOTSTRAP_MAX_BYTES,
    );
    expect(f.map((x) => x.k)).toEqual(big.featureFlags.map((x: Json) => x.key));
    expect(f[0]).toEqual({ k: "new_checkout", v: "off", o: 1 });
    // The flags after it still carry their variables.
    expect(f[1].x.algorithm).toBe("semantic");
    expect(bootstrapOf(html)!.flags![0]!.variables).toBeNull();
  });
});

describe("GET /_ss/decide carries the flags", () => {
  const decide = (url: string, headers: Record<string, string>) =>
    site(`http://localhost/_ss/decide?url=${encodeURIComponent(url)}`, {
      headers: { "user-agent": BROWSER_UA, ...headers },
    });

  it("the same flags as the page, the A/B rule stored in ss_dec and counted", async () => {
    const id = visitorIn(compiled, "semantic", "decide");
    const page = await (await get("/about", { cookie: `ss_vid=${id}` })).text();
    queued.length = 0;
    const response = await decide("http://localhost/about", { cookie: `ss_vid=${id}` });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Json;
    expect(body.t).toBe(true);
    expect(body.d).toEqual([]);
    expect(
      decodeBootstrap({ v: 1, r: "7", k: "demo", u: id, t: true, d: [], f: body.f })?.flags,
    ).toEqual(bootstrapOf(page)!.flags);
    expect(setCookiesOf(response).get("ss_dec")).toBe("3001.v_s_on");
    // The decision is the exposure (nothing in the page applies a flag): counted like a page
    // view's, so a single-page app's navigation into the A/B rule is counted before a conversion.
    expect(queued).toEqual([
      expect.objectContaining({
        type: "impression",
        visitorId: id,
        experimentId: "3001",
        variationId: "v_s_on",
        flagKey: "search_ranking",
        ruleType: "feature-test",
        source: "edge",
      }),
    ]);
  });

  it("untracked visitors get the delivery rules only, and no cookie", async () => {
    const response = await decide("http://localhost/x", {
      cookie: "ss_vid=qa-variant; ss_optout=1",
    });
    const body = (await response.json()) as Json;
    expect(body).toMatchObject({ t: false, d: [] });
    const search = body.f.find((f: Json) => f.k === "search_ranking");
    expect(search).toEqual({
      k: "search_ranking",
      v: "off",
      x: { algorithm: "classic", boost: 1, results: 10, config: { facets: ["brand"] } },
    });
    expect(body.f.find((f: Json) => f.k === "dark_mode")).toMatchObject({ e: 1, v: "on" });
    expect(setCookiesOf(response).size).toBe(0);
  });
});

describe("decideFlags: the edge's cached variables", () => {
  it("equal the core's decisions, for many visitors and both rule sets", () => {
    for (let i = 0; i < 300; i++) {
      const visitor = {
        visitorId: `parity-${i}`,
        attributes: { "geo.country": ["DE", "US", "FR"][i % 3] },
      };
      const prepared = prepareVisitor(compiled, visitor);
      for (const experimentRules of [true, false]) {
        const core: FlagDecision[] = decideAllFlags(compiled, visitor, { experimentRules });
        expect(decideFlags(compiled, prepared, { experimentRules })).toEqual(core);
      }
    }
  });

  it("flags whose delivery rules share a key are decided whole by the core, still equal", () => {
    const clash: Json = structuredClone(flagsDatafile);
    clash.rollouts[0].experiments[1].key = "checkout_germany";
    clash.rollouts[0].experiments[1].variations[0].key = "on_de";
    clash.rollouts[0].experiments[1].variations[0].featureEnabled = true;
    const clashing = compiledOf(clash);
    for (const country of ["DE", "US"]) {
      const visitor = { visitorId: `clash-${country}`, attributes: { "geo.country": country } };
      expect(decideFlags(clashing, prepareVisitor(clashing, visitor))).toEqual(
        decideAllFlags(clashing, visitor),
      );
    }
  });

  it("casts (and JSON-parses) a variation's variables once per isolate, shared and frozen", () => {
    const prepared = prepareVisitor(compiled, { visitorId: "qa-variant" });
    const first = decideFlags(compiled, prepared);
    const parse = vi.spyOn(JSON, "parse");
    const second = decideFlags(compiled, prepared);
    expect(parse).not.toHaveBeenCalled();
    const search = (d: FlagDecision[]) => d.find((x) => x.flagKey === "search_ranking")!;
    expect(search(second).variables).toBe(search(first).variables);
    expect(Object.isFrozen(search(first).variables.config)).toBe(true);
  });

  it("costs nothing for a datafile without flags", () => {
    const none: Json = structuredClone(flagsDatafile);
    none.featureFlags = [];
    none.rollouts = [];
    const plain = compiledOf(none);
    expect(decideFlags(plain, prepareVisitor(plain, { visitorId: "x" }))).toEqual([]);
  });
});
