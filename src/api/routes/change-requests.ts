/**
 * Change requests (docs/approvals.md, docs/api.md "Approvals"): list a project's, read one,
 * approve, reject, withdraw. HTTP only: the rules are src/api/services/change-requests.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageSchema, parsePagination } from "../http/pagination";
import {
  ApprovalResultSchema,
  ChangeRequestDecisionSchema,
  ChangeRequestListQuery,
  ChangeRequestSchema,
} from "../schemas/change-requests";
import { IdParams, ProjectParams } from "../schemas/fields";
import {
  approveChangeRequest,
  getChangeRequest,
  listProjectChangeRequests,
  rejectChangeRequest,
  withdrawChangeRequest,
} from "../services/change-requests";
import { setEtag } from "../http/etag";
import { pageBody } from "./crud";

const tags = ["Approvals"];
const Page = pageSchema(ChangeRequestSchema, "ChangeRequestPage");

/** The optional `{comment}` body of a decision. */
const decisionBody = {
  required: false,
  content: { "application/json": { schema: ChangeRequestDecisionSchema } },
};

export function registerChangeRequestRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/projects/{projectId}/change-requests",
      tags,
      summary: "List a project's change requests (newest first)",
      description:
        "Editors' changes to live experiments in review-required environments, waiting for review or decided (docs/approvals.md). Filter with `status` (e.g. `pending`) and `experimentId`.",
      middleware: [requireRole("viewer")] as const,
      request: { params: ProjectParams, query: PaginationQuery.merge(ChangeRequestListQuery) },
      responses: {
        200: jsonResponse(Page, "A page of change requests"),
        ...errorResponses(401, 404, 422),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const query = c.req.valid("query");
      const page = await listProjectChangeRequests(
        c.env,
        c.get("actor"),
        projectId,
        { status: query.status, experimentId: query.experimentId },
        () => parsePagination(c),
      );
      return c.json(pageBody(page), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/change-requests/{id}",
      tags,
      summary: "Get a change request",
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(ChangeRequestSchema, "The change request"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const json = await getChangeRequest(c.env, c.get("actor"), c.req.valid("param").id);
      return c.json(json, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/change-requests/{id}/approve",
      tags,
      summary: "Approve a change request and apply it",
      description:
        "Editor or admin, never the requester (403). Applies the change as a direct change would (publishes every environment of the project, audited with `changeRequest` and `requestedBy`). 409 when the request is no longer pending; 409 `stale_change_request` when the experiment changed since the request (re-submit the change); a refused change (409, 422) leaves the request pending.",
      middleware: [requireRole("editor")] as const,
      request: { params: IdParams, body: decisionBody },
      responses: {
        200: jsonResponse(
          ApprovalResultSchema,
          "The approved request, the experiment after the change, and what was published",
        ),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422),
      },
    }),
    async (c) => {
      const result = await approveChangeRequest(
        c.env,
        c.get("actor"),
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      setEtag(c, result.experiment.version);
      return c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/change-requests/{id}/reject",
      tags,
      summary: "Reject a change request",
      description:
        "Editor or admin, not the requester (who withdraws instead; 403). Nothing is applied; the decision and its comment are audited. 409 when the request is no longer pending.",
      middleware: [requireRole("editor")] as const,
      request: { params: IdParams, body: decisionBody },
      responses: {
        200: jsonResponse(ChangeRequestSchema, "The rejected request"),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422),
      },
    }),
    async (c) => {
      const json = await rejectChangeRequest(
        c.env,
        c.get("actor"),
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(json, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/change-requests/{id}/withdraw",
      tags,
      summary: "Withdraw one's own change request",
      description:
        "The requester only (403 otherwise). Nothing is applied; audited. 409 when the request is no longer pending.",
      middleware: [requireRole("editor")] as const,
      request: { params: IdParams, body: decisionBody },
      responses: {
        200: jsonResponse(ChangeRequestSchema, "The withdrawn request"),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422),
      },
    }),
    async (c) => {
      const json = await withdrawChangeRequest(
        c.env,
        c.get("actor"),
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(json, 200);
    },
  );
}
