/**
 * The types every part of the management API shares: the Hono environment of a request, the app
 * route modules register on, and who is calling. Imports nothing else from src/api, so route
 * modules, auth and the composition root (app.ts) can all use it without import cycles
 * (docs/architecture.md).
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Env } from "../env";

export type Role = "admin" | "editor" | "viewer";

/** Who is calling (src/api/services/auth.ts authenticates; audit entries record it). */
export interface Actor {
  /** `admin-token` for ADMIN_TOKEN, else the token's id. */
  id: string;
  role: Role;
  name: string;
}

export type ApiEnv = { Bindings: Env; Variables: { actor: Actor } };

export const API_BASE_PATH = "/_ss/api/v1";

/** The app route modules register on (paths are relative to API_BASE_PATH: `/projects`, …). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- Hono's own "no routes yet" schema type
export type ApiApp = OpenAPIHono<ApiEnv, {}, typeof API_BASE_PATH>;
