/**
 * The datafile store and private list members (src/edge/datafile-store.ts, src/edge/list-members.ts,
 * docs/datafile.md "Lists"): members are read once per revision, missing members leave the list
 * unknown and show in /_ss/health's `lastError`, and they are picked up once they appear.
 */
import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decideExperiment } from "../../src/core/index";
import {
  datafileKey,
  datafileStoreStatus,
  getDatafile,
  listMemberCounters,
  resetDatafileStore,
} from "../../src/edge/datafile-store";
import { listMembersKey } from "../../src/edge/list-members";
import fixture from "../fixtures/datafiles/valid-web.json";

let counter = 0;
const newKey = () => `lists-${Date.now().toString(36)}-${++counter}`;

/** The fixture as the API publishes it: lists as {id, key}, members elsewhere. */
function publishedText(revision: string): string {
  return JSON.stringify({
    ...fixture,
    revision,
    web: { ...fixture.web, lists: fixture.web.lists.map(({ id, key }) => ({ id, key })) },
  });
}

/** Consults KV (a cached entry refreshes in the background), then returns what the store now holds. */
async function load(sdkKey: string) {
  const ctx = createExecutionContext();
  await getDatafile(env, ctx, sdkKey, { freshMs: 0 });
  await waitOnExecutionContext(ctx);
  return getDatafile(env, ctx, sdkKey, { freshMs: 60_000 });
}

beforeEach(() => {
  resetDatafileStore();
  vi.spyOn(console, "warn").mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
  resetDatafileStore();
});

describe("datafile store: private list members", () => {
  it("compiles the members of lists/{sdkKey}/{revision}, read once per revision", async () => {
    const sdkKey = newKey();
    await env.DATAFILES.put(
      listMembersKey(sdkKey, "5"),
      JSON.stringify({ lists: { l_vip: ["c-1"], l_beta: ["qa-1"] } }),
    );
    await env.DATAFILES.put(datafileKey(sdkKey), publishedText("5"));
    const entry = await load(sdkKey);
    expect(entry!.compiled.lists.get("vip")?.has("c-1")).toBe(true);
    expect(entry!.compiled.lists.get("beta_testers")?.has("qa-1")).toBe(true);
    expect(entry!.missingLists).toEqual([]);
    expect(entry!.publicText).toBe(publishedText("5"));
    // Refreshes of the same text do not read the members again.
    for (let i = 0; i < 3; i++) expect(await load(sdkKey)).toBe(entry);
    expect(listMemberCounters.reads).toBe(1);
    // A new revision reads its own members.
    await env.DATAFILES.put(listMembersKey(sdkKey, "6"), JSON.stringify({ lists: { l_vip: [] } }));
    await env.DATAFILES.put(datafileKey(sdkKey), publishedText("6"));
    const next = await load(sdkKey);
    expect(next!.revision).toBe("6");
    expect(next!.compiled.lists.get("vip")?.has("c-1")).toBe(false);
    expect(next!.missingLists).toEqual(["beta_testers"]);
    expect(listMemberCounters.reads).toBe(2);
  });

  it("missing members: lists unknown (nobody matches), reported, picked up when they appear", async () => {
    const sdkKey = newKey();
    await env.DATAFILES.put(datafileKey(sdkKey), publishedText("9"));
    const entry = await load(sdkKey);
    expect(entry).not.toBeNull(); // the rest of the datafile is served and decides
    expect(entry!.compiled.lists.size).toBe(0);
    expect(entry!.missingLists).toEqual(["vip", "beta_testers"]);
    expect(
      decideExperiment(entry!.compiled, "product_page_cta", { visitorId: "v" }).variationKey,
    ).not.toBeNull();
    const status = datafileStoreStatus().find((s) => s.sdkKey === sdkKey)!;
    expect(status.revision).toBe("9");
    expect(status.lastError).toContain(`no list members at ${listMembersKey(sdkKey, "9")}`);
    expect(status.lastError).not.toMatch(/c-1/);

    await env.DATAFILES.put(
      listMembersKey(sdkKey, "9"),
      JSON.stringify({ lists: { l_vip: ["c-1"] } }),
    );
    const second = await load(sdkKey);
    expect(second!.compiled.lists.get("vip")?.has("c-1")).toBe(true);
    expect(second!.missingLists).toEqual(["beta_testers"]);

    await env.DATAFILES.put(
      listMembersKey(sdkKey, "9"),
      JSON.stringify({ lists: { l_vip: ["c-1"], l_beta: ["qa-1"] } }),
    );
    const third = await load(sdkKey);
    expect(third!.missingLists).toEqual([]);
    expect(third!.compiled.lists.get("beta_testers")?.has("qa-1")).toBe(true);
    expect(datafileStoreStatus().find((s) => s.sdkKey === sdkKey)!.lastError).toBeNull();
  });

  it("a members document that does not load is reported with its JSON path", async () => {
    const sdkKey = newKey();
    await env.DATAFILES.put(listMembersKey(sdkKey, "2"), JSON.stringify({ lists: { l_vip: [1] } }));
    await env.DATAFILES.put(datafileKey(sdkKey), publishedText("2"));
    const entry = await load(sdkKey);
    expect(entry!.compiled.lists.size).toBe(0);
    expect(datafileStoreStatus().find((s) => s.sdkKey === sdkKey)!.lastError).toContain(
      "$.lists.l_vip[0]: expected a string",
    );
  });
});
