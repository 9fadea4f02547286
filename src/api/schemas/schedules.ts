/**
 * Request and response schemas of experiment schedules (docs/schedules.md): per experiment and
 * environment, timed steps — start, pause, resume, archive, or a traffic share — that the
 * scheduled run applies once their time has come. A PUT replaces the steps still to come; the
 * steps already run stay as the schedule's history. The rules the schemas cannot express (times
 * in the future and in order, percent in 0.01 steps) live in src/api/services/schedules.ts.
 */
import { z } from "@hono/zod-openapi";
import { EXPERIMENT_ACTIONS } from "./experiments";

/** What a step does: one of the status actions, or `traffic` (the experiment's traffic share). */
export const SCHEDULE_ACTIONS = [...EXPERIMENT_ACTIONS, "traffic"] as const;
export type ScheduleAction = (typeof SCHEDULE_ACTIONS)[number];

/** A step's state: still to come, being applied by a run, or what its run made of it. */
export const SCHEDULE_STEP_STATUSES = ["pending", "running", "done", "failed", "skipped"] as const;
export type ScheduleStepStatus = (typeof SCHEDULE_STEP_STATUSES)[number];

/** Most pending steps a schedule may hold. */
export const MAX_SCHEDULE_STEPS = 50;

/** How far ahead a step may be (a year and a day: a yearly campaign fits, a typo of the year not). */
export const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 60 * 60 * 1000;

/** `{id}` (experiment) and `{environment}` (environment key) path parameters. */
export const ScheduleParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "204819230582" }),
  environment: z
    .string()
    .openapi({ param: { name: "environment", in: "path" }, example: "production" }),
});

/** One step as a client sends it. */
export const ScheduleStepInputSchema = z
  .strictObject({
    at: z.string().max(40).openapi({
      description:
        "When: an ISO-8601 UTC time ending in Z (`2026-12-24T08:00:00Z`), in the future, at most 366 days ahead, not before the previous step. The run is per minute: a step is applied in the first run at or after it.",
      example: "2026-12-24T08:00:00Z",
    }),
    action: z.enum(SCHEDULE_ACTIONS).openapi({
      description:
        "start | pause | resume | archive (the status actions, in the schedule's environment) | traffic (the experiment's traffic share, which applies in every environment).",
    }),
    percent: z.number().min(0).max(100).optional().openapi({
      description:
        "traffic only (required there): percent of eligible visitors in the experiment, 0–100 in steps of 0.01 (the experiment's `traffic` in basis points is percent × 100). The variations keep their relative weights.",
      example: 50,
    }),
  })
  .openapi("ScheduleStepInput");

export type ScheduleStepInput = z.infer<typeof ScheduleStepInputSchema>;

/** `PUT /experiments/{id}/schedules/{environment}`. */
export const ScheduleReplaceSchema = z
  .strictObject({
    steps: z.array(ScheduleStepInputSchema).max(MAX_SCHEDULE_STEPS).openapi({
      description:
        "The steps still to come, in time order: they replace the schedule's pending steps still to come (an empty list cancels them). Steps already run are kept as history and cannot be changed; a pending step whose time has come is the run's and is kept.",
    }),
  })
  .openapi("ScheduleReplace");

export type ScheduleReplace = z.infer<typeof ScheduleReplaceSchema>;

/** One step as the API returns it. */
export const ScheduleStepSchema = z
  .object({
    id: z.string(),
    at: z.string().openapi({ description: "ISO-8601 UTC." }),
    action: z.enum(SCHEDULE_ACTIONS),
    percent: z.number().nullable().openapi({ description: "traffic steps: the share in %." }),
    status: z.enum(SCHEDULE_STEP_STATUSES).openapi({
      description:
        "pending (to come), running (a run is applying it), done, failed (error says why), skipped (it made no sense for the experiment's status then; error says why).",
    }),
    appliedAt: z.string().nullable().openapi({ description: "When the run finished it." }),
    revision: z.number().int().nullable().openapi({
      description: "The datafile revision it published in the schedule's environment.",
    }),
    error: z.string().nullable(),
  })
  .openapi("ScheduleStep");

export type ScheduleStepJson = z.infer<typeof ScheduleStepSchema>;

/** An experiment's schedule in one environment. */
export const ScheduleSchema = z
  .object({
    experimentId: z.string(),
    projectId: z.string(),
    environment: z.string().openapi({ description: "Environment key." }),
    environmentId: z.string(),
    version: z.number().int().openapi({
      description:
        'Bumped by every PUT and DELETE; 0 for a schedule never written. The ETag is W/"v<version>".',
    }),
    updatedAt: z.string().nullable(),
    steps: z.array(ScheduleStepSchema).openapi({
      description: "History (steps already run) first, then the pending steps, in time order.",
    }),
  })
  .openapi("Schedule");

export type ScheduleJson = z.infer<typeof ScheduleSchema>;

/** Every environment's schedule of an experiment. */
export const ScheduleListSchema = z
  .object({ items: z.array(ScheduleSchema) })
  .openapi("ScheduleList");
