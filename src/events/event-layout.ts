/**
 * Where per-visitor event state lives (docs/scaling.md "Visitor shards"): D1's own tables
 * (`shards: 0`, the single-database layout) or `shards` visitor shards (src/events/visitor-shard.ts).
 * The recorded layout (D1 `event_layout`, migrations/0009_visitor_shards.sql) is the truth; the
 * EVENT_SHARDS var only chooses it for a deployment that has counted nothing yet. A var that
 * differs from the recorded layout is reported, never obeyed silently: following it would strand
 * every visitor's state on the shard it was counted on.
 */
import type { Env } from "../env";
import { MAX_SHARDS } from "./shard-map";

export interface EventLayout {
  /** 0 = per-visitor state in D1; N = N visitor shards. */
  shards: number;
  /** Set while a move to another layout runs: the consumer waits (its batches are retried). */
  movingTo: number | null;
}

/** EVENT_SHARDS when absent. */
export const DEFAULT_EVENT_SHARDS = 8;

/** The EVENT_SHARDS var as a shard count, or an error naming what is wrong with it. */
export function parseShardCount(
  value: unknown,
): { ok: true; shards: number } | { ok: false; error: string } {
  if (value === undefined || value === null || value === "")
    return { ok: true, shards: DEFAULT_EVENT_SHARDS };
  const text = String(value).trim();
  if (!/^\d{1,5}$/.test(text))
    return {
      ok: false,
      error: `EVENT_SHARDS must be a whole number 0–${MAX_SHARDS}, got ${JSON.stringify(value)}`,
    };
  const shards = Number(text);
  if (shards > MAX_SHARDS)
    return { ok: false, error: `EVENT_SHARDS must be at most ${MAX_SHARDS}, got ${shards}` };
  return { ok: true, shards };
}

// The layout changes only through the move command; one D1 read per isolate and 30 s.
export const LAYOUT_TTL_MS = 30_000;
let cached: { at: number; layout: EventLayout } | null = null;
let warned = "";

/** Forgets the cached layout (tests and the move command change it). */
export function resetLayoutCache(): void {
  cached = null;
}

/** The recorded layout as D1 has it now (no cache); null before the first record. */
export async function readLayout(db: D1Database): Promise<EventLayout | null> {
  const row = await db
    .prepare("SELECT shards, moving_to FROM event_layout WHERE id = 1")
    .first<{ shards: number; moving_to: number | null }>();
  return row
    ? {
        shards: Number(row.shards),
        movingTo: row.moving_to === null ? null : Number(row.moving_to),
      }
    : null;
}

/**
 * The recorded layout; on a deployment's first call records it: 0 when D1 already holds
 * per-visitor rows (counted before the shards existed: they stay where they are until the move
 * command runs), else EVENT_SHARDS. Two isolates racing agree (INSERT OR IGNORE, then read).
 */
export async function loadEventLayout(
  env: Pick<Env, "DB" | "EVENT_SHARDS">,
  now = Date.now(),
): Promise<EventLayout> {
  if (cached && now - cached.at < LAYOUT_TTL_MS) return cached.layout;
  let layout = await readLayout(env.DB);
  if (!layout) {
    const parsed = parseShardCount(env.EVENT_SHARDS);
    if (!parsed.ok) throw new Error(parsed.error);
    const legacy = await env.DB.prepare(
      "SELECT EXISTS (SELECT 1 FROM seen_events) OR EXISTS (SELECT 1 FROM exposures) AS n",
    ).first<{ n: number }>();
    const shards = Number(legacy?.n ?? 0) > 0 ? 0 : parsed.shards;
    await env.DB.prepare(
      "INSERT OR IGNORE INTO event_layout (id, shards, moving_to, updated_at) VALUES (1, ?, NULL, ?)",
    )
      .bind(shards, new Date(now).toISOString())
      .run();
    layout = (await readLayout(env.DB))!;
  }
  const wanted = parseShardCount(env.EVENT_SHARDS);
  const note = wanted.ok ? String(wanted.shards) : wanted.error;
  if (wanted.ok && wanted.shards !== layout.shards && layout.movingTo === null && warned !== note) {
    warned = note;
    console.warn(
      `splitstream: EVENT_SHARDS is ${wanted.shards} but the event state is laid out over ${layout.shards === 0 ? "D1 (no shards)" : `${layout.shards} shards`}; counting goes on with the recorded layout until \`splitstream events move\` runs (docs/scaling.md "Growing the shards")`,
    );
  }
  cached = { at: now, layout };
  return layout;
}
