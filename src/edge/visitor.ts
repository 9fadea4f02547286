/**
 * Who is asking (docs/visitors.md): the visitor id and everything Splitstream keeps in cookies about a
 * visitor, read once per request. Cookie formats are documented in docs/visitors.md.
 */

import { decodeBase64Url, encodeBase64Url } from "./cookies";
import { parseUserAgent } from "./user-agent";
import {
  REQUEST_ATTRIBUTE_NAMESPACES,
  UNQUALIFIED_REQUEST_ATTRIBUTE_NAMES,
} from "../shared/request-attributes";

/** Cookie names (docs/visitors.md). */
export const VISITOR_COOKIE = "ss_vid";
export const STICKY_COOKIE = "ss_dec";
export const ATTRIBUTES_COOKIE = "ss_attrs";
export const OPTOUT_COOKIE = "ss_optout";
export const PREVIEW_COOKIE = "ss_preview";
/** Optimizely Web's visitor id cookie, adopted when there is no `ss_vid` yet. */
export const OPTIMIZELY_VISITOR_COOKIE = "optimizelyEndUserId";
/** Splitstream's own cookies: never exposed as `cookie.<name>` request attributes. */
export const INTERNAL_COOKIES: ReadonlySet<string> = new Set([
  VISITOR_COOKIE,
  STICKY_COOKIE,
  ATTRIBUTES_COOKIE,
  OPTOUT_COOKIE,
  PREVIEW_COOKIE,
]);

export interface VisitorState {
  /** `ss_vid`, else a valid `optimizelyEndUserId`, else a new id (32 lowercase hex characters). */
  id: string;
  /** True when no usable id cookie came in (the id is new and `ss_vid` must be set). */
  isNew: boolean;
  idSource: "ss_vid" | "optimizelyEndUserId" | "new";
  /** `ss_dec` decoded: experiment id → variation id. */
  sticky: Record<string, string>;
  /** `ss_attrs` decoded: custom attributes set through the client API. */
  attributes: Record<string, string | number | boolean>;
  /** `ss_optout=1`. */
  optedOut: boolean;
  /** `Sec-GPC: 1`. */
  gpc: boolean;
  /** {@link isBot}. */
  bot: boolean;
  /** The raw `ss_preview` cookie (a token; verify it with `verifyPreview`). */
  previewToken: string | null;
}

/** A visitor id from a cookie must match this, else a new id is made. */
const VISITOR_ID = /^[A-Za-z0-9._~:@+-]{1,128}$/;

/** True for an id this module accepts from a cookie. */
export function isValidVisitorId(id: string): boolean {
  // "undefined" is an invalid user id for the Optimizely SDKs (and so for src/core).
  return VISITOR_ID.test(id) && id !== "undefined";
}

/** A new random visitor id: a v4 UUID without dashes (32 lowercase hex characters, 122 random bits). */
export function newVisitorId(): string {
  return crypto.randomUUID().replace(/-/g, "");
}

/** Read the visitor from the request and its parsed cookies. Never throws. */
export function readVisitor(request: Request, cookies: Map<string, string>): VisitorState {
  let id: string;
  let idSource: VisitorState["idSource"];
  const vid = cookies.get(VISITOR_COOKIE);
  const optimizelyId = cookies.get(OPTIMIZELY_VISITOR_COOKIE);
  if (vid !== undefined && isValidVisitorId(vid)) {
    id = vid;
    idSource = "ss_vid";
  } else if (optimizelyId !== undefined && isValidVisitorId(optimizelyId)) {
    id = optimizelyId;
    idSource = "optimizelyEndUserId";
  } else {
    id = newVisitorId();
    idSource = "new";
  }
  return {
    id,
    isNew: idSource === "new",
    idSource,
    sticky: decodeSticky(cookies.get(STICKY_COOKIE)),
    attributes: decodeAttributes(cookies.get(ATTRIBUTES_COOKIE)),
    optedOut: cookies.get(OPTOUT_COOKIE) === "1",
    gpc: request.headers.get("sec-gpc")?.trim() === "1",
    bot: isBot(request),
    previewToken: cookies.get(PREVIEW_COOKIE) || null,
  };
}

// ---------------------------------------------------------------------------------------------
// ss_dec: sticky decisions

/** Upper bound of the encoded `ss_dec` value (bytes = characters: it is ASCII). */
export const MAX_STICKY_BYTES = 3000;
/** Experiment and variation ids that can be stored in `ss_dec`. */
const STICKY_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Entries read from one `ss_dec` value, at most. */
const MAX_STICKY_ENTRIES = 500;

/**
 * `ss_dec` value: `experimentId.variationId` entries joined by `~`, oldest first, e.g.
 * `1886780721.1886780722~e2.v7`. Only ids of 1–64 characters from `[A-Za-z0-9_-]` are stored;
 * other entries are skipped, so the value never needs escaping. Entries keep the map's iteration
 * order (note that JS objects list integer-like keys below 2^32 first, in ascending order — for
 * Optimizely's increasing numeric ids that is oldest experiment first).
 *
 * When the value would exceed {@link MAX_STICKY_BYTES}, entries are dropped until it fits: first
 * those whose experiment is not in `keepIds` (pass the ids of the experiments still running),
 * oldest first, then — only if still too long — the oldest of the rest.
 */
export function encodeSticky(map: Record<string, string>, keepIds?: ReadonlySet<string>): string {
  const entries: string[] = [];
  const keep: boolean[] = [];
  let total = -1; // n entries need n - 1 separators
  for (const experimentId of Object.keys(map)) {
    const variationId = map[experimentId];
    if (
      typeof variationId !== "string" ||
      experimentId === "__proto__" ||
      !STICKY_ID.test(experimentId) ||
      !STICKY_ID.test(variationId)
    ) {
      continue;
    }
    const entry = `${experimentId}.${variationId}`;
    entries.push(entry);
    keep.push(keepIds?.has(experimentId) ?? false);
    total += entry.length + 1;
  }
  if (total > MAX_STICKY_BYTES) {
    const dropped = new Array<boolean>(entries.length).fill(false);
    for (const pass of [false, true]) {
      for (let i = 0; i < entries.length && total > MAX_STICKY_BYTES; i++) {
        if (keep[i] === pass && !dropped[i]) {
          dropped[i] = true;
          total -= entries[i]!.length + 1;
        }
      }
    }
    return entries.filter((_, i) => !dropped[i]).join("~");
  }
  return entries.join("~");
}

/** Parse an `ss_dec` value; malformed entries are skipped, garbage gives `{}`. Never throws. */
export function decodeSticky(value: string | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  if (!value || value.length > MAX_STICKY_BYTES * 2) return result;
  let count = 0;
  for (const entry of value.split("~")) {
    const dot = entry.indexOf(".");
    if (dot === -1) continue;
    const experimentId = entry.slice(0, dot);
    const variationId = entry.slice(dot + 1);
    if (
      experimentId === "__proto__" ||
      !STICKY_ID.test(experimentId) ||
      !STICKY_ID.test(variationId) ||
      Object.prototype.hasOwnProperty.call(result, experimentId)
    ) {
      continue;
    }
    result[experimentId] = variationId;
    if (++count >= MAX_STICKY_ENTRIES) break;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// ss_attrs: custom attributes

/** Upper bound of the encoded `ss_attrs` value (characters). */
export const MAX_ATTRIBUTES_BYTES = 2048;
export const MAX_ATTRIBUTE_KEY_LENGTH = 64;

/**
 * Attribute names the edge computes per request (docs/datafile.md; the list is
 * src/shared/request-attributes.ts). Stored custom attributes with these names or prefixes are
 * ignored, so a visitor cannot pretend to be elsewhere.
 */
export const RESERVED_ATTRIBUTE_PREFIXES: readonly string[] = REQUEST_ATTRIBUTE_NAMESPACES;
export const RESERVED_ATTRIBUTE_NAMES: ReadonlySet<string> = new Set([
  ...UNQUALIFIED_REQUEST_ATTRIBUTE_NAMES,
  // not request attributes, but names that would break plain objects or the SDK's semantics
  "__proto__",
  "hasOwnProperty",
]);

/** True for a custom attribute name that may be stored in (and read from) `ss_attrs`. */
export function isStorableAttributeName(key: string): boolean {
  if (key.length === 0 || key.length > MAX_ATTRIBUTE_KEY_LENGTH) return false;
  if (RESERVED_ATTRIBUTE_NAMES.has(key)) return false;
  for (const prefix of RESERVED_ATTRIBUTE_PREFIXES) {
    if (key.startsWith(prefix)) return false;
  }
  return true;
}

function isStorableValue(value: unknown): value is string | number | boolean {
  return (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * `ss_attrs` value: base64url (no padding) of the UTF-8 JSON object. Entries that are not
 * storable (reserved or overlong names, values other than strings, finite numbers and booleans)
 * are left out; when the value would exceed {@link MAX_ATTRIBUTES_BYTES}, the oldest entries
 * (first in iteration order) are dropped until it fits. `{}` encodes as `""`.
 */
export function encodeAttributes(attrs: Record<string, string | number | boolean>): string {
  const pieces: string[] = [];
  const sizes: number[] = [];
  let bytes = 1; // "{" + pieces joined by "," + "}" = 2 + sum(sizes) + (n - 1)
  for (const key of Object.keys(attrs)) {
    const value = attrs[key];
    if (!isStorableAttributeName(key) || !isStorableValue(value)) continue;
    const piece = JSON.stringify(key) + ":" + JSON.stringify(value);
    const size = textEncoder.encode(piece).length;
    pieces.push(piece);
    sizes.push(size);
    bytes += size + 1;
  }
  // base64url without padding: ceil(4n / 3) characters for n bytes
  let start = 0;
  while (start < pieces.length && Math.ceil((4 * bytes) / 3) > MAX_ATTRIBUTES_BYTES) {
    bytes -= sizes[start]! + 1;
    start++;
  }
  if (start === pieces.length) return "";
  const json = "{" + (start === 0 ? pieces : pieces.slice(start)).join(",") + "}";
  return encodeBase64Url(textEncoder.encode(json));
}

/**
 * Parse an `ss_attrs` value. Tolerant: anything malformed gives `{}`; only storable entries
 * (see {@link encodeAttributes}) are kept — reserved request-attribute names (`geo.*`, `url`, …)
 * are dropped, so they cannot be spoofed. Never throws.
 */
export function decodeAttributes(
  value: string | undefined,
): Record<string, string | number | boolean> {
  const result: Record<string, string | number | boolean> = {};
  if (!value || value.length > MAX_ATTRIBUTES_BYTES * 2) return result;
  const bytes = decodeBase64Url(value);
  if (!bytes) return result;
  let parsed: unknown;
  try {
    parsed = JSON.parse(textDecoder.decode(bytes));
  } catch {
    return result;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return result;
  const object = parsed as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    const item = object[key];
    if (isStorableAttributeName(key) && isStorableValue(item)) result[key] = item;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Bots

/**
 * Cloudflare Bot Management scores 1–29 mean "automated" or "likely automated"; 0 means not
 * scored and is ignored.
 */
export const BOT_SCORE_THRESHOLD = 29;

/**
 * True for a bot: a self-identifying automated user agent ({@link parseUserAgent} `bot`, see
 * `BOT_PATTERN` in user-agent.ts), or — when Cloudflare Bot Management data is present —
 * `cf.botManagement.verifiedBot` or a score of 1–29. A missing user agent and generic HTTP
 * clients (curl, Wget, fetch libraries) are not bots (docs/visitors.md).
 */
export function isBot(request: Request): boolean {
  if (parseUserAgent(request.headers.get("user-agent")).deviceType === "bot") return true;
  const cf = request.cf as { botManagement?: unknown } | undefined;
  const bm = cf?.botManagement as { score?: unknown; verifiedBot?: unknown } | undefined | null;
  if (bm && typeof bm === "object") {
    if (bm.verifiedBot === true) return true;
    if (typeof bm.score === "number" && bm.score >= 1 && bm.score <= BOT_SCORE_THRESHOLD) {
      return true;
    }
  }
  return false;
}
