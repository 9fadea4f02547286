/**
 * The reads of `POST /conversions` (docs/api.md "Conversions"): whether the project exists and
 * its events by key. The environment (with its sdkKey and revision) is findSdkEnvironment in
 * src/api/store/metric-daily.ts.
 */
import { all, first } from "./db";

/** True when project `projectId` exists. */
export async function projectExists(db: D1Database, projectId: string): Promise<boolean> {
  return (
    (await first<{ id: string }>(db, "SELECT id FROM projects WHERE id = ?", projectId)) !== null
  );
}

/** The project's events: key → id. */
export async function listEventIdsByKey(
  db: D1Database,
  projectId: string,
): Promise<Map<string, string>> {
  const events = await all<{ id: string; key: string }>(
    db,
    "SELECT id, key FROM events WHERE project_id = ?",
    projectId,
  );
  return new Map(events.map((e) => [e.key, e.id]));
}
