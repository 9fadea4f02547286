/**
 * Request and response schemas of attributes (docs/api.md "Attributes"); the rules beyond them
 * are src/api/services/attributes.ts.
 */
import { z } from "@hono/zod-openapi";
import { descriptionSchema, nameSchema, resourceFields } from "./fields";

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

const attributeFields = z.strictObject({
  key: attributeKeySchema,
  name: nameSchema.optional(),
  description: descriptionSchema.optional(),
});

export const AttributeCreateSchema = attributeFields.openapi("AttributeCreate");

/** Every field of a create, optional. */
export const AttributeUpdateSchema = attributeFields.partial().openapi("AttributeUpdate");

export type AttributeJson = z.infer<typeof AttributeSchema>;
export type AttributeCreate = z.infer<typeof AttributeCreateSchema>;
export type AttributeUpdate = z.infer<typeof AttributeUpdateSchema>;
