/**
 * Brute-force limit of bearer-token authentication (docs/security.md "Brute force",
 * docs/api.md "Authentication"): at most {@link AUTH_FAILURE_LIMIT} failed authentications per
 * client per {@link AUTH_FAILURE_WINDOW_MS}, counted in D1 (`auth_failures`,
 * migrations/0005_auth_failures.sql).
 *
 * - A failure is a request whose Authorization header is present but does not authenticate
 *   (malformed, unknown, expired or revoked token). A request without the header, a successful
 *   authentication and a 403 (valid token, role too low) never count.
 * - Fixed window per client: it starts at the client's first failure and lasts 60 s. The 11th
 *   failure within it is answered 429 instead of 401, and from then until the window ends EVERY
 *   authenticated request of that client is answered 429 — a right token too, before it is even
 *   looked at — so a guesser cannot tell a hit from a miss while limited. Nothing extends the
 *   window; when it ends, the count starts again from zero.
 * - The client is `cf-connecting-ip` (set by Cloudflare, which overwrites whatever a client
 *   sends), an IPv6 address by its /64 (one subscriber's prefix; rotating addresses inside it
 *   does not escape the limit), or the fixed key `unknown` when there is no such header (a
 *   request that did not come through Cloudflare: local development, tests), which all such
 *   requests share.
 *
 * Why D1 and not the Workers Rate Limiting binding (`[[ratelimits]]`): that binding only has
 * `limit({key})`, which counts every call, and no way to read a count without adding to it. A
 * limiter built on it must either count successful authentications too, or let a limited client
 * whose guess is right through (the one answer a guesser is looking for); its counts are also
 * per Cloudflare location. D1 gives one exact count per client, read without counting, at the
 * price of one indexed read per authenticated API request (run in parallel with the token
 * lookup) and one write per failure.
 */

/** Failed authentications a client may make per window; the next one is answered 429. */
export const AUTH_FAILURE_LIMIT = 10;
/** Length of a client's window, from its first failure. */
export const AUTH_FAILURE_WINDOW_MS = 60_000;
/** The client key of requests without `cf-connecting-ip`. */
export const UNKNOWN_CLIENT = "unknown";
const MAX_KEY_LENGTH = 64;

/** A client's failures in its current window. */
export interface FailureWindow {
  failures: number;
  /** ms since the epoch of the window's first failure. */
  windowStart: number;
}

/** The key a request's failures are counted under (see the module comment). */
export function authClientKey(ip: string | null | undefined): string {
  const address = ip?.trim() ?? "";
  if (address === "") return UNKNOWN_CLIENT;
  if (address.includes(":")) return ipv6Prefix(address) ?? address.slice(0, MAX_KEY_LENGTH);
  return address.slice(0, MAX_KEY_LENGTH);
}

/**
 * The /64 of an IPv6 address as `a:b:c:d::/64` (lowercase, no leading zeros); an IPv4-mapped
 * address (`::ffff:1.2.3.4`) is its IPv4 address. Null when it is not an IPv6 address.
 */
export function ipv6Prefix(address: string): string | null {
  const text = address.replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (mapped) return mapped[1]!;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string): string[] | null => {
    if (part === "") return [];
    const groups = part.split(":");
    const last = groups[groups.length - 1]!;
    if (last.includes(".")) {
      // Embedded IPv4 in the last 32 bits.
      const octets = last.split(".").map(Number);
      if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255))
        return null;
      groups.splice(-1, 1, ((octets[0]! << 8) | octets[1]!).toString(16));
      groups.push(((octets[2]! << 8) | octets[3]!).toString(16));
    }
    return groups.every((g) => /^[0-9a-f]{1,4}$/.test(g)) ? groups : null;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || tail === null) return null;
  let groups: string[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<string>(missing).fill("0"), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/** The client's failures in its current window, or null when it has none. */
export async function recentAuthFailures(
  db: D1Database,
  key: string,
  now: number,
): Promise<FailureWindow | null> {
  const row = await db
    .prepare("SELECT failures, window_start FROM auth_failures WHERE key = ? AND window_start > ?")
    .bind(key, now - AUTH_FAILURE_WINDOW_MS)
    .first<{ failures: number; window_start: number }>();
  return row ? { failures: row.failures, windowStart: row.window_start } : null;
}

/**
 * Counts one failure of `key` at `now` and returns its window after it (atomic: one D1
 * transaction, which also deletes every window that has ended, this client's included).
 */
export async function recordAuthFailure(
  db: D1Database,
  key: string,
  now: number,
): Promise<FailureWindow> {
  const [, upsert] = await db.batch<{ failures: number; window_start: number }>([
    db
      .prepare("DELETE FROM auth_failures WHERE window_start <= ?")
      .bind(now - AUTH_FAILURE_WINDOW_MS),
    db
      .prepare(
        `INSERT INTO auth_failures (key, window_start, failures) VALUES (?, ?, 1)
         ON CONFLICT (key) DO UPDATE SET failures = failures + 1
         RETURNING failures, window_start`,
      )
      .bind(key, now),
  ]);
  const row = upsert?.results[0];
  return row
    ? { failures: row.failures, windowStart: row.window_start }
    : { failures: 1, windowStart: now };
}

/** True when the client has used up its failures: it gets 429 until the window ends. */
export function isLimited(window: FailureWindow | null): boolean {
  return window !== null && window.failures > AUTH_FAILURE_LIMIT;
}

/** Whole seconds until the window ends (at least 1): the `Retry-After` of a 429. */
export function retryAfterSeconds(window: FailureWindow, now: number): number {
  return Math.max(1, Math.ceil((window.windowStart + AUTH_FAILURE_WINDOW_MS - now) / 1000));
}
