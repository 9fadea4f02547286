/**
 * Event routes (docs/api.md "Events"); the rules are src/api/services/events.ts.
 */
import type { ApiApp } from "../context";
import { EventCreateSchema, EventSchema, EventUpdateSchema } from "../schemas/events";
import { eventResource } from "../services/events";
import { registerCrud } from "./crud";

export function registerEventRoutes(app: ApiApp): void {
  registerCrud(app, {
    ...eventResource,
    plural: "events",
    tag: "Events",
    schema: EventSchema,
    createSchema: EventCreateSchema,
    updateSchema: EventUpdateSchema,
    describe: {
      create:
        "`key` is unique in the project. pageview and click events need `pageId` (an existing page of the project); click events need `selector`.",
      update:
        "Changing `type` away from click drops `selector` (unless you send one, which is then refused). `archived: true` keeps the event out of new datafiles unless an experiment measures it.",
      delete: "Refused (409) while an experiment has a metric on it.",
    },
  });
}
