/**
 * Group routes (docs/api.md "Groups"); the rules are src/api/services/groups.ts.
 */
import type { ApiApp } from "../context";
import { GroupCreateSchema, GroupSchema, GroupUpdateSchema } from "../schemas/groups";
import { groupResource } from "../services/groups";
import { registerCrud } from "./crud";

export function registerGroupRoutes(app: ApiApp): void {
  registerCrud(app, {
    ...groupResource,
    plural: "groups",
    tag: "Groups",
    schema: GroupSchema,
    createSchema: GroupCreateSchema,
    updateSchema: GroupUpdateSchema,
    describe: {
      create:
        "A new group has no experiments yet: create or change experiments with `groupId`, then PATCH the group's `allocation`.",
      update:
        "`allocation` replaces the whole allocation: experiments of this group (422 otherwise), each at most once, weights summing to at most 10000.",
      delete: "Refused (409) while experiments belong to the group.",
    },
  });
}
