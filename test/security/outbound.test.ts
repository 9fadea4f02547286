/// <reference types="vite/client" />
/**
 * Outbound requests (docs/security.md "Outbound"): the Worker talks to its own bindings and to the
 * route's origin, and to nothing else — no analytics, no CDN, no third-party API.
 *
 * - Statically: the only `fetch(` calls in the Worker's code (src/, without the CLI and the
 *   browser client) are the origin fetch of the edge, the pass-through of unrouted requests, and
 *   the webhook delivery to the URL an admin gave a webhook (docs/webhooks.md).
 * - Dynamically: a tour of every kind of request the Worker serves (pages, the API, the admin
 *   pages, event ingest, datafiles, the client script and config, decide, health) makes no
 *   outbound request except to the route's origin for pages.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { ADMIN_TOKEN, API_BASE, adminSession, createProject } from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";

const SOURCES = import.meta.glob<string>("../../src/**/*.ts", {
  query: "?raw",
  import: "default",
  eager: true,
});

/**
 * Worker code: everything but the CLI (runs on a developer's machine) and the browser code — the
 * client, the visual editor (src/editor), and their bundles as the Worker serves them (strings in
 * src/{admin,edge}/generated/, whose `fetch(` runs in the admin's browser, never in the Worker).
 */
const workerSources = Object.entries(SOURCES).filter(
  ([path]) =>
    !path.includes("/src/cli/") &&
    !path.includes("/src/client/") &&
    !path.includes("/src/editor/") &&
    !/\/src\/[a-z]+\/generated\//.test(path),
);

/** Call sites of `fetch(`, `connect(` and `WebSocket` outside comments, as "file: line". */
function networkCalls(): string[] {
  const out: string[] = [];
  for (const [path, text] of workerSources) {
    const code = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "));
    for (const line of code.split("\n")) {
      const stripped = line.replace(/\/\/.*$/, "");
      // A handler's own definition (`async fetch(request, env, ctx): …`) is not a call.
      if (/^\s*(async\s+)?fetch\s*\([^)]*\)\s*(:[^=]*)?\{?\s*$/.test(stripped)) continue;
      if (
        /(?<![\w.])fetch\s*\(|\bconnect\s*\(|\bWebSocket\b|\bnavigator\.sendBeacon\b/.test(stripped)
      )
        out.push(`${path.replace(/^.*\/src\//, "src/")}: ${stripped.trim()}`);
    }
  }
  return out;
}

describe("the Worker's code", () => {
  it("sees its sources (the scan below is not vacuous)", () => {
    expect(workerSources.length).toBeGreaterThan(40);
    expect(workerSources.some(([p]) => p.endsWith("src/edge/handle-request.ts"))).toBe(true);
  });

  it("fetches only in the two places that talk to the origin, and the webhook delivery", () => {
    const calls = networkCalls();
    // The webhook delivery (to the URL an admin set, signed, never followed to a redirect), the
    // origin fetch of a routed page, and the pass-through of an unrouted request.
    expect(calls).toHaveLength(3);
    expect(calls[0]).toBe(
      "src/api/services/webhook-delivery.ts: const response = await fetch(url, {",
    );
    expect(calls[1]).toMatch(/^src\/edge\/handle-request\.ts: .*\bfetch\(request\b/);
    expect(calls[2]).toBe("src/index.ts: if (!route) return fetch(request);");
  });
});

describe("a tour of every endpoint", () => {
  let origin: MockedOrigin;
  beforeEach(async () => {
    origin = mockOrigin(
      () =>
        new Response("<!doctype html><html><head></head><body><h1>Hi</h1></body></html>", {
          headers: { "content-type": "text/html" },
        }),
    );
    await env.DATAFILES.put("datafiles/demo", JSON.stringify(edgeDatafile));
    resetDatafileStore();
  });
  afterEach(() => {
    origin.restore();
    vi.restoreAllMocks();
  });

  it("calls no host but the route's origin", async () => {
    const project = await createProject();
    const adminCookie = await adminSession();
    const browser = {
      "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/128.0.0.0 Safari/537.36",
      cookie: "ss_vid=tourist; ss_dec=1001.v_h_new",
    };
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const requests: Array<[string, RequestInit?]> = [
      ["http://localhost/", { headers: browser }],
      ["http://localhost/products/42", { headers: browser }],
      ["http://localhost/_ss/health"],
      ["http://localhost/_ss/client.js"],
      ["http://localhost/_ss/client-config/demo.json"],
      ["http://localhost/_ss/datafiles/demo.json"],
      ["http://localhost/_ss/decide?url=http%3A%2F%2Flocalhost%2Fmanual", { headers: browser }],
      [
        "http://localhost/_ss/events",
        {
          method: "POST",
          headers: { ...browser, "content-type": "application/json" },
          body: JSON.stringify({ events: [{ key: "buy_click" }] }),
        },
      ],
      [
        "http://localhost/_ss/v1/events",
        { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
      ],
      [`${API_BASE}/projects`, { headers: auth }],
      [`${API_BASE}/openapi.json`],
      [`${API_BASE}/projects/${project.id}/experiments`, { headers: auth }],
      ["http://localhost/_ss/admin/login"],
      [`http://localhost/_ss/admin/projects/${project.id}`, { headers: { cookie: adminCookie } }],
    ];
    for (const [url, init] of requests) {
      const response = await exports.default.fetch(url, { redirect: "manual", ...init });
      expect(response.status, url).toBeLessThan(500);
      await response.arrayBuffer();
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Two pages → two origin fetches; nothing else went out.
    expect(origin.requests.map((r) => new URL(r.url).origin)).toEqual([
      "http://localhost:8788",
      "http://localhost:8788",
    ]);
  });
});
