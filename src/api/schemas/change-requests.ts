/**
 * Request and response schemas of change requests (docs/approvals.md, docs/api.md "Approvals"):
 * what an editor's change to a live experiment in a review-required environment becomes, and the
 * bodies of approving, rejecting and withdrawing it. The rules are
 * src/api/services/change-requests.ts.
 */
import { z } from "@hono/zod-openapi";
import { ExperimentSchema } from "./experiments";
import { PublishedField } from "./fields";

export const CHANGE_REQUEST_KINDS = ["update", "start", "resume"] as const;
export const CHANGE_REQUEST_STATUSES = ["pending", "approved", "rejected", "withdrawn"] as const;

export const ChangeRequestSchema = z
  .object({
    id: z.string().openapi({ example: "204819230599" }),
    projectId: z.string(),
    experimentId: z.string(),
    experimentKey: z
      .string()
      .nullable()
      .openapi({ description: "The experiment's key now (null when it is gone)." }),
    kind: z.enum(CHANGE_REQUEST_KINDS).openapi({
      description:
        "`update`: a PATCH of the experiment (payload = its body); `start` | `resume`: that action (payload = `{environment}`).",
    }),
    environments: z.array(z.string()).openapi({
      description: "Keys of the review-required environments the change needs review for.",
      example: ["production"],
    }),
    payload: z.record(z.string(), z.unknown()).openapi({
      description: "What is asked for: the validated update body, or `{environment}` of an action.",
    }),
    baseVersion: z.number().int().openapi({
      description:
        "The experiment's version the request was made on; approving needs it still current (else 409 stale).",
    }),
    stale: z.boolean().openapi({
      description:
        "True when the experiment changed since the request: it can no longer be approved (reject or withdraw it, and re-submit).",
    }),
    status: z.enum(CHANGE_REQUEST_STATUSES),
    requestedBy: z.string().openapi({ description: "Actor id (token id) of the requester." }),
    requestedByName: z.string(),
    createdAt: z.string(),
    decidedBy: z.string().nullable(),
    decidedByName: z.string().nullable(),
    decidedAt: z.string().nullable(),
    comment: z.string().nullable(),
  })
  .openapi("ChangeRequest");

/** 202 body of a write that went to review. */
export const PendingReviewSchema = z
  .object({
    changeRequest: ChangeRequestSchema,
    message: z.string().openapi({
      example:
        "experiment checkout_button is live in review-required environment production: the change waits for review (change request 204819230599)",
    }),
  })
  .openapi("PendingReview");

export const ChangeRequestDecisionSchema = z
  .strictObject({
    comment: z.string().trim().max(2000).optional().openapi({
      description: "Why (shown with the request and in the audit log).",
    }),
  })
  .openapi("ChangeRequestDecision");

export const ChangeRequestListQuery = z.object({
  status: z
    .enum(CHANGE_REQUEST_STATUSES)
    .optional()
    .openapi({
      param: { name: "status", in: "query" },
      description: "Only requests with this status (default: all).",
      example: "pending",
    }),
  experimentId: z
    .string()
    .optional()
    .openapi({
      param: { name: "experimentId", in: "query" },
      description: "Only requests for this experiment.",
    }),
});

export const ApprovalResultSchema = z
  .object({
    changeRequest: ChangeRequestSchema,
    experiment: ExperimentSchema,
    published: PublishedField,
  })
  .openapi("ApprovalResult");

export type ChangeRequestJson = z.infer<typeof ChangeRequestSchema>;
export type PendingReview = z.infer<typeof PendingReviewSchema>;
export type ChangeRequestDecision = z.infer<typeof ChangeRequestDecisionSchema>;
export type ApprovalResult = z.infer<typeof ApprovalResultSchema>;
