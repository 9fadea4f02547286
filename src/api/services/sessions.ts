/**
 * Server-side sessions of the admin pages (docs/admin.md "Sessions", docs/security.md "Admin
 * pages: sessions, CSRF, CSP"; table `admin_sessions`, migrations/0008_admin_sessions.sql).
 *
 * - The session id is 32 random bytes, base64url (43 characters): the only thing the `ss_admin`
 *   cookie holds. The API token never leaves the sign-in request, so a leaked cookie is worth at
 *   most one session, and signing out makes it worthless.
 * - D1 keeps the id's SHA-256 (a copy of the table opens nothing) and the SHA-256 of the token it
 *   signed in with — the value `tokens.token_hash` holds — so every request re-checks the token
 *   (src/api/services/auth.ts actorForTokenHash) and revoking it (`DELETE /tokens/{id}`) deletes its
 *   sessions in the same batch.
 * - Fixed expiry, 8 hours after sign-in, never extended by use: a stolen session cannot be kept
 *   alive, and there is no write per page view. Sign-out deletes the row; expired rows are
 *   deleted whenever someone signs in.
 *
 * It lives in src/api because the tokens API revokes sessions; the admin pages use it.
 */
import { sha256Hex } from "../../shared/hash";
import type { SessionRow } from "../store/rows";

/**
 * Live sessions one token may hold; signing in again ends the oldest beyond it, so a token holder
 * looping sign-ins cannot grow the table.
 */
export const MAX_SESSIONS_PER_TOKEN = 20;
/** How long a session lasts from sign-in (fixed, not sliding). */
export const SESSION_SECONDS = 8 * 60 * 60;
/** A session id as the cookie carries it: base64url of 32 random bytes. */
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function newSessionId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Starts a session for the API token whose SHA-256 hex is `tokenHash` (the caller has just
 * authenticated it); returns the id for the cookie. Deletes expired sessions, and the token's oldest
 * beyond MAX_SESSIONS_PER_TOKEN, in the same batch.
 */
export async function createSession(
  db: D1Database,
  tokenHash: string,
  now = Date.now(),
): Promise<{ id: string; expiresAt: number }> {
  const id = newSessionId();
  const expiresAt = now + SESSION_SECONDS * 1000;
  await db.batch([
    db.prepare("DELETE FROM admin_sessions WHERE expires_at <= ?").bind(now),
    db
      .prepare(
        `DELETE FROM admin_sessions WHERE token_hash = ?1 AND id_hash NOT IN (
           SELECT id_hash FROM admin_sessions WHERE token_hash = ?1
           ORDER BY created_at DESC, id_hash LIMIT ?2)`,
      )
      .bind(tokenHash, MAX_SESSIONS_PER_TOKEN - 1),
    db
      .prepare(
        "INSERT INTO admin_sessions (id_hash, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
      )
      .bind(await sha256Hex(id), tokenHash, now, expiresAt),
  ]);
  return { id, expiresAt };
}

/**
 * The live session a cookie value names, or null: not an id's shape (an old cookie holding a raw
 * API token included — it is never looked up), unknown, signed out or expired.
 */
export async function findSession(
  db: D1Database,
  id: string,
  now = Date.now(),
): Promise<SessionRow | null> {
  if (!SESSION_ID_PATTERN.test(id)) return null;
  return db
    .prepare("SELECT * FROM admin_sessions WHERE id_hash = ? AND expires_at > ?")
    .bind(await sha256Hex(id), now)
    .first<SessionRow>();
}

/** Signs a session out: its row is deleted, so the cookie value never works again. */
export async function deleteSession(db: D1Database, id: string): Promise<void> {
  if (!SESSION_ID_PATTERN.test(id)) return;
  await db
    .prepare("DELETE FROM admin_sessions WHERE id_hash = ?")
    .bind(await sha256Hex(id))
    .run();
}

/** The statement that ends every session of a token (for the revoking batch). */
export function deleteTokenSessions(db: D1Database, tokenHash: string): D1PreparedStatement {
  return db.prepare("DELETE FROM admin_sessions WHERE token_hash = ?").bind(tokenHash);
}
