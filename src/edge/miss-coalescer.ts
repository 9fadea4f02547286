/**
 * Coalescing of cached-variant misses within one isolate (docs/caching.md "Limits"): while one
 * request fetches a variant from the origin, other requests of the same variant wait for its
 * stored copy instead of asking the origin too — after a publish every key is new, and a busy
 * page's visitors would otherwise all reach the origin at once.
 *
 * Waiting only pays when the copy will be there, so a request waits only
 * - for a page this isolate has stored a copy of recently (a page the origin does not mark
 *   cacheable is never waited for: its visitors would only be delayed by the first one's fetch);
 * - for a fetch that started less than `waitMs` ago (a fetch whose store never settles — an
 *   origin body that broke off, a cancelled `waitUntil` — is forgotten, not waited for again);
 * - while the Cache API keeps what is stored: when a waiter finds nothing after a fetch said it
 *   stored its copy (workers.dev, Cloudflare Access and previews make the Cache API a no-op),
 *   coalescing stops for the isolate.
 * Pure bookkeeping, no I/O: the caller does the waiting and the cache reads.
 */

/** How long a page stays "known cacheable" after a copy of it was stored. */
export const KNOWN_CACHEABLE_MS = 10 * 60 * 1000;

/** Pages remembered at most (query strings make many): past it the memory starts afresh. */
const MAX_KNOWN_PAGES = 10_000;

interface Fetch {
  /** true once the copy is stored, false when it will not be */
  done: Promise<boolean>;
  startedAt: number;
}

export class MissCoalescer {
  private readonly fetches = new Map<string, Fetch>();
  private readonly knownCacheable = new Map<string, number>();
  private cacheKeepsNothing = false;

  constructor(
    /** the longest a request waits for another's copy (ms) */
    readonly waitMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The fetch of `key` another request has in flight, when waiting for it is worth it (see the
   * module comment); null means "fetch it yourself".
   */
  pendingFetch(key: string, page: string): Promise<boolean> | null {
    if (this.cacheKeepsNothing) return null;
    const known = this.knownCacheable.get(page);
    if (known === undefined || known <= this.now()) return null;
    const fetch = this.fetches.get(key);
    if (fetch === undefined) return null;
    if (this.now() - fetch.startedAt > this.waitMs) {
      this.fetches.delete(key);
      return null;
    }
    return fetch.done;
  }

  /**
   * Registers this request as the one fetching `key` (unless another already is: then null) and
   * gives the function to call once its copy is stored (`true`) or will not be (`false`).
   */
  lead(key: string, page: string): ((stored: boolean) => void) | null {
    const current = this.fetches.get(key);
    if (current !== undefined && this.now() - current.startedAt <= this.waitMs) return null;
    let resolve: (stored: boolean) => void = () => undefined;
    const fetch: Fetch = {
      done: new Promise<boolean>((r) => (resolve = r)),
      startedAt: this.now(),
    };
    this.fetches.set(key, fetch);
    let finished = false;
    return (stored) => {
      if (finished) return;
      finished = true;
      if (this.fetches.get(key) === fetch) this.fetches.delete(key);
      if (stored) {
        if (this.knownCacheable.size >= MAX_KNOWN_PAGES) this.knownCacheable.clear();
        this.knownCacheable.set(page, this.now() + KNOWN_CACHEABLE_MS);
      } else {
        this.knownCacheable.delete(page);
      }
      resolve(stored);
    };
  }

  /** A waiter read nothing after a fetch said its copy was stored: stop coalescing here. */
  storedButNotFound(): void {
    this.cacheKeepsNothing = true;
  }
}
