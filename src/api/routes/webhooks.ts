/**
 * Webhook routes (docs/webhooks.md), admin only; the rules are src/api/services/webhooks.ts.
 * The secret is in the responses of create and rotate-secret only.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageSchema, parsePagination } from "../http/pagination";
import { ProjectParams } from "../schemas/fields";
import {
  WebhookCreateSchema,
  WebhookDeliveryDetailSchema,
  WebhookDeliverySchema,
  WebhookSchema,
  WebhookUpdateSchema,
  WebhookWithSecretSchema,
} from "../schemas/webhooks";
import {
  createWebhook,
  deleteWebhook,
  deliveryJson,
  getWebhook,
  getWebhookDelivery,
  listWebhookDeliveries,
  listWebhooks,
  redeliverWebhookDelivery,
  rotateWebhookSecret,
  sendTestWebhook,
  updateWebhook,
  webhookJson,
} from "../services/webhooks";
import { pageBody } from "./crud";

const WebhookParams = z.object({
  webhookId: z.string().openapi({ param: { name: "webhookId", in: "path" } }),
});
const DeliveryParams = z.object({
  deliveryId: z.string().openapi({ param: { name: "deliveryId", in: "path" } }),
});

const tags = ["Webhooks"];

export function registerWebhookRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/projects/{projectId}/webhooks",
      tags,
      summary: "Create a webhook (the signing secret is in this response only)",
      description:
        "Deliveries are signed with HMAC-SHA256 over `{timestamp}.{body}` (docs/webhooks.md), queued, and retried with backoff.",
      middleware: [requireRole("admin")] as const,
      request: { params: ProjectParams, body: jsonBody(WebhookCreateSchema) },
      responses: {
        201: jsonResponse(WebhookWithSecretSchema, "The webhook, with its secret"),
        ...errorResponses(400, 401, 403, 404, 413, 415, 422),
      },
    }),
    async (c) => {
      const { row, secret } = await createWebhook(
        c.env,
        c.get("actor"),
        c.req.valid("param").projectId,
        c.req.valid("json"),
      );
      setEtag(c, row.version);
      c.header("Location", `${API_BASE_PATH}/webhooks/${row.id}`);
      return c.json({ ...webhookJson(row), secret }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/projects/{projectId}/webhooks",
      tags,
      summary: "List a project's webhooks (never their secrets)",
      middleware: [requireRole("admin")] as const,
      request: { params: ProjectParams, query: PaginationQuery },
      responses: {
        200: jsonResponse(pageSchema(WebhookSchema, "WebhookPage"), "A page of webhooks"),
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const page = await listWebhooks(c.env, c.get("actor"), c.req.valid("param").projectId, () =>
        parsePagination(c),
      );
      return c.json(pageBody({ items: page.items.map(webhookJson), after: page.after }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/webhooks/{webhookId}",
      tags,
      summary: "Get a webhook (never its secret)",
      middleware: [requireRole("admin")] as const,
      request: { params: WebhookParams },
      responses: {
        200: jsonResponse(WebhookSchema, "The webhook"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const row = await getWebhook(c.env, c.get("actor"), c.req.valid("param").webhookId);
      setEtag(c, row.version);
      return c.json(webhookJson(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/webhooks/{webhookId}",
      tags,
      summary: "Change a webhook",
      description:
        "Fields sent replace the current ones. Send `If-Match` with the ETag you read: a stale one answers 409 version_conflict. Disabling stops pending deliveries at their next attempt.",
      middleware: [requireRole("admin")] as const,
      request: { params: WebhookParams, body: jsonBody(WebhookUpdateSchema) },
      responses: {
        200: jsonResponse(WebhookSchema, "The changed webhook"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const row = await updateWebhook(
        c.env,
        c.get("actor"),
        c.req.valid("param").webhookId,
        c.req.valid("json"),
        (version) => checkIfMatch(c, version),
      );
      setEtag(c, row.version);
      return c.json(webhookJson(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/webhooks/{webhookId}",
      tags,
      summary: "Delete a webhook and its delivery log",
      description: "Honours `If-Match`.",
      middleware: [requireRole("admin")] as const,
      request: { params: WebhookParams },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    async (c) => {
      await deleteWebhook(c.env, c.get("actor"), c.req.valid("param").webhookId, (version) =>
        checkIfMatch(c, version),
      );
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/webhooks/{webhookId}/rotate-secret",
      tags,
      summary: "Replace the signing secret (the new one is in this response only)",
      description:
        "The old secret stops at once: every attempt from now on is signed with the new one. Honours `If-Match`.",
      middleware: [requireRole("admin")] as const,
      request: { params: WebhookParams },
      responses: {
        200: jsonResponse(WebhookWithSecretSchema, "The webhook, with its new secret"),
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { row, secret } = await rotateWebhookSecret(
        c.env,
        c.get("actor"),
        c.req.valid("param").webhookId,
        (version) => checkIfMatch(c, version),
      );
      setEtag(c, row.version);
      return c.json({ ...webhookJson(row), secret }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/webhooks/{webhookId}/test",
      tags,
      summary: "Send a test delivery (`webhook.test`) to this webhook",
      description:
        "Queued, signed and retried like any delivery, also when the webhook is disabled; follow it in the delivery log.",
      middleware: [requireRole("admin")] as const,
      request: { params: WebhookParams },
      responses: {
        202: jsonResponse(WebhookDeliverySchema, "The queued delivery"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const row = await sendTestWebhook(c.env, c.get("actor"), c.req.valid("param").webhookId);
      c.header("Location", `${API_BASE_PATH}/webhook-deliveries/${row.id}`);
      return c.json(deliveryJson(row), 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/webhooks/{webhookId}/deliveries",
      tags,
      summary: "The delivery log: a webhook's deliveries, newest first",
      description: "Kept 30 days after they finish.",
      middleware: [requireRole("admin")] as const,
      request: { params: WebhookParams, query: PaginationQuery },
      responses: {
        200: jsonResponse(
          pageSchema(WebhookDeliverySchema, "WebhookDeliveryPage"),
          "A page of deliveries",
        ),
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const page = await listWebhookDeliveries(
        c.env,
        c.get("actor"),
        c.req.valid("param").webhookId,
        () => parsePagination(c),
      );
      return c.json(pageBody({ items: page.items.map(deliveryJson), after: page.after }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/webhook-deliveries/{deliveryId}",
      tags,
      summary: "One delivery: its body and every attempt with its response code",
      middleware: [requireRole("admin")] as const,
      request: { params: DeliveryParams },
      responses: {
        200: jsonResponse(WebhookDeliveryDetailSchema, "The delivery"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const detail = await getWebhookDelivery(
        c.env,
        c.get("actor"),
        c.req.valid("param").deliveryId,
      );
      return c.json(detail, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/webhook-deliveries/{deliveryId}/redeliver",
      tags,
      summary: "Redeliver a finished delivery: a new delivery of the same body to the same webhook",
      description:
        "For a delivery that has been delivered or has failed (409 while it or a redelivery of it is pending). The new delivery has its own id (`x-splitstream-delivery`), the stored body unchanged (same event `id`) and `redeliveryOf`; it goes to the webhook's stored URL, signed with the webhook's current secret and a fresh timestamp, queued and retried like any delivery. 409 when the webhook is disabled. Takes no body. Audited (`redeliver`).",
      middleware: [requireRole("admin")] as const,
      request: { params: DeliveryParams },
      responses: {
        202: jsonResponse(WebhookDeliverySchema, "The new, queued delivery"),
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const row = await redeliverWebhookDelivery(
        c.env,
        c.get("actor"),
        c.req.valid("param").deliveryId,
      );
      c.header("Location", `${API_BASE_PATH}/webhook-deliveries/${row.id}`);
      return c.json(deliveryJson(row), 202);
    },
  );
}
