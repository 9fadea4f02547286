/**
 * List routes (docs/api.md "Lists"); the rules are src/api/services/lists.ts.
 */
import type { ApiApp } from "../context";
import {
  ListCreateSchema,
  ListSchema,
  ListSummarySchema,
  ListUpdateSchema,
} from "../schemas/lists";
import { listResource } from "../services/lists";
import { registerCrud } from "./crud";

export function registerListRoutes(app: ApiApp): void {
  registerCrud(app, {
    ...listResource,
    plural: "lists",
    tag: "Lists",
    schema: ListSchema,
    createSchema: ListCreateSchema,
    updateSchema: ListUpdateSchema,
    listItemSchema: ListSummarySchema,
    describe: {
      create: "`key` is unique in the project; audiences name it in `in_list` conditions.",
      update:
        "`values` replaces the whole list. Changing `key` is refused (409) while an audience uses the list.",
      delete: "Refused (409) while an audience uses the list.",
      list: "Items carry `valueCount` but not the values; GET the list for them.",
    },
  });
}
