/**
 * The per-event daily caps of the per-visitor budget (docs/events.md "The per-visitor budget"),
 * read from the management `events` table (`max_per_visitor_per_day`, migrations/0007) for the
 * consumer and the rebuild. An event without its own setting — or an sdkKey with no management
 * records, such as a datafile put into KV by hand — gets DEFAULT_DAILY_CONVERSION_CAP.
 */
import { DEFAULT_DAILY_CONVERSION_CAP } from "../shared/event-limits";
import type { CapOf } from "./aggregate";

// Per-event caps change rarely (an API write); one D1 read per isolate and minute serves every
// batch in between.
const CAPS_TTL_MS = 60_000;
let capsCache: { at: number; caps: Map<string, number> } | null = null;

/**
 * The caps of every event with its own setting, by sdkKey and event id (one D1 read per isolate
 * and minute; `fresh` reads now).
 */
export async function loadCaps(db: D1Database, now: number, fresh = false): Promise<CapOf> {
  if (fresh || !capsCache || now - capsCache.at > CAPS_TTL_MS) {
    const rows = await db
      .prepare(
        `SELECT en.sdk_key, ev.id, ev.max_per_visitor_per_day AS cap FROM events AS ev
         JOIN environments AS en ON en.project_id = ev.project_id
         WHERE ev.max_per_visitor_per_day IS NOT NULL`,
      )
      .all<{ sdk_key: string; id: string; cap: number }>();
    const caps = new Map<string, number>();
    for (const row of rows.results) caps.set(`${row.sdk_key}\n${row.id}`, Number(row.cap));
    capsCache = { at: now, caps };
  }
  const caps = capsCache.caps;
  return (sdkKey, eventId) => caps.get(`${sdkKey}\n${eventId}`) ?? DEFAULT_DAILY_CONVERSION_CAP;
}

/** Forgets the cached caps (tests change them between batches). */
export function resetCapsCache(): void {
  capsCache = null;
}
