/**
 * Feature flag routes (docs/flags.md, docs/api.md "Flags"); the rules are
 * src/api/services/flags.ts.
 */
import type { ApiApp } from "../context";
import { FlagCreateSchema, FlagSchema, FlagUpdateSchema } from "../schemas/flags";
import { flagResource } from "../services/flags";
import { registerCrud } from "./crud";

export function registerFlagRoutes(app: ApiApp): void {
  registerCrud(app, {
    ...flagResource,
    plural: "flags",
    tag: "Flags",
    schema: FlagSchema,
    createSchema: FlagCreateSchema,
    updateSchema: FlagUpdateSchema,
    describe: {
      create:
        'A new flag has the variations "off" and "on" unless given, and is off in every environment. Every value is checked against its variable\'s type (422 with its JSON path): integers are safe integers, doubles finite, JSON values objects.',
      update:
        "`variables` and `variations` replace the current ones (ids kept by id, else by key); `environments` changes only the environments and fields sent (a rule list replaces that environment's rules). Removing a variation an A/B rule or delivery rule uses is refused (422). `archived: true` is refused (409) while an A/B rule runs.",
      delete: "Refused (409) while experiments are A/B rules of the flag (flagId).",
    },
  });
}
