/**
 * Tools for the fault tests (test/reliability, docs/reliability.md): a site with three running
 * immediate experiments and a pageview goal, page views and browser conversions through the whole
 * Worker (src/index.ts) with bindings the test can break, a queue that records (or refuses) what
 * it is sent, delivery of recorded events to the real consumer, a client-side ledger of what must
 * be counted, and the D1 aggregates to compare it with.
 *
 * The ledger is built only from what the client saw: the `x-ss-decisions` header of each 200 page
 * (the visitor's variations) and each 204 of `POST /_ss/events`. A visitor counts once per
 * experiment in the variation of their pages; a conversion (pageview goal or purchase) counts for
 * every experiment the visitor was exposed to at that moment (the tests act one visitor at a time,
 * so client order is time order).
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
import type { Env } from "../../src/env";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";
import worker from "../../src/index";

export const SITE = "https://shop.example.com";
export const ORIGIN = "https://origin.example.com";
export const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

/** The real Date.now, for measuring while a test has moved the clock. */
export const realNow = Date.now.bind(Date);

/** A fresh sdkKey per test: every table and KV key is keyed by it, so tests never see each other. */
export const newSdkKey = (name: string): string => `rel-${name}-${crypto.randomUUID().slice(0, 8)}`;

// ------------------------------------------------------------------------------ the datafile

export const EXP = { hero: "r1001", cta: "r1002", promo: "r1003" } as const;
export const EVENT = { productView: "r_ev_pv", purchase: "r_ev_buy" } as const;

/**
 * Three running immediate experiments: `hero` on the home and product pages (2 variations),
 * `cta` on product pages (3 variations), `promo` on the home page for 80 % of visitors (so some
 * visitors are in no variation and must not be counted); a pageview goal on product pages and a
 * custom `purchase` event. `headline` is the text variation `bold` of `hero` writes into the h1.
 */
export function siteDatafile(sdkKey: string, revision: string, headline = "Built to last") {
  const variation = (id: string, key: string) => ({ id, key });
  const experiment = (id: string, key: string, variations: string[], split: number[]) => ({
    id,
    key,
    status: "Running",
    layerId: `layer_${id}`,
    variations: variations.map((v) => variation(`${id}_${v}`, v)),
    trafficAllocation: variations.map((v, i) => ({ entityId: `${id}_${v}`, endOfRange: split[i] })),
    audienceIds: [],
    forcedVariations: {},
  });
  return {
    version: "4",
    accountId: "77",
    projectId: "770",
    revision,
    sdkKey,
    anonymizeIP: true,
    botFiltering: true,
    attributes: [],
    audiences: [],
    typedAudiences: [],
    events: [
      { id: EVENT.productView, key: "product_view", experimentIds: [EXP.hero, EXP.cta] },
      { id: EVENT.purchase, key: "purchase", experimentIds: [EXP.hero, EXP.cta, EXP.promo] },
    ],
    experiments: [
      experiment(EXP.hero, "hero", ["control", "bold"], [5000, 10000]),
      experiment(EXP.cta, "cta", ["control", "green", "big"], [3333, 6666, 10000]),
      experiment(EXP.promo, "promo", ["none", "banner"], [4000, 8000]),
    ],
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: {
      pages: [
        {
          id: "r_home",
          key: "home",
          activation: "immediate",
          conditions: ["or", { match: "simple", value: `${SITE}/` }],
        },
        {
          id: "r_product",
          key: "product",
          activation: "immediate",
          conditions: [
            "or",
            { match: "regex", value: "^https://shop\\.example\\.com/products/\\d+$" },
          ],
        },
      ],
      experiments: [
        {
          id: EXP.hero,
          type: "ab",
          pageIds: ["r_home", "r_product"],
          metrics: [{ eventId: EVENT.purchase, aggregator: "unique" }],
          variations: [
            { id: `${EXP.hero}_control`, changes: [] },
            {
              id: `${EXP.hero}_bold`,
              changes: [{ type: "attribute", selector: "h1", attributes: { text: headline } }],
            },
          ],
        },
        {
          id: EXP.cta,
          type: "ab",
          pageIds: ["r_product"],
          metrics: [{ eventId: EVENT.productView, aggregator: "count" }],
          variations: ["control", "green", "big"].map((v) => ({
            id: `${EXP.cta}_${v}`,
            changes:
              v === "control"
                ? []
                : [{ type: "attribute", selector: "#buy", attributes: { addClass: `cta-${v}` } }],
          })),
        },
        {
          id: EXP.promo,
          type: "ab",
          pageIds: ["r_home"],
          metrics: [{ eventId: EVENT.purchase, aggregator: "unique" }],
          variations: [
            { id: `${EXP.promo}_none`, changes: [] },
            {
              id: `${EXP.promo}_banner`,
              changes: [
                {
                  type: "insert_html",
                  selector: "body",
                  position: "prepend",
                  html: '<div id="promo">Free shipping</div>',
                },
              ],
            },
          ],
        },
      ],
      events: [{ id: EVENT.productView, type: "pageview", pageId: "r_product" }],
    },
  };
}

/** experimentKey → id and variationKey → id, for turning x-ss-decisions into D1 keys. */
const EXPERIMENT_IDS: Record<string, string> = { hero: EXP.hero, cta: EXP.cta, promo: EXP.promo };

export async function publish(sdkKey: string, datafile: unknown): Promise<void> {
  await env.DATAFILES.put(
    `datafiles/${sdkKey}`,
    typeof datafile === "string" ? datafile : JSON.stringify(datafile),
  );
}

// ------------------------------------------------------------------------------ the origin

export const PAGE = (title: string) =>
  `<!doctype html><html><head><title>${title}</title></head><body><h1>Welcome</h1><p>Trail gear.</p><a id="buy" href="/cart">Buy</a></body></html>`;

/** The healthy shop: HTML for `/` and `/products/N`, 404 otherwise. */
export function shop(request: Request): Response {
  const path = new URL(request.url).pathname;
  if (path === "/" || /^\/products\/\d+$/.test(path))
    return new Response(PAGE(path), { headers: { "content-type": "text/html; charset=utf-8" } });
  return new Response("not found", { status: 404 });
}

// ------------------------------------------------------------------------------ the queue

/**
 * A stand-in EVENTS binding: records every message it accepts; `refuse` makes it throw (all
 * calls while true, or the next n calls when a number).
 */
export class RecordingQueue {
  readonly sent: EventMessage[] = [];
  calls = 0;
  refused = 0;
  refuse: boolean | number = false;

  readonly binding = {
    send: async (body: EventMessage) => this.accept([body]),
    sendBatch: async (messages: Iterable<MessageSendRequest<EventMessage>>) =>
      this.accept([...messages].map((m) => m.body)),
    metrics: async () => ({ backlogCount: 0, backlogBytes: 0 }),
  } as unknown as Queue;

  private accept(bodies: EventMessage[]): void {
    this.calls++;
    if (this.refuse === true || (typeof this.refuse === "number" && this.refuse > 0)) {
      if (typeof this.refuse === "number") this.refuse--;
      this.refused++;
      throw new Error("Queue send failed: simulated outage");
    }
    // What a real queue delivers: the structured-cloned JSON body.
    for (const body of bodies) this.sent.push(JSON.parse(JSON.stringify(body)) as EventMessage);
  }

  /** The recorded messages, and forgets them. */
  take(): EventMessage[] {
    return this.sent.splice(0);
  }
}

// ------------------------------------------------------------------------------ the site

/** `env` with ROUTES for shop.example.com → sdkKey, and any binding replaced. */
export function siteEnv(
  sdkKey: string,
  overrides: Partial<Env> = {},
  route: Record<string, unknown> = {},
): Env {
  return {
    ...env,
    ROUTES: JSON.stringify([
      { pattern: "shop.example.com/*", sdk_key: sdkKey, origin: ORIGIN, ...route },
    ]),
    ...overrides,
  } as Env;
}

export interface Visit {
  status: number;
  headers: Headers;
  body: string;
  /** experimentKey → variationKey, from x-ss-decisions. */
  decisions: Map<string, string>;
  /** Request → response headers, real ms (before the body is read). */
  responseMs: number;
}

/**
 * One request through the Worker's fetch handler with `target` as env; the body is read, then the
 * request's waitUntil work (impressions, background KV refreshes) is awaited.
 */
export async function request(
  target: Env,
  path: string,
  init: RequestInit & { visitorId?: string } = {},
): Promise<Visit> {
  const headers = new Headers(init.headers);
  if (!headers.has("user-agent")) headers.set("user-agent", BROWSER_UA);
  headers.set("accept-encoding", "identity");
  if (init.visitorId) headers.set("cookie", `ss_vid=${init.visitorId}`);
  const ctx = createExecutionContext();
  const started = realNow();
  const response = await worker.fetch(
    new Request(`${SITE}${path}`, { ...init, headers, redirect: "manual" }) as Request<
      unknown,
      IncomingRequestCfProperties
    >,
    target,
    ctx,
  );
  const responseMs = realNow() - started;
  const body = await response.text();
  await waitOnExecutionContext(ctx);
  return {
    status: response.status,
    headers: response.headers,
    body,
    decisions: new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions"))),
    responseMs,
  };
}

/** A browser conversion (`POST /_ss/events`, one purchase) for the visitor. */
export function purchase(target: Env, visitorId: string, revenue = 1299): Promise<Visit> {
  return request(target, "/_ss/events", {
    method: "POST",
    visitorId,
    headers: { "content-type": "text/plain;charset=UTF-8" },
    body: JSON.stringify({ events: [{ key: "purchase", revenue }] }),
  });
}

// ------------------------------------------------------------------------------ the ledger

/** What must be counted, from what the client saw (see the module comment). */
export class Ledger {
  private readonly exposures = new Map<string, Map<string, string>>();
  readonly visitors: Record<string, number> = {};
  readonly events: Record<string, number> = {};

  /** A 200 page for `visitorId`: its decisions, and the pageview goals it fired. */
  page(visitorId: string, visit: Visit, pageviewGoals: string[] = []): void {
    if (visit.status !== 200) return;
    const mine = this.exposures.get(visitorId) ?? new Map<string, string>();
    this.exposures.set(visitorId, mine);
    for (const [experimentKey, variationKey] of visit.decisions) {
      const experimentId = EXPERIMENT_IDS[experimentKey]!;
      const variationId = `${experimentId}_${variationKey}`;
      const known = mine.get(experimentId);
      if (known === undefined) {
        mine.set(experimentId, variationId);
        this.visitors[`${experimentId}/${variationId}`] =
          (this.visitors[`${experimentId}/${variationId}`] ?? 0) + 1;
      } else {
        expect(known, `${visitorId} keeps their variation of ${experimentKey}`).toBe(variationId);
      }
    }
    for (const eventId of pageviewGoals) this.conversion(visitorId, eventId);
  }

  /** An accepted conversion: counted for every experiment the visitor is exposed to now. */
  conversion(visitorId: string, eventId: string): void {
    for (const [experimentId, variationId] of this.exposures.get(visitorId) ?? []) {
      const key = `${experimentId}/${variationId}/${eventId}`;
      this.events[key] = (this.events[key] ?? 0) + 1;
    }
  }

  /** Product page views (200) fire the pageview goal. */
  productPage(visitorId: string, visit: Visit): void {
    this.page(visitorId, visit, [EVENT.productView]);
  }

  get totalVisitors(): number {
    return Object.values(this.visitors).reduce((a, b) => a + b, 0);
  }
}

// ------------------------------------------------------------------------------ the consumer and D1

/** Delivers `messages` to the real consumer in batches of `size`; every batch must be acked. */
export async function consume(
  messages: EventMessage[],
  target: Env = env as Env,
  size = 100,
): Promise<void> {
  for (let i = 0; i < messages.length; i += size) {
    const batch = messageBatch(messages.slice(i, i + size));
    await handleEventBatch(batch, target);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.ackAll, "batch acked").toBe(true);
  }
}

/** A queue batch of `messages` with fresh message ids (or `ids`), as the queue delivers them. */
export function messageBatch(
  messages: EventMessage[],
  ids?: string[],
  attempts = 1,
): MessageBatch<unknown> {
  return createMessageBatch(
    "splitstream-events",
    messages.map((body, i) => ({
      id: ids?.[i] ?? `m-${crypto.randomUUID()}`,
      timestamp: new Date(),
      attempts,
      body,
    })),
  );
}

/** The D1 aggregates of sdkKey: visitors per experiment/variation, events per …/event (all days, all revisions). */
export async function counted(
  sdkKey: string,
): Promise<{ visitors: Record<string, number>; events: Record<string, number> }> {
  const visitors: Record<string, number> = {};
  const v = await env.DB.prepare(
    `SELECT experiment_id AS e, variation_id AS v, SUM(visitors) AS n FROM variation_daily
     WHERE sdk_key = ? GROUP BY 1, 2`,
  )
    .bind(sdkKey)
    .all<{ e: string; v: string; n: number }>();
  for (const row of v.results) visitors[`${row.e}/${row.v}`] = Number(row.n);
  const events: Record<string, number> = {};
  const m = await env.DB.prepare(
    `SELECT experiment_id AS e, variation_id AS v, event_id AS ev, SUM(events) AS n FROM metric_daily
     WHERE sdk_key = ? GROUP BY 1, 2, 3`,
  )
    .bind(sdkKey)
    .all<{ e: string; v: string; ev: string; n: number }>();
  for (const row of m.results) events[`${row.e}/${row.v}/${row.ev}`] = Number(row.n);
  return { visitors, events };
}

/** D1 equals the ledger exactly (and the ledger is not trivially empty). */
export async function expectExactCounts(sdkKey: string, ledger: Ledger): Promise<void> {
  expect(ledger.totalVisitors, "the test produced visitors").toBeGreaterThan(0);
  expect(await counted(sdkKey)).toEqual({ visitors: ledger.visitors, events: ledger.events });
}

// ------------------------------------------------------------------------------ time

/**
 * Moves Date.now forward (the datafile store's freshness, event timestamps) without waiting.
 * Undone by vi.restoreAllMocks().
 */
export function movableClock(): { advance(ms: number): void } {
  let offset = 0;
  vi.spyOn(Date, "now").mockImplementation(() => realNow() + offset);
  return {
    advance(ms: number) {
      offset += ms;
    },
  };
}
