/**
 * Fault: the origin times out or answers 5xx (docs/reliability.md "Fail open", docs/visitors.md).
 *
 * - 5xx (and 4xx) from the origin are streamed to the visitor untouched: same status and body,
 *   no cookies, no decisions header, no impressions.
 * - An origin that sends no response headers within the route's `origin_timeout_ms` (default
 *   15 s) is abandoned (the subrequest is aborted) and the visitor gets a small 504 page, nothing
 *   counted; a network failure gets a 502. Only the headers are timed: a page whose body streams
 *   for longer than the timeout is delivered whole.
 * - Around the failures the site keeps serving decided pages, and the counts stay exact.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseRoutes, ROUTE_DEFAULTS } from "../../src/edge/routes";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  consume,
  expectExactCounts,
  Ledger,
  newSdkKey,
  PAGE,
  publish,
  RecordingQueue,
  request,
  shop,
  siteDatafile,
  siteEnv,
} from "./helpers";

let origin: MockedOrigin;
afterEach(() => {
  origin?.restore();
  vi.restoreAllMocks();
});

const TIMEOUT_MS = 300;
/** Visitors in the main test; each waits out one timeout and two slow pages (≈ 1 s). */
const VISITORS = 4;
const hang = (request: Request): Promise<Response> =>
  new Promise((_resolve, reject) => {
    // Never answers; gives up only when the Worker aborts the subrequest.
    request.signal.addEventListener("abort", () => reject(new Error("aborted by the Worker")));
  });

/** The shop, with failure modes by path. */
function flakyShop(aborted: string[]) {
  return (request: Request): Response | Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (path === "/products/500")
      return new Response("<h1>Internal error</h1>", {
        status: 500,
        headers: { "content-type": "text/html", "x-origin": "yes" },
      });
    if (path === "/products/503")
      return new Response("<h1>Maintenance</h1>", {
        status: 503,
        headers: { "content-type": "text/html", "retry-after": "120" },
      });
    if (path === "/products/404" || path === "/api/hang" || path === "/products/999") {
      if (path === "/products/404") return new Response("gone", { status: 404 });
      request.signal.addEventListener("abort", () => {
        aborted.push(path);
      });
      return hang(request);
    }
    if (path === "/products/down") return Promise.reject(new TypeError("connection refused"));
    if (path === "/products/7") {
      // Headers at once, then the body trickles for longer than the timeout.
      const chunks = [
        "<!doctype html><html><head></head><body><h1>Welcome</h1>",
        "<p>slow",
        " body</p>",
        "</body></html>",
      ];
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = chunks.shift();
          if (next === undefined) return controller.close();
          await new Promise((r) => setTimeout(r, TIMEOUT_MS / 2));
          controller.enqueue(new TextEncoder().encode(next));
        },
      });
      return new Response(stream, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (path === "/products/8")
      return new Promise((resolve) => setTimeout(() => resolve(shop(request)), TIMEOUT_MS / 3));
    return shop(request);
  };
}

describe("origin timeouts and 5xx", () => {
  it(
    "streams origin 5xx untouched, answers 504 on timeout and 502 when unreachable, keeps serving, counts exactly",
    { timeout: 30_000 },
    async () => {
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const aborted: string[] = [];
      origin = mockOrigin(flakyShop(aborted));
      const sdkKey = newSdkKey("origin");
      await publish(sdkKey, siteDatafile(sdkKey, "1"));
      const queue = new RecordingQueue();
      const site = siteEnv(
        sdkKey,
        { EVENTS: queue.binding },
        { origin_timeout_ms: TIMEOUT_MS, exclude_paths: ["/api/*"] },
      );
      const ledger = new Ledger();

      for (let i = 0; i < VISITORS; i++) {
        const visitorId = `origin-${i}`;
        // A healthy page first: the visitor is exposed and counted.
        const home = await request(site, "/", { visitorId });
        expect(home.status).toBe(200);
        ledger.page(visitorId, home);
        const sent = queue.sent.length;

        const error500 = await request(site, "/products/500", { visitorId });
        expect(error500.status).toBe(500);
        expect(error500.body).toBe("<h1>Internal error</h1>");
        expect(error500.headers.get("x-origin")).toBe("yes");
        const error503 = await request(site, "/products/503", { visitorId });
        expect(error503.status).toBe(503);
        expect(error503.headers.get("retry-after")).toBe("120");
        expect(error503.body).toBe("<h1>Maintenance</h1>");
        for (const e of [error500, error503]) {
          expect(e.headers.getSetCookie()).toEqual([]);
          expect(e.headers.get("x-ss-decisions")).toBeNull();
        }

        const timedOut = await request(site, "/products/999", { visitorId });
        expect(timedOut.status).toBe(504);
        expect(timedOut.headers.get("x-ss-error")).toBe("origin_timeout");
        expect(timedOut.headers.get("content-type")).toMatch(/^text\/html/);
        expect(timedOut.headers.get("cache-control")).toBe("no-store");
        expect(timedOut.body).toContain("504 Gateway Timeout");
        expect(timedOut.responseMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 20);
        expect(timedOut.responseMs).toBeLessThan(TIMEOUT_MS + 2000);
        expect(timedOut.headers.getSetCookie()).toEqual([]);

        const unreachable = await request(site, "/products/down", { visitorId });
        expect(unreachable.status).toBe(502);
        expect(unreachable.headers.get("x-ss-error")).toBe("origin_unreachable");

        expect(queue.sent.length, "failed pages count nothing").toBe(sent);

        // Slow headers within the timeout, and a body slower than the timeout: served whole.
        const slowHeaders = await request(site, "/products/8", { visitorId });
        expect(slowHeaders.status).toBe(200);
        ledger.productPage(visitorId, slowHeaders);
        const slowBody = await request(site, "/products/7", { visitorId });
        expect(slowBody.status).toBe(200);
        expect(slowBody.body).toContain("<p>slow body</p>");
        expect(slowBody.body).toContain("</html>");
        ledger.productPage(visitorId, slowBody);
      }
      expect(
        aborted.filter((p) => p === "/products/999"),
        "the hung subrequest is aborted",
      ).toHaveLength(VISITORS);

      // Pass-through paths (exclude_paths, no decision) are bounded by the same timeout.
      const excluded = await request(site, "/api/hang", { visitorId: "origin-x" });
      expect(excluded.status).toBe(504);
      expect(aborted).toContain("/api/hang");
      expect(errors.mock.calls.some((c) => /origin_timeout_ms/.test(String(c[0])))).toBe(true);

      await consume(queue.take());
      await expectExactCounts(sdkKey, ledger);
    },
  );

  it("passes origin 4xx through untouched and counts nothing for them", async () => {
    origin = mockOrigin(flakyShop([]));
    const sdkKey = newSdkKey("origin4xx");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    const notFound = await request(site, "/products/404", { visitorId: "gone-1" });
    expect(notFound.status).toBe(404);
    expect(notFound.body).toBe("gone");
    expect(queue.calls).toBe(0);
  });

  it("origin_timeout_ms defaults to 15 s and is validated", () => {
    expect(ROUTE_DEFAULTS.originTimeoutMs).toBe(15_000);
    expect(parseRoutes([{ pattern: "a.example.com/*", sdk_key: "a" }]).routes[0]).toMatchObject({
      originTimeoutMs: 15_000,
    });
    expect(
      parseRoutes([{ pattern: "a.example.com/*", sdk_key: "a", origin_timeout_ms: 2500 }])
        .routes[0],
    ).toMatchObject({ originTimeoutMs: 2500 });
    expect(
      parseRoutes([{ pattern: "a.example.com/*", sdk_key: "a", origin_timeout_ms: 0 }]).problems,
    ).toEqual([expect.objectContaining({ path: "$[0].origin_timeout_ms" })]);
  });

  it("an exception while deciding serves the origin's page unchanged", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("originthrow");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    // A new visitor's id is the first thing drawn while deciding: make that blow up, once.
    vi.spyOn(crypto, "randomUUID").mockImplementationOnce(() => {
      throw new Error("entropy exhausted (simulated)");
    });
    const page = await request(site, "/products/1");
    expect(page.status).toBe(200);
    expect(page.body).toBe(PAGE("/products/1"));
    expect(page.headers.getSetCookie()).toEqual([]);
    expect(page.headers.get("x-ss-decisions")).toBeNull();
    expect(queue.calls).toBe(0);
    expect(errors.mock.calls.some((c) => /deciding failed/.test(String(c[0])))).toBe(true);
  });

  it("a healthy page is not affected by the timeout machinery", async () => {
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("originok");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const site = siteEnv(sdkKey, { EVENTS: new RecordingQueue().binding });
    const page = await request(site, "/products/1", { visitorId: "ok-1" });
    expect(page.status).toBe(200);
    expect(page.body).not.toBe(PAGE("/products/1")); // decided and rewritten (bootstrap at least)
    expect(page.body).toContain('id="ss-bootstrap"');
  });
});
