/**
 * Experiment schedules (docs/schedules.md): GET every environment's schedule of an experiment,
 * GET / PUT / DELETE one environment's. Viewer reads, editor writes, ETag / If-Match on the
 * schedule's version. HTTP only: the rules are src/api/services/schedules.ts's.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { IdParams } from "../schemas/fields";
import {
  ScheduleListSchema,
  ScheduleParams,
  ScheduleReplaceSchema,
  ScheduleSchema,
} from "../schemas/schedules";
import { deleteSchedule, getSchedule, listSchedules, replaceSchedule } from "../services/schedules";

const tags = ["Schedules"];

export function registerScheduleRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/schedules",
      tags,
      summary: "Every environment's schedule of an experiment",
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(ScheduleListSchema, "One schedule per environment, production first"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const items = await listSchedules(c.env, c.get("actor"), c.req.valid("param").id);
      return c.json({ items }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/schedules/{environment}",
      tags,
      summary: "An experiment's schedule in one environment",
      description:
        "The steps already run (with status, appliedAt, the revision they published, the error) and the pending ones. A schedule never written answers version 0 and no steps.",
      middleware: [requireRole("viewer")] as const,
      request: { params: ScheduleParams },
      responses: {
        200: jsonResponse(ScheduleSchema, "The schedule"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const { id, environment } = c.req.valid("param");
      const schedule = await getSchedule(c.env, c.get("actor"), id, environment);
      setEtag(c, schedule.version);
      return c.json(schedule, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/experiments/{id}/schedules/{environment}",
      tags,
      summary: "Replace the pending steps of an experiment's schedule in one environment",
      description:
        "The steps sent replace the pending steps still to come (steps already run stay as history; a pending step whose time has come is the run's and is kept). Each step: `at` (ISO-8601 UTC, in the future, at most 366 days ahead, not before the previous step), `action` (start | pause | resume | archive | traffic) and, for traffic only, `percent` (0–100 in 0.01 steps). Publishes nothing: the scheduled run (every minute) applies each step once at its time, as the actor `schedule`. 409 when the experiment is archived in that environment. Honours If-Match (version 0: no schedule yet).",
      middleware: [requireRole("editor")] as const,
      request: { params: ScheduleParams, body: jsonBody(ScheduleReplaceSchema) },
      responses: {
        200: jsonResponse(ScheduleSchema, "The schedule after the change"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const { id, environment } = c.req.valid("param");
      const schedule = await replaceSchedule(c.env, c.get("actor"), {
        experimentId: id,
        environment,
        steps: c.req.valid("json").steps,
        ifMatch: (version) => checkIfMatch(c, version),
      });
      setEtag(c, schedule.version);
      return c.json(schedule, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/experiments/{id}/schedules/{environment}",
      tags,
      summary: "Cancel the pending steps of an experiment's schedule in one environment",
      description:
        "Removes every pending step still to come; the steps already run stay as history (and a pending step whose time has come is the run's). Honours If-Match.",
      middleware: [requireRole("editor")] as const,
      request: { params: ScheduleParams },
      responses: {
        200: jsonResponse(ScheduleSchema, "The schedule after the change"),
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id, environment } = c.req.valid("param");
      const schedule = await deleteSchedule(c.env, c.get("actor"), {
        experimentId: id,
        environment,
        ifMatch: (version) => checkIfMatch(c, version),
      });
      setEtag(c, schedule.version);
      return c.json(schedule, 200);
    },
  );
}
