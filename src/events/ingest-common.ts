/**
 * Shared by the two event ingest endpoints (docs/ingest.md): bounded body reading,
 * per-field validation of conversion data, the partial-reject response, and queueing.
 *
 * Response policy (both endpoints):
 * - everything accepted (or nothing to do) → 204;
 * - some or all items rejected → 400 `events_rejected`, `message` "N accepted, M rejected",
 *   `details.rejected` = one `{index, path, reason}` per rejected item; the accepted ones ARE
 *   queued (a client that retries the whole batch is harmless: uuids dedupe, docs/events.md);
 * - the queue refuses → 503 `queue_unavailable` with `Retry-After: 5`; nothing was accepted.
 */
import type { CompiledDatafile } from "../core/index";
import type { Env } from "../env";
import type { ConsentConfig } from "../shared/consent";
import { errorResponse } from "../shared/error-response";
import type { ConversionMessage, EventMessage, ImpressionDims } from "../shared/event-messages";
import {
  INGEST_MAX_AGE_MS,
  INGEST_MAX_FUTURE_MS,
  INGEST_MAX_TAG_KEY_LENGTH,
  INGEST_MAX_TAG_STRING_LENGTH,
  INGEST_MAX_TAGS,
  INGEST_MAX_UUID_LENGTH,
  revenueProblem,
  valueProblem,
} from "../shared/event-limits";

/**
 * What the ingest endpoints use of a route's settings (`RouteConfig` of src/edge/routes.ts has
 * these fields; src/index.ts passes the matched route). Declared here because src/edge and
 * src/events do not import each other (docs/architecture.md).
 */
export interface IngestRoute {
  sdkKey: string;
  corsOrigins: string[];
  gpcPolicy: "respect" | "ignore";
  consent: ConsentConfig | null;
}

/** The visitor as the edge reads it from the request's cookies and headers (src/edge/visitor.ts). */
export interface IngestVisitor {
  id: string;
  idSource: "ss_vid" | "optimizelyEndUserId" | "new";
  sticky: Record<string, string>;
  /** `ss_attrs`: the custom attributes set through the client API (e.g. `$opt_bucketing_id`). */
  attributes: Record<string, string | number | boolean>;
  optedOut: boolean;
  gpc: boolean;
  bot: boolean;
}

/**
 * What the ingest endpoints need from the edge, handed in by src/index.ts: the current compiled
 * datafile (the edge's KV-backed, per-isolate store, src/edge/datafile-store.ts) and the visitor
 * (src/edge/visitor.ts). Same functions as the edge uses, so the behaviour is the edge's.
 */
export interface IngestEdge {
  getDatafile(
    env: Env,
    ctx: ExecutionContext,
    sdkKey: string,
  ): Promise<{ compiled: CompiledDatafile; revision: string } | null>;
  readVisitor(request: Request): IngestVisitor;
  /**
   * The running holdouts' shares of an older revision (holdout id → end of the held range), or
   * null when unknown (src/edge/revision-holdouts.ts).
   */
  holdoutSharesAt(
    env: Env,
    sdkKey: string,
    revision: string,
  ): Promise<ReadonlyMap<string, number> | null>;
  /** The dimensions of an impression a browser reports (device, browser, country; breakdowns). */
  impressionDims(request: Request): ImpressionDims;
}

/** Cloudflare Queues: at most 100 messages per `sendBatch`, 256 KB in total (we stay well under). */
const QUEUE_BATCH_MESSAGES = 100;
const QUEUE_BATCH_BYTES = 200_000;
/** Seconds a client should wait before retrying after the queue refused. */
export const QUEUE_RETRY_AFTER_SECONDS = 5;

/** One rejected item: its index in the request, the JSON path of the problem, and why. */
export interface Rejection {
  index: number;
  path: string;
  reason: string;
}

export type Tags = Record<string, string | number | boolean>;

const UUID = /^[\x21-\x7e]{1,64}$/;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `uuid` is not 1–64 printable ASCII characters, or null when it is fine. */
export function uuidProblem(value: unknown): string | null {
  return typeof value === "string" && UUID.test(value)
    ? null
    : `uuid must be a string of 1-${INGEST_MAX_UUID_LENGTH} printable ASCII characters without spaces`;
}

/** Why `timestamp` (ms since epoch) is not within [now − 24 h, now + 5 min], or null. */
export function timestampProblem(value: unknown, now: number): string | null {
  if (typeof value !== "number" || !Number.isSafeInteger(value))
    return "timestamp must be an integer (milliseconds since the epoch)";
  if (value < now - INGEST_MAX_AGE_MS) return "timestamp is more than 24 hours in the past";
  if (value > now + INGEST_MAX_FUTURE_MS) return "timestamp is more than 5 minutes in the future";
  return null;
}

/**
 * Validates tags: an object of at most 20 entries, keys 1–64 characters, values strings
 * (≤ 256 characters), finite numbers or booleans. Returns a copy, or the problem with its
 * sub-path (`.name`, or "" for the object itself).
 */
export function checkTags(
  value: unknown,
): { ok: true; tags: Tags } | { ok: false; subPath: string; reason: string } {
  if (!isPlainObject(value))
    return {
      ok: false,
      subPath: "",
      reason: "tags must be an object of strings, numbers, booleans",
    };
  const keys = Object.keys(value);
  if (keys.length > INGEST_MAX_TAGS)
    return { ok: false, subPath: "", reason: `at most ${INGEST_MAX_TAGS} tags` };
  const tags: Tags = {};
  for (const key of keys) {
    const subPath = `.${key}`;
    if (key.length === 0 || key.length > INGEST_MAX_TAG_KEY_LENGTH)
      return {
        ok: false,
        subPath,
        reason: `tag names are 1-${INGEST_MAX_TAG_KEY_LENGTH} characters`,
      };
    const v = value[key];
    if (typeof v === "string") {
      if (v.length > INGEST_MAX_TAG_STRING_LENGTH)
        return {
          ok: false,
          subPath,
          reason: `tag strings are at most ${INGEST_MAX_TAG_STRING_LENGTH} characters`,
        };
    } else if (typeof v === "number") {
      if (!Number.isFinite(v)) return { ok: false, subPath, reason: "tag numbers must be finite" };
    } else if (typeof v !== "boolean") {
      return { ok: false, subPath, reason: "tag values must be strings, numbers or booleans" };
    }
    Object.defineProperty(tags, key, { value: v, enumerable: true, writable: true });
  }
  return { ok: true, tags };
}

/** revenue / value / tags of a conversion, validated; rejections are appended with `path`. */
export function conversionExtras(
  source: { revenue?: unknown; value?: unknown; tags?: unknown },
  path: string,
  index: number,
  rejected: Rejection[],
): Pick<ConversionMessage, "revenue" | "value" | "tags"> | null {
  const extras: Pick<ConversionMessage, "revenue" | "value" | "tags"> = {};
  if (source.revenue !== undefined && source.revenue !== null) {
    const problem = revenueProblem(source.revenue);
    if (problem) return reject(rejected, index, `${path}.revenue`, problem);
    extras.revenue = source.revenue as number;
  }
  if (source.value !== undefined && source.value !== null) {
    const problem = valueProblem(source.value);
    if (problem) return reject(rejected, index, `${path}.value`, problem);
    extras.value = source.value as number;
  }
  if (source.tags !== undefined && source.tags !== null) {
    const checked = checkTags(source.tags);
    if (!checked.ok)
      return reject(rejected, index, `${path}.tags${checked.subPath}`, checked.reason);
    if (Object.keys(checked.tags).length > 0) extras.tags = checked.tags;
  }
  return extras;
}

export function reject(rejected: Rejection[], index: number, path: string, reason: string): null {
  rejected.push({ index, path, reason });
  return null;
}

/** Reads the body as text, refusing more than `maxBytes` (also before reading, by Content-Length). */
export async function readBoundedText(
  request: Request,
  maxBytes: number,
): Promise<{ ok: true; text: string } | { ok: false }> {
  const declared = Number(request.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await request.body?.cancel();
    return { ok: false };
  }
  if (!request.body) return { ok: true, text: "" };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      return { ok: false };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { ok: true, text: new TextDecoder().decode(bytes) };
}

export function tooLarge(maxBytes: number, headers: Record<string, string> = {}): Response {
  return errorResponse(
    413,
    "body_too_large",
    `the request body is larger than ${maxBytes} bytes`,
    { maxBytes },
    headers,
  );
}

/**
 * Sends the messages to EVENTS, in as few `sendBatch` calls as the queue's limits allow
 * (≤ 100 messages and ~200 KB each). Throws when the queue refuses.
 */
export async function queueMessages(
  env: Pick<Env, "EVENTS">,
  messages: EventMessage[],
): Promise<void> {
  let batch: MessageSendRequest<EventMessage>[] = [];
  let bytes = 0;
  for (const body of messages) {
    const size = JSON.stringify(body).length + 64;
    if (
      batch.length > 0 &&
      (batch.length >= QUEUE_BATCH_MESSAGES || bytes + size > QUEUE_BATCH_BYTES)
    ) {
      await env.EVENTS.sendBatch(batch);
      batch = [];
      bytes = 0;
    }
    batch.push({ body, contentType: "json" });
    bytes += size;
  }
  if (batch.length > 0) await env.EVENTS.sendBatch(batch);
}

/**
 * Queues the accepted messages and answers per the module comment. `headers` (CORS) go on
 * every response.
 */
export async function finish(
  env: Env,
  messages: EventMessage[],
  rejected: Rejection[],
  headers: Record<string, string>,
): Promise<Response> {
  if (messages.length > 0) {
    try {
      await queueMessages(env, messages);
    } catch (error) {
      console.error(`splitstream: the EVENTS queue refused ${messages.length} event(s)`, error);
      return errorResponse(
        503,
        "queue_unavailable",
        "the event queue is unavailable; nothing was accepted, retry later",
        null,
        { ...headers, "retry-after": String(QUEUE_RETRY_AFTER_SECONDS) },
      );
    }
  }
  if (rejected.length === 0) return noContent(headers);
  return errorResponse(
    400,
    "events_rejected",
    `${messages.length} accepted, ${rejected.length} rejected`,
    { accepted: messages.length, rejected },
    headers,
  );
}

export function noContent(headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 204, headers: { "cache-control": "no-store", ...headers } });
}
