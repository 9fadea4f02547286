import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  datafileKey,
  datafileStoreCounters,
  datafileStoreStatus,
  getDatafile,
  resetDatafileStore,
} from "../../src/edge/datafile-store";
import fixture from "../fixtures/datafiles/valid-web.json";

/** The fixture as stored text (odd spacing on purpose: the store keeps the exact text). */
function datafileText(revision: string, extra = ""): string {
  return `{ "revision": ${JSON.stringify(revision)},${extra} ${JSON.stringify({ ...fixture, revision: undefined, sdkKey: undefined }).slice(1)}`;
}

let keyCounter = 0;
/** A fresh sdkKey per test, so KV state never leaks between tests. */
function newKey(): string {
  return `store-${Date.now().toString(36)}-${++keyCounter}`;
}

async function publish(sdkKey: string, text: string, metadata?: unknown): Promise<void> {
  await env.DATAFILES.put(datafileKey(sdkKey), text, metadata === undefined ? {} : { metadata });
}

/** `env` with a KV whose reads are counted and can be made to fail. */
function wrappedEnv() {
  const state = { reads: 0, fail: null as Error | null };
  const DATAFILES = {
    async getWithMetadata(key: string, options: KVNamespaceGetOptions<"text">) {
      state.reads++;
      if (state.fail) throw state.fail;
      return env.DATAFILES.getWithMetadata(key, options);
    },
  } as unknown as KVNamespace;
  return { env: { DATAFILES }, state };
}

beforeEach(() => resetDatafileStore());
afterEach(() => vi.restoreAllMocks());

describe("getDatafile: cold and cached", () => {
  it("loads, compiles and describes a published datafile", async () => {
    const sdkKey = newKey();
    const text = datafileText("7");
    await publish(sdkKey, text);
    const ctx = createExecutionContext();
    const entry = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    expect(entry).not.toBeNull();
    expect(entry!.sdkKey).toBe(sdkKey);
    expect(entry!.text).toBe(text);
    expect(entry!.revision).toBe("7");
    expect(entry!.compiled.revision).toBe("7");
    expect(entry!.compiled.experiments.length).toBeGreaterThan(0);
    expect(entry!.etag).toMatch(new RegExp(`^"${sdkKey}-7-[0-9a-f]{16}"$`));
    expect(new Date(entry!.lastModified).toUTCString()).toBe(entry!.lastModified);
    expect(entry!.lastModifiedFromMetadata).toBe(false);
    expect(datafileStoreCounters).toEqual({ kvReads: 1, compiles: 1 });
  });

  it("serves a fresh entry from memory: no second KV read, same object", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const { env: counted, state } = wrappedEnv();
    const ctx = createExecutionContext();
    const first = await getDatafile(counted, ctx, sdkKey);
    const second = await getDatafile(counted, ctx, sdkKey);
    const third = await getDatafile(counted, ctx, sdkKey, { freshMs: 60_000 });
    await waitOnExecutionContext(ctx);
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(state.reads).toBe(1);
  });

  it("shares one KV read between concurrent cold requests", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const { env: counted, state } = wrappedEnv();
    const ctx = createExecutionContext();
    const [a, b, c] = await Promise.all([
      getDatafile(counted, ctx, sdkKey),
      getDatafile(counted, ctx, sdkKey),
      getDatafile(counted, ctx, sdkKey),
    ]);
    await waitOnExecutionContext(ctx);
    expect(state.reads).toBe(1);
    expect(datafileStoreCounters.compiles).toBe(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it("reads KV with the text type and the cacheTtl option (never below the KV minimum of 30)", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const spy = vi.spyOn(env.DATAFILES, "getWithMetadata");
    const ctx = createExecutionContext();
    await getDatafile(env, ctx, sdkKey, { kvCacheTtlSeconds: 120 });
    resetDatafileStore();
    await getDatafile(env, ctx, sdkKey, { kvCacheTtlSeconds: 5 });
    await waitOnExecutionContext(ctx);
    expect(spy.mock.calls).toEqual([
      [datafileKey(sdkKey), { type: "text", cacheTtl: 120 }],
      [datafileKey(sdkKey), { type: "text", cacheTtl: 30 }],
    ]);
  });

  it("takes Last-Modified from the KV metadata publishedAt (ISO or epoch ms) when present", async () => {
    const iso = newKey();
    const ms = newKey();
    const junk = newKey();
    await publish(iso, datafileText("1"), { publishedAt: "2026-03-04T05:06:07.890Z" });
    await publish(ms, datafileText("1"), { publishedAt: Date.UTC(2026, 0, 2, 3, 4, 5) });
    await publish(junk, datafileText("1"), { publishedAt: "yesterday" });
    const ctx = createExecutionContext();
    const [a, b, c] = await Promise.all([iso, ms, junk].map((k) => getDatafile(env, ctx, k)));
    await waitOnExecutionContext(ctx);
    expect(a).toMatchObject({
      lastModified: "Wed, 04 Mar 2026 05:06:07 GMT",
      lastModifiedFromMetadata: true,
    });
    expect(b).toMatchObject({
      lastModified: "Fri, 02 Jan 2026 03:04:05 GMT",
      lastModifiedFromMetadata: true,
    });
    expect(c!.lastModifiedFromMetadata).toBe(false);
  });

  it("gives the same ETag for the same text in every isolate and a different one for other text", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("3"));
    const ctx = createExecutionContext();
    const first = await getDatafile(env, ctx, sdkKey);
    resetDatafileStore(); // as a fresh isolate
    const again = await getDatafile(env, ctx, sdkKey);
    await publish(sdkKey, datafileText("3", ` "x": 1,`));
    resetDatafileStore();
    const changed = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    expect(again!.etag).toBe(first!.etag);
    expect(changed!.etag).not.toBe(first!.etag);
    expect(changed!.etag.startsWith(`"${sdkKey}-3-`)).toBe(true);
  });

  it("keeps ETags header-safe whatever the revision string", async () => {
    const sdkKey = newKey();
    // Quotes, slash and percent pass the validator's rule (visible ASCII, docs/datafile.md) but
    // must not appear raw in an entity-tag: the revision goes through formatRevisionHeader.
    await publish(sdkKey, datafileText('r"1"/%'));
    const ctx = createExecutionContext();
    const entry = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    expect(entry!.revision).toBe('r"1"/%');
    expect(entry!.etag).toMatch(new RegExp(`^"${sdkKey}-r%221%22%2F%25-[0-9a-f]{16}"$`));
  });

  it("warns when the datafile names another sdkKey, and serves it all the same", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const sdkKey = newKey();
    await publish(sdkKey, JSON.stringify(fixture)); // the fixture says "demo-shop"
    const ctx = createExecutionContext();
    const entry = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    expect(entry).not.toBeNull();
    expect(warn.mock.calls.some((c) => String(c[0]).includes('says sdkKey "demo-shop"'))).toBe(
      true,
    );
  });

  it("loads a datafile published before selectors the edge cannot run were refused", async () => {
    // parseDatafile refuses it by default (import); the edge must keep serving its other changes,
    // and does not check selectors at all (edgeSelectors: "off": the rewriter skips that change)
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const sdkKey = newKey();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a mutated copy of the fixture
    const datafile: any = structuredClone(fixture);
    datafile.revision = "old";
    datafile.web.experiments[0].variations[1].changes[0].selector = "h1 + p";
    await publish(sdkKey, JSON.stringify(datafile));
    const ctx = createExecutionContext();
    const entry = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    expect(entry?.revision).toBe("old");
    const warned = warn.mock.calls.map((c) => String(c[0])).join("\n");
    expect(warned).not.toContain("changes[0].selector");
  });
});

describe("getDatafile: missing", () => {
  it("is null for an unpublished sdkKey, remembered while fresh", async () => {
    const sdkKey = newKey();
    const { env: counted, state } = wrappedEnv();
    const ctx = createExecutionContext();
    expect(await getDatafile(counted, ctx, sdkKey)).toBeNull();
    expect(await getDatafile(counted, ctx, sdkKey)).toBeNull();
    expect(state.reads).toBe(1);
    expect(datafileStoreStatus()).toEqual([
      {
        sdkKey,
        revision: null,
        loadedAt: null,
        lastError: `not found: no datafile at datafiles/${sdkKey}`,
      },
    ]);
    // Published meanwhile: the next read once stale finds it, without waiting for a background refresh.
    await publish(sdkKey, datafileText("1"));
    const entry = await getDatafile(counted, ctx, sdkKey, { freshMs: 0 });
    await waitOnExecutionContext(ctx);
    expect(entry?.revision).toBe("1");
    expect(state.reads).toBe(2);
    expect(datafileStoreStatus()[0]!.lastError).toBeNull();
  });

  it("drops the entry when the key is deleted (unpublished)", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const ctx = createExecutionContext();
    expect(await getDatafile(env, ctx, sdkKey)).not.toBeNull();
    await env.DATAFILES.delete(datafileKey(sdkKey));
    // Stale: the cached one once more, while the refresh learns it is gone…
    expect((await getDatafile(env, ctx, sdkKey, { freshMs: 0 }))?.revision).toBe("1");
    await waitOnExecutionContext(ctx);
    // …then nothing.
    const ctx2 = createExecutionContext();
    expect(await getDatafile(env, ctx2, sdkKey)).toBeNull();
    await waitOnExecutionContext(ctx2);
    expect(datafileStoreStatus()[0]).toMatchObject({
      revision: null,
      lastError: expect.stringMatching(/not found/),
    });
  });
});

describe("getDatafile: stale-while-revalidate", () => {
  it("returns the cached entry at once and refreshes in the background (waitUntil)", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const ctx = createExecutionContext();
    const first = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);

    await publish(sdkKey, datafileText("2"));
    const ctx2 = createExecutionContext();
    const stale = await getDatafile(env, ctx2, sdkKey, { freshMs: 0 });
    expect(stale).toBe(first); // not waiting for KV
    await waitOnExecutionContext(ctx2);

    const ctx3 = createExecutionContext();
    const refreshed = await getDatafile(env, ctx3, sdkKey);
    await waitOnExecutionContext(ctx3);
    expect(refreshed?.revision).toBe("2");
    expect(refreshed?.text).toBe(datafileText("2"));
    expect(datafileStoreCounters.compiles).toBe(2);
  });

  it("runs one background refresh per sdkKey at a time", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const { env: counted, state } = wrappedEnv();
    const ctx = createExecutionContext();
    await getDatafile(counted, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    const ctx2 = createExecutionContext();
    await Promise.all([1, 2, 3, 4].map(() => getDatafile(counted, ctx2, sdkKey, { freshMs: 0 })));
    await waitOnExecutionContext(ctx2);
    expect(state.reads).toBe(2);
  });

  it("does not re-parse unchanged text, only marks it confirmed", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const ctx = createExecutionContext();
    const first = await getDatafile(env, ctx, sdkKey);
    await waitOnExecutionContext(ctx);
    const loadedAt = first!.loadedAt;
    const lastModified = first!.lastModified;

    for (let i = 0; i < 3; i++) {
      const c = createExecutionContext();
      expect(await getDatafile(env, c, sdkKey, { freshMs: 0 })).toBe(first);
      await waitOnExecutionContext(c);
    }
    expect(datafileStoreCounters).toEqual({ kvReads: 4, compiles: 1 });
    expect(first!.loadedAt).toBeGreaterThanOrEqual(loadedAt);
    expect(first!.lastModified).toBe(lastModified);
  });

  it("gives a changed text another Last-Modified than the previous one, even within the same second", async () => {
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const ctx = createExecutionContext();
    const first = await getDatafile(env, ctx, sdkKey);
    await publish(sdkKey, datafileText("2"));
    await getDatafile(env, ctx, sdkKey, { freshMs: 0 });
    await waitOnExecutionContext(ctx);
    const second = await getDatafile(env, createExecutionContext(), sdkKey);
    expect(second?.revision).toBe("2");
    expect(second!.lastModified).not.toBe(first!.lastModified);
    // About when it was first seen: back-dated by less than 10 minutes.
    expect(Date.now() - Date.parse(second!.lastModified)).toBeLessThan(601_000);
    expect(Date.now() - Date.parse(second!.lastModified)).toBeGreaterThanOrEqual(0);
  });
});

describe("getDatafile: failures keep the last good datafile", () => {
  it("keeps serving when KV fails, records and logs the error once, recovers", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const { env: flaky, state } = wrappedEnv();
    const ctx = createExecutionContext();
    const good = await getDatafile(flaky, ctx, sdkKey);
    await waitOnExecutionContext(ctx);

    state.fail = new Error("KV is down");
    for (let i = 0; i < 3; i++) {
      const c = createExecutionContext();
      expect(await getDatafile(flaky, c, sdkKey, { freshMs: 0 })).toBe(good);
      await waitOnExecutionContext(c);
    }
    expect(state.reads).toBe(4);
    expect(datafileStoreStatus()).toEqual([
      { sdkKey, revision: "1", loadedAt: good!.loadedAt, lastError: "KV read failed: KV is down" },
    ]);
    expect(error).toHaveBeenCalledTimes(1); // rate-limited
    expect(String(error.mock.calls[0]![0])).toMatch(
      /KV read failed: KV is down \(still serving revision 1\)/,
    );

    state.fail = null;
    const c = createExecutionContext();
    await getDatafile(flaky, c, sdkKey, { freshMs: 0 });
    await waitOnExecutionContext(c);
    expect(datafileStoreStatus()[0]!.lastError).toBeNull();
  });

  it("retries a failed read only once the entry is stale again (no KV hammering)", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const sdkKey = newKey();
    await publish(sdkKey, datafileText("1"));
    const { env: flaky, state } = wrappedEnv();
    const ctx = createExecutionContext();
    await getDatafile(flaky, ctx, sdkKey);
    state.fail = new Error("down");
    await getDatafile(flaky, ctx, sdkKey, { freshMs: 0 });
    await waitOnExecutionContext(ctx);
    const c = createExecutionContext();
    await getDatafile(flaky, c, sdkKey, { freshMs: 60_000 });
    await waitOnExecutionContext(c);
    expect(state.reads).toBe(2);
  });

  it("is null when KV fails before anything was ever loaded", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const sdkKey = newKey();
    const { env: flaky, state } = wrappedEnv();
    state.fail = new Error("KV is down");
    const ctx = createExecutionContext();
    expect(await getDatafile(flaky, ctx, sdkKey)).toBeNull();
    await waitOnExecutionContext(ctx);
    expect(datafileStoreStatus()[0]).toMatchObject({
      revision: null,
      lastError: "KV read failed: KV is down",
    });
  });

  it.each([
    ["bad JSON", "{ not json"],
    ["an invalid datafile", JSON.stringify({ ...fixture, revision: 9, experiments: "nope" })],
  ])(
    "keeps the last good datafile when %s is published, without re-parsing it each refresh",
    async (_name, bad) => {
      const error = vi.spyOn(console, "error").mockImplementation(() => {});
      const sdkKey = newKey();
      await publish(sdkKey, datafileText("1"));
      const ctx = createExecutionContext();
      const good = await getDatafile(env, ctx, sdkKey);
      await waitOnExecutionContext(ctx);

      await publish(sdkKey, bad);
      for (let i = 0; i < 3; i++) {
        const c = createExecutionContext();
        expect(await getDatafile(env, c, sdkKey, { freshMs: 0 })).toBe(good);
        await waitOnExecutionContext(c);
      }
      expect(datafileStoreCounters.compiles).toBe(2); // the good one, the bad one once
      const status = datafileStoreStatus()[0]!;
      expect(status.revision).toBe("1");
      expect(status.lastError).toMatch(/^invalid datafile \(\d+ error\(s\)\): error \$/);
      expect(error).toHaveBeenCalledTimes(1);
      expect(String(error.mock.calls[0]![0])).toMatch(/does not load; still serving revision 1/);

      // A good one again: used, error cleared.
      await publish(sdkKey, datafileText("2"));
      const c = createExecutionContext();
      await getDatafile(env, c, sdkKey, { freshMs: 0 });
      await waitOnExecutionContext(c);
      expect(datafileStoreStatus()[0]).toMatchObject({ revision: "2", lastError: null });
    },
  );

  it("is null when only a bad datafile was ever published", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const sdkKey = newKey();
    await publish(sdkKey, "[]");
    const ctx = createExecutionContext();
    expect(await getDatafile(env, ctx, sdkKey)).toBeNull();
    await waitOnExecutionContext(ctx);
    expect(datafileStoreStatus()[0]).toMatchObject({
      revision: null,
      lastError: expect.stringMatching(/^invalid datafile/),
    });
    expect(String(error.mock.calls[0]![0])).toMatch(/requests pass through/);
  });
});

describe("datafileStoreStatus", () => {
  it("lists every sdkKey looked up, sorted", async () => {
    const a = `a-${newKey()}`;
    const b = `b-${newKey()}`;
    await publish(b, datafileText("5"));
    const ctx = createExecutionContext();
    await getDatafile(env, ctx, b);
    await getDatafile(env, ctx, a);
    await waitOnExecutionContext(ctx);
    const status = datafileStoreStatus();
    expect(status.map((s) => s.sdkKey)).toEqual([a, b]);
    expect(status[1]).toMatchObject({
      revision: "5",
      lastError: null,
      loadedAt: expect.any(Number),
    });
  });

  it("is empty after a reset", () => {
    expect(datafileStoreStatus()).toEqual([]);
  });
});
