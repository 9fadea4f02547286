/**
 * The management API (docs/api.md) under `/_ss/api/v1`: one OpenAPIHono app with
 * bearer auth, JSON bodies, the error envelope and an OpenAPI 3.1 document built from every
 * registered route.
 *
 * Route modules export `register<Name>Routes(app: ApiApp): void` and add routes with
 * `app.openapi(createRoute({...}), handler)` so the document covers them.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Env } from "../env";
import { errorResponse } from "../shared/error-response";
import { authenticate } from "./http/auth";
import { API_BASE_PATH, type ApiApp, type ApiEnv } from "./context";
import { ApiError, uniqueViolation } from "./errors";
import { jsonBodyGuard } from "./http/body-guard";
import { validationError } from "./schemas/validation-error";
import { registerDatafileImportRoutes } from "./routes/datafile-import";
import { registerPublishRoutes } from "./routes/datafiles";
import { registerResourceRoutes } from "./routes";
import { registerAuditLogRoutes } from "./routes/audit-log";
import { registerEnvironmentRoutes } from "./routes/environments";
import { registerProjectRoutes } from "./routes/projects";
import { registerTokenRoutes } from "./routes/tokens";

export const OPENAPI_PATH = `${API_BASE_PATH}/openapi.json`;
export const API_VERSION = "1.0.0";

function apiErrorResponse(error: ApiError): Response {
  const headers: Record<string, string> = {};
  if (error.status === 401) headers["www-authenticate"] = 'Bearer realm="splitstream"';
  // RFC 6750 §3.1: a valid token whose role is too low.
  if (error.status === 403 && error.code === "forbidden")
    headers["www-authenticate"] = 'Bearer realm="splitstream", error="insufficient_scope"';
  if (error.status === 429 || error.status === 503) headers["retry-after"] = "1";
  Object.assign(headers, error.headers);
  return errorResponse(error.status, error.code, error.message, error.details, headers);
}

/** Any error thrown below a route → the envelope. */
export function toErrorResponse(error: unknown, c?: Context): Response {
  if (error instanceof ApiError) return apiErrorResponse(error);
  if (error instanceof HTTPException) {
    // Thrown by Hono's validators (malformed JSON, unsupported media type).
    const status = error.status;
    if (status === 400)
      return errorResponse(400, "invalid_json", error.message || "malformed JSON");
    if (status === 415)
      return errorResponse(
        415,
        "unsupported_media_type",
        "request bodies must be JSON (Content-Type: application/json)",
      );
    return errorResponse(status, `http_${status}`, error.message || "request failed");
  }
  // D1 surfaces constraint violations as errors; a duplicate key is the caller's conflict.
  const duplicate = uniqueViolation(error);
  if (duplicate) return apiErrorResponse(duplicate);
  console.error(
    "splitstream api: unhandled error",
    c ? `${c.req.method} ${c.req.path}` : "",
    error,
  );
  return errorResponse(500, "internal_error", "internal error");
}

/**
 * The foundation without resource routes: base path, `cache-control: no-store`, bearer auth on
 * everything but `GET /openapi.json`, body guard (1 MB, JSON), validation → 422 with JSON paths,
 * the error envelope for thrown errors and unknown paths, and the OpenAPI 3.1 document (built
 * from whatever routes are registered when it is requested).
 */
export function createApiApp(): ApiApp {
  const app = new OpenAPIHono<ApiEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error, result.target);
    },
  }).basePath(API_BASE_PATH);

  app.use("*", async (c, next) => {
    await next();
    c.res.headers.set("cache-control", "no-store");
  });
  app.use("*", async (c, next) => {
    if (c.req.path === OPENAPI_PATH && (c.req.method === "GET" || c.req.method === "HEAD"))
      return next();
    c.set("actor", await authenticate(c));
    await next();
  });
  app.use("*", jsonBodyGuard);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description:
      "ADMIN_TOKEN, or a token created with POST /tokens (`ss_…`). Roles: viewer (read), editor (change content), admin (projects, environments, tokens).",
  });
  app.doc31("/openapi.json", () => ({
    openapi: "3.1.0",
    info: {
      title: "Splitstream management API",
      version: API_VERSION,
      description:
        "Projects, environments, experiments and the rest of an Optimizely-compatible experimentation platform. See docs/api.md.",
    },
    // Relative: resolved against wherever the document was fetched (OpenAPI 3.1 §4.8.5), i.e. this
    // Worker. The request's own URL can name another host: `wrangler dev` rewrites it to the
    // route's origin (the demo shop's localhost:8788), which is not where the API answers.
    servers: [{ url: "/", description: "This Worker (where this document is served)" }],
    security: [{ bearerAuth: [] }],
  }));

  app.onError((error, c) => toErrorResponse(error, c));
  app.notFound((c) =>
    errorResponse(404, "not_found", `no API endpoint ${c.req.method} ${c.req.path}`),
  );
  return app;
}

/** The foundation plus every route module: what the Worker serves. */
export function buildApiApp(): ApiApp {
  const app = createApiApp();
  registerProjectRoutes(app);
  registerEnvironmentRoutes(app);
  registerTokenRoutes(app);
  registerAuditLogRoutes(app);
  // attributes, audiences, events, pages, groups, lists, experiments (src/api/routes/index.ts)
  registerResourceRoutes(app);
  registerPublishRoutes(app);
  registerDatafileImportRoutes(app);
  return app;
}

let memoized: ApiApp | undefined;

/** Serves `/_ss/api/…` (src/index.ts); the app is built once per isolate. */
export async function handleApi(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
): Promise<Response> {
  memoized ??= buildApiApp();
  return memoized.fetch(request, env, ctx);
}
