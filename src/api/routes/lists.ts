/**
 * Lists (docs/api.md "Lists"): user lists for the `in_list` match type (docs/datafile.md `web.lists`),
 * e.g. VIP customer ids. `key` is unique per project; at most 100,000 values of at most 256
 * characters (and the request body limit of 1 MB applies), and all the lists of a project at most
 * 1,000,000 members / 8 MiB of members document (what one environment may publish:
 * docs/datafile.md "Lists").
 */
import { z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import type { AudienceRow, ListRow } from "../store/rows";
import { all } from "../store/db";
import { MAX_LIST_MEMBERS, MAX_LIST_MEMBERS_BYTES } from "../../edge/list-members";
import { inUse, Problems } from "../services/validation";
import { keySchema, nameSchema, resourceFields } from "../schemas/fields";
import { leavesOf } from "../services/condition-tree";
import { parseJson } from "../store/sql";
import { registerCrud, type BuildContext } from "./crud";

export const MAX_LIST_VALUES = 100_000;
export const MAX_LIST_VALUE_LENGTH = 256;

const valuesSchema = z
  .array(z.string().max(MAX_LIST_VALUE_LENGTH))
  .max(MAX_LIST_VALUES)
  .openapi({
    description: `At most ${MAX_LIST_VALUES} strings of at most ${MAX_LIST_VALUE_LENGTH} characters. A visitor is in the list when the attribute's value (a string, or a number written as a string) is one of them.`,
    example: ["c-1001", "c-1002"],
  });

export const ListSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    values: z.array(z.string()),
    valueCount: z.number().int(),
  })
  .openapi("List");

/** Collection items leave the values out (they can be large). */
export const ListSummarySchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    valueCount: z.number().int(),
  })
  .openapi("ListSummary");

const ListCreateSchema = z
  .strictObject({ key: keySchema, name: nameSchema.optional(), values: valuesSchema })
  .openapi("ListCreate");

const ListUpdateSchema = z
  .strictObject({
    key: keySchema.optional(),
    name: nameSchema.optional(),
    values: valuesSchema.optional(),
  })
  .openapi("ListUpdate");

type ListJson = z.infer<typeof ListSchema>;

export function listJson(row: ListRow): ListJson {
  const values = parseJson<string[]>(row.values, []);
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    values,
    valueCount: values.length,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Audiences with an in_list condition on list `key`. */
async function audiencesUsing(db: D1Database, projectId: string, key: string) {
  const audiences = await all<Pick<AudienceRow, "id" | "name" | "conditions">>(
    db,
    "SELECT id, name, conditions FROM audiences WHERE project_id = ?",
    projectId,
  );
  return audiences
    .filter((a) =>
      leavesOf(parseJson<unknown>(a.conditions, [])).some(({ node }) => {
        const leaf = node as { match?: unknown; value?: unknown } | null;
        return (
          typeof leaf === "object" &&
          leaf !== null &&
          leaf.match === "in_list" &&
          leaf.value === key
        );
      }),
    )
    .map((a) => ({ type: "audience", id: a.id, name: a.name }));
}

/**
 * 422 at `$.body.values` when the project's lists, with `values` as the members of list `id`,
 * would exceed what one environment may publish (MAX_LIST_MEMBERS members, MAX_LIST_MEMBERS_BYTES
 * of members document; docs/datafile.md "Lists"). Every environment publishes all of the
 * project's lists, so the bound is on the project's; refusing here names the field, where the
 * publisher could only say `$.web.lists`.
 */
async function checkProjectMembers(
  ctx: BuildContext,
  id: string,
  values: readonly string[],
): Promise<void> {
  // The members document is `{"lists":{"<id>":<values JSON>,…}}`, each list's values serialised
  // as D1 holds them (JSON.stringify): its size is computed from the other rows without loading
  // their values.
  const others = await all<{ id: string; members: number; bytes: number }>(
    ctx.db,
    `SELECT id, json_array_length("values") AS members, length(CAST("values" AS BLOB)) AS bytes
     FROM lists WHERE project_id = ? AND id <> ?`,
    ctx.projectId,
    id,
  );
  const encoder = new TextEncoder();
  const entryBytes = (listId: string, valuesBytes: number) =>
    encoder.encode(JSON.stringify(listId)).byteLength + 1 + valuesBytes;
  let members = values.length;
  // `{"lists":{` + `}}`, the entry of this list, and a comma before each other entry.
  let bytes = 12 + entryBytes(id, encoder.encode(JSON.stringify(values)).byteLength);
  for (const other of others) {
    members += other.members;
    bytes += 1 + entryBytes(other.id, other.bytes);
  }
  const problems = new Problems();
  if (members > MAX_LIST_MEMBERS)
    problems.add(
      ["values"],
      `the project's lists would have ${members} members in all; every environment publishes them all, and at most ${MAX_LIST_MEMBERS} can be published`,
    );
  else if (bytes > MAX_LIST_MEMBERS_BYTES)
    problems.add(
      ["values"],
      `the project's list members would take ${bytes} bytes as JSON; every environment publishes them all, and at most ${MAX_LIST_MEMBERS_BYTES} (8 MiB) can be published`,
    );
  problems.throwIfAny();
}

export function registerListRoutes(app: ApiApp): void {
  registerCrud<
    ListRow,
    ListJson,
    z.infer<typeof ListCreateSchema>,
    z.infer<typeof ListUpdateSchema>
  >(app, {
    type: "list",
    plural: "lists",
    table: "lists",
    tag: "Lists",
    schema: ListSchema,
    createSchema: ListCreateSchema,
    updateSchema: ListUpdateSchema,
    keyed: true,
    describe: {
      create: "`key` is unique in the project; audiences name it in `in_list` conditions.",
      update:
        "`values` replaces the whole list. Changing `key` is refused (409) while an audience uses the list.",
      delete: "Refused (409) while an audience uses the list.",
      list: "Items carry `valueCount` but not the values; GET the list for them.",
    },
    listItems: {
      schema: ListSummarySchema,
      select:
        'id, project_id, key, name, json_array_length("values") AS value_count, version, created_at, updated_at',
      present: (rows) =>
        rows.map((row) => ({
          id: row.id,
          projectId: row.project_id,
          key: row.key,
          name: row.name,
          valueCount: row.value_count,
          version: row.version,
          createdAt: row.created_at,
          updatedAt: row.updated_at,
        })),
    },
    label: (row) => row.key,
    present: async (_db, rows) => rows.map(listJson),
    async build(ctx: BuildContext, input) {
      const body = input.body;
      const current = input.current;
      if (current && body.key !== undefined && body.key !== current.key) {
        const users = await audiencesUsing(ctx.db, ctx.projectId, current.key);
        if (users.length > 0) throw inUse(`list ${current.key}`, users);
      }
      if (body.values !== undefined)
        await checkProjectMembers(ctx, current?.id ?? ctx.id, body.values);
      const row: ListRow = {
        id: ctx.id,
        project_id: ctx.projectId,
        key: body.key ?? current?.key ?? "",
        name: body.name ?? current?.name ?? "",
        values: body.values !== undefined ? JSON.stringify(body.values) : (current?.values ?? "[]"),
        version: current?.version ?? 1,
        created_at: current?.created_at ?? ctx.now,
        updated_at: ctx.now,
      };
      return { row };
    },
    async beforeDelete(ctx, row) {
      const users = await audiencesUsing(ctx.db, ctx.projectId, row.key);
      if (users.length > 0) throw inUse(`list ${row.key}`, users);
    },
  });
}
