/** The bookkeeping behind coalesced cached-variant misses (src/edge/miss-coalescer.ts). */
import { describe, expect, it } from "vitest";
import { KNOWN_CACHEABLE_MS, MissCoalescer } from "../../src/edge/miss-coalescer";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("MissCoalescer", () => {
  it("waits only for pages it has stored before: a first fetch is nobody's to wait for", async () => {
    const c = new MissCoalescer(3000);
    const finish = c.lead("k1", "page")!;
    expect(c.pendingFetch("k1", "page")).toBeNull(); // the page is not known cacheable yet
    finish(true);
    const again = c.lead("k2", "page")!; // another variant of the same page, after a publish
    const pending = c.pendingFetch("k2", "page");
    expect(pending).not.toBeNull();
    expect(c.lead("k2", "page")).toBeNull(); // one fetch per key
    again(true);
    await expect(pending).resolves.toBe(true);
    expect(c.pendingFetch("k2", "page")).toBeNull(); // done: nothing in flight
  });

  it("a page that turned uncacheable is not waited for any more", async () => {
    const c = new MissCoalescer(3000);
    c.lead("k1", "page")!(true);
    const finish = c.lead("k2", "page")!;
    const pending = c.pendingFetch("k2", "page")!;
    finish(false);
    await expect(pending).resolves.toBe(false);
    c.lead("k3", "page");
    expect(c.pendingFetch("k3", "page")).toBeNull();
  });

  it("a fetch older than the wait is forgotten (its store may never settle); a new one leads", () => {
    const time = clock();
    const c = new MissCoalescer(3000, time.now);
    c.lead("k1", "page")!(true);
    c.lead("k2", "page"); // never finished
    expect(c.pendingFetch("k2", "page")).not.toBeNull();
    time.advance(3001);
    expect(c.pendingFetch("k2", "page")).toBeNull();
    expect(c.lead("k2", "page")).not.toBeNull();
  });

  it("a page is known cacheable for KNOWN_CACHEABLE_MS after its last stored copy", () => {
    const time = clock();
    const c = new MissCoalescer(3000, time.now);
    c.lead("k1", "page")!(true);
    c.lead("k2", "page");
    time.advance(KNOWN_CACHEABLE_MS + 1);
    expect(c.pendingFetch("k2", "page")).toBeNull();
  });

  it("stops for good once a stored copy could not be read back (a no-op Cache API)", () => {
    const c = new MissCoalescer(3000);
    c.lead("k1", "page")!(true);
    c.lead("k2", "page");
    expect(c.pendingFetch("k2", "page")).not.toBeNull();
    c.storedButNotFound();
    expect(c.pendingFetch("k2", "page")).toBeNull();
  });

  it("finishing twice changes nothing", async () => {
    const c = new MissCoalescer(3000);
    c.lead("k1", "page")!(true);
    const finish = c.lead("k2", "page")!;
    const pending = c.pendingFetch("k2", "page")!;
    finish(true);
    finish(false);
    await expect(pending).resolves.toBe(true);
    c.lead("k3", "page");
    expect(c.pendingFetch("k3", "page")).not.toBeNull();
  });
});
