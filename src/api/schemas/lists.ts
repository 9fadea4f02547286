/**
 * Request and response schemas of lists (docs/api.md "Lists"); the rules beyond them are
 * src/api/services/lists.ts.
 */
import { z } from "@hono/zod-openapi";
import { keySchema, nameSchema, resourceFields } from "./fields";

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

const listFields = z.strictObject({
  key: keySchema,
  name: nameSchema.optional(),
  values: valuesSchema,
});

export const ListCreateSchema = listFields.openapi("ListCreate");

/** Every field of a create, optional. */
export const ListUpdateSchema = listFields.partial().openapi("ListUpdate");

export type ListJson = z.infer<typeof ListSchema>;
export type ListSummaryJson = z.infer<typeof ListSummarySchema>;
export type ListCreate = z.infer<typeof ListCreateSchema>;
export type ListUpdate = z.infer<typeof ListUpdateSchema>;
