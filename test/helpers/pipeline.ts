/**
 * End-to-end tools for the event pipeline (test/e2e): the whole Worker (src/index.ts) on a route
 * bound to one project's sdkKey, a RequestHandler that lets the official Optimizely SDK load its
 * datafile from that Worker, an independent model of what the results API must count, and a
 * poll of the results API until the real local queue has fed the real consumer.
 *
 * Nothing here reads the consumer's tables or calls its code: what goes in is HTTP requests, what
 * comes out is `GET /_ss/api/v1/experiments/{id}/results`.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { RequestHandler } from "@optimizely/optimizely-sdk/universal";
import worker from "../../src/index";
import { apiJson } from "./api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

/** One ROUTES entry (docs/config.md), as wrangler.toml would hold it. */
export interface RouteEntry {
  pattern: string;
  sdk_key: string;
  origin?: string;
  [key: string]: unknown;
}

export type WorkerFetch = (input: string, init?: RequestInit) => Promise<Response>;

/** Statuses whose responses cannot have a body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * `fetch` through the Worker's own fetch handler with `routes` as its ROUTES (everything else —
 * KV, D1, the EVENTS queue, R2 — is the test's real local bindings). Each call reads the whole
 * body, then waits for the request's `ctx.waitUntil` work (the edge queues its impressions after
 * the page has streamed), so when it resolves, whatever the request queued is on the queue.
 */
export function routedWorker(routes: RouteEntry[]): WorkerFetch {
  const routedEnv = { ...env, ROUTES: JSON.stringify(routes) };
  return async (input, init) => {
    const ctx = createExecutionContext();
    const request = new Request(input, init) as Request<unknown, IncomingRequestCfProperties>;
    const response = await worker.fetch(request, routedEnv, ctx);
    const body = await response.text();
    await waitOnExecutionContext(ctx);
    return new Response(NULL_BODY.has(response.status) ? null : body, {
      status: response.status,
      headers: response.headers,
    });
  };
}

/** A RequestHandler for the Optimizely SDK that sends its HTTP requests to `fetcher`. */
export function sdkRequestHandler(fetcher: WorkerFetch): RequestHandler {
  return {
    makeRequest(url, headers, method, data) {
      const init: RequestInit & { headers: Record<string, string> } = { method, headers: {} };
      for (const [name, value] of Object.entries(headers))
        if (value !== undefined) init.headers[name] = value;
      if (data !== undefined) init.body = data;
      const responsePromise = fetcher(url, init).then(async (response) => ({
        statusCode: response.status,
        body: await response.text(),
        headers: Object.fromEntries(response.headers),
      }));
      return { abort: () => {}, responsePromise };
    },
  };
}

/** `x-ss-decisions` → experimentKey → variationKey (docs/visitors.md), parsed here independently. */
export function decisionsOf(response: Response): Map<string, string> {
  const out = new Map<string, string>();
  const header = response.headers.get("x-ss-decisions");
  if (!header) return out;
  for (const pair of header.split(", ")) {
    const [key, value] = pair.split("=");
    if (key && value) out.set(decodeURIComponent(key), decodeURIComponent(value));
  }
  return out;
}

/** name → value of the response's Set-Cookie headers. */
export function setCookiesOf(response: Response): Map<string, string> {
  const out = new Map<string, string>();
  for (const cookie of response.headers.getSetCookie()) {
    const [pair] = cookie.split(";");
    const at = pair!.indexOf("=");
    out.set(pair!.slice(0, at).trim(), pair!.slice(at + 1).trim());
  }
  return out;
}

// ------------------------------------------------------------------------------ counts

/** Per metric and variation, what results report (docs/api.md "Results"). */
export interface MetricCells {
  converters: number;
  events: number;
  revenueSum: number;
  revenueSumSq: number;
  valueSum: number;
  valueSumSq: number;
}

/** The counts of one experiment's results, keyed by variation key and metric event key. */
export interface ResultCounts {
  revisions: string[];
  /** variation key → unique visitors */
  visitors: Record<string, number>;
  /** metric event key → variation key → cells */
  metrics: Record<string, Record<string, MetricCells>>;
}

const emptyCells = (): MetricCells => ({
  converters: 0,
  events: 0,
  revenueSum: 0,
  revenueSumSq: 0,
  valueSum: 0,
  valueSumSq: 0,
});

/**
 * What docs/events.md says one experiment's results must count, computed from what each visitor
 * really got and sent, whatever order the events are processed in: a visitor is counted once, in
 * the variation of their earliest impression; a conversion counts for that variation when it came
 * at or after that impression; converters are unique per metric; events, revenue and value (with
 * squares) add up per event; a uuid counts once. `at` values are ms timestamps as the events carry
 * them — or bounds of them (an impression's upper bound, a conversion's lower bound) where only
 * the Worker knows the exact time, which keeps the model on the safe side.
 */
export class ExpectedCounts {
  private readonly exposures = new Map<string, { variation: string; at: number }>();
  private readonly conversions: Array<{
    visitorId: string;
    eventKey: string;
    at: number;
    revenue: number;
    value: number;
  }> = [];
  private readonly uuids = new Set<string>();

  constructor(
    private readonly variationKeys: readonly string[],
    private readonly metricEventKeys: readonly string[],
    private readonly revisions: readonly string[],
  ) {}

  /** A uuid seen before is a duplicate: it changes nothing. */
  private fresh(uuid: string | undefined): boolean {
    if (uuid === undefined) return true;
    if (this.uuids.has(uuid)) return false;
    this.uuids.add(uuid);
    return true;
  }

  impression(visitorId: string, variationKey: string, at: number, uuid?: string): void {
    if (!this.variationKeys.includes(variationKey))
      throw new Error(`unknown variation ${variationKey}`);
    if (!this.fresh(uuid)) return;
    const current = this.exposures.get(visitorId);
    if (!current || at < current.at) this.exposures.set(visitorId, { variation: variationKey, at });
  }

  conversion(
    visitorId: string,
    eventKey: string,
    at: number,
    extra: { revenue?: number; value?: number; uuid?: string } = {},
  ): void {
    if (!this.fresh(extra.uuid)) return;
    this.conversions.push({
      visitorId,
      eventKey,
      at,
      revenue: extra.revenue ?? 0,
      value: extra.value ?? 0,
    });
  }

  counts(): ResultCounts {
    const visitors: Record<string, number> = {};
    for (const key of this.variationKeys) visitors[key] = 0;
    for (const { variation } of this.exposures.values()) visitors[variation]! += 1;
    const metrics: Record<string, Record<string, MetricCells>> = {};
    for (const eventKey of this.metricEventKeys)
      metrics[eventKey] = Object.fromEntries(this.variationKeys.map((v) => [v, emptyCells()]));
    const converted = new Set<string>();
    for (const c of this.conversions) {
      const exposure = this.exposures.get(c.visitorId);
      const byVariation = metrics[c.eventKey];
      if (!exposure || exposure.at > c.at || !byVariation) continue;
      const cell = byVariation[exposure.variation]!;
      const converter = `${c.eventKey}\u0000${c.visitorId}`;
      if (!converted.has(converter)) {
        converted.add(converter);
        cell.converters += 1;
      }
      cell.events += 1;
      cell.revenueSum += c.revenue;
      cell.revenueSumSq += c.revenue * c.revenue;
      cell.valueSum += c.value;
      cell.valueSumSq += c.value * c.value;
    }
    return { revisions: [...this.revisions], visitors, metrics };
  }
}

/** The counts of a results API body (the statistics around them are not looked at). */
export function resultCounts(results: Json): ResultCounts {
  const keyOf = new Map<string, string>(
    (results.variations as Json[]).map((v) => [v.id as string, (v.key ?? v.id) as string]),
  );
  return {
    revisions: results.revisions,
    visitors: Object.fromEntries(
      (results.variations as Json[]).map((v) => [keyOf.get(v.id)!, v.visitors]),
    ),
    metrics: Object.fromEntries(
      (results.metrics as Json[]).map((m) => [
        m.eventKey ?? m.eventId,
        Object.fromEntries(
          (m.variations as Json[]).map((c) => [
            keyOf.get(c.variationId) ?? c.variationId,
            {
              converters: c.converters,
              events: c.events,
              revenueSum: c.revenueSum,
              revenueSumSq: c.revenueSumSq,
              valueSum: c.valueSum,
              valueSumSq: c.valueSumSq,
            },
          ]),
        ),
      ]),
    ),
  };
}

/** JSON with object keys sorted, for order-insensitive equality. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Polls `GET /experiments/{id}/results` until its counts equal `expected` (the local queue
 * delivers a batch when 100 messages are waiting or `max_batch_timeout` has passed) or
 * `timeoutMs` runs out, and returns the last counts read — the caller asserts on them, so a
 * mismatch shows as a diff rather than a timeout.
 */
export async function waitForResultCounts(
  experimentId: string,
  expected: ResultCounts,
  { timeoutMs = 45_000, intervalMs = 250 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<ResultCounts> {
  const want = canonical(expected);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = resultCounts(await apiJson("GET", `/experiments/${experimentId}/results`, 200));
    if (canonical(counts) === want || Date.now() > deadline) return counts;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
