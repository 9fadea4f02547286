/**
 * Request and response schemas of API tokens (docs/api.md "Tokens"); the rules beyond them are
 * src/api/services/tokens.ts.
 */
import { z } from "@hono/zod-openapi";

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

export const TokenCreatedSchema = TokenSchema.extend({
  token: z
    .string()
    .openapi({ description: "The secret. Shown only in this response: store it now." }),
}).openapi("TokenCreated");

export const TokenCreateSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    role: z.enum(["admin", "editor", "viewer"]),
    expiresAt: z.iso.datetime({ offset: true }).optional().openapi({
      description: "ISO 8601 date-time in the future; absent = never expires.",
      example: "2027-01-01T00:00:00Z",
    }),
  })
  .openapi("TokenCreate");

export type TokenJson = z.infer<typeof TokenSchema>;
export type TokenCreatedJson = z.infer<typeof TokenCreatedSchema>;
export type TokenCreate = z.infer<typeof TokenCreateSchema>;
