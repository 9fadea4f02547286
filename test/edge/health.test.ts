import { env, exports } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  datafileKey,
  datafileStoreCounters,
  resetDatafileStore,
} from "../../src/edge/datafile-store";
import { handleHealth } from "../../src/edge/health";
import { resetRoutesCache } from "../../src/edge/routes";
import fixture from "../fixtures/datafiles/valid-web.json";

interface HealthBody {
  status: string;
  service: string;
  routes: Array<{ pattern: string; sdkKey: string }>;
  routeProblems: Array<{ path: string; message: string; severity: string }>;
  datafiles: Array<{
    sdkKey: string;
    revision: string | null;
    loadedAt: number | null;
    lastError: string | null;
  }>;
}

beforeEach(() => resetDatafileStore());
afterEach(() => {
  resetRoutesCache();
  vi.restoreAllMocks();
});

describe("GET /_ss/health", () => {
  it("answers ok as JSON, uncached", async () => {
    const response = await exports.default.fetch("https://shop.example.com/_ss/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toMatchObject({ status: "ok", service: "splitstream" });
  });

  it("answers HEAD without a body", async () => {
    const response = await exports.default.fetch("https://shop.example.com/_ss/health", {
      method: "HEAD",
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("");
  });

  it("rejects other methods with 405 and the error shape", async () => {
    const response = await exports.default.fetch("https://shop.example.com/_ss/health", {
      method: "POST",
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("method_not_allowed");
  });

  it("lists the routes (wrangler.toml's demo) and says no datafile is published for them yet", async () => {
    await env.DATAFILES.delete(datafileKey("demo"));
    const response = await exports.default.fetch("http://localhost/_ss/health");
    const body = await response.json<HealthBody>();
    expect(body.routes).toEqual([{ pattern: "localhost/*", sdkKey: "demo" }]);
    expect(body.routeProblems).toEqual([]);
    expect(body.datafiles).toEqual([
      {
        sdkKey: "demo",
        revision: null,
        loadedAt: null,
        lastError: "not found: no datafile at datafiles/demo",
      },
    ]);
  });

  it("reports the revision each routed sdkKey decides with", async () => {
    await env.DATAFILES.put(
      datafileKey("demo"),
      JSON.stringify({ ...fixture, revision: "42", sdkKey: "demo" }),
    );
    const response = await exports.default.fetch("http://localhost/_ss/health");
    const body = await response.json<HealthBody>();
    expect(body.datafiles).toEqual([
      { sdkKey: "demo", revision: "42", loadedAt: expect.any(Number), lastError: null },
    ]);
    await env.DATAFILES.delete(datafileKey("demo"));
  });
});

describe("handleHealth", () => {
  const routes = [
    { pattern: "a.example.com/*", sdk_key: "health-a" },
    { pattern: "b.example.com/*", sdk_key: "health-a" },
    { pattern: "c.example.com/*", sdk_key: "health-c", typo: true },
  ];

  it("loads each routed sdkKey once, then answers from memory", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    await env.DATAFILES.put(
      datafileKey("health-a"),
      JSON.stringify({ ...fixture, revision: "3", sdkKey: "health-a" }),
    );
    const testEnv = { DATAFILES: env.DATAFILES, DB: env.DB, ROUTES: JSON.stringify(routes) };
    const ctx = createExecutionContext();
    const first = await (
      await handleHealth(new Request("https://a.example.com/_ss/health"), testEnv, ctx)
    ).json<HealthBody>();
    const second = await (
      await handleHealth(new Request("https://a.example.com/_ss/health"), testEnv, ctx)
    ).json<HealthBody>();
    await waitOnExecutionContext(ctx);
    expect(first.routes).toEqual([
      { pattern: "a.example.com/*", sdkKey: "health-a" },
      { pattern: "b.example.com/*", sdkKey: "health-a" },
    ]);
    expect(first.routeProblems).toEqual([
      {
        path: "$[2].typo",
        message: expect.stringMatching(/^unknown key "typo"/),
        severity: "error",
      },
    ]);
    expect(first.datafiles).toEqual([
      { sdkKey: "health-a", revision: "3", loadedAt: expect.any(Number), lastError: null },
    ]);
    expect(second).toEqual(first);
    expect(datafileStoreCounters.kvReads).toBe(1);
  });

  it("works without an ExecutionContext and without routes", async () => {
    const response = await handleHealth(new Request("https://x.example.com/_ss/health"), {
      DATAFILES: env.DATAFILES,
      DB: env.DB,
    });
    expect(await response.json<HealthBody>()).toEqual({
      status: "ok",
      service: "splitstream",
      routes: [],
      routeProblems: [],
      datafiles: [],
      events: { since: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/), rejected: {}, dropped: {} },
    });
  });
});
