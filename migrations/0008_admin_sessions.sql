-- Sessions of the admin pages (docs/admin.md "Sessions", src/api/sessions.ts). The `ss_admin`
-- cookie holds an opaque random id (32 bytes, base64url); only its SHA-256 is stored here, so a
-- copy of this table opens no session. A session is bound to the API token it signed in with, by
-- that token's SHA-256 (the same value as `tokens.token_hash`; for ADMIN_TOKEN, the secret's
-- SHA-256, so rotating the secret ends its sessions): every request re-checks the token (revoked,
-- expired, role). Fixed expiry: 8 hours after sign-in, never extended. Sign-out deletes the row;
-- revoking a token deletes its rows; expired rows are deleted at each sign-in.
CREATE TABLE admin_sessions (
  -- SHA-256 hex of the session id (the cookie value)
  id_hash TEXT PRIMARY KEY,
  -- SHA-256 hex of the API token the session signed in with
  token_hash TEXT NOT NULL,
  -- ms since the epoch
  created_at INTEGER NOT NULL,
  -- ms since the epoch: created_at + 8 hours
  expires_at INTEGER NOT NULL
);
CREATE INDEX admin_sessions_token_hash ON admin_sessions (token_hash);
CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);
