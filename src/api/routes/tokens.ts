/**
 * API token routes (docs/api.md "Tokens"), admin only; the rules are src/api/services/tokens.ts.
 * The secret is in the POST response only; DELETE revokes.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageSchema, parsePagination } from "../http/pagination";
import { TokenCreatedSchema, TokenCreateSchema, TokenSchema } from "../schemas/tokens";
import { createToken, getToken, listTokens, revokeToken, tokenJson } from "../services/tokens";
import { pageBody } from "./crud";

const TokenParams = z.object({
  tokenId: z.string().openapi({ param: { name: "tokenId", in: "path" } }),
});

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
      const { row, secret } = await createToken(c.env, c.get("actor"), c.req.valid("json"));
      c.header("Location", `${API_BASE_PATH}/tokens/${row.id}`);
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
      const page = await listTokens(c.env, c.get("actor"), parsePagination(c));
      return c.json(pageBody({ items: page.items.map(tokenJson), after: page.after }), 200);
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
      const row = await getToken(c.env, c.get("actor"), c.req.valid("param").tokenId);
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
      await revokeToken(c.env, c.get("actor"), c.req.valid("param").tokenId);
      return c.body(null, 204);
    },
  );
}
