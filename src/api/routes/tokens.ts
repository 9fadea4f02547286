/**
 * API tokens (docs/api.md "Tokens"), admin only. The secret (`ss_` + 32 url-safe characters) is
 * returned once, by POST; only its SHA-256 and first characters (`prefix`) are stored. DELETE
 * revokes (the row stays, with `revokedAt`, so audit entries keep a name to point at) and ends
 * the token's admin sessions in the same batch (src/api/services/sessions.ts).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { auditStatement } from "../store/audit";
import { requireRole } from "../http/auth";
import { sha256Hex } from "../../shared/hash";
import { all, first } from "../store/db";
import { type TokenRow } from "../store/rows";
import { notFound, unprocessable } from "../errors";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageOf, pageSchema, parsePagination } from "../http/pagination";
import { newId, newTokenSecret, nowIso } from "../ids";
import { deleteTokenSessions } from "../services/sessions";

/** Characters of the secret kept for recognising a token in lists (`ss_` + 5). */
export const TOKEN_PREFIX_LENGTH = 8;

export const TokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(["admin", "editor", "viewer"]),
    prefix: z
      .string()
      .openapi({ description: "First characters of the secret.", example: "ss_Ab3dE" }),
    createdBy: z.string().openapi({ description: "Actor id: `admin-token` or a token id." }),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    lastUsedAt: z.string().nullable().openapi({ description: "Updated at most once a minute." }),
  })
  .openapi("Token");

const TokenCreatedSchema = TokenSchema.extend({
  token: z
    .string()
    .openapi({ description: "The secret. Shown only in this response: store it now." }),
}).openapi("TokenCreated");

const TokenCreateSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    role: z.enum(["admin", "editor", "viewer"]),
    expiresAt: z.iso.datetime({ offset: true }).optional().openapi({
      description: "ISO 8601 date-time in the future; absent = never expires.",
      example: "2027-01-01T00:00:00Z",
    }),
  })
  .openapi("TokenCreate");

const TokenParams = z.object({
  tokenId: z.string().openapi({ param: { name: "tokenId", in: "path" } }),
});

export function tokenJson(row: TokenRow): z.infer<typeof TokenSchema> {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    prefix: row.prefix,
    createdBy: row.created_by,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}

const tags = ["Tokens"];

export function registerTokenRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/tokens",
      tags,
      summary: "Create a token (the secret is in this response only)",
      middleware: [requireRole("admin")] as const,
      request: { body: jsonBody(TokenCreateSchema) },
      responses: {
        201: jsonResponse(TokenCreatedSchema, "The token, with its secret"),
        ...errorResponses(400, 401, 403, 413, 422),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const db = c.env.DB;
      const actor = c.get("actor");
      const now = nowIso();
      let expiresAt: string | null = null;
      if (body.expiresAt !== undefined) {
        const at = Date.parse(body.expiresAt);
        if (!(at > Date.now()))
          throw unprocessable("expiresAt must be in the future", [
            { path: "$.body.expiresAt", message: "must be in the future" },
          ]);
        expiresAt = new Date(at).toISOString();
      }
      const secret = newTokenSecret();
      const row: TokenRow = {
        id: newId(),
        name: body.name,
        role: body.role,
        token_hash: await sha256Hex(secret),
        prefix: secret.slice(0, TOKEN_PREFIX_LENGTH),
        created_by: actor.id,
        created_at: now,
        expires_at: expiresAt,
        revoked_at: null,
        last_used_at: null,
      };
      await db.batch([
        db
          .prepare(
            "INSERT INTO tokens (id, name, role, token_hash, prefix, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
          )
          .bind(
            row.id,
            row.name,
            row.role,
            row.token_hash,
            row.prefix,
            row.created_by,
            now,
            expiresAt,
          ),
        auditStatement(db, actor, "create", "token", row.id, null, {
          name: row.name,
          role: row.role,
          expiresAt,
        }),
      ]);
      c.header("Location", `/_ss/api/v1/tokens/${row.id}`);
      return c.json({ ...tokenJson(row), token: secret }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/tokens",
      tags,
      summary: "List tokens (never their secrets), revoked ones included",
      middleware: [requireRole("admin")] as const,
      request: { query: PaginationQuery },
      responses: {
        200: jsonResponse(pageSchema(TokenSchema, "TokenPage"), "A page of tokens"),
        ...errorResponses(401, 403, 422),
      },
    }),
    async (c) => {
      const { limit, cursor } = parsePagination(c);
      const rows = await all<TokenRow>(
        c.env.DB,
        "SELECT * FROM tokens WHERE id > ? ORDER BY id LIMIT ?",
        cursor ?? "",
        limit + 1,
      );
      const page = pageOf(rows, limit);
      return c.json({ items: page.items.map(tokenJson), nextCursor: page.nextCursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/tokens/{tokenId}",
      tags,
      summary: "Get a token (never its secret)",
      middleware: [requireRole("admin")] as const,
      request: { params: TokenParams },
      responses: {
        200: jsonResponse(TokenSchema, "The token"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const { tokenId } = c.req.valid("param");
      const row = await first<TokenRow>(c.env.DB, "SELECT * FROM tokens WHERE id = ?", tokenId);
      if (!row) throw notFound("token", tokenId);
      return c.json(tokenJson(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/tokens/{tokenId}",
      tags,
      summary: "Revoke a token (at once; revoking twice is a no-op)",
      middleware: [requireRole("admin")] as const,
      request: { params: TokenParams },
      responses: {
        204: { description: "Revoked" },
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const { tokenId } = c.req.valid("param");
      const db = c.env.DB;
      const row = await first<TokenRow>(db, "SELECT * FROM tokens WHERE id = ?", tokenId);
      if (!row) throw notFound("token", tokenId);
      if (row.revoked_at === null) {
        const now = nowIso();
        await db.batch([
          db
            .prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now, tokenId),
          auditStatement(db, c.get("actor"), "revoke", "token", tokenId, null, { name: row.name }),
          // Its admin sessions end with it (docs/admin.md "Sessions").
          deleteTokenSessions(db, row.token_hash),
        ]);
      }
      return c.body(null, 204);
    },
  );
}
