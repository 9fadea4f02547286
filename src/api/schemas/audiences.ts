/**
 * Request and response schemas of audiences (docs/api.md "Audiences"); the rules beyond them are
 * src/api/services/audiences.ts.
 */
import { z } from "@hono/zod-openapi";
import { audienceConditionSchema, conditionTreeSchema } from "./conditions";
import { descriptionSchema, resourceFields } from "./fields";

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

const audienceFields = z.strictObject({
  name: z.string().trim().min(1).max(200),
  description: descriptionSchema.optional(),
  conditions: conditionsSchema,
});

export const AudienceCreateSchema = audienceFields.openapi("AudienceCreate");

/** Every field of a create, optional, and `archived`. */
export const AudienceUpdateSchema = audienceFields
  .partial()
  .extend({ archived: z.boolean().optional() })
  .openapi("AudienceUpdate");

export type AudienceJson = z.infer<typeof AudienceSchema>;
export type AudienceCreate = z.infer<typeof AudienceCreateSchema>;
export type AudienceUpdate = z.infer<typeof AudienceUpdateSchema>;
