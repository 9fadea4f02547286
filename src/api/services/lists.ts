/**
 * Lists (docs/api.md "Lists"): user lists for the `in_list` match type (docs/datafile.md
 * `web.lists`), e.g. VIP customer ids. `key` is unique per project; at most 100,000 values of at
 * most 256 characters (src/api/schemas/lists.ts; and the request body limit of 1 MB applies),
 * and all the lists of a project at most 1,000,000 members / 8 MiB of members document (what one
 * environment may publish: docs/datafile.md "Lists").
 */
import { MAX_LIST_MEMBERS, MAX_LIST_MEMBERS_BYTES } from "../../edge/list-members";
import type { ListCreate, ListJson, ListSummaryJson, ListUpdate } from "../schemas/lists";
import { all } from "../store/db";
import type { AudienceRow, ExperimentRow, ListRow, ListSummaryRow } from "../store/rows";
import { audienceIdsOf } from "./datafile-build";
import { parseJson } from "../store/sql";
import { leavesOf } from "../schemas/condition-tree";
import type { BuildContext, ResourceSpec } from "./resources";
import { refuseUnreviewedUse } from "./review";
import { inUse, Problems } from "./validation";

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

function listSummaryJson(row: ListSummaryRow): ListSummaryJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    valueCount: row.value_count,
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

/** The list resource (src/api/services/resources.ts); list pages leave the values out. */
export const listResource: ResourceSpec<
  ListRow,
  ListJson,
  ListCreate,
  ListUpdate,
  ListSummaryRow,
  ListSummaryJson
> = {
  type: "list",
  table: "lists",
  keyed: true,
  label: (row) => row.key,
  present: async (_db, rows) => rows.map(listJson),
  listItems: {
    select:
      'id, project_id, key, name, json_array_length("values") AS value_count, version, created_at, updated_at',
    present: (rows) => rows.map(listSummaryJson),
  },
  async build(ctx, input) {
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
  review: async (ctx, current) => {
    const audienceIds = (await audiencesUsing(ctx.db, ctx.projectId, current.key)).map((a) => a.id);
    if (audienceIds.length === 0) return null;
    const experiments = await all<Pick<ExperimentRow, "id" | "audience_conditions">>(
      ctx.db,
      "SELECT id, audience_conditions FROM experiments WHERE project_id = ?",
      ctx.projectId,
    );
    return refuseUnreviewedUse(
      ctx,
      experiments
        .filter((x) =>
          audienceIdsOf(parseJson<unknown>(x.audience_conditions, null)).some((id) =>
            audienceIds.includes(id),
          ),
        )
        .map((x) => x.id),
      `list ${current.key}`,
    );
  },
  async beforeDelete(ctx, row) {
    const users = await audiencesUsing(ctx.db, ctx.projectId, row.key);
    if (users.length > 0) throw inUse(`list ${row.key}`, users);
  },
};
