import type { Env } from "../env";
import { datafileStoreStatus, getDatafile, hasDatafileSlot } from "./datafile-store";
import { errorResponse } from "../shared/error-response";
import { loadRouteTable } from "./routes";

export const HEALTH_PATH = "/_ss/health";

/** Lets health load datafiles when the caller has no ExecutionContext to give (the load is awaited anyway). */
const awaitedContext: Pick<ExecutionContext, "waitUntil"> = { waitUntil: () => {} };

/** Days of event_drops counters that health sums up (today and the 6 before, UTC). */
const DROPS_DAYS = 7;

/** What the consumer did not count, per kind and reason (docs/events.md "What is not counted"). */
export interface EventDrops {
  /** First UTC day summed (`yyyy-mm-dd`). */
  since: string;
  /** Archived under rejected/ in R2: `invalid`, `count_failed`. */
  rejected: Record<string, number>;
  /** Valid but over the per-visitor budget: `visitor_daily_cap`. */
  dropped: Record<string, number>;
}

/** Health is public: its D1 read is shared by every request of an isolate for this long. */
const DROPS_TTL_MS = 30_000;
let dropsCache: { at: number; drops: Promise<EventDrops | null> } | null = null;

/**
 * The consumer's event_drops counters of the last DROPS_DAYS days, all sdkKeys (read at most once
 * per DROPS_TTL_MS per isolate, so that public health requests cannot multiply D1 reads); null when
 * D1 cannot answer (health still answers: it is the Worker's liveness).
 */
function eventDrops(db: D1Database, now: number): Promise<EventDrops | null> {
  if (!dropsCache || now - dropsCache.at > DROPS_TTL_MS)
    dropsCache = { at: now, drops: readEventDrops(db, now) };
  return dropsCache.drops;
}

/** Forgets the cached counters (tests read them right after counting). */
export function resetHealthCache(): void {
  dropsCache = null;
}

async function readEventDrops(db: D1Database, now: number): Promise<EventDrops | null> {
  const since = new Date(now - (DROPS_DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
  try {
    const rows = await db
      .prepare(
        "SELECT kind, reason, sum(count) AS n FROM event_drops WHERE day >= ? GROUP BY kind, reason",
      )
      .bind(since)
      .all<{ kind: string; reason: string; n: number }>();
    const drops: EventDrops = { since, rejected: {}, dropped: {} };
    for (const row of rows.results)
      (row.kind === "dropped" ? drops.dropped : drops.rejected)[row.reason] = Number(row.n);
    return drops;
  } catch (error) {
    console.error("splitstream: health could not read event_drops", error);
    return null;
  }
}

/**
 * `GET /_ss/health`: liveness of this Worker, its routes (and ROUTES problems), and per sdkKey
 * the datafile revision this isolate decides with, and the events the consumer rejected or
 * dropped in the last 7 days (docs/events.md "What is not counted"). Never cached.
 *
 * Cheap: routes are memoized; a routed sdkKey this isolate has never looked up is loaded once
 * (one KV read, then it is in memory for the edge path too); the counters are one small D1 query
 * over at most a week of per-day rows; everything else is read from memory.
 */
export async function handleHealth(
  request: Request,
  env: Pick<Env, "ROUTES" | "DATAFILES" | "DB">,
  ctx?: Pick<ExecutionContext, "waitUntil">,
): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorResponse(
      405,
      "method_not_allowed",
      `${request.method} is not allowed on ${HEALTH_PATH}`,
      { allow: ["GET", "HEAD"] },
      { allow: "GET, HEAD" },
    );
  }
  const table = loadRouteTable(env);
  const unseen = [...new Set(table.routes.map((r) => r.sdkKey))].filter(
    (sdkKey) => !hasDatafileSlot(sdkKey),
  );
  const [events] = await Promise.all([
    eventDrops(env.DB, Date.now()),
    ...unseen.map((sdkKey) => getDatafile(env, ctx ?? awaitedContext, sdkKey)),
  ]);

  const body = JSON.stringify({
    status: "ok",
    service: "splitstream",
    routes: table.routes.map((r) => ({ pattern: r.pattern, sdkKey: r.sdkKey })),
    routeProblems: table.problems,
    datafiles: datafileStoreStatus(),
    events,
  });
  return new Response(request.method === "HEAD" ? null : body, {
    status: 200,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}
