/**
 * The edge's per-request path for a routed page (docs/visitors.md):
 * datafile → visitor + request attributes → pages matching the URL → audiences → bucket →
 * origin fetch with decision headers → HTML streamed through HTMLRewriter → cookies →
 * impressions to the queue after the response.
 *
 * Fail open: any error in the experiment path serves the origin's response unchanged; an error
 * while deciding feature flags drops the flags (no `x-ss-flags`, no flags in the bootstrap, no
 * flag impressions) and the request goes on as if the datafile had none.
 *
 * Feature flags (docs/visitors.md "Feature flags") are decided on every routed request, with the
 * experiments' prepared visitor; visitors the edge does not track (bots by default, opted out,
 * GPC, no consent) still get the flags' delivery rules in `x-ss-flags`, and nothing else.
 */
import {
  decidePrepared,
  holdoutArms,
  prepareVisitor,
  type CompiledDatafile,
  type Decision,
  type FlagDecision,
} from "../core/index";
import type { Change } from "../core/datafile-types";
import type { Env } from "../env";
import type { EventMessage, ImpressionDims } from "../shared/event-messages";
import { impressionDims } from "./impression-dims";
import { hasConsent } from "../shared/consent";
import { nonceFromCsp, renderBootstrap, type BootstrapData } from "./bootstrap";
import { CLIENT_SCRIPT_SRC } from "./client-script";
import { deleteCookie, parseCookies, serializeCookie } from "./cookies";
import { getDatafile } from "./datafile-store";
import {
  DECISIONS_HEADER,
  FLAGS_HEADER,
  formatDecisionsHeader,
  formatFlagsHeader,
  formatRevisionHeader,
  REVISION_HEADER,
} from "./decisions-header";
import {
  decideFlags,
  flagImpressionMessage,
  flagImpressions,
  recordFlagSticky,
  type FlagImpression,
} from "./flags";
import { rewriteHtml } from "./html-rewrite";
import { planPage, type PageCandidate } from "./page-plan";
import { PREVIEW_QUERY_PARAM, verifyPreview } from "./preview";
import { buildRequestAttributes } from "./request-attributes";
import { isExcludedPath, type RouteConfig } from "./routes";
import {
  cacheLifetime,
  newBootstrapMarker,
  readCachedVariant,
  requestRefusesCache,
  spliceBootstrap,
  spliceBootstrapWhole,
  WHOLE_SPLICE_MAX_BYTES,
  storedVariant,
  VARIANT_CACHE_HEADER,
  variantCacheKey,
  type CachedVariant,
} from "./variant-cache";
import { MissCoalescer } from "./miss-coalescer";
import { encodeSticky, readVisitor, STICKY_COOKIE, type VisitorState } from "./visitor";

export const VISITOR_HEADER = "x-ss-visitor-id";
const SS_HEADER_PREFIX = "x-ss-";

/** One decided experiment on this page view. */
interface PageDecision {
  candidate: PageCandidate;
  decision: Decision & { variationId: string; variationKey: string };
}

function withoutPreviewParam(url: URL): URL {
  const copy = new URL(url.href);
  copy.searchParams.delete(PREVIEW_QUERY_PARAM);
  return copy;
}

/** Where the page is fetched from: the route's origin (same path and query) or the request itself. */
export function originUrlFor(route: RouteConfig, url: URL): URL {
  const target = withoutPreviewParam(url);
  if (!route.origin) return target;
  const base = new URL(route.origin);
  const prefix = base.pathname.replace(/\/$/, "");
  return new URL(`${base.origin}${prefix}${target.pathname}${target.search}`);
}

/** The request to the origin: the visitor's request minus any x-ss-* it claims, plus ours. */
function originRequest(request: Request, target: URL, extra: Record<string, string>): Request {
  const headers = new Headers(request.headers);
  for (const name of [...headers.keys()])
    if (name.startsWith(SS_HEADER_PREFIX)) headers.delete(name);
  for (const [name, value] of Object.entries(extra)) headers.set(name, value);
  return new Request(target.href, {
    method: request.method,
    headers,
    body: request.method === "GET" || request.method === "HEAD" ? null : request.body,
    redirect: "manual",
  });
}

/** Passes a request through to the route's origin untouched (apart from stripping x-ss-* claims). */
export function passThrough(request: Request, route: RouteConfig, url: URL): Promise<Response> {
  // Always rebuilt, also for a route without `origin`: the x-ss-* claims must go on every path
  // (a POST, an excluded path, a cold datafile), or a visitor could send the origin their own
  // `x-ss-flags` and turn a flag on for themselves (docs/visitors.md "Feature flags").
  return fetchOrigin(originRequest(request, originUrlFor(route, url), {}), route);
}

/** What a visitor gets when the origin failed: a small page, never cached, nothing counted. */
function originErrorResponse(status: 502 | 504, code: string, message: string): Response {
  const title = status === 504 ? "504 Gateway Timeout" : "502 Bad Gateway";
  return new Response(
    `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${message}</p></body></html>\n`,
    {
      status,
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "x-ss-error": code,
      },
    },
  );
}

/**
 * The origin fetch, bounded by the route's `origin_timeout_ms` until the response HEADERS arrive
 * (the body then streams for as long as it takes: a slow page is not cut off half-way). On time
 * out the subrequest is aborted and the visitor gets a 504; when the fetch itself fails (DNS,
 * connection refused, reset) a 502. Origin 4xx/5xx responses are not failures: they are returned
 * as they are (docs/visitors.md).
 */
export async function fetchOrigin(request: Request, route: RouteConfig): Promise<Response> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<null>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`origin timeout after ${route.originTimeoutMs} ms`));
      resolve(null);
    }, route.originTimeoutMs);
  });
  const timeoutResponse = (): Response => {
    console.error(
      `splitstream: origin ${new URL(request.url).origin} sent no response headers within ${route.originTimeoutMs} ms (origin_timeout_ms); answering 504`,
    );
    return originErrorResponse(
      504,
      "origin_timeout",
      "The site did not answer in time. Please try again in a moment.",
    );
  };
  try {
    const response = await Promise.race([fetch(request, { signal: controller.signal }), timedOut]);
    return response ?? timeoutResponse();
  } catch (error) {
    if (controller.signal.aborted) return timeoutResponse();
    console.error(`splitstream: origin fetch failed; answering 502`, error);
    return originErrorResponse(
      502,
      "origin_unreachable",
      "The site could not be reached. Please try again in a moment.",
    );
  } finally {
    clearTimeout(timer);
  }
}

function isHtml(response: Response): boolean {
  return (response.headers.get("content-type") ?? "").toLowerCase().includes("text/html");
}

function changesFor(
  candidate: PageCandidate,
  variationId: string,
  matchedPageIds: ReadonlySet<string>,
): Change[] {
  const web = candidate.experiment.web;
  const variation = candidate.experiment.variationById.get(variationId);
  const all = [...(web?.sharedChanges ?? []), ...(variation?.web?.changes ?? [])];
  return all.filter((c) => c.pageId === undefined || matchedPageIds.has(c.pageId));
}

function destinationFor(change: Extract<Change, { type: "redirect" }>, url: URL): URL | null {
  let destination: URL;
  try {
    destination = new URL(change.destination, url);
  } catch {
    return null;
  }
  if (change.preserveParameters !== false) {
    for (const [name, value] of url.searchParams) {
      if (name !== PREVIEW_QUERY_PARAM && !destination.searchParams.has(name))
        destination.searchParams.append(name, value);
    }
  }
  return destination;
}

/** Cache headers that speak to CDNs only: never on a page that carries a visitor's bootstrap. */
const CDN_CACHE_HEADERS = [
  "cdn-cache-control",
  "cloudflare-cdn-cache-control",
  "surrogate-control",
];

/** Cache-Control for a personalised response: never `public` in a shared cache. */
function privateCacheControl(original: string | null): string {
  if (!original) return "private, no-cache";
  // Split outside quotes: `private="set-cookie, x-a"` is one directive.
  const kept = (original.match(/(?:[^,"]|"[^"]*")+/g) ?? [])
    .map((d) => d.trim())
    .filter((d) => d !== "" && !/^(public|s-maxage\s*=.*|private(\s*=.*)?)$/is.test(d));
  return ["private", ...kept].join(", ");
}

/**
 * Queues the page's impression events: `sendOrSpill` of src/events/spill.ts (the queue, retried,
 * then R2), handed in by src/index.ts because src/edge and src/events do not import each other.
 */
export type SendEvents = (env: Env, events: EventMessage[]) => Promise<unknown>;

/**
 * Handles a request on a route whose path is not under /_ss/. Never throws: failures in the
 * experiment path fall back to the origin's response unchanged.
 */

export async function handleEdgeRequest(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  route: RouteConfig,
  url: URL,
  sendEvents: SendEvents,
): Promise<Response> {
  // Non-GET/HEAD and excluded paths: straight through, body streamed, nothing decided.
  if (
    (request.method !== "GET" && request.method !== "HEAD") ||
    isExcludedPath(route, url.pathname)
  ) {
    return passThrough(request, route, url);
  }
  let context: Awaited<ReturnType<typeof decidePage>>;
  try {
    context = await decidePage(request, env, ctx, route, url);
  } catch (error) {
    console.error("splitstream: deciding failed; serving the origin unchanged", error);
    return passThrough(request, route, url);
  }
  if (context === null) return passThrough(request, route, url);
  // Not tracked, but the datafile has flags: the untouched origin response, decided with the
  // delivery rules of the flags (x-ss-flags) — a release reaches every visitor.
  if (context.untracked) {
    const response = await fetchOrigin(
      originRequest(request, originUrlFor(route, url), context.originHeaders),
      route,
    );
    // The origin saw this visitor's flags: a page it built from them must not be stored in a
    // shared cache and served to visitors the flags decide otherwise (a 30 % release). Other
    // responses stay as the origin sent them (docs/visitors.md "Feature flags").
    if (response.status !== 200 || !isHtml(response) || !(FLAGS_HEADER in context.originHeaders))
      return response;
    const out = new Response(response.body, response);
    out.headers.set("cache-control", privateCacheControl(response.headers.get("cache-control")));
    return out;
  }

  const {
    entry,
    visitor,
    tracking,
    setCookies,
    pageDecisions,
    pageviewEvents,
    holdoutArms: arms,
    redirect,
    rewriteTo,
    changes,
    bootstrap,
    flags,
    previewing,
  } = context;
  const compiled = entry.compiled;
  const decisionsHeader = formatDecisionsHeader(
    pageDecisions.map((d) => [d.decision.experimentKey, d.decision.variationKey]),
  );

  const events: EventMessage[] = [];
  let dims: ImpressionDims | undefined;
  const queueImpressions = (decisions: PageDecision[]): void => {
    if (!tracking) return;
    const timestamp = Date.now();
    dims ??= impressionDims(request, { url, visitor });
    for (const { decision, candidate } of decisions) {
      if (candidate.activation !== "immediate") continue;
      events.push({
        v: 1,
        type: "impression",
        uuid: crypto.randomUUID(),
        sdkKey: route.sdkKey,
        revision: compiled.revision,
        visitorId: visitor.id,
        experimentId: candidate.experiment.id,
        variationId: decision.variationId,
        timestamp,
        source: "edge",
        dims,
      });
    }
  };
  /** A/B-rule flag decisions: impressions like the experiments' (docs/events.md). */
  const queueFlagImpressions = (impressions: readonly FlagImpression[]): void => {
    if (!tracking || impressions.length === 0) return;
    const timestamp = Date.now();
    dims ??= impressionDims(request, { url, visitor });
    // An experiment that is also on the page was just counted through its page decision.
    const counted = new Set(
      pageDecisions
        .filter((d) => d.candidate.activation === "immediate")
        .map((d) => d.candidate.experiment.id),
    );
    const context = {
      sdkKey: route.sdkKey,
      revision: compiled.revision,
      visitorId: visitor.id,
      timestamp,
      dims,
    };
    for (const impression of impressions)
      if (!counted.has(impression.experimentId))
        events.push(flagImpressionMessage(context, impression));
  };
  /**
   * The visitor's holdout group, once per page served (held out or everyone else): an impression
   * of the holdout's id whose exposure — the earliest, as for experiments — counts each visitor
   * once in results (docs/holdouts.md "Results").
   */
  const queueHoldout = (): void => {
    if (!tracking || arms.length === 0) return;
    const timestamp = Date.now();
    dims ??= impressionDims(request, { url, visitor });
    for (const arm of arms)
      events.push({
        v: 1,
        type: "impression",
        uuid: crypto.randomUUID(),
        sdkKey: route.sdkKey,
        revision: compiled.revision,
        visitorId: visitor.id,
        experimentId: arm.holdoutId,
        variationId: arm.variationId,
        timestamp,
        source: "edge",
        dims,
      });
  };
  const queuePageviews = (): void => {
    queueHoldout();
    if (!tracking) return;
    const timestamp = Date.now();
    for (const event of pageviewEvents) {
      events.push({
        v: 1,
        type: "conversion",
        uuid: crypto.randomUUID(),
        sdkKey: route.sdkKey,
        revision: compiled.revision,
        visitorId: visitor.id,
        eventId: event.id,
        eventKey: event.key,
        timestamp,
        source: "edge",
      });
    }
  };
  /**
   * One sendBatch in waitUntil; after `after` settles (the page has streamed), so that queueing
   * never competes with the page for the isolate's time — but never later than
   * EVENTS_FLUSH_DEADLINE_MS, so a visitor who leaves mid-page still counts. A refusing queue is
   * retried, then the events are spilled to R2 for the scheduled re-queue (`sendEvents`).
   */
  const flushEvents = (after?: Promise<void>): void => {
    if (events.length === 0) return;
    const send = () => sendEvents(env, events);
    ctx.waitUntil(after === undefined ? send() : settledOrDeadline(after).then(send));
  };
  const withVisitorHeaders = (response: Response, bootstrapped = false): Response => {
    const out = new Response(response.body, response);
    for (const cookie of setCookies) out.headers.append("set-cookie", cookie);
    if (route.exposeDecisions && decisionsHeader !== "")
      out.headers.set(DECISIONS_HEADER, decisionsHeader);
    if (
      bootstrapped ||
      pageDecisions.length > 0 ||
      (flags !== null && flags.decisions.length > 0)
    ) {
      // The body differs per visitor (the bootstrap carries their id), per decision and per
      // flag (the origin saw x-ss-flags): no shared cache may keep it, and the origin's
      // validators no longer describe it.
      out.headers.delete("etag");
      out.headers.delete("last-modified");
      out.headers.set("cache-control", privateCacheControl(response.headers.get("cache-control")));
      // Headers aimed at CDNs (RFC 9213) would override `private` in a shared cache downstream.
      for (const name of CDN_CACHE_HEADERS) out.headers.delete(name);
      const vary = out.headers.get("vary");
      if (!vary || !/\bcookie\b/i.test(vary))
        out.headers.set("vary", vary ? `${vary}, Cookie` : "Cookie");
    }
    return out;
  };

  // Split URL, redirect mode: the visitor is sent to the variation's URL; that is the experience.
  if (redirect) {
    queueImpressions(
      pageDecisions.filter((d) => d.decision.experimentId === redirect.experimentId),
    );
    queueHoldout();
    flushEvents();
    return withVisitorHeaders(
      new Response(null, {
        status: 302,
        headers: { location: redirect.location, "cache-control": "private, no-store" },
      }),
    );
  }

  // Cached variants (docs/caching.md): the same page for the same decisions, flags and datafile
  // is served from the Cache API; previews never read or write it.
  let cacheKey: Request | null = null;
  /** Set when this request is the one fetching its variant for the others (see below). */
  let releaseLeader: ((stored: boolean) => void) | null = null;
  let leaderHandedOff = false;
  if (route.cacheVariants && !previewing && requestRefusesCache(request) === null) {
    try {
      cacheKey = await variantCacheKey({
        url,
        revision: compiled.revision,
        datafileTag: entry.etag,
        route: `${route.pattern} ${route.origin ?? ""}`,
        // Absent only where the binding is not configured (a hand-written config): then the
        // format version alone separates code changes.
        codeVersion: (env.CF_VERSION_METADATA as WorkerVersionMetadata | undefined)?.id ?? "",
        decisions: pageDecisions.map((d) => [d.candidate.experiment.id, d.decision.variationId]),
        flags: flags === null ? null : flags.header,
      });
      let hit = await matchVariant(cacheKey);
      // Coalescing (src/edge/miss-coalescer.ts): while another request of this isolate fetches
      // this variant of a page known to be cacheable, wait for its copy rather than ask the
      // origin again.
      const page = `${route.pattern} ${route.origin ?? ""} ${url.href}`;
      const pending = hit === null ? missCoalescer.pendingFetch(cacheKey.url, page) : null;
      if (pending !== null) {
        const stored = await settledOrTimeout(pending, missCoalescer.waitMs);
        hit = await matchVariant(cacheKey);
        if (hit === null && stored === true) missCoalescer.storedButNotFound();
      }
      if (hit === null) releaseLeader = missCoalescer.lead(cacheKey.url, page);
      if (hit !== null) {
        let streamed: (() => void) | undefined;
        const pageDone = new Promise<void>((resolve) => (streamed = resolve));
        const nonce =
          nonceFromCsp(hit.response.headers.get("content-security-policy")) ?? undefined;
        const bootstrapHtml = renderPageBootstrap(bootstrap, nonce);
        const whole = await spliceBootstrapWhole(hit, bootstrapHtml);
        let body: Blob | ReadableStream<Uint8Array>;
        if (whole !== null) {
          body = whole;
          streamed?.();
        } else {
          body = spliceBootstrap(hit.response.body!, hit.marker, bootstrapHtml, streamed, (work) =>
            ctx.waitUntil(work),
          );
        }
        queueImpressions(pageDecisions);
        if (flags !== null) queueFlagImpressions(flags.impressions);
        queuePageviews();
        flushEvents(pageDone);
        const out = withVisitorHeaders(new Response(body, hit.response), true);
        out.headers.set(VARIANT_CACHE_HEADER, "hit");
        return out;
      }
    } catch (error) {
      console.error("splitstream: variant cache lookup failed; fetching the origin", error);
    }
  }

  try {
    return await fetchAndRewrite();
  } finally {
    // Unless the copy is being stored (then the store releases it), waiting visitors go on now.
    if (!leaderHandedOff) releaseLeader?.(false);
  }

  async function fetchAndRewrite(): Promise<Response> {
    const target = rewriteTo ?? originUrlFor(route, url);
    const forwarded = originRequest(request, target, {
      [VISITOR_HEADER]: visitor.id,
      [DECISIONS_HEADER]: decisionsHeader,
      [REVISION_HEADER]: formatRevisionHeader(compiled.revision),
      // Absent only when deciding the flags failed (the origin then knows nothing about them).
      ...(flags === null ? {} : { [FLAGS_HEADER]: flags.header }),
    });
    const origin = await fetchOrigin(forwarded, route);

    // Origin errors, redirects and non-HTML: streamed untouched.
    if (origin.status !== 200 || !isHtml(origin)) return origin;
    try {
      let streamed: (() => void) | undefined;
      const pageDone = new Promise<void>((resolve) => (streamed = resolve));
      let body = origin;
      let cacheStatus: string | null = null;
      if (request.method === "GET") {
        // Rendered here, once, only for a page that gets it; under a nonce-based
        // Content-Security-Policy everything injected carries the page's nonce.
        const nonce = nonceFromCsp(origin.headers.get("content-security-policy")) ?? undefined;
        const lifetime = cacheKey === null ? null : cacheLifetime(request, origin);
        if (cacheKey !== null && lifetime !== null && "ttl" in lifetime) {
          // Rewritten once with a marker where the bootstrap goes: one branch is stored, the
          // other gets this visitor's bootstrap at the marker.
          const marker = newBootstrapMarker();
          const rewritten = rewriteHtml(origin, { changes, bootstrap: marker, nonce });
          if (rewritten !== origin && rewritten.body !== null) {
            const [forVisitor, forCache] = rewritten.body.tee();
            const key = cacheKey;
            // Content-Length is the page's size only when the origin did not compress it (fetch
            // decompresses and keeps the header): a gzip size says nothing about memory.
            const originLength = Number(origin.headers.get("content-length") ?? Number.NaN);
            const encoding = (origin.headers.get("content-encoding") ?? "identity").toLowerCase();
            const storeWhole =
              encoding === "identity" &&
              Number.isSafeInteger(originLength) &&
              originLength <= WHOLE_SPLICE_MAX_BYTES;
            const release = releaseLeader;
            leaderHandedOff = true;
            ctx.waitUntil(
              (async () => {
                // A page of known, bounded size is stored whole, so that hits can read it whole.
                const body = storeWhole ? await new Response(forCache).arrayBuffer() : forCache;
                return putVariant(key, storedVariant(body, rewritten, marker, lifetime.ttl));
              })()
                .catch((error: unknown) => {
                  console.error("splitstream: storing a cached variant failed", error);
                  return false;
                })
                .then((stored) => release?.(stored)),
            );
            body = new Response(
              spliceBootstrap(
                forVisitor,
                marker,
                renderPageBootstrap(bootstrap, nonce),
                streamed,
                (work) => ctx.waitUntil(work),
              ),
              rewritten,
            );
            cacheStatus = "miss";
          } else {
            // The rewriter left the page as it was (a charset it cannot parse): as below.
            body = rewritten;
            streamed?.();
          }
        } else {
          if (lifetime !== null && "uncacheable" in lifetime) cacheStatus = "uncacheable";
          body = rewriteHtml(origin, {
            changes,
            bootstrap: renderPageBootstrap(bootstrap, nonce),
            nonce,
            onEnd: streamed,
          });
        }
        queueImpressions(pageDecisions);
        if (flags !== null) queueFlagImpressions(flags.impressions);
        queuePageviews();
        flushEvents(pageDone);
      }
      const out = withVisitorHeaders(body, body !== origin);
      if (cacheStatus !== null) out.headers.set(VARIANT_CACHE_HEADER, cacheStatus);
      return out;
    } catch (error) {
      console.error("splitstream: rewriting failed; serving the origin unchanged", error);
      return origin;
    }
  }
}

/** The longest a visitor waits for another request's copy of the same variant. */
export const COALESCE_WAIT_MS = 3000;

/** This isolate's coalescing of cached-variant misses. */
const missCoalescer = new MissCoalescer(COALESCE_WAIT_MS);

/** What `promise` gave, or undefined once `ms` passed. */
function settledOrTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A stored variant for `key`, or null (a miss). A Cache API failure throws: the caller logs it. */
async function matchVariant(key: Request): Promise<CachedVariant | null> {
  const hit = await caches.default.match(key);
  return hit === undefined ? null : readCachedVariant(hit);
}

/**
 * Stores a variant: true once stored; false (logged) when the Cache API refused it or the origin's
 * body broke off.
 */
async function putVariant(key: Request, stored: Response): Promise<boolean> {
  try {
    await caches.default.put(key, stored);
    return true;
  } catch (error) {
    console.error("splitstream: storing a cached variant failed", error);
    return false;
  }
}

/** The longest a page waits for a cold (not yet cached) datafile read before passing through. */
export const EDGE_COLD_KV_WAIT_MS = 1000;

/** The longest the edge holds a page's events back waiting for the page to finish streaming. */
export const EVENTS_FLUSH_DEADLINE_MS = 10_000;

/** `promise` settled (fulfilled or not), or the events' deadline passed, whichever comes first. */
async function settledOrDeadline(promise: Promise<void>): Promise<void> {
  await settledOrTimeout(
    promise.catch(() => undefined),
    EVENTS_FLUSH_DEADLINE_MS,
  );
}

/** Everything decided before the origin is fetched; null means "pass through untouched". */
async function decidePage(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  route: RouteConfig,
  url: URL,
) {
  // A visitor never waits long for a cold KV read: past EDGE_COLD_KV_WAIT_MS the page passes
  // through and the read goes on in the background for the next requests.
  const entry = await getDatafile(env, ctx, route.sdkKey, { coldWaitMs: EDGE_COLD_KV_WAIT_MS });
  if (!entry) return null;
  const compiled: CompiledDatafile = entry.compiled;

  const cookies = parseCookies(request.headers.get("cookie"));
  const visitor: VisitorState = readVisitor(request, cookies);
  // Bots (by default), opted-out and GPC visitors, and visitors without required consent get
  // the original page: no cookies, no events — and only the flags' delivery rules.
  if (
    (visitor.bot && route.botPolicy === "original") ||
    visitor.optedOut ||
    (visitor.gpc && route.gpcPolicy === "respect") ||
    !hasConsent(route.consent, request.headers.get("cookie"))
  )
    return untrackedFlags(request, url, cookies, visitor, compiled);
  const secure = url.protocol === "https:";
  const cookieBase = { domain: route.cookieDomain, secure, httpOnly: true };
  const setCookies: string[] = [];
  const canSetCookies = !visitor.bot;

  // Preview: a signed link sets ss_preview for this browser; the cookie then forces variations.
  let previewToken = visitor.previewToken;
  const linkToken = url.searchParams.get(PREVIEW_QUERY_PARAM);
  if (linkToken === "off") {
    previewToken = null;
    setCookies.push(deleteCookie("ss_preview", cookieBase));
  } else if (linkToken) {
    previewToken = linkToken;
  }
  let preview: Record<string, string> | undefined;
  if (previewToken && env.SIGNING_KEY) {
    const grant = await verifyPreview(env.SIGNING_KEY, previewToken, Date.now());
    if (grant && grant.sdkKey === route.sdkKey) {
      preview = grant.variations;
      if (linkToken && linkToken !== "off") {
        const maxAgeSeconds = Math.max(1, Math.floor((grant.expiresAt - Date.now()) / 1000));
        setCookies.push(serializeCookie("ss_preview", linkToken, { ...cookieBase, maxAgeSeconds }));
      }
    }
  }
  // Previews are for checking, not for the results: they are never counted.
  const tracking = !visitor.bot && preview === undefined;

  // The preview token is a credential: keep it out of url/query.* attributes.
  const attributeUrl = url.searchParams.has(PREVIEW_QUERY_PARAM) ? withoutPreviewParam(url) : url;
  const plan = planPage(compiled, attributeUrl.href);
  // Pages without experiments skip the per-request attribute work entirely (unless flags need it).
  const attributes =
    plan.candidates.length === 0 &&
    compiled.featureFlags.length === 0 &&
    !compiled.holdouts.some((h) => h.running)
      ? {}
      : buildRequestAttributes(request, attributeUrl, cookies, visitor, new Date());
  const prepared = prepareVisitor(compiled, {
    visitorId: visitor.id,
    attributes,
    sticky: visitor.sticky,
    preview,
  });

  const pageDecisions: PageDecision[] = [];
  for (const candidate of plan.candidates) {
    const decision = decidePrepared(candidate.experiment, prepared);
    if (decision.variationId !== null && decision.variationKey !== null) {
      pageDecisions.push({ candidate, decision: decision as PageDecision["decision"] });
    }
  }

  // Cookies: the visitor id (new, or migrated from optimizelyEndUserId) and sticky decisions.
  const maxAgeSeconds = route.cookieMaxAgeDays * 86400;
  if (canSetCookies && visitor.idSource !== "ss_vid") {
    setCookies.push(serializeCookie("ss_vid", visitor.id, { ...cookieBase, maxAgeSeconds }));
  }
  const sticky = { ...visitor.sticky };
  let stickyChanged = false;
  for (const { decision } of pageDecisions) {
    if (decision.reason === "preview" || decision.experimentId === null) continue;
    if (sticky[decision.experimentId] !== decision.variationId) {
      sticky[decision.experimentId] = decision.variationId;
      stickyChanged = true;
    }
  }
  const flags = flagsFor(compiled, prepared, sticky, preview);
  if (flags?.stickyChanged) stickyChanged = true;
  if (canSetCookies && stickyChanged) {
    setCookies.push(
      serializeCookie(STICKY_COOKIE, encodeSticky(sticky, plan.runningIds), {
        ...cookieBase,
        maxAgeSeconds,
      }),
    );
  }

  // Split URL tests: the first immediate decision whose variation redirects decides the page.
  let redirect: { experimentId: string; location: string } | null = null;
  let rewriteTo: URL | null = null;
  const changes: Change[] = [];
  for (const { candidate, decision } of pageDecisions) {
    if (candidate.activation !== "immediate") continue;
    for (const change of changesFor(candidate, decision.variationId, plan.matchedPageIds)) {
      if (change.type !== "redirect") {
        changes.push(change);
        continue;
      }
      if (redirect || rewriteTo) continue;
      const destination = destinationFor(change, url);
      if (!destination || destination.href === url.href) continue;
      if (change.mode === "rewrite") {
        // Fetched from the origin directly, never through the edge again: no loop is possible.
        rewriteTo = destination.host === url.host ? originUrlFor(route, destination) : destination;
      } else if (!candidate.experiment.pages.some((p) => p.matches(destination.href))) {
        // No redirect loops: never send a visitor to another page of the same test.
        redirect = { experimentId: candidate.experiment.id, location: destination.href };
      }
    }
  }

  const bootstrap: BootstrapData = {
    revision: compiled.revision,
    sdkKey: route.sdkKey,
    visitorId: visitor.id,
    decisions: pageDecisions.map(({ candidate, decision }) => ({
      experimentId: candidate.experiment.id,
      experimentKey: decision.experimentKey,
      variationId: decision.variationId,
      variationKey: decision.variationKey,
      activation: candidate.activation,
      pageIds: candidate.pageIds,
    })),
    tracking,
    optimizelyShim: route.optimizelyShim,
    cookieDomain: route.cookieDomain,
    cookieMaxAgeDays: route.cookieMaxAgeDays,
  };
  if (flags !== null && compiled.featureFlags.length > 0) bootstrap.flags = flags.decisions;
  return {
    untracked: false as const,
    // A preview link or cookie: the page is for checking, never read from or written to the cache.
    previewing: previewToken !== null || linkToken !== null,
    flags,
    entry,
    visitor,
    tracking,
    setCookies,
    pageDecisions,
    // Pageview goals of the matched pages (counted once the page is really served).
    pageviewEvents: plan.pageviewEvents,
    // The visitor's group in the environment's holdout (docs/holdouts.md "Results").
    holdoutArms: holdoutArms(compiled, prepared),
    redirect,
    rewriteTo,
    bootstrap,
    changes,
  };
}

/** What the tracked path sends of the flags; null when deciding them failed (logged). */
interface EdgeFlags {
  decisions: FlagDecision[];
  /** `x-ss-flags` */
  header: string;
  /** A/B-rule decisions, queued as impressions when the page is served and tracked */
  impressions: FlagImpression[];
  /** an A/B-rule decision was added to `sticky` (ss_dec) */
  stickyChanged: boolean;
}

/**
 * The flags of a tracked (or `bot_policy = "decide"`) visitor: A/B rules included, decided like the
 * page's experiments with the same prepared visitor; their A/B-rule decisions go into `sticky`.
 * Fails open: an error is logged and gives null.
 */
function flagsFor(
  compiled: CompiledDatafile,
  prepared: ReturnType<typeof prepareVisitor>,
  sticky: Record<string, string>,
  preview: Record<string, string> | undefined,
): EdgeFlags | null {
  try {
    const decisions = decideFlags(compiled, prepared);
    return {
      decisions,
      header: formatFlagsHeader(decisions),
      impressions: flagImpressions(decisions),
      stickyChanged: recordFlagSticky(sticky, decisions, preview),
    };
  } catch (error) {
    console.error("splitstream: deciding feature flags failed; the request goes on without", error);
    return null;
  }
}

/**
 * A visitor the edge does not track (docs/visitors.md "Feature flags"): when the datafile has
 * flags, they are decided with their delivery rules only (`experimentRules: false`: no A/B rule,
 * so no test participation, no sticky entry, no impression) and sent to the origin in
 * `x-ss-flags`; the page itself is the origin's, untouched, without cookies. Null (a plain
 * pass-through) when there are no flags, and when deciding them fails (logged).
 */
function untrackedFlags(
  request: Request,
  url: URL,
  cookies: Map<string, string>,
  visitor: VisitorState,
  compiled: CompiledDatafile,
): { untracked: true; originHeaders: Record<string, string> } | null {
  try {
    if (compiled.featureFlags.length === 0) return null;
    const attributeUrl = url.searchParams.has(PREVIEW_QUERY_PARAM) ? withoutPreviewParam(url) : url;
    const prepared = prepareVisitor(compiled, {
      visitorId: visitor.id,
      attributes: buildRequestAttributes(request, attributeUrl, cookies, visitor, new Date()),
    });
    const decisions = decideFlags(compiled, prepared, { experimentRules: false });
    return {
      untracked: true,
      originHeaders: {
        [FLAGS_HEADER]: formatFlagsHeader(decisions),
        [REVISION_HEADER]: formatRevisionHeader(compiled.revision),
      },
    };
  } catch (error) {
    console.error(
      "splitstream: deciding feature flags failed; serving the origin unchanged",
      error,
    );
    return null;
  }
}

/** `window.__ss` plus the client script (`/_ss/client.js?v=<hash>`), with the CSP nonce if any. */
function renderPageBootstrap(data: BootstrapData, nonce?: string): string {
  return renderBootstrap(data, { clientScriptSrc: CLIENT_SCRIPT_SRC, nonce });
}
