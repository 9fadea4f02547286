/**
 * Events (docs/api.md "Events"): what experiments measure. `custom` events are sent by the page
 * or server; `pageview` events are counted when a page is served; `click` events when an element
 * of a page is clicked (docs/datafile.md `web.events`). `key` is unique per project.
 */
import type { EventCreate, EventJson, EventUpdate } from "../schemas/events";
import { all, first } from "../store/db";
import type { EventRow, ExperimentRow } from "../store/rows";
import type { ResourceSpec } from "./resources";
import { datafileProblems, inUse, Problems } from "./validation";

export function eventJson(row: EventRow): EventJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    type: row.type,
    pageId: row.page_id,
    selector: row.selector,
    maxPerVisitorPerDay: row.max_per_visitor_per_day ?? null,
    archived: Boolean(row.archived),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Experiments with a metric on the event. */
async function experimentsMeasuring(db: D1Database, projectId: string, eventId: string) {
  const rows = await all<Pick<ExperimentRow, "id" | "key">>(
    db,
    "SELECT id, key FROM experiments WHERE project_id = ? AND instr(metrics, ?) > 0",
    projectId,
    JSON.stringify(eventId),
  );
  return rows.map((x) => ({ type: "experiment", id: x.id, key: x.key }));
}

/** The event resource (src/api/services/resources.ts). */
export const eventResource: ResourceSpec<EventRow, EventJson, EventCreate, EventUpdate> = {
  type: "event",
  table: "events",
  keyed: true,
  label: (row) => row.key,
  present: async (_db, rows) => rows.map(eventJson),
  async build(ctx, input) {
    const body = input.body;
    const current = input.current;
    const type = body.type ?? current?.type ?? "custom";
    const pageId = body.pageId !== undefined ? body.pageId : (current?.page_id ?? null);
    let selector = body.selector !== undefined ? body.selector : (current?.selector ?? null);
    const problems = new Problems();
    if (type === "click") {
      if (selector === null)
        problems.add(["selector"], "required for click events (the element clicked)");
    } else if (body.selector !== undefined && body.selector !== null) {
      problems.add(["selector"], "only click events have a selector");
    } else {
      selector = null;
    }
    if (pageId === null) {
      if (type !== "custom")
        problems.add(["pageId"], `required for ${type} events (the page they happen on)`);
    } else {
      const page = await first<{ id: string }>(
        ctx.db,
        "SELECT id FROM pages WHERE id = ? AND project_id = ?",
        pageId,
        ctx.projectId,
      );
      if (!page)
        problems.add(
          ["pageId"],
          `unknown page ${JSON.stringify(pageId)} (not a page of this project)`,
        );
    }
    problems.throwIfAny();
    for (const detail of datafileProblems({
      event: { id: ctx.id, type, pageId, selector },
      pageIds: pageId === null ? [] : [pageId],
    }))
      problems.addFormatted(detail.path, detail.message);
    problems.throwIfAny();
    const archived = input.kind === "update" ? input.body.archived : undefined;
    const row: EventRow = {
      id: ctx.id,
      project_id: ctx.projectId,
      key: body.key ?? current?.key ?? "",
      name: body.name ?? current?.name ?? "",
      type,
      page_id: pageId,
      selector,
      max_per_visitor_per_day:
        body.maxPerVisitorPerDay !== undefined
          ? body.maxPerVisitorPerDay
          : (current?.max_per_visitor_per_day ?? null),
      archived: archived !== undefined ? (archived ? 1 : 0) : (current?.archived ?? 0),
      version: current?.version ?? 1,
      created_at: current?.created_at ?? ctx.now,
      updated_at: ctx.now,
    };
    return { row };
  },
  async beforeDelete(ctx, row) {
    const users = await experimentsMeasuring(ctx.db, ctx.projectId, row.id);
    if (users.length > 0) throw inUse(`event ${row.key}`, users);
  },
};
