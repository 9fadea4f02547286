/**
 * Every project resource's routes (docs/api.md "Resources"), plus offline conversions, the
 * aggregates rebuild, bandit allocations, headline tests, experiment schedules, change requests
 * (approvals) and webhooks; app.ts calls this once.
 */
import type { ApiApp } from "../context";
import { registerAttributeRoutes } from "./attributes";
import { registerAudienceRoutes } from "./audiences";
import { registerBanditRoutes } from "./bandit-allocations";
import { registerChangeRequestRoutes } from "./change-requests";
import { registerConversionRoutes } from "./conversions";
import { registerEventRoutes } from "./events";
import { registerExperimentRoutes } from "./experiments";
import { registerFlagRoutes } from "./flags";
import { registerGroupRoutes } from "./groups";
import { registerHeadlineTestRoutes } from "./headline-tests";
import { registerHoldoutRoutes } from "./holdouts";
import { registerListRoutes } from "./lists";
import { registerPageRoutes } from "./pages";
import { registerRebuildRoutes } from "./rebuild";
import { registerEventStateRoutes } from "./event-state";
import { registerResultRoutes } from "./results";
import { registerWebhookRoutes } from "./webhooks";
import { registerScheduleRoutes } from "./schedules";

export function registerResourceRoutes(app: ApiApp): void {
  registerAttributeRoutes(app);
  registerAudienceRoutes(app);
  registerEventRoutes(app);
  registerPageRoutes(app);
  registerGroupRoutes(app);
  registerListRoutes(app);
  registerFlagRoutes(app);
  registerExperimentRoutes(app);
  registerScheduleRoutes(app);
  registerChangeRequestRoutes(app);
  registerResultRoutes(app);
  registerBanditRoutes(app);
  registerHeadlineTestRoutes(app);
  registerConversionRoutes(app);
  registerRebuildRoutes(app);
  registerEventStateRoutes(app);
  registerWebhookRoutes(app);
  registerHoldoutRoutes(app);
}
