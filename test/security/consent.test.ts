/**
 * Consent (docs/security.md "Consent", docs/visitors.md "Consent"): when a route requires consent,
 * a visitor is tracked only while their consent manager's cookie grants it. Real cookie values of
 * OneTrust, Cookiebot, IAB TCF v2 (encoded here with the IAB's own library) and a plain cookie go
 * through the whole Worker — page, `/_ss/events`, `/_ss/decide` — with the real local queue:
 * a refusal, or a cookie that is absent or unreadable, means the original page from the route's
 * origin, no `ss_vid` / `ss_dec`, no impression and no conversion queued, an untracked decide.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseRoutes } from "../../src/edge/routes";
import type { EventMessage } from "../../src/shared/event-messages";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { routedWorker, type RouteEntry } from "../helpers/pipeline";
import { encodeTcString, rangeHeavy, testGvl } from "../helpers/tc-strings";
import { recordQueued } from "../helpers/queue";

const SITE = "http://localhost";
const ORIGIN = "http://localhost:8788";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const PAGE = `<!doctype html><html><head><title>Shop</title></head><body><h1>Welcome</h1></body></html>`;

// ------------------------------------------------------------------------- real cookie values

/** OneTrust's `OptanonConsent` as browsers store it (each field URL-encoded, `+` for spaces). */
function oneTrust(groups: string, landingPath = "NotLandingPage"): string {
  const fields = [
    "isGpcEnabled=0",
    "datestamp=Mon+Mar+02+2026+10%3A15%3A32+GMT%2B0100+(Central+European+Standard+Time)",
    "version=202601.1.0",
    "browserGpcFlag=0",
    "isIABGlobal=false",
    "hosts=",
    "consentId=3f0b6c2e-9a1d-4e5f-8b7a-2c4d6e8f0a1b",
    "interactionCount=1",
    "isAnonUser=1",
    `landingPath=${landingPath}`,
    `groups=${encodeURIComponent(groups)}`,
    "geolocation=DE%3BBE",
    "AwaitingReconsent=false",
  ];
  return `OptanonConsent=${fields.join("&")}`;
}

/** Cookiebot's `CookieConsent` as browsers store it. */
function cookiebot(choices: {
  preferences: boolean;
  statistics: boolean;
  marketing: boolean;
}): string {
  return (
    `CookieConsent={stamp:%27G+6rYDfrzwrZItFRfHCbe8iQIFLhMDCgjBS+/Oq/gZe0Lovh65ODgg==%27` +
    `%2Cnecessary:true%2Cpreferences:${choices.preferences}%2Cstatistics:${choices.statistics}` +
    `%2Cmarketing:${choices.marketing}%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1772442932000` +
    `%2Cregion:%27de%27}`
  );
}

/** A minimal Global Vendor List: the encoder needs one to know which vendors exist. */
const gvl = testGvl([755, 1126], [1, 7, 8]);

/** A real TCF v2 TC string from `@iabtechlabtcf/core`'s encoder. */
function tcString(purposes: number[], vendors: number[] = []): string {
  return encodeTcString(gvl, purposes, vendors);
}

// ------------------------------------------------------------------------- the Worker

let origin: MockedOrigin;
let queued: EventMessage[];

beforeEach(async () => {
  origin = mockOrigin(
    () =>
      new Response(PAGE, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          // Not storable (docs/caching.md): the Cache API is shared by every test file of a run.
          "cache-control": "public, no-cache, max-age=60",
        },
      }),
  );
  queued = [];
  recordQueued(queued);
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(edgeDatafile));
  resetDatafileStore();
});

afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

function route(extra: Record<string, unknown>): RouteEntry {
  return { pattern: "localhost/*", sdk_key: "demo", origin: ORIGIN, ...extra };
}

interface Outcome {
  page: Response;
  html: string;
  pageQueued: EventMessage[];
  events: Response;
  eventsQueued: EventMessage[];
  decide: { t: boolean; d: unknown[] };
  decideCookies: string[];
}

/** A page view, a conversion and a decide call by a visitor sending `consentCookie`. */
async function visit(entry: RouteEntry, consentCookie: string | null): Promise<Outcome> {
  const fetchWorker = routedWorker([entry]);
  const consent = consentCookie === null ? [] : [consentCookie];
  const headers = (cookies: string[]) => ({
    "user-agent": BROWSER_UA,
    ...(cookies.length > 0 ? { cookie: cookies.join("; ") } : {}),
  });

  const page = await fetchWorker(`${SITE}/`, { headers: headers(consent) });
  const html = await page.text();
  const pageQueued = queued.splice(0);

  const events = await fetchWorker(`${SITE}/_ss/events`, {
    method: "POST",
    headers: {
      ...headers(["ss_vid=visitor1", ...consent]),
      "content-type": "application/json",
    },
    body: JSON.stringify({ events: [{ key: "buy_click" }] }),
  });
  const eventsQueued = queued.splice(0);

  const decideResponse = await fetchWorker(
    `${SITE}/_ss/decide?url=${encodeURIComponent(`${SITE}/`)}`,
    { headers: headers(["ss_vid=visitor1", ...consent]) },
  );
  const decide = (await decideResponse.json()) as Outcome["decide"];
  return {
    page,
    html,
    pageQueued,
    events,
    eventsQueued,
    decide,
    decideCookies: decideResponse.headers.getSetCookie(),
  };
}

function expectTracked(outcome: Outcome): void {
  expect(outcome.page.status).toBe(200);
  expect(outcome.html).toContain('id="ss-bootstrap"');
  expect(outcome.page.headers.get("x-ss-decisions")).toContain("headline=");
  const cookieNames = outcome.page.headers.getSetCookie().map((c) => c.split("=")[0]);
  expect(cookieNames).toContain("ss_vid");
  expect(cookieNames).toContain("ss_dec");
  expect(outcome.pageQueued.some((m) => m.type === "impression")).toBe(true);
  expect(origin.requests[0]!.headers.get("x-ss-visitor-id")).not.toBeNull();

  expect(outcome.events.status).toBe(204);
  expect(outcome.events.headers.get("x-ss-dropped")).toBeNull();
  expect(outcome.eventsQueued).toHaveLength(1);
  expect(outcome.eventsQueued[0]).toMatchObject({ type: "conversion", visitorId: "visitor1" });

  expect(outcome.decide.t).toBe(true);
}

function expectUntracked(outcome: Outcome): void {
  // The page still comes from the route's origin (the route is active), unchanged.
  expect(origin.requests[0]!.url).toBe(`${ORIGIN}/`);
  expect(origin.requests[0]!.headers.get("x-ss-visitor-id")).toBeNull();
  expect(origin.requests[0]!.headers.get("x-ss-decisions")).toBeNull();
  expect(outcome.page.status).toBe(200);
  expect(outcome.html).toBe(PAGE);
  expect(outcome.page.headers.getSetCookie()).toEqual([]);
  expect(outcome.page.headers.get("x-ss-decisions")).toBeNull();
  expect(outcome.pageQueued).toEqual([]);

  expect(outcome.events.status).toBe(204);
  expect(outcome.events.headers.get("x-ss-dropped")).toBe("consent");
  expect(outcome.eventsQueued).toEqual([]);

  expect(outcome.decide).toEqual({ t: false, d: [] });
  expect(outcome.decideCookies).toEqual([]);
}

// ------------------------------------------------------------------------- per manager

describe("OneTrust (OptanonConsent)", () => {
  const onetrust = route({ consent: { manager: "onetrust" } });

  it("groups=…C0002:1 (performance accepted): tracked", async () => {
    expectTracked(await visit(onetrust, oneTrust("C0001:1,C0002:1,C0003:1,C0004:0")));
  });

  it("groups=…C0002:0 (performance refused): original page, no cookies, no events", async () => {
    expectUntracked(await visit(onetrust, oneTrust("C0001:1,C0002:0,C0003:1,C0004:0")));
  });

  it("a landing page URL carrying &groups=C0002:1 does not override the refusal", async () => {
    // OneTrust stores the landing page URL encoded inside the cookie; decoding the whole value
    // before splitting it would turn this into a second, earlier `groups` field.
    const landing = encodeURIComponent(`${SITE}/?utm_source=x&groups=C0001:1,C0002:1`);
    expectUntracked(await visit(onetrust, oneTrust("C0001:1,C0002:0", landing)));
  });

  it("the configured group decides: category = C0004", async () => {
    const targeting = route({ consent: { manager: "onetrust", category: "C0004" } });
    expectTracked(await visit(targeting, oneTrust("C0001:1,C0002:0,C0004:1")));
    origin.requests.length = 0;
    expectUntracked(await visit(targeting, oneTrust("C0001:1,C0002:1,C0004:0")));
  });

  it("no OptanonConsent cookie: not tracked", async () => {
    expectUntracked(await visit(onetrust, null));
  });
});

describe("Cookiebot (CookieConsent)", () => {
  const bot = route({ consent: { manager: "cookiebot" } });

  it("statistics:true: tracked", async () => {
    expectTracked(
      await visit(bot, cookiebot({ preferences: false, statistics: true, marketing: false })),
    );
  });

  it("statistics:false: original page, no cookies, no events", async () => {
    expectUntracked(
      await visit(bot, cookiebot({ preferences: true, statistics: false, marketing: true })),
    );
  });

  it("-1 (no consent needed in the visitor's region, as Cookiebot itself reads it): tracked", async () => {
    expectTracked(await visit(bot, "CookieConsent=-1"));
  });

  it("the configured category decides: category = marketing", async () => {
    const marketing = route({ consent: { manager: "cookiebot", category: "marketing" } });
    expectUntracked(
      await visit(marketing, cookiebot({ preferences: true, statistics: true, marketing: false })),
    );
  });

  it("a value that is not Cookiebot's object: not tracked", async () => {
    expectUntracked(await visit(bot, "CookieConsent=statistics:true"));
  });
});

describe("IAB TCF v2 (euconsent-v2)", () => {
  const tcf = route({ consent: { manager: "tcf" } });

  it("purpose 1 consented: tracked", async () => {
    expectTracked(await visit(tcf, `euconsent-v2=${tcString([1, 7, 8], [755])}`));
  });

  it("every purpose but 1: original page, no cookies, no events", async () => {
    expectUntracked(
      await visit(tcf, `euconsent-v2=${tcString([2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [755])}`),
    );
  });

  it("a malformed TC string: not tracked", async () => {
    const valid = tcString([1, 7, 8], [755]);
    expectUntracked(await visit(tcf, `euconsent-v2=${valid.slice(0, 20)}`));
  });

  it("purposes = [1, 8] needs both; vendor = 1126 needs that vendor's consent too", async () => {
    const both = route({ consent: { manager: "tcf", purposes: [1, 8] } });
    expectUntracked(await visit(both, `euconsent-v2=${tcString([1, 7], [755])}`));
    origin.requests.length = 0;
    const vendor = route({ consent: { manager: "tcf", vendor: 1126 } });
    expectUntracked(await visit(vendor, `euconsent-v2=${tcString([1, 7, 8], [755])}`));
    origin.requests.length = 0;
    expectTracked(await visit(vendor, `euconsent-v2=${tcString([1], [755, 1126])}`));
  });
});

describe("IAB TCF v2: range-heavy strings", () => {
  it("an 8 KB string of 1..65535 vendor ranges is decided on every endpoint (no 3.5 s decode)", async () => {
    // The IAB decoder sets every id of every range: seconds of CPU per request
    // (docs/security.md "Consent"). Decided here by comparing ranges.
    const vendor = route({ consent: { manager: "tcf", vendor: 1126 } });
    const granted = rangeHeavy(tcString([1, 7, 8]), 1);
    expect(`euconsent-v2=${granted}`.length).toBeLessThanOrEqual(8192);
    expectTracked(await visit(vendor, `euconsent-v2=${granted}`));
    origin.requests.length = 0;
    // Ranges from 1127 on leave vendor 1126 out; then a refused purpose 1.
    expectUntracked(await visit(vendor, `euconsent-v2=${rangeHeavy(tcString([1, 7, 8]), 1127)}`));
    origin.requests.length = 0;
    expectUntracked(await visit(vendor, `euconsent-v2=${rangeHeavy(tcString([7, 8]), 1)}`));
  });
});

describe("a consent config with an error", () => {
  it("keeps its route, tracking no one: the broader route after it does not take over", async () => {
    // `category = "C0002 "` (a trailing space) used to drop the first route, so `*/*` —
    // without consent — tracked every visitor of it.
    const fetchWorker = routedWorker([
      route({ consent: { manager: "onetrust", category: "C0002 " } }),
      { pattern: "*/*", sdk_key: "demo", origin: ORIGIN },
    ]);
    const accepted = oneTrust("C0001:1,C0002:1,C0003:1,C0004:1");
    const headers = { "user-agent": BROWSER_UA, cookie: `ss_vid=visitor1; ${accepted}` };

    const page = await fetchWorker(`${SITE}/`, { headers });
    expect(await page.text()).toBe(PAGE);
    expect(page.headers.getSetCookie()).toEqual([]);
    expect(origin.requests[0]!.headers.get("x-ss-visitor-id")).toBeNull();
    const events = await fetchWorker(`${SITE}/_ss/events`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ events: [{ key: "buy_click" }] }),
    });
    expect(events.headers.get("x-ss-dropped")).toBe("consent");
    const decide = await fetchWorker(`${SITE}/_ss/decide?url=${encodeURIComponent(`${SITE}/`)}`, {
      headers,
    });
    expect(await decide.json()).toEqual({ t: false, d: [] });
    expect(queued).toEqual([]);

    const health = (await (await fetchWorker(`${SITE}/_ss/health`)).json()) as {
      routes: unknown[];
      routeProblems: { path: string; message: string }[];
    };
    expect(health.routes).toHaveLength(2);
    expect(health.routeProblems).toContainEqual(
      expect.objectContaining({
        path: "$[0].consent.category",
        message: expect.stringMatching(/not a OneTrust group id.*tracks no one/),
      }),
    );
  });
});

describe("plain cookie", () => {
  it("consent = { manager = cookie, accept = [...] }: only the accept values are consent", async () => {
    const plain = route({
      consent: { manager: "cookie", cookie: "site_consent", accept: ["all", "analytics"] },
    });
    expectTracked(await visit(plain, "site_consent=ALL"));
    origin.requests.length = 0;
    expectUntracked(await visit(plain, "site_consent=necessary"));
  });

  it("consent_cookie (the older key): 1, true, yes (any case) are consent, granted is not", async () => {
    const legacy = route({ consent_cookie: "cookie_consent" });
    for (const value of ["1", "TRUE", "yes"]) {
      origin.requests.length = 0;
      expectTracked(await visit(legacy, `cookie_consent=${value}`));
    }
    origin.requests.length = 0;
    expectUntracked(await visit(legacy, "cookie_consent=granted"));
  });

  it.each([
    ["declined", "cookie_consent=declined"],
    ["a JSON refusal", `cookie_consent=${encodeURIComponent('{"analytics":false}')}`],
    ["reject", "cookie_consent=reject"],
  ])("…and %s is not (it used to be: anything but 0/false/no counted)", async (_n, cookie) => {
    expectUntracked(await visit(route({ consent_cookie: "cookie_consent" }), cookie));
  });
});

// ------------------------------------------------------------------------- config validation

describe("ROUTES consent config", () => {
  const base = { pattern: "shop.example.com/*", sdk_key: "prod" };

  it("fills each manager's defaults", () => {
    const { routes, problems } = parseRoutes([
      { ...base, consent: { manager: "onetrust" } },
      { ...base, pattern: "b.example.com/*", consent: { manager: "cookiebot" } },
      { ...base, pattern: "c.example.com/*", consent: { manager: "tcf" } },
      { ...base, pattern: "d.example.com/*", consent: { manager: "cookie", cookie: "c" } },
      { ...base, pattern: "e.example.com/*", consent_cookie: "legacy" },
    ]);
    expect(problems).toEqual([]);
    expect(routes.map((r) => r.consent)).toEqual([
      { manager: "onetrust", cookie: "OptanonConsent", categories: ["C0002"] },
      { manager: "cookiebot", cookie: "CookieConsent", categories: ["statistics"] },
      { manager: "tcf", cookie: "euconsent-v2", purposes: [1], vendor: null },
      { manager: "cookie", cookie: "c", accept: ["1", "true", "yes"] },
      { manager: "cookie", cookie: "legacy", accept: ["1", "true", "yes"] },
    ]);
  });

  it("reads the JSON-string form with every key", () => {
    const { routes, problems } = parseRoutes(
      JSON.stringify([
        {
          ...base,
          consent: { manager: "tcf", cookie: "eupubconsent-v2", purposes: [1, 8], vendor: 755 },
        },
      ]),
    );
    expect(problems).toEqual([]);
    expect(routes[0]!.consent).toEqual({
      manager: "tcf",
      cookie: "eupubconsent-v2",
      purposes: [1, 8],
      vendor: 755,
    });
  });

  it.each([
    [
      "an unknown manager",
      { manager: "usercentrics" },
      "$[0].consent.manager",
      /must be one of "onetrust", "cookiebot", "tcf", "cookie"/,
    ],
    ["no manager", { cookie: "x" }, "$[0].consent.manager", /consent\.manager is required/],
    ["not a table", "onetrust", "$[0].consent", /consent must be a table\/object/],
    [
      "a typo in a key",
      { manager: "tcf", purpose: [1] },
      "$[0].consent.purpose",
      /consent: unknown key "purpose" \(did you mean "purposes"\?\)/,
    ],
    [
      "a bad cookie name",
      { manager: "onetrust", cookie: "a b" },
      "$[0].consent.cookie",
      /consent\.cookie must be a cookie name/,
    ],
    [
      "plain cookie without its name",
      { manager: "cookie" },
      "$[0].consent.cookie",
      /consent\.cookie is required for manager "cookie"/,
    ],
    [
      "a Cookiebot category that does not exist",
      { manager: "cookiebot", category: "analytics" },
      "$[0].consent.category",
      /not a Cookiebot category \(necessary, preferences, statistics, marketing\)/,
    ],
    [
      "a OneTrust group id with spaces",
      { manager: "onetrust", category: "C 0002" },
      "$[0].consent.category",
      /not a OneTrust group id/,
    ],
    [
      "purpose 12",
      { manager: "tcf", purposes: [1, 12] },
      "$[0].consent.purposes[1]",
      /must be 1-11/,
    ],
    ["no purposes", { manager: "tcf", purposes: [] }, "$[0].consent.purposes", /must not be empty/],
    ["vendor 0", { manager: "tcf", vendor: 0 }, "$[0].consent.vendor", /TCF vendor id, 1-65535/],
    [
      "accept for OneTrust",
      { manager: "onetrust", accept: "yes" },
      "$[0].consent.accept",
      /applies to manager "cookie" only, not "onetrust"/,
    ],
    [
      "purposes for Cookiebot",
      { manager: "cookiebot", purposes: [1] },
      "$[0].consent.purposes",
      /applies to manager "tcf" only/,
    ],
    [
      "category for TCF",
      { manager: "tcf", category: "C0002" },
      "$[0].consent.category",
      /applies to manager "onetrust" or "cookiebot" only/,
    ],
    [
      "an empty accept value",
      { manager: "cookie", cookie: "c", accept: [""] },
      "$[0].consent.accept",
      /must not be empty/,
    ],
  ])(
    "%s is reported at its path and the route stays, tracking no one",
    (_n, consent, path, message) => {
      const { routes, problems } = parseRoutes([{ ...base, consent }]);
      expect(routes).toHaveLength(1);
      expect(routes[0]!.consent).toEqual({ manager: "deny-all" });
      expect(problems).toContainEqual({
        path,
        message: expect.stringMatching(message),
        severity: "error",
      });
      expect(problems.every((p) => /tracks no one/.test(p.message))).toBe(true);
    },
  );

  it("consent and consent_cookie together are refused", () => {
    const { routes, problems } = parseRoutes([
      { ...base, consent: { manager: "onetrust" }, consent_cookie: "x" },
    ]);
    expect(routes.map((r) => r.consent)).toEqual([{ manager: "deny-all" }]);
    expect(problems).toEqual([
      {
        path: "$[0].consent_cookie",
        message: expect.stringMatching(/use either consent or consent_cookie, not both/),
        severity: "error",
      },
    ]);
  });
});
