/** Every project resource's routes (docs/api.md "Resources"); app.ts calls this once. */
import type { ApiApp } from "../app";
import { registerAttributeRoutes } from "./attributes";
import { registerAudienceRoutes } from "./audiences";
import { registerEventRoutes } from "./events";
import { registerExperimentRoutes } from "./experiments";
import { registerGroupRoutes } from "./groups";
import { registerListRoutes } from "./lists";
import { registerPageRoutes } from "./pages";
import { registerResultRoutes } from "./results";

export function registerResourceRoutes(app: ApiApp): void {
  registerAttributeRoutes(app);
  registerAudienceRoutes(app);
  registerEventRoutes(app);
  registerPageRoutes(app);
  registerGroupRoutes(app);
  registerListRoutes(app);
  registerExperimentRoutes(app);
  registerResultRoutes(app);
}
