/**
 * Audiences (docs/api.md "Audiences"): an and/or/not tree of `custom_attribute` conditions
 * (published as `typedAudiences`). Every leaf is checked: the match type is known, the value fits
 * it, `name` is an attribute of the project or a request attribute (docs/datafile.md), and an
 * `in_list` value names a list of the project.
 */
import { z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { audienceIdsOf } from "../services/datafile-build";
import { type AudienceRow, type ExperimentRow } from "../store/rows";
import { all } from "../store/db";
import { audienceConditionSchema, conditionTreeSchema } from "../schemas/conditions";
import { descriptionSchema, resourceFields } from "../schemas/fields";
import { inUse, isRequestAttribute, Problems } from "../services/validation";
import { leavesOf } from "../services/condition-tree";
import { parseJson } from "../store/sql";
import { registerCrud, type BuildContext } from "./crud";

const conditionsSchema = conditionTreeSchema(
  audienceConditionSchema,
  'An and/or/not tree of AudienceCondition leaves: an array starting with "and", "or" or "not" (one operand), whose other elements are leaves or nested arrays. Leaf names must be attribute keys of the project or request attributes; in_list values must be list keys of the project.',
  [
    "and",
    { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
    ["or", { type: "custom_attribute", name: "plan", match: "exact", value: "pro" }],
  ],
);

export const AudienceSchema = z
  .object({
    ...resourceFields,
    name: z.string(),
    description: z.string(),
    conditions: z.unknown().openapi({ description: "The condition tree, as sent." }),
    archived: z.boolean().openapi({
      description:
        "Archived audiences are left out of the datafile unless an experiment still uses them.",
    }),
  })
  .openapi("Audience");

const audienceName = z.string().trim().min(1).max(200);

const AudienceCreateSchema = z
  .strictObject({
    name: audienceName,
    description: descriptionSchema.optional(),
    conditions: conditionsSchema,
  })
  .openapi("AudienceCreate");

const AudienceUpdateSchema = z
  .strictObject({
    name: audienceName.optional(),
    description: descriptionSchema.optional(),
    conditions: conditionsSchema.optional(),
    archived: z.boolean().optional(),
  })
  .openapi("AudienceUpdate");

type AudienceJson = z.infer<typeof AudienceSchema>;

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

export function registerAudienceRoutes(app: ApiApp): void {
  // The tree is validated by hand (precise paths); its leaf schema is documented as a component.
  app.openAPIRegistry.register("AudienceCondition", audienceConditionSchema);
  registerCrud<
    AudienceRow,
    AudienceJson,
    z.infer<typeof AudienceCreateSchema>,
    z.infer<typeof AudienceUpdateSchema>
  >(app, {
    type: "audience",
    plural: "audiences",
    table: "audiences",
    tag: "Audiences",
    schema: AudienceSchema,
    createSchema: AudienceCreateSchema,
    updateSchema: AudienceUpdateSchema,
    keyed: false,
    describe: {
      create:
        "Every leaf is checked (422 with its JSON path): a known match type, a value that fits it (exists: none; gt/ge/lt/le: a number; semver_*: a version; in_list: a list key of the project), and a `name` that is an attribute key of the project or a request attribute.",
      update:
        "`archived: true` keeps the audience out of new datafiles unless an experiment still uses it.",
      delete: "Refused (409) while an experiment's audience conditions name it.",
    },
    label: (row) => row.name,
    present: async (_db, rows) => rows.map(audienceJson),
    async build(ctx: BuildContext, input) {
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
    async beforeDelete(ctx, row) {
      const users = await experimentsUsing(ctx.db, ctx.projectId, row.id);
      if (users.length > 0) throw inUse(`audience ${row.name}`, users);
    },
  });
}
