/**
 * Attributes (docs/api.md "Attributes"): the visitor attributes audiences may name, besides the
 * request attributes the edge computes (docs/datafile.md). `key` is unique per project.
 */
import { z } from "@hono/zod-openapi";
import { isStorableAttributeName } from "../../edge/visitor";
import type { ApiApp } from "../context";
import type { AttributeRow, AudienceRow } from "../store/rows";
import { all } from "../store/db";
import { descriptionSchema, nameSchema, resourceFields } from "../schemas/fields";
import { inUse, Problems } from "../services/validation";
import { leavesOf } from "../services/condition-tree";
import { parseJson } from "../store/sql";
import { registerCrud, type BuildContext } from "./crud";

const ATTRIBUTE_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$/;

const attributeKeySchema = z
  .string()
  .regex(
    ATTRIBUTE_KEY,
    "1–64 characters: letters, digits, _ . : - (starting with a letter, digit or _)",
  )
  .openapi({ example: "plan" });

export const AttributeSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    description: z.string(),
  })
  .openapi("Attribute");

const AttributeCreateSchema = z
  .strictObject({
    key: attributeKeySchema,
    name: nameSchema.optional(),
    description: descriptionSchema.optional(),
  })
  .openapi("AttributeCreate");

const AttributeUpdateSchema = z
  .strictObject({
    key: attributeKeySchema.optional(),
    name: nameSchema.optional(),
    description: descriptionSchema.optional(),
  })
  .openapi("AttributeUpdate");

type AttributeJson = z.infer<typeof AttributeSchema>;

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

export function registerAttributeRoutes(app: ApiApp): void {
  registerCrud<
    AttributeRow,
    AttributeJson,
    z.infer<typeof AttributeCreateSchema>,
    z.infer<typeof AttributeUpdateSchema>
  >(app, {
    type: "attribute",
    plural: "attributes",
    table: "attributes",
    tag: "Attributes",
    schema: AttributeSchema,
    createSchema: AttributeCreateSchema,
    updateSchema: AttributeUpdateSchema,
    keyed: true,
    describe: {
      create:
        "`key` is unique in the project (409 otherwise) and must not be a request attribute name (geo.*, device.*, query.*, url, …: the edge computes those).",
      update: "Changing `key` is refused (409) while an audience names the attribute.",
      delete: "Refused (409) while an audience names the attribute.",
    },
    label: (row) => row.key,
    present: async (_db, rows) => rows.map(attributeJson),
    async build(ctx: BuildContext, input) {
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
  });
}
