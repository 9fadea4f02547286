/**
 * Choosing where the consumer keeps per-visitor state in a test (src/events/event-layout.ts):
 * `useLayout(0)` = D1's own tables (the single-database layout), `useLayout(n)` = n visitor shards.
 * Storage is per test file, so a file that switches layouts must give each test its own sdkKey.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { loadEventLayout, resetLayoutCache } from "../../src/events/event-layout";
import { shardOf } from "../../src/events/shard-map";
import { VISITOR_COLUMNS, type VisitorTable } from "../../src/events/shard-schema";
import { shardStub } from "../../src/events/visitor-shard";

/** The layouts the consumer's behaviour tests run under. */
export const LAYOUTS = [
  { name: "4 visitor shards", shards: 4 },
  { name: "single D1 database", shards: 0 },
] as const;

/** Records `shards` as the event layout (no move in progress) and forgets the cached one. */
export async function useLayout(shards: number): Promise<void> {
  await env.DB.prepare(
    `INSERT INTO event_layout (id, shards, moving_to, updated_at) VALUES (1, ?, NULL, '')
     ON CONFLICT (id) DO UPDATE SET shards = excluded.shards, moving_to = NULL`,
  )
    .bind(shards)
    .run();
  resetLayoutCache();
}

/**
 * Runs `sql` (DDL such as a trigger) where `visitorId`'s per-visitor rows live: D1 in the
 * single-database layout, else the visitor's shard (through the Durable Object's own storage).
 */
export async function execWhereVisitorLives(
  sdkKey: string,
  visitorId: string,
  sql: string,
  ...params: Array<string | number | null>
): Promise<void> {
  const { shards } = await loadEventLayout(env);
  if (shards === 0) {
    await env.DB.prepare(sql)
      .bind(...params)
      .run();
    return;
  }
  const stub = shardStub(env, shardOf(sdkKey, visitorId, shards));
  // Any call creates the shard's schema first (a shard nobody has counted on has no tables yet).
  await stub.pending();
  await runInDurableObject(stub, (_, state) => {
    state.storage.sql.exec(sql, ...params);
  });
}

/** Inserts rows of a per-visitor table for one visitor, wherever the layout keeps them. */
export async function insertVisitorRows(
  table: VisitorTable,
  sdkKey: string,
  visitorId: string,
  rows: Array<Array<string | number | null>>,
): Promise<void> {
  const { shards } = await loadEventLayout(env);
  if (shards > 0) {
    await shardStub(env, shardOf(sdkKey, visitorId, shards)).importRows(table, rows);
    return;
  }
  const columns = VISITOR_COLUMNS[table];
  for (const row of rows)
    await env.DB.prepare(
      `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
    )
      .bind(...row)
      .run();
}
