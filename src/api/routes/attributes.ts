/**
 * Attribute routes (docs/api.md "Attributes"); the rules are src/api/services/attributes.ts.
 */
import type { ApiApp } from "../context";
import {
  AttributeCreateSchema,
  AttributeSchema,
  AttributeUpdateSchema,
} from "../schemas/attributes";
import { attributeResource } from "../services/attributes";
import { registerCrud } from "./crud";

export function registerAttributeRoutes(app: ApiApp): void {
  registerCrud(app, {
    ...attributeResource,
    plural: "attributes",
    tag: "Attributes",
    schema: AttributeSchema,
    createSchema: AttributeCreateSchema,
    updateSchema: AttributeUpdateSchema,
    describe: {
      create:
        "`key` is unique in the project (409 otherwise) and must not be a request attribute name (geo.*, device.*, query.*, url, …: the edge computes those).",
      update: "Changing `key` is refused (409) while an audience names the attribute.",
      delete: "Refused (409) while an audience names the attribute.",
    },
  });
}
