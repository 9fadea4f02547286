/**
 * Pages (docs/api.md "Pages"): where experiments run and pageview/click events happen — a URL
 * condition tree plus how the page activates (docs/datafile.md `web.pages`). `key` is unique per
 * project.
 */
import type { PageCreate, PageJson, PageUpdate } from "../schemas/pages";
import { all } from "../store/db";
import type { EventRow, ExperimentRow, PageRow } from "../store/rows";
import { parseJson } from "../store/sql";
import type { ResourceSpec } from "./resources";
import { refuseUnreviewedUse } from "./review";
import { datafileProblems, inUse, Problems } from "./validation";

export function pageJson(row: PageRow): PageJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    activation: row.activation,
    selector: row.selector,
    conditions: parseJson<unknown>(row.conditions, null),
    archived: Boolean(row.archived),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Experiments (pages, or a change's pageId) and events on the page. */
async function usersOf(db: D1Database, projectId: string, pageId: string) {
  const quoted = JSON.stringify(pageId);
  const [experiments, events] = await Promise.all([
    all<Pick<ExperimentRow, "id" | "key">>(
      db,
      `SELECT id, key FROM experiments WHERE project_id = ?
         AND (instr(page_ids, ?) > 0 OR instr(variations, ?) > 0 OR instr(shared_changes, ?) > 0
              OR instr(COALESCE(sections, ''), ?) > 0)`,
      projectId,
      quoted,
      quoted,
      quoted,
      quoted,
    ),
    all<Pick<EventRow, "id" | "key">>(
      db,
      "SELECT id, key FROM events WHERE project_id = ? AND page_id = ?",
      projectId,
      pageId,
    ),
  ]);
  return [
    ...experiments.map((x) => ({ type: "experiment", id: x.id, key: x.key })),
    ...events.map((e) => ({ type: "event", id: e.id, key: e.key })),
  ];
}

/** The page resource (src/api/services/resources.ts). */
export const pageResource: ResourceSpec<PageRow, PageJson, PageCreate, PageUpdate> = {
  type: "page",
  table: "pages",
  keyed: true,
  label: (row) => row.key,
  present: async (_db, rows) => rows.map(pageJson),
  async build(ctx, input) {
    const body = input.body;
    const current = input.current;
    const activation = body.activation ?? current?.activation ?? "immediate";
    let selector: string | null =
      body.selector !== undefined ? body.selector : (current?.selector ?? null);
    const problems = new Problems();
    if (activation === "dom_changed") {
      if (selector === null)
        problems.add(
          ["selector"],
          'required for activation "dom_changed" (the element to wait for)',
        );
    } else if (body.selector !== undefined && body.selector !== null) {
      problems.add(["selector"], 'only pages with activation "dom_changed" have a selector');
    } else {
      selector = null;
    }
    const conditions =
      body.conditions !== undefined ? body.conditions : parseJson<unknown>(current?.conditions, []);
    problems.throwIfAny();
    for (const detail of datafileProblems({
      page: { id: ctx.id, activation, selector, conditions },
    }))
      problems.addFormatted(detail.path, detail.message);
    problems.throwIfAny();
    const archived = input.kind === "update" ? input.body.archived : undefined;
    const row: PageRow = {
      id: ctx.id,
      project_id: ctx.projectId,
      key: body.key ?? current?.key ?? "",
      name: body.name ?? current?.name ?? "",
      activation,
      selector,
      conditions: JSON.stringify(conditions),
      archived: archived !== undefined ? (archived ? 1 : 0) : (current?.archived ?? 0),
      version: current?.version ?? 1,
      created_at: current?.created_at ?? ctx.now,
      updated_at: ctx.now,
    };
    return { row };
  },
  review: async (ctx, current) =>
    refuseUnreviewedUse(
      ctx,
      (await usersOf(ctx.db, ctx.projectId, current.id))
        .filter((u) => u.type === "experiment")
        .map((u) => u.id),
      `page ${current.key}`,
    ),
  async beforeDelete(ctx, row) {
    const users = await usersOf(ctx.db, ctx.projectId, row.id);
    if (users.length > 0) throw inUse(`page ${row.key}`, users);
  },
};
