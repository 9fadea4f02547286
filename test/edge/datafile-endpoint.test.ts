import { env, exports } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { handleDatafileRequest } from "../../src/edge/datafile-endpoint";
import {
  datafileKey,
  datafileStoreCounters,
  resetDatafileStore,
} from "../../src/edge/datafile-store";
import fixture from "../fixtures/datafiles/valid-web.json";

const HOST = "https://shop.example.com";
let keyCounter = 0;
function newKey(): string {
  return `endpoint-${Date.now().toString(36)}-${++keyCounter}`;
}

/** The fixture as the API publishes it: lists without their private members (docs/datafile.md). */
const published = {
  ...fixture,
  web: { ...fixture.web, lists: fixture.web.lists.map(({ id, key }) => ({ id, key })) },
};

/** Exact bytes, with spacing and non-ASCII an SDK must get unchanged. */
function datafileText(revision: string): string {
  return `{"revision":"${revision}",  "note": "héllo \\u2028 </script>",${JSON.stringify({ ...published, revision: undefined, sdkKey: undefined }).slice(1)}\n`;
}

async function publish(sdkKey: string, text: string, metadata?: unknown): Promise<void> {
  await env.DATAFILES.put(datafileKey(sdkKey), text, metadata === undefined ? {} : { metadata });
}

async function request(path: string, init?: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await handleDatafileRequest(new Request(`${HOST}${path}`, init), env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

beforeEach(() => resetDatafileStore());

describe("GET /_ss/datafiles/{sdkKey}.json", () => {
  it("serves the exact text with JSON type, validators, caching and CORS", async () => {
    const sdkKey = newKey();
    const text = datafileText("7");
    await publish(sdkKey, text);
    const response = await request(`/_ss/datafiles/${sdkKey}.json`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(text);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(response.headers.get("etag")).toMatch(new RegExp(`^"${sdkKey}-7-[0-9a-f]{16}"$`));
    expect(response.headers.get("last-modified")).toMatch(
      /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/,
    );
    expect(response.headers.get("cache-control")).toBe("public, max-age=60");
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-expose-headers")).toBe("ETag, Last-Modified");
    expect(response.headers.get("x-ss-revision")).toBe("7");
  });

  it("keeps the ETag stable across requests and isolates, and changes it on publish", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const a = (await request(`/_ss/datafiles/${sdkKey}.json`)).headers.get("etag");
    const b = (await request(`/_ss/datafiles/${sdkKey}.json`)).headers.get("etag");
    resetDatafileStore();
    const c = (await request(`/_ss/datafiles/${sdkKey}.json`)).headers.get("etag");
    expect(b).toBe(a);
    expect(c).toBe(a);
    await publish(sdkKey, datafileText("2"));
    resetDatafileStore();
    const d = await request(`/_ss/datafiles/${sdkKey}.json`);
    expect(d.headers.get("etag")).not.toBe(a);
    expect(d.headers.get("x-ss-revision")).toBe("2");
  });

  it("answers HEAD with the headers and no body", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const response = await request(`/_ss/datafiles/${sdkKey}.json`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).toBeTruthy();
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await response.text()).toBe("");
  });

  it("a hand-written datafile with inline list members: the ETag hashes the bytes served, not the members", async () => {
    const sdkKey = newKey();
    /** 16 hex of SHA-256 of the bytes, as the ETag's last part. */
    const hash16 = async (bytes: ArrayBuffer) =>
      [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes), 0, 8)]
        .map((b) => b.toString(16).padStart(2, "0"))
        .join("");
    const withMembers = (members: string[]) =>
      JSON.stringify({
        ...fixture,
        revision: "hand-1",
        web: { ...fixture.web, lists: fixture.web.lists.map((l) => ({ ...l, values: members })) },
      });
    await publish(sdkKey, withMembers(["member-1", "member-2"]));
    const first = await request(`/_ss/datafiles/${sdkKey}.json`);
    const body = await first.arrayBuffer();
    expect(new TextDecoder().decode(body)).not.toContain("member-1");
    const etag = first.headers.get("etag")!;
    expect(etag).toBe(`"${sdkKey}-hand-1-${await hash16(body)}"`);

    // Only the members change: the same bytes are served, under the same ETag.
    await publish(sdkKey, withMembers(["member-3"]));
    resetDatafileStore();
    const second = await request(`/_ss/datafiles/${sdkKey}.json`);
    expect(await second.arrayBuffer()).toEqual(body);
    expect(second.headers.get("etag")).toBe(etag);
  });

  it("ignores the query string", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const response = await request(`/_ss/datafiles/${sdkKey}.json?cachebust=1`);
    expect(response.status).toBe(200);
  });
});

describe("conditional requests", () => {
  async function published(metadata?: unknown) {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("3"), metadata);
    const first = await request(`/_ss/datafiles/${sdkKey}.json`);
    return {
      path: `/_ss/datafiles/${sdkKey}.json`,
      etag: first.headers.get("etag")!,
      lastModified: first.headers.get("last-modified")!,
    };
  }

  it.each<[string, (etag: string) => string]>([
    ["the ETag", (etag) => etag],
    ["the weak form (a compressed copy)", (etag) => `W/${etag}`],
    ["one of a list", (etag) => `"other", ${etag}`],
    ["*", () => "*"],
  ])("If-None-Match with %s → 304 with validators, no body", async (_name, header) => {
    const { path, etag, lastModified } = await published();
    const response = await request(path, { headers: { "if-none-match": header(etag) } });
    expect(response.status).toBe(304);
    expect(await response.text()).toBe("");
    expect(response.headers.get("etag")).toBe(etag);
    expect(response.headers.get("last-modified")).toBe(lastModified);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("cache-control")).toBe("public, max-age=60");
  });

  it("If-None-Match with another tag → 200 (and it wins over a matching If-Modified-Since)", async () => {
    const { path, lastModified } = await published();
    const response = await request(path, {
      headers: { "if-none-match": '"stale"', "if-modified-since": lastModified },
    });
    expect(response.status).toBe(200);
  });

  it("If-Modified-Since echoing Last-Modified (what the official SDK's poller sends) → 304", async () => {
    const { path, lastModified } = await published();
    const response = await request(path, { headers: { "if-modified-since": lastModified } });
    expect(response.status).toBe(304);
  });

  it("If-Modified-Since with any other date → 200 when Last-Modified is isolate-local (never hides a newer datafile)", async () => {
    const { path } = await published();
    const later = new Date(Date.now() + 3_600_000).toUTCString();
    const response = await request(path, { headers: { "if-modified-since": later } });
    expect(response.status).toBe(200);
  });

  it("If-Modified-Since compares dates when Last-Modified comes from the publisher's metadata", async () => {
    const { path, lastModified } = await published({ publishedAt: "2026-01-02T03:04:05Z" });
    expect(lastModified).toBe("Fri, 02 Jan 2026 03:04:05 GMT");
    const later = await request(path, {
      headers: { "if-modified-since": "Sat, 03 Jan 2026 00:00:00 GMT" },
    });
    expect(later.status).toBe(304);
    const earlier = await request(path, {
      headers: { "if-modified-since": "Thu, 01 Jan 2026 00:00:00 GMT" },
    });
    expect(earlier.status).toBe(200);
    const junk = await request(path, { headers: { "if-modified-since": "yesterday" } });
    expect(junk.status).toBe(200);
  });

  it("serves the new datafile after a publish even to a client holding the old validators", async () => {
    const { path, etag, lastModified } = await published();
    await publish(path.slice("/_ss/datafiles/".length, -".json".length), datafileText("4"));
    resetDatafileStore();
    const byEtag = await request(path, { headers: { "if-none-match": etag } });
    expect(byEtag.status).toBe(200);
    const byDate = await request(path, { headers: { "if-modified-since": lastModified } });
    expect(byDate.status).toBe(200);
    expect(byDate.headers.get("x-ss-revision")).toBe("4");
  });
});

describe("CORS preflight", () => {
  it("answers OPTIONS with 204 and the allowed methods and headers", async () => {
    const response = await request(`/_ss/datafiles/any.json`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "GET",
        "access-control-request-headers": "if-modified-since, x-custom",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-allow-methods")).toBe("GET, HEAD, OPTIONS");
    expect(response.headers.get("access-control-allow-headers")).toBe(
      "if-modified-since, x-custom",
    );
    expect(response.headers.get("access-control-expose-headers")).toBe("ETag, Last-Modified");
    expect(response.headers.get("access-control-max-age")).toBe("86400");
  });

  it("allows the conditional headers when none are named", async () => {
    const response = await request(`/_ss/datafiles/any.json`, { method: "OPTIONS" });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-headers")).toMatch(
      /If-None-Match, If-Modified-Since/,
    );
  });
});

describe("errors", () => {
  it("404 datafile_not_found for an unpublished sdkKey, with CORS", async () => {
    const sdkKey = newKey();
    const response = await request(`/_ss/datafiles/${sdkKey}.json`);
    expect(response.status).toBe(404);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = await response.json<ErrorBody>();
    expect(body.error).toEqual({
      code: "datafile_not_found",
      message: expect.stringContaining(sdkKey),
      details: { sdkKey },
    });
  });

  it("404 when only an invalid datafile was ever published", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, "{ nope");
    const original = console.error;
    console.error = () => {};
    try {
      const response = await request(`/_ss/datafiles/${sdkKey}.json`);
      expect(response.status).toBe(404);
    } finally {
      console.error = original;
    }
  });

  it.each([
    ["/_ss/datafiles/bad%20key.json"],
    ["/_ss/datafiles/-leading-dash.json"],
    ["/_ss/datafiles/sdk%2Fkey.json"],
    [`/_ss/datafiles/${"a".repeat(129)}.json`],
  ])("400 invalid_sdk_key for %s", async (path) => {
    const response = await request(path);
    expect(response.status).toBe(400);
    expect((await response.json<ErrorBody>()).error.code).toBe("invalid_sdk_key");
  });

  it.each([
    ["/_ss/datafiles/"],
    ["/_ss/datafiles/key"],
    ["/_ss/datafiles/.json"],
    ["/_ss/datafiles/a/b.json"],
    ["/_ss/datafiles/key.json/x"],
  ])("404 not_found for %s", async (path) => {
    const response = await request(path);
    expect(response.status).toBe(404);
    expect((await response.json<ErrorBody>()).error.code).toBe("not_found");
  });

  it.each([["POST"], ["PUT"], ["DELETE"], ["PATCH"]])("405 for %s, with Allow", async (method) => {
    const response = await request(`/_ss/datafiles/x.json`, { method });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    const body = await response.json<ErrorBody>();
    expect(body.error).toMatchObject({
      code: "method_not_allowed",
      details: { allow: ["GET", "HEAD", "OPTIONS"] },
    });
  });
});

describe("through the Worker (wrangler.toml routes localhost/*)", () => {
  it("serves the datafile on a routed host, with 304 on the next poll", async () => {
    const sdkKey = newKey();
    const text = datafileText("11");
    await publish(sdkKey, text);
    const first = await exports.default.fetch(`http://localhost:8787/_ss/datafiles/${sdkKey}.json`);
    expect(first.status).toBe(200);
    expect(await first.text()).toBe(text);
    const poll = await exports.default.fetch(`http://localhost:8787/_ss/datafiles/${sdkKey}.json`, {
      headers: { "if-modified-since": first.headers.get("last-modified")! },
    });
    expect(poll.status).toBe(304);
  });

  it("shares one KV read between concurrent cold requests in separate request contexts", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("12"));
    const responses = await Promise.all(
      Array.from({ length: 5 }, () =>
        exports.default.fetch(`http://localhost/_ss/datafiles/${sdkKey}.json`),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const etags = new Set(responses.map((r) => r.headers.get("etag")));
    expect(etags.size).toBe(1);
    expect(datafileStoreCounters.kvReads).toBe(1);
    await Promise.all(responses.map((r) => r.text()));
  });

  it("answers 404 for an unpublished sdkKey", async () => {
    const response = await exports.default.fetch(`http://localhost/_ss/datafiles/${newKey()}.json`);
    expect(response.status).toBe(404);
    expect((await response.json<ErrorBody>()).error.code).toBe("datafile_not_found");
  });
});
