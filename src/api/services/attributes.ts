/**
 * Attributes (docs/api.md "Attributes"): the visitor attributes audiences may name, besides the
 * request attributes the edge computes (docs/datafile.md). `key` is unique per project, must not
 * be a request attribute's name, and cannot change while an audience names it.
 */
import { isStorableAttributeName } from "../../edge/visitor";
import type { AttributeCreate, AttributeJson, AttributeUpdate } from "../schemas/attributes";
import { all } from "../store/db";
import type { AttributeRow, AudienceRow } from "../store/rows";
import { parseJson } from "../store/sql";
import { leavesOf } from "../schemas/condition-tree";
import type { ResourceSpec } from "./resources";
import { inUse, Problems } from "./validation";

export function attributeJson(row: AttributeRow): AttributeJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    description: row.description,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Reserved attribute names: request attributes and what the SDKs treat specially. */
function keyProblem(key: string): string | undefined {
  if (key.startsWith("$opt_"))
    return "names starting with $opt_ are reserved by the Optimizely SDKs";
  if (!isStorableAttributeName(key))
    return "reserved: the edge computes this attribute per request (geo.*, device.*, browser.*, os.*, query.*, cookie.*, header.*, utm.*, visitor.*, time.*, language, referrer, url, path)";
  return undefined;
}

/** Audiences of the project whose conditions name attribute `key`. */
async function audiencesNaming(db: D1Database, projectId: string, key: string) {
  const audiences = await all<Pick<AudienceRow, "id" | "name" | "conditions">>(
    db,
    "SELECT id, name, conditions FROM audiences WHERE project_id = ?",
    projectId,
  );
  return audiences
    .filter((a) =>
      leavesOf(parseJson<unknown>(a.conditions, [])).some(
        ({ node }) =>
          typeof node === "object" && node !== null && (node as { name?: unknown }).name === key,
      ),
    )
    .map((a) => ({ type: "audience", id: a.id, name: a.name }));
}

/** The attribute resource (src/api/services/resources.ts). */
export const attributeResource: ResourceSpec<
  AttributeRow,
  AttributeJson,
  AttributeCreate,
  AttributeUpdate
> = {
  type: "attribute",
  table: "attributes",
  keyed: true,
  label: (row) => row.key,
  present: async (_db, rows) => rows.map(attributeJson),
  async build(ctx, input) {
    const body = input.body;
    const current = input.current;
    const row: AttributeRow = {
      id: ctx.id,
      project_id: ctx.projectId,
      key: body.key ?? current?.key ?? "",
      name: body.name ?? current?.name ?? "",
      description: body.description ?? current?.description ?? "",
      version: current?.version ?? 1,
      created_at: current?.created_at ?? ctx.now,
      updated_at: ctx.now,
    };
    if (body.key !== undefined) {
      const problems = new Problems();
      const problem = keyProblem(body.key);
      if (problem) problems.add(["key"], problem);
      problems.throwIfAny();
    }
    if (current && row.key !== current.key) {
      const users = await audiencesNaming(ctx.db, ctx.projectId, current.key);
      if (users.length > 0) throw inUse(`attribute ${current.key}`, users);
    }
    return { row };
  },
  async beforeDelete(ctx, row) {
    const users = await audiencesNaming(ctx.db, ctx.projectId, row.key);
    if (users.length > 0) throw inUse(`attribute ${row.key}`, users);
  },
};
