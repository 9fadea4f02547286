/**
 * Page routes (docs/api.md "Pages"); the rules are src/api/services/pages.ts.
 */
import type { ApiApp } from "../context";
import { urlConditionSchema } from "../schemas/conditions";
import { PageCreateSchema, PageSchema, PageUpdateSchema } from "../schemas/pages";
import { pageResource } from "../services/pages";
import { registerCrud } from "./crud";

export function registerPageRoutes(app: ApiApp): void {
  app.openAPIRegistry.register("UrlCondition", urlConditionSchema);
  registerCrud(app, {
    ...pageResource,
    plural: "pages",
    tag: "Pages",
    schema: PageSchema,
    createSchema: PageCreateSchema,
    updateSchema: PageUpdateSchema,
    describe: {
      create:
        "`key` is unique in the project. `conditions` is a URL condition tree (regexes must compile); `activation` dom_changed needs `selector`.",
      update:
        "Changing `activation` away from dom_changed drops `selector` (unless you send one, which is then refused). `archived: true` keeps the page out of new datafiles unless an experiment or event still uses it.",
      delete: "Refused (409) while an experiment or event uses the page.",
    },
  });
}
