-- Brute-force limit of the management API's authentication (docs/security.md "Brute force",
-- src/api/auth-limit.ts): failed authentications per client in a fixed window. One row per client
-- key (the client's IP address, an IPv6 address by its /64, or "unknown" without one) that failed
-- recently; rows whose window has ended are deleted whenever a failure is recorded, so the table
-- only ever holds the clients that failed within the last window.
CREATE TABLE auth_failures (
  key TEXT PRIMARY KEY,
  -- ms since the epoch: the first failure of the current window
  window_start INTEGER NOT NULL,
  -- failures since window_start
  failures INTEGER NOT NULL
);
CREATE INDEX auth_failures_window_start ON auth_failures (window_start);
