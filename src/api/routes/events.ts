/**
 * Events (docs/api.md "Events"): what experiments measure. `custom` events are sent by the page
 * or server; `pageview` events are counted when a page is served; `click` events when an element
 * of a page is clicked (docs/datafile.md `web.events`). `key` is unique per project.
 */
import { z } from "@hono/zod-openapi";
import { WEB_EVENT_TYPES } from "../../core/datafile-parse";
import type { ApiApp } from "../context";
import type { EventRow, ExperimentRow } from "../store/rows";
import { all, first } from "../store/db";
import { DEFAULT_DAILY_CONVERSION_CAP, MAX_DAILY_CONVERSION_CAP } from "../../shared/event-limits";
import { datafileProblems, inUse, Problems } from "../services/validation";
import { keySchema, nameSchema, resourceFields } from "../schemas/fields";
import { registerCrud, type BuildContext } from "./crud";

const typeSchema = z.enum(WEB_EVENT_TYPES).openapi({
  description:
    "custom (tracked by your code), pageview (needs pageId), click (needs pageId and selector).",
});
const selectorSchema = z.string().min(1).max(1000);
const capSchema = z
  .number()
  .int()
  .min(1)
  .max(MAX_DAILY_CONVERSION_CAP)
  .nullable()
  .openapi({
    description: `How many of one visitor's conversions of this event are counted per UTC day; the rest are dropped and counted as dropped (docs/events.md). null = the default, ${DEFAULT_DAILY_CONVERSION_CAP}.`,
    example: 20,
  });

export const EventSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    type: typeSchema,
    pageId: z.string().nullable(),
    selector: z.string().nullable(),
    maxPerVisitorPerDay: z
      .number()
      .int()
      .nullable()
      .openapi({
        description: `Conversions of one visitor counted per UTC day; null = the default (${DEFAULT_DAILY_CONVERSION_CAP}).`,
      }),
    archived: z.boolean(),
  })
  .openapi("Event");

const EventCreateSchema = z
  .strictObject({
    key: keySchema,
    name: nameSchema.optional(),
    type: typeSchema,
    pageId: z
      .string()
      .optional()
      .openapi({ description: "Required for pageview and click: a page of the project." }),
    selector: selectorSchema
      .optional()
      .openapi({ description: "Required for click: the element clicked.", example: "#buy" }),
    maxPerVisitorPerDay: capSchema.optional(),
  })
  .openapi("EventCreate");

const EventUpdateSchema = z
  .strictObject({
    key: keySchema.optional(),
    name: nameSchema.optional(),
    type: typeSchema.optional(),
    pageId: z.string().nullable().optional(),
    selector: selectorSchema.nullable().optional(),
    maxPerVisitorPerDay: capSchema.optional(),
    archived: z.boolean().optional(),
  })
  .openapi("EventUpdate");

type EventJson = z.infer<typeof EventSchema>;

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

export function registerEventRoutes(app: ApiApp): void {
  registerCrud<
    EventRow,
    EventJson,
    z.infer<typeof EventCreateSchema>,
    z.infer<typeof EventUpdateSchema>
  >(app, {
    type: "event",
    plural: "events",
    table: "events",
    tag: "Events",
    schema: EventSchema,
    createSchema: EventCreateSchema,
    updateSchema: EventUpdateSchema,
    keyed: true,
    describe: {
      create:
        "`key` is unique in the project. pageview and click events need `pageId` (an existing page of the project); click events need `selector`.",
      update:
        "Changing `type` away from click drops `selector` (unless you send one, which is then refused). `archived: true` keeps the event out of new datafiles unless an experiment measures it.",
      delete: "Refused (409) while an experiment has a metric on it.",
    },
    label: (row) => row.key,
    present: async (_db, rows) => rows.map(eventJson),
    async build(ctx: BuildContext, input) {
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
  });
}
