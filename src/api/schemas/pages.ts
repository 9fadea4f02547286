/**
 * Request and response schemas of pages (docs/api.md "Pages"); the rules beyond them are
 * src/api/services/pages.ts.
 */
import { z } from "@hono/zod-openapi";
import { PAGE_ACTIVATIONS } from "../../core/datafile-parse";
import { conditionTreeSchema, urlConditionSchema } from "./conditions";
import { keySchema, nameSchema, resourceFields } from "./fields";

const conditionsSchema = conditionTreeSchema(
  urlConditionSchema,
  'An and/or/not tree of UrlCondition leaves, e.g. ["or", {"match": "simple", "value": "https://shop.example.com/p"}, {"match": "regex", "value": "^https://shop\\\\.example\\\\.com/p/\\\\d+$"}]. Regexes must compile.',
  [
    "or",
    { match: "simple", value: "https://shop.example.com/p" },
    { match: "regex", value: "^https://shop\\.example\\.com/p/\\d+$" },
  ],
);

const activationSchema = z.enum(PAGE_ACTIVATIONS).openapi({
  description:
    "immediate: decided, applied and counted at the edge; manual: decided at the edge, applied and counted when the page calls activate; url_changed / dom_changed: single-page apps (dom_changed needs `selector`).",
});

const selectorSchema = z.string().min(1).max(1000);

export const PageSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    activation: activationSchema,
    selector: z.string().nullable(),
    conditions: z.unknown().openapi({ description: "The URL condition tree, as sent." }),
    archived: z.boolean(),
  })
  .openapi("Page");

const pageFields = z.strictObject({
  key: keySchema,
  name: nameSchema.optional(),
  activation: activationSchema.optional().openapi({ description: "Default immediate." }),
  selector: selectorSchema.optional().openapi({
    description: "dom_changed only: the element whose appearance activates the page.",
  }),
  conditions: conditionsSchema,
});

export const PageCreateSchema = pageFields.openapi("PageCreate");

/**
 * Every field of a create, optional; `activation` and `selector` without the create's
 * descriptions (defaults apply to a create only), `selector` may be null (to drop it); and
 * `archived`.
 */
export const PageUpdateSchema = pageFields
  .partial()
  .extend({
    activation: activationSchema.optional(),
    selector: selectorSchema.nullable().optional(),
    archived: z.boolean().optional(),
  })
  .openapi("PageUpdate");

export type PageJson = z.infer<typeof PageSchema>;
export type PageCreate = z.infer<typeof PageCreateSchema>;
export type PageUpdate = z.infer<typeof PageUpdateSchema>;
