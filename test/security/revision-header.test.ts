/**
 * The datafile revision in headers (docs/security.md "Escaping at every sink", docs/datafile.md
 * "revision"):
 *
 * - the validator rejects a revision no header can carry (control characters, CR/LF, spaces,
 *   non-ASCII, over 64 characters) with an error at `$.revision`, and accepts every revision of
 *   1-64 visible ASCII characters;
 * - every header that names the revision — `x-ss-revision` to the origin, on
 *   `/_ss/datafiles/{sdkKey}.json` and on `/_ss/client-config/{sdkKey}.json`, and the datafile
 *   ETag — carries the same encoding (formatRevisionHeader), never the raw text;
 * - a datafile put into KV by hand with a header-breaking revision never makes an endpoint answer
 *   5xx: it does not load (404 while there is no good one, else the last good one is served).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadDatafile } from "../../src/core/index";
import {
  MAX_REVISION_LENGTH,
  parseDatafile,
  REVISION_PATTERN,
} from "../../src/core/datafile-parse";
import { datafileKey, getDatafile, resetDatafileStore } from "../../src/edge/datafile-store";
import { formatRevisionHeader, REVISION_HEADER_MAX_BYTES } from "../../src/edge/decisions-header";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { SEED, hostileString, seedProperties } from "../support/fast-check";

seedProperties(300);

const SITE = "http://localhost";
const INJECTED = "13\r\nX-Injected: yes";
const CHROME =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

/** The edge fixture with another revision, as JSON text (what `wrangler kv key put` stores). */
function datafileWith(revision: string): string {
  return JSON.stringify({ ...structuredClone(edgeDatafile), revision });
}

let keyCounter = 0;
function newKey(): string {
  return `revision-${Date.now().toString(36)}-${++keyCounter}`;
}

/** A Worker request; an exception escaping the Worker counts as the 500 a client would get. */
async function fetchWorker(path: string, init?: RequestInit): Promise<Response> {
  try {
    return await exports.default.fetch(`${SITE}${path}`, init);
  } catch (error) {
    return new Response(String(error), { status: 500 });
  }
}

const endpoints = (sdkKey: string) => [
  `/_ss/datafiles/${sdkKey}.json`,
  `/_ss/client-config/${sdkKey}.json`,
];

/** Every response header is one line of visible ASCII (plus spaces), and nothing got injected. */
function expectCleanHeaders(response: Response): void {
  expect(response.headers.get("x-injected")).toBeNull();
  for (const [name, value] of response.headers) expect(value, name).toMatch(/^[\x20-\x7e]*$/);
}

beforeEach(() => resetDatafileStore());

describe("the validator's revision rule", () => {
  const rejected: ReadonlyArray<readonly [string, string]> = [
    ["CR/LF header injection", INJECTED],
    ["empty", ""],
    ["a space inside", "13 b"],
    ["leading and trailing spaces", " 13 "],
    ["a tab", "13\t"],
    ["NUL", "13\u0000"],
    ["DEL", "13\u007f"],
    ["non-ASCII", "13é"],
    ["a line separator", "13\u2028"],
    ["a lone surrogate", "13\ud800"],
    ["too long", "1".repeat(MAX_REVISION_LENGTH + 1)],
  ];

  it.each(rejected)("rejects %s, with an error at $.revision", (_name, revision) => {
    const result = parseDatafile(datafileWith(revision));
    expect(result.ok).toBe(false);
    const atRevision = result.problems.filter((p) => p.path === "$.revision");
    expect(atRevision).toHaveLength(1);
    expect(atRevision[0]!.severity).toBe("error");
    expect(atRevision[0]!.message).toMatch(/header/);
    // Nothing else is wrong with it.
    expect(result.problems.filter((p) => p.severity === "error")).toHaveLength(1);
  });

  it.each([
    ["13"],
    ["1287"],
    [`r"1"/%~`],
    ["2024-05-01T10:00:00Z"],
    ["x".repeat(MAX_REVISION_LENGTH)],
    [
      Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i))
        .join("")
        .slice(0, 64),
    ],
  ])("accepts %j", (revision) => {
    expect(parseDatafile(datafileWith(revision)).ok).toBe(true);
  });

  it(`every revision it accepts fits a header, raw and encoded (seed ${SEED})`, () => {
    fc.assert(
      fc.property(hostileString, (revision) => {
        const accepted = REVISION_PATTERN.test(revision);
        const result = parseDatafile(datafileWith(revision));
        expect(result.problems.some((p) => p.path === "$.revision")).toBe(!accepted);
        if (!accepted) return;
        expect(() => new Headers({ "x-ss-revision": revision })).not.toThrow();
        const encoded = formatRevisionHeader(revision);
        expect(encoded).not.toBe("");
        expect(encoded.length).toBeLessThanOrEqual(REVISION_HEADER_MAX_BYTES);
      }),
    );
  });
});

describe("a datafile with a header-breaking revision put into KV by hand", () => {
  it("does not load, and neither endpoint answers 5xx (404: no good datafile)", async () => {
    const sdkKey = newKey();
    await env.DATAFILES.put(datafileKey(sdkKey), datafileWith(INJECTED));
    expect(loadDatafile(JSON.parse(datafileWith(INJECTED))).ok).toBe(false);
    for (const path of endpoints(sdkKey)) {
      const response = await fetchWorker(path);
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        "datafile_not_found",
      );
      expectCleanHeaders(response);
    }
  });

  it("replacing a good datafile: both endpoints keep serving the last good revision", async () => {
    const sdkKey = newKey();
    await env.DATAFILES.put(datafileKey(sdkKey), datafileWith("12"));
    for (const path of endpoints(sdkKey))
      expect((await fetchWorker(path)).headers.get("x-ss-revision")).toBe("12");

    await env.DATAFILES.put(datafileKey(sdkKey), datafileWith(INJECTED));
    // A refresh now (not after the 10 s freshness): it reads the bad text and keeps the good one.
    const ctx = createExecutionContext();
    await getDatafile(env, ctx, sdkKey, { freshMs: 0 });
    await waitOnExecutionContext(ctx);

    for (const path of endpoints(sdkKey)) {
      const response = await fetchWorker(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("x-ss-revision")).toBe("12");
      expectCleanHeaders(response);
    }
    const datafile = await fetchWorker(`/_ss/datafiles/${sdkKey}.json`);
    expect(((await datafile.json()) as { revision: string }).revision).toBe("12");
  });
});

describe("one encoding of the revision in every header", () => {
  let origin: MockedOrigin;
  afterEach(() => origin?.restore());

  // Valid (visible ASCII), but `"`, `/` and `%` must not appear raw in a header or an ETag.
  const REVISION = `r"1"/%`;
  const ENCODED = "r%221%22%2F%25";

  it("the origin, the datafile endpoint and the client-config endpoint send the same value", async () => {
    expect(formatRevisionHeader(REVISION)).toBe(ENCODED);
    const datafile = structuredClone(edgeDatafile);
    datafile.revision = REVISION;
    await env.DATAFILES.put(datafileKey(datafile.sdkKey), JSON.stringify(datafile));
    origin = mockOrigin(
      () =>
        new Response("<!doctype html><html><head></head><body><h1>Welcome</h1></body></html>", {
          headers: { "content-type": "text/html; charset=utf-8" },
        }),
    );

    const page = await fetchWorker("/", {
      headers: { "user-agent": CHROME, cookie: "ss_vid=v1; ss_dec=1001.v_h_new" },
    });
    expect(page.status).toBe(200);
    await page.text();
    expect(origin.requests.at(-1)?.headers.get("x-ss-revision")).toBe(ENCODED);

    const served = await fetchWorker(`/_ss/datafiles/${datafile.sdkKey}.json`);
    expect(served.status).toBe(200);
    expect(served.headers.get("x-ss-revision")).toBe(ENCODED);
    // The ETag holds the same encoding: one valid entity-tag (no inner quote), never the raw text.
    const etag = served.headers.get("etag")!;
    expect(etag).toMatch(/^"[\x21\x23-\x7e]+"$/);
    expect(etag).toContain(`-${ENCODED}-`);
    expect(etag).not.toContain(REVISION);

    const config = await fetchWorker(
      `/_ss/client-config/${datafile.sdkKey}.json?r=${encodeURIComponent(REVISION)}`,
    );
    expect(config.status).toBe(200);
    expect(config.headers.get("x-ss-revision")).toBe(ENCODED);
    // The client's `?r=` is the revision itself (from the bootstrap): the hour-long cache applies.
    expect(config.headers.get("cache-control")).toBe("public, max-age=3600");
    expect(((await config.json()) as { r: string }).r).toBe(REVISION);
  });
});
