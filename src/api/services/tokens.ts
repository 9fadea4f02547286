/**
 * API tokens (docs/api.md "Tokens"), admin only. The secret (`ss_` + 32 url-safe characters) is
 * returned once, by `createToken`; only its SHA-256 and first characters (`prefix`) are stored.
 * Revoking keeps the row (with `revoked_at`, so audit entries keep a name to point at) and ends
 * the token's admin sessions in the same batch (src/api/services/sessions.ts).
 */
import type { Env } from "../../env";
import { sha256Hex } from "../../shared/hash";
import type { Actor } from "../context";
import { notFound, unprocessable } from "../errors";
import { newId, newTokenSecret, nowIso } from "../ids";
import type { TokenCreate, TokenJson } from "../schemas/tokens";
import { auditStatement } from "../store/audit";
import { all, first } from "../store/db";
import type { TokenRow } from "../store/rows";
import { insertStatement } from "../store/sql";
import { type Page, pageAfter, type PageRequest } from "./resources";
import { requireActorRole } from "./auth";
import { deleteTokenSessions } from "./sessions";

/** Characters of the secret kept for recognising a token in lists (`ss_` + 5). */
export const TOKEN_PREFIX_LENGTH = 8;

export function tokenJson(row: TokenRow): TokenJson {
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

/** A new token and its secret, which nothing stores (admin); 422 for an expiry in the past. */
export async function createToken(
  env: Env,
  actor: Actor,
  body: TokenCreate,
): Promise<{ row: TokenRow; secret: string }> {
  requireActorRole(actor, "admin");
  const db = env.DB;
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
    created_at: nowIso(),
    expires_at: expiresAt,
    revoked_at: null,
    last_used_at: null,
  };
  await db.batch([
    insertStatement(db, "tokens", row),
    auditStatement(db, actor, "create", "token", row.id, null, {
      name: row.name,
      role: row.role,
      expiresAt,
    }),
  ]);
  return { row, secret };
}

/** A page of tokens by id, revoked ones included (admin). */
export async function listTokens(
  env: Env,
  actor: Actor,
  page: PageRequest,
): Promise<Page<TokenRow>> {
  requireActorRole(actor, "admin");
  const rows = await all<TokenRow>(
    env.DB,
    "SELECT * FROM tokens WHERE id > ? ORDER BY id LIMIT ?",
    page.cursor ?? "",
    page.limit + 1,
  );
  return pageAfter(rows, page.limit);
}

/** One token (admin); 404 when it does not exist. */
export async function getToken(env: Env, actor: Actor, tokenId: string): Promise<TokenRow> {
  requireActorRole(actor, "admin");
  const row = await first<TokenRow>(env.DB, "SELECT * FROM tokens WHERE id = ?", tokenId);
  if (!row) throw notFound("token", tokenId);
  return row;
}

/**
 * Revokes a token at once, with its admin sessions (admin); revoking twice changes nothing.
 * 404 when it does not exist.
 */
export async function revokeToken(env: Env, actor: Actor, tokenId: string): Promise<void> {
  const row = await getToken(env, actor, tokenId);
  if (row.revoked_at !== null) return;
  const db = env.DB;
  await db.batch([
    db
      .prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
      .bind(nowIso(), tokenId),
    auditStatement(db, actor, "revoke", "token", tokenId, null, { name: row.name }),
    // Its admin sessions end with it (docs/admin.md "Sessions").
    deleteTokenSessions(db, row.token_hash),
  ]);
}
