/**
 * Audience routes (docs/api.md "Audiences"); the rules are src/api/services/audiences.ts.
 */
import type { ApiApp } from "../context";
import { AudienceCreateSchema, AudienceSchema, AudienceUpdateSchema } from "../schemas/audiences";
import { audienceConditionSchema } from "../schemas/conditions";
import { audienceResource } from "../services/audiences";
import { registerCrud } from "./crud";

export function registerAudienceRoutes(app: ApiApp): void {
  // The tree is validated by hand (precise paths); its leaf schema is documented as a component.
  app.openAPIRegistry.register("AudienceCondition", audienceConditionSchema);
  registerCrud(app, {
    ...audienceResource,
    plural: "audiences",
    tag: "Audiences",
    schema: AudienceSchema,
    createSchema: AudienceCreateSchema,
    updateSchema: AudienceUpdateSchema,
    describe: {
      create:
        "Every leaf is checked (422 with its JSON path): a known match type, a value that fits it (exists: none; gt/ge/lt/le: a number; semver_*: a version; in_list: a list key of the project), and a `name` that is an attribute key of the project or a request attribute.",
      update:
        "`archived: true` keeps the audience out of new datafiles unless an experiment still uses it.",
      delete:
        "Refused (409) while an experiment's audience conditions or a flag's delivery rule name it.",
    },
  });
}
