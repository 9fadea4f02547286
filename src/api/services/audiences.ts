/**
 * Audiences (docs/api.md "Audiences"): an and/or/not tree of `custom_attribute` conditions
 * (published as `typedAudiences`). Every leaf is checked: the match type is known, the value fits
 * it (src/api/schemas/conditions.ts), `name` is an attribute of the project or a request
 * attribute (docs/datafile.md), and an `in_list` value names a list of the project.
 */
import type { AudienceCreate, AudienceJson, AudienceUpdate } from "../schemas/audiences";
import { all } from "../store/db";
import type { AudienceRow, ExperimentRow } from "../store/rows";
import { parseJson } from "../store/sql";
import { leavesOf } from "../schemas/condition-tree";
import { audienceIdsOf } from "./datafile-build";
import { flagsUsingAudience } from "./flags";
import type { ResourceSpec } from "./resources";
import { refuseUnreviewedUse } from "./review";
import { inUse, isRequestAttribute, Problems } from "./validation";

export function audienceJson(row: AudienceRow): AudienceJson {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    description: row.description,
    conditions: parseJson<unknown>(row.conditions, null),
    archived: Boolean(row.archived),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * The project-dependent checks of a (structurally valid) tree: attribute names and list keys.
 * `root` is the body path of the tree.
 */
export async function checkAudienceReferences(
  db: D1Database,
  projectId: string,
  tree: unknown,
  problems: Problems,
  root: Array<string | number> = ["conditions"],
): Promise<void> {
  const [attributes, lists] = await Promise.all([
    all<{ key: string }>(db, "SELECT key FROM attributes WHERE project_id = ?", projectId),
    all<{ key: string }>(db, "SELECT key FROM lists WHERE project_id = ?", projectId),
  ]);
  const attributeKeys = new Set(attributes.map((a) => a.key));
  const listKeys = new Set(lists.map((l) => l.key));
  for (const { node, path } of leavesOf(tree)) {
    const leaf = node as { name: string; match?: string; value?: unknown };
    if (!attributeKeys.has(leaf.name) && !isRequestAttribute(leaf.name))
      problems.add(
        [...root, ...path, "name"],
        `unknown attribute ${JSON.stringify(leaf.name)}: create it under /projects/${projectId}/attributes, or use a request attribute (geo.country, device.type, query.<name>, …)`,
      );
    if (leaf.match === "in_list" && typeof leaf.value === "string" && !listKeys.has(leaf.value))
      problems.add([...root, ...path, "value"], `unknown list key ${JSON.stringify(leaf.value)}`);
  }
}

/** Experiments of the project whose audience conditions name `audienceId`. */
async function experimentsUsing(db: D1Database, projectId: string, audienceId: string) {
  const experiments = await all<Pick<ExperimentRow, "id" | "key" | "audience_conditions">>(
    db,
    "SELECT id, key, audience_conditions FROM experiments WHERE project_id = ?",
    projectId,
  );
  return experiments
    .filter((x) =>
      audienceIdsOf(parseJson<unknown>(x.audience_conditions, null)).includes(audienceId),
    )
    .map((x) => ({ type: "experiment", id: x.id, key: x.key }));
}

/** The audience resource (src/api/services/resources.ts). */
export const audienceResource: ResourceSpec<
  AudienceRow,
  AudienceJson,
  AudienceCreate,
  AudienceUpdate
> = {
  type: "audience",
  table: "audiences",
  keyed: false,
  label: (row) => row.name,
  present: async (_db, rows) => rows.map(audienceJson),
  async build(ctx, input) {
    const body = input.body;
    const current = input.current;
    if (body.conditions !== undefined) {
      const problems = new Problems();
      await checkAudienceReferences(ctx.db, ctx.projectId, body.conditions, problems);
      problems.throwIfAny();
    }
    const archived = input.kind === "update" ? input.body.archived : undefined;
    const row: AudienceRow = {
      id: ctx.id,
      project_id: ctx.projectId,
      name: body.name ?? current?.name ?? "",
      description: body.description ?? current?.description ?? "",
      conditions:
        body.conditions !== undefined
          ? JSON.stringify(body.conditions)
          : (current?.conditions ?? "[]"),
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
      (await experimentsUsing(ctx.db, ctx.projectId, current.id)).map((x) => x.id),
      `audience ${current.name}`,
    ),
  async beforeDelete(ctx, row) {
    const users = [
      ...(await experimentsUsing(ctx.db, ctx.projectId, row.id)),
      ...(await flagsUsingAudience(ctx.db, ctx.projectId, row.id)),
    ];
    if (users.length > 0) throw inUse(`audience ${row.name}`, users);
  },
};
