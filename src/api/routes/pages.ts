/**
 * Pages (docs/api.md "Pages"): where experiments run and pageview/click events happen — a URL
 * condition tree plus how the page activates (docs/datafile.md `web.pages`). `key` is unique per
 * project.
 */
import { z } from "@hono/zod-openapi";
import { PAGE_ACTIVATIONS } from "../../core/datafile-parse";
import type { ApiApp } from "../context";
import type { EventRow, ExperimentRow, PageRow } from "../store/rows";
import { all } from "../store/db";
import { conditionTreeSchema, urlConditionSchema } from "../schemas/conditions";
import { datafileProblems, inUse, Problems } from "../services/validation";
import { keySchema, nameSchema, resourceFields } from "../schemas/fields";
import { parseJson } from "../store/sql";
import { registerCrud, type BuildContext } from "./crud";

const conditionsSchema = conditionTreeSchema(
  urlConditionSchema,
  'An and/or/not tree of UrlCondition leaves, e.g. ["or", {"match": "simple", "value": "https://shop.example.com/p"}, {"match": "regex", "value": "^https://shop\\\\.example\\\\.com/p/\\\\d+$"}]. Regexes must compile.',
  [
    "or",
    { match: "simple", value: "https://shop.example.com/p" },
    { match: "regex", value: "^https://shop\\.example\\.com/p/\\d+$" },
  ],
);

const activationSchema = z.enum(PAGE_ACTIVATIONS).openapi({
  description:
    "immediate: decided, applied and counted at the edge; manual: decided at the edge, applied and counted when the page calls activate; url_changed / dom_changed: single-page apps (dom_changed needs `selector`).",
});

const selectorSchema = z.string().min(1).max(1000);

export const PageSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    activation: activationSchema,
    selector: z.string().nullable(),
    conditions: z.unknown().openapi({ description: "The URL condition tree, as sent." }),
    archived: z.boolean(),
  })
  .openapi("Page");

const PageCreateSchema = z
  .strictObject({
    key: keySchema,
    name: nameSchema.optional(),
    activation: activationSchema.optional().openapi({ description: "Default immediate." }),
    selector: selectorSchema.optional().openapi({
      description: "dom_changed only: the element whose appearance activates the page.",
    }),
    conditions: conditionsSchema,
  })
  .openapi("PageCreate");

const PageUpdateSchema = z
  .strictObject({
    key: keySchema.optional(),
    name: nameSchema.optional(),
    activation: activationSchema.optional(),
    selector: selectorSchema.nullable().optional(),
    conditions: conditionsSchema.optional(),
    archived: z.boolean().optional(),
  })
  .openapi("PageUpdate");

type PageJson = z.infer<typeof PageSchema>;

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

export function registerPageRoutes(app: ApiApp): void {
  app.openAPIRegistry.register("UrlCondition", urlConditionSchema);
  registerCrud<
    PageRow,
    PageJson,
    z.infer<typeof PageCreateSchema>,
    z.infer<typeof PageUpdateSchema>
  >(app, {
    type: "page",
    plural: "pages",
    table: "pages",
    tag: "Pages",
    schema: PageSchema,
    createSchema: PageCreateSchema,
    updateSchema: PageUpdateSchema,
    keyed: true,
    describe: {
      create:
        "`key` is unique in the project. `conditions` is a URL condition tree (regexes must compile); `activation` dom_changed needs `selector`.",
      update:
        "Changing `activation` away from dom_changed drops `selector` (unless you send one, which is then refused). `archived: true` keeps the page out of new datafiles unless an experiment or event still uses it.",
      delete: "Refused (409) while an experiment or event uses the page.",
    },
    label: (row) => row.key,
    present: async (_db, rows) => rows.map(pageJson),
    async build(ctx: BuildContext, input) {
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
        body.conditions !== undefined
          ? body.conditions
          : parseJson<unknown>(current?.conditions, []);
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
    async beforeDelete(ctx, row) {
      const users = await usersOf(ctx.db, ctx.projectId, row.id);
      if (users.length > 0) throw inUse(`page ${row.key}`, users);
    },
  });
}
