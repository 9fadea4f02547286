/**
 * Script and header injection through everything the edge writes into a page or a header
 * (docs/security.md "Escaping at every sink"), end to end through the Worker: each hostile
 * payload × each sink — datafile experiment keys, variation keys and names, the datafile
 * revision, visitor ids from cookies (ss_vid, optimizelyEndUserId), query strings (also through
 * a split-URL redirect), ss_attrs, preview parameters and cookies, Referer, User-Agent, the
 * origin's CSP nonce. Whatever the payload:
 *
 * - the page keeps exactly the scripts the edge injects (one inert bootstrap `<script>` whose
 *   JSON parses back to the original values, and the client script tag), no element gains an
 *   event-handler attribute, and the payload never appears raw where it could be markup;
 * - injected attributes stay quoted, and a nonce is only ever a valid CSP nonce;
 * - response and origin headers carry no CR/LF/NUL, `x-ss-decisions` stays within 4 KB and
 *   `x-ss-revision` within 256 bytes, and the page is served (fail open, never a 5xx);
 * - cookies are only ever Splitstream's own, with values the edge made (never the raw input).
 *
 * Unit-level escaping of the bootstrap is in test/edge/bootstrap.test.ts; this suite is about the
 * sinks as the Worker wires them.
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadDatafile } from "../../src/core/index";
import { decodeBootstrap, type BootstrapData } from "../../src/edge/bootstrap";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import {
  DECISIONS_HEADER_MAX_BYTES,
  encodeDecisionToken,
  formatRevisionHeader,
  parseDecisionsHeader,
  REVISION_HEADER_MAX_BYTES,
} from "../../src/edge/decisions-header";
import { encodeAttributes } from "../../src/edge/visitor";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { mockOrigin, type MockedOrigin, type RecordedRequest } from "../helpers/origin";
import { SEED, hostileString, seedProperties, wellFormed } from "../support/fast-check";

seedProperties(300);

const SITE = "http://localhost";
const CHROME =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body><h1>Welcome</h1><a id="buy" href="/buy">Buy</a></body></html>`;
/** Visitor `v1` pinned to variation "bold" (v_h_new) of experiment 1001 (key "headline"). */
const PINNED = "ss_vid=v1; ss_dec=1001.v_h_new";

const PAYLOADS: ReadonlyArray<readonly [string, string]> = [
  ["script end tag", "</script><script>alert(1)</script>"],
  ["upper-case end tag", "</SCRIPT ><script>alert(1)</script>"],
  ["attribute breakout", `"><img src=x onerror=alert(1)>`],
  ["single-quote breakout", `'><svg onload=alert(1)>`],
  ["line separators", "a\u2028b\u2029c"],
  ["comment open", "<!--<script>"],
  ["CDATA / comment close", "]]>-->"],
  ["encoded CRLF header injection", "%0d%0aSet-Cookie:%20x=1"],
  ["raw CRLF header injection", "x\r\nSet-Cookie: x=1"],
  ["NUL and controls", "a\u0000b\u001fc"],
  ["lone surrogate", "a\ud800b"],
  ["emoji and non-ASCII", "😀 ünïcödé"],
  ["javascript URL", "javascript:alert(1)"],
  ["entity", "&lt;script&gt;alert(1)&lt;/script&gt;"],
  ["escaped-looking JSON", "\\u003c/script\\u003e\\"],
  ["very long", "<".repeat(5_000) + "x".repeat(5_000)],
];

/** What a page must still look like, and where the payload must (or must not) come back. */
interface Outcome {
  response: Response;
  html: string;
  origin: RecordedRequest | undefined;
  boot: BootstrapData | null;
}

interface Sink {
  name: string;
  /** False for sinks that are request headers or cookies, which cannot carry CR, LF or NUL. */
  rawControls: boolean;
  /** The datafile to publish (default: edge.json as it is). */
  datafile?: (payload: string) => unknown;
  /** The request: path and headers. */
  request: (payload: string) => { path: string; headers?: Record<string, string> };
  /** The origin's extra response headers. */
  originHeaders?: (payload: string) => Record<string, string>;
  /** Where the payload must come back, decoded; also what else is expected. */
  check: (payload: string, outcome: Outcome) => void | Promise<void>;
}

const withDatafile =
  (edit: (d: typeof edgeDatafile, payload: string) => void) => (payload: string) => {
    const d = structuredClone(edgeDatafile);
    edit(d, payload);
    return d;
  };

/** The decision for experiment 1001 in the bootstrap. */
const headline = (boot: BootstrapData | null) =>
  boot?.decisions.find((d) => d.experimentId === "1001");

/** The payload never comes back anywhere: not in the page, not in a header. */
function notReflected(payload: string, { response, html }: Outcome): void {
  if (payload.length < 4) return;
  expect(html).not.toContain(payload);
  for (const [, value] of response.headers) expect(value).not.toContain(payload);
}

const SINKS: Sink[] = [
  {
    name: "experiment key",
    rawControls: true,
    datafile: withDatafile((d, p) => (d.experiments[0]!.key = p)),
    request: () => ({ path: "/", headers: { cookie: PINNED } }),
    check: (payload, { boot, response, origin }) => {
      expect(headline(boot)?.experimentKey).toBe(payload);
      for (const header of [
        response.headers.get("x-ss-decisions"),
        origin?.headers.get("x-ss-decisions"),
      ]) {
        const pairs = new Map(parseDecisionsHeader(header ?? null));
        if (encodeDecisionToken(payload).length + "=bold".length <= DECISIONS_HEADER_MAX_BYTES)
          expect(pairs.get(wellFormed(payload))).toBe("bold");
        else expect(pairs.has(wellFormed(payload))).toBe(false);
      }
    },
  },
  {
    name: "variation key",
    rawControls: true,
    datafile: withDatafile((d, p) => (d.experiments[0]!.variations[1]!.key = p)),
    request: () => ({ path: "/", headers: { cookie: PINNED } }),
    check: (payload, { boot, response }) => {
      expect(headline(boot)?.variationKey).toBe(payload);
      const pairs = new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions")));
      if (encodeDecisionToken(payload).length + "headline=".length <= DECISIONS_HEADER_MAX_BYTES)
        expect(pairs.get("headline")).toBe(wellFormed(payload));
      else expect(pairs.has("headline")).toBe(false);
    },
  },
  {
    name: "variation name",
    rawControls: true,
    datafile: withDatafile((d, p) => {
      (d.experiments[0]!.variations[1] as { name?: string }).name = p;
    }),
    request: () => ({ path: "/", headers: { cookie: PINNED } }),
    check: (payload, outcome) => {
      expect(headline(outcome.boot)?.variationKey).toBe("bold");
      notReflected(payload, outcome);
    },
  },
  {
    name: "datafile revision",
    rawControls: true,
    datafile: withDatafile((d, p) => (d.revision = p)),
    request: () => ({ path: "/", headers: { cookie: PINNED } }),
    check: (payload, { boot, origin }) => {
      expect(boot?.revision).toBe(payload);
      const sent = origin!.headers.get("x-ss-revision")!;
      expect(sent).toBe(formatRevisionHeader(payload));
      expect(sent).toMatch(/^[A-Za-z0-9._~%-]*$/);
      if (sent !== "") expect(decodeURIComponent(sent)).toBe(wellFormed(payload));
      else expect(encodeDecisionToken(payload).length).toBeGreaterThan(REVISION_HEADER_MAX_BYTES);
    },
  },
  {
    name: "ss_vid cookie",
    rawControls: false,
    request: (p) => ({ path: "/", headers: { cookie: `ss_vid=${p}; ss_dec=1001.v_h_new` } }),
    check: (payload, outcome) => {
      // Not a valid id: ignored, and a new one is made (and set).
      expect(outcome.boot?.visitorId).toMatch(/^[0-9a-f]{32}$/);
      expect(cookieValue(outcome.response, "ss_vid")).toBe(outcome.boot?.visitorId);
      expect(outcome.origin!.headers.get("x-ss-visitor-id")).toBe(outcome.boot?.visitorId);
      notReflected(payload, outcome);
    },
  },
  {
    name: "optimizelyEndUserId cookie",
    rawControls: false,
    request: (p) => ({ path: "/", headers: { cookie: `optimizelyEndUserId=${p}` } }),
    check: (payload, outcome) => {
      expect(outcome.boot?.visitorId).toMatch(/^[0-9a-f]{32}$/);
      expect(cookieValue(outcome.response, "ss_vid")).toBe(outcome.boot?.visitorId);
      notReflected(payload, outcome);
    },
  },
  {
    name: "query string",
    rawControls: true,
    request: (p) => ({
      path: `/?q=${encodeURIComponent(wellFormed(p))}&${encodeURIComponent(wellFormed(p))}=1`,
      headers: { cookie: PINNED },
    }),
    check: (payload, outcome) => {
      expect(headline(outcome.boot)?.variationKey).toBe("bold");
      // The origin gets the query as it came (encoded), nothing decoded into a header.
      expect(new URL(outcome.origin!.url).searchParams.get("q")).toBe(wellFormed(payload));
      notReflected(payload, outcome);
    },
  },
  {
    name: "query string through a split-URL redirect",
    rawControls: true,
    // old_to_new (1005) pinned to its redirect variation: 302 to /new, parameters preserved.
    request: (p) => ({
      path: `/old?q=${encodeURIComponent(wellFormed(p))}`,
      headers: { cookie: "ss_vid=v1; ss_dec=1005.v_r" },
    }),
    check: (payload, { response }) => {
      expect(response.status).toBe(302);
      const location = response.headers.get("location")!;
      expect(location).toMatch(/^http:\/\/localhost\/new\?/);
      expect(location).toMatch(/^[\x21-\x7e]+$/);
      expect(new URL(location).searchParams.get("q")).toBe(wellFormed(payload));
    },
  },
  {
    name: "ss_attrs value",
    rawControls: true,
    request: (p) => ({
      path: "/",
      headers: {
        cookie: `${PINNED}; ss_attrs=${encodeAttributes({ plan: p, [p.slice(0, 64)]: 1 })}`,
      },
    }),
    check: (payload, outcome) => {
      expect(headline(outcome.boot)?.variationKey).toBe("bold");
      notReflected(payload, outcome);
    },
  },
  {
    name: "ss_attrs raw cookie",
    rawControls: false,
    request: (p) => ({ path: "/", headers: { cookie: `${PINNED}; ss_attrs=${p}` } }),
    check: (payload, outcome) => {
      expect(headline(outcome.boot)?.variationKey).toBe("bold");
      notReflected(payload, outcome);
    },
  },
  {
    name: "preview parameter",
    rawControls: true,
    request: (p) => ({
      path: `/?ss_preview=${encodeURIComponent(wellFormed(p))}`,
      headers: { cookie: PINNED },
    }),
    check: (payload, outcome) => {
      // Not a signed token: no preview, no cookie, tracking as usual, and the origin never sees it.
      expect(outcome.boot?.tracking).toBe(true);
      expect(cookieValue(outcome.response, "ss_preview")).toBeUndefined();
      expect(new URL(outcome.origin!.url).searchParams.has("ss_preview")).toBe(false);
      notReflected(payload, outcome);
    },
  },
  {
    name: "ss_preview cookie",
    rawControls: false,
    request: (p) => ({ path: "/", headers: { cookie: `${PINNED}; ss_preview=${p}` } }),
    check: (payload, outcome) => {
      expect(outcome.boot?.tracking).toBe(true);
      expect(cookieValue(outcome.response, "ss_preview")).toBeUndefined();
      notReflected(payload, outcome);
    },
  },
  {
    name: "Referer",
    rawControls: false,
    request: (p) => ({
      path: "/",
      headers: { cookie: PINNED, referer: `https://evil.example/${p}` },
    }),
    check: (payload, outcome) => {
      expect(headline(outcome.boot)?.variationKey).toBe("bold");
      notReflected(payload, outcome);
    },
  },
  {
    name: "User-Agent",
    rawControls: false,
    request: (p) => ({ path: "/", headers: { cookie: PINNED, "user-agent": `${CHROME} ${p}` } }),
    check: (payload, outcome) => {
      expect(headline(outcome.boot)?.variationKey).toBe("bold");
      notReflected(payload, outcome);
    },
  },
  {
    name: "origin CSP nonce",
    rawControls: false,
    request: () => ({ path: "/", headers: { cookie: PINNED } }),
    originHeaders: (p) => ({
      "content-security-policy": `script-src 'nonce-${p}' 'strict-dynamic'`,
    }),
    check: (payload, { html }) => {
      // The nonce is not a valid CSP nonce: dropped, never escaped into the attribute.
      expect(html).not.toContain("nonce=");
      expect(html).not.toContain(payload);
    },
  },
];

let origin: MockedOrigin;
let originHeaders: Record<string, string> = {};

beforeEach(() => {
  originHeaders = {};
  origin = mockOrigin(
    () =>
      new Response(PAGE, {
        headers: { "content-type": "text/html; charset=utf-8", ...originHeaders },
      }),
  );
});

afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

async function publish(datafile: unknown): Promise<void> {
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
  resetDatafileStore();
}

function cookieValue(response: Response, name: string): string | undefined {
  for (const cookie of response.headers.getSetCookie()) {
    const pair = cookie.slice(0, cookie.indexOf(";"));
    if (pair.slice(0, pair.indexOf("=")) === name) return pair.slice(pair.indexOf("=") + 1);
  }
  return undefined;
}

interface Page {
  scripts: Array<{ attributes: Record<string, string>; text: string }>;
  elements: Array<{ tag: string; attributes: Record<string, string> }>;
}

/** Tokenizes the page as a browser would (HTMLRewriter is lol-html, a spec tokenizer). */
async function inspect(html: string): Promise<Page> {
  const page: Page = { scripts: [], elements: [] };
  let current: Page["scripts"][number] | null = null;
  await new HTMLRewriter()
    .on("*", {
      element(el) {
        page.elements.push({ tag: el.tagName, attributes: Object.fromEntries([...el.attributes]) });
      },
    })
    .on("script", {
      element(el) {
        current = { attributes: Object.fromEntries([...el.attributes]), text: "" };
        page.scripts.push(current);
      },
      text(chunk) {
        current!.text += chunk.text;
      },
    })
    .transform(new Response(html, { headers: { "content-type": "text/html" } }))
    .text();
  return page;
}

/** The checks every response must pass, whatever the sink. */
async function checkInvariants(response: Response, html: string): Promise<BootstrapData | null> {
  expect(response.status).toBeLessThan(500);
  for (const [name, value] of response.headers) {
    expect(value, name).not.toMatch(/[\r\n\0]/);
    if (name === "x-ss-decisions")
      expect(value.length).toBeLessThanOrEqual(DECISIONS_HEADER_MAX_BYTES);
  }
  // Cookies: only Splitstream's own, with values the edge made.
  for (const cookie of response.headers.getSetCookie()) {
    const pair = cookie.slice(0, cookie.indexOf(";"));
    const name = pair.slice(0, pair.indexOf("="));
    const value = pair.slice(pair.indexOf("=") + 1);
    expect(["ss_vid", "ss_dec", "ss_preview"]).toContain(name);
    expect(value).toMatch(/^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/);
    if (name === "ss_vid") expect(value).toMatch(/^[A-Za-z0-9._~:@+-]{1,128}$/);
    if (name === "ss_dec")
      expect(value).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(~[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)*$/);
    expect(cookie).toMatch(/; Path=\/; HttpOnly; SameSite=Lax$/);
  }
  for (const sent of origin.requests)
    for (const [name, value] of sent.headers)
      if (name.startsWith("x-ss-")) {
        expect(value, name).not.toMatch(/[\r\n\0]/);
        expect(value).toMatch(/^[\x20-\x7e]*$/);
        if (name === "x-ss-decisions")
          expect(value.length).toBeLessThanOrEqual(DECISIONS_HEADER_MAX_BYTES);
        if (name === "x-ss-revision")
          expect(value.length).toBeLessThanOrEqual(REVISION_HEADER_MAX_BYTES);
        if (name === "x-ss-visitor-id") expect(value).toMatch(/^[A-Za-z0-9._~:@+-]{1,128}$/);
      }
  if (response.status !== 200) return null;

  const page = await inspect(html);
  // No element gained an event handler, and nothing the page did not have appeared.
  for (const element of page.elements) {
    for (const attribute of Object.keys(element.attributes)) expect(attribute).not.toMatch(/^on/i);
    expect(["img", "svg", "iframe", "object", "embed"]).not.toContain(element.tag);
  }
  if (page.scripts.length === 0) {
    expect(html).toBe(PAGE); // untouched: no decisions, nothing injected
    return null;
  }
  // Exactly the two scripts the edge injects, attributes quoted, nonce only when valid.
  expect(page.scripts).toHaveLength(2);
  const [bootstrap, client] = page.scripts;
  expect(Object.keys(bootstrap!.attributes).filter((a) => a !== "nonce")).toEqual(["id"]);
  expect(bootstrap!.attributes.id).toBe("ss-bootstrap");
  expect(client!.attributes.src).toMatch(/^\/_ss\/client\.js\?v=[\w-]+$/);
  expect(client!.text).toBe("");
  expect(html).toMatch(
    /<script id="ss-bootstrap"(?: nonce="[A-Za-z0-9+/_-]+={0,2}")?>window\.__ss=/,
  );
  // The bootstrap is inert data: one assignment of JSON that parses.
  const match = /^window\.__ss=(.*);$/s.exec(bootstrap!.text);
  expect(match).not.toBeNull();
  expect(bootstrap!.text).not.toMatch(/[<>\u2028\u2029]/);
  const boot = decodeBootstrap(JSON.parse(match![1]!));
  expect(boot).not.toBeNull();
  return boot;
}

async function run(sink: Sink, payload: string): Promise<Outcome> {
  const datafile = sink.datafile?.(payload) ?? edgeDatafile;
  await publish(datafile);
  originHeaders = sink.originHeaders?.(payload) ?? {};
  const { path, headers } = sink.request(payload);
  const response = await exports.default.fetch(
    new Request(`${SITE}${path}`, {
      redirect: "manual",
      headers: { "user-agent": CHROME, ...headers },
    }),
  );
  const html = await response.text();
  await new Promise((resolve) => setTimeout(resolve, 0));
  const boot = await checkInvariants(response, html);
  const loads = loadDatafile(datafile).ok;
  if (!loads) {
    // A datafile the edge refuses: the page passes through untouched — also safe.
    expect(html).toBe(PAGE);
    expect(response.headers.getSetCookie()).toEqual([]);
  }
  return { response, html, origin: origin.requests[0], boot };
}

const CASES = SINKS.flatMap((sink) =>
  PAYLOADS.filter(([, p]) => sink.rawControls || !/[\r\n\0]/.test(p)).map(
    ([payloadName, payload]) => [sink.name, payloadName, sink, payload] as const,
  ),
);

describe("script and header injection through every edge sink", () => {
  it("covers every sink with every payload it can carry", () => {
    expect(CASES.length).toBeGreaterThan(SINKS.length * (PAYLOADS.length - 2));
    expect(new Set(CASES.map(([sink]) => sink)).size).toBe(SINKS.length);
  });

  it.each(CASES)("%s ← %s", async (_sink, _payload, sink, payload) => {
    const outcome = await run(sink, payload);
    if (outcome.html === PAGE && !loadDatafile(sink.datafile?.(payload) ?? edgeDatafile).ok) return;
    await sink.check(payload, outcome);
  });
});

describe(`header encoders on arbitrary strings (seed ${SEED})`, () => {
  it("decision tokens and the revision header: header-safe, never throwing, decoding back", () => {
    fc.assert(
      fc.property(hostileString, (text) => {
        const token = encodeDecisionToken(text);
        expect(token).toMatch(/^[A-Za-z0-9._~%-]*$/);
        expect(decodeURIComponent(token)).toBe(wellFormed(text));
        const revision = formatRevisionHeader(text);
        expect(revision.length).toBeLessThanOrEqual(REVISION_HEADER_MAX_BYTES);
        expect(revision === "" || revision === token).toBe(true);
        expect(revision === "").toBe(token.length > REVISION_HEADER_MAX_BYTES || token === "");
      }),
    );
  });
});
