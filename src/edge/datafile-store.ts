/**
 * The datafiles this isolate decides with (CONTRACT §2 KV layout, §4): read from KV
 * `datafiles/{sdkKey}`, parsed and compiled once per isolate per text, then served from memory.
 *
 * Freshness (stale-while-revalidate):
 * - cold (nothing cached): the request reads KV and waits; concurrent cold requests for the
 *   same sdkKey share that one read;
 * - fresh (KV consulted less than `freshMs` ago): the cached entry, no I/O at all;
 * - stale: the cached entry at once, and one background refresh per sdkKey (`ctx.waitUntil`).
 * KV reads use `cacheTtl`, so a publish reaches every isolate within about
 * `freshMs` + `kvCacheTtlSeconds` (+ KV's own propagation, up to ~60 s across locations).
 *
 * Failure policy:
 * - KV error, or a datafile that does not load (bad JSON, invalid): the last good datafile stays
 *   in use; the problem is recorded (`lastError`, /_ss/health) and logged, at most once a minute
 *   per sdkKey and message. The same bad text is not re-parsed on every refresh.
 * - key absent (deleted = unpublished): the entry is dropped, so the route passes through.
 * - never had a good datafile: `null` (pass-through). A miss is remembered for `freshMs`, so
 *   requests for an unpublished sdkKey do not each read KV.
 * - slow KV: a cached entry never waits for KV (the refresh runs in the background; one still
 *   pending after INFLIGHT_TIMEOUT_MS is presumed lost and a new one may start); a cold read
 *   waits at most `coldWaitMs` when the caller sets it (the edge's pages: 1 s), then `null`.
 *
 * Last-Modified: from the KV value's metadata `publishedAt` (ISO 8601 string or epoch ms —
 * the same in every isolate) when present; else the time this isolate first saw the text,
 * back-dated by 0-599 s derived from the text's hash (see below), which the datafile endpoint
 * then only honours as an exact `If-Modified-Since` match.
 */
import { loadDatafile, type CompiledDatafile } from "../core/index";
import { formatProblems } from "../core/problem";
import type { Env } from "../env";

export interface DatafileEntry {
  sdkKey: string;
  compiled: CompiledDatafile;
  /** The exact JSON text from KV (served by the datafile endpoint). */
  text: string;
  revision: string;
  /** Strong ETag: `"<sdkKey>-<revision>-<16 hex of SHA-256(text)>"`, the same in every isolate. */
  etag: string;
  /** HTTP date: KV metadata `publishedAt`, else about when this isolate first saw this text. */
  lastModified: string;
  /** Whether `lastModified` came from KV metadata (identical across isolates). */
  lastModifiedFromMetadata: boolean;
  /** When KV last confirmed this text (ms). */
  loadedAt: number;
}

export interface DatafileStoreOptions {
  /** How long an entry is served without consulting KV (default 10 000 ms). */
  freshMs?: number;
  /** KV edge cache TTL for the reads (default 30 s, the KV minimum). */
  kvCacheTtlSeconds?: number;
  /**
   * Cold only (nothing cached yet): give up waiting for KV after this long and return null; the
   * read goes on in the background (`waitUntil`) and serves the next requests. Default: wait.
   */
  coldWaitMs?: number;
}

/** What a publisher may store as the KV value's metadata (`wrangler kv key put --metadata`). */
export interface DatafileKvMetadata {
  publishedAt?: string | number;
}

export const DEFAULT_FRESH_MS = 10_000;
export const DEFAULT_KV_CACHE_TTL_SECONDS = 30;
/** A load still pending after this long is presumed lost (its request was torn down); a new one starts. */
const INFLIGHT_TIMEOUT_MS = 30_000;
/** The same problem for the same sdkKey is logged at most this often. */
const LOG_INTERVAL_MS = 60_000;
/** sdkKeys remembered without a datafile (the endpoint answers arbitrary keys); oldest forgotten first. */
const MAX_EMPTY_SLOTS = 256;

/** KV key of the current datafile of an sdkKey. */
export function datafileKey(sdkKey: string): string {
  return `datafiles/${sdkKey}`;
}

interface Slot {
  good: DatafileEntry | null;
  /** When KV was last consulted for this sdkKey, whatever the outcome (ms); -Infinity = never. */
  checkedAt: number;
  lastError: string | null;
  /** Text that failed to load last time: not re-parsed while KV still holds it. */
  badText: string | null;
  inflight: Promise<DatafileEntry | null> | null;
  inflightSince: number;
  lastLog: { message: string; at: number } | null;
}

const slots = new Map<string, Slot>();

/** Counters for tests and diagnostics. */
export const datafileStoreCounters = { kvReads: 0, compiles: 0 };

type Ctx = Pick<ExecutionContext, "waitUntil">;
type StoreEnv = Pick<Env, "DATAFILES">;

function log(
  slot: Slot,
  sdkKey: string,
  level: "error" | "warn",
  message: string,
  now: number,
): void {
  if (slot.lastLog && slot.lastLog.message === message && now - slot.lastLog.at < LOG_INTERVAL_MS)
    return;
  slot.lastLog = { message, at: now };
  (level === "error" ? console.error : console.warn)(`splitstream: datafile ${sdkKey}: ${message}`);
}

async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  let hex = "";
  for (const byte of new Uint8Array(digest, 0, 8)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

function metadataDate(metadata: unknown): Date | null {
  if (typeof metadata !== "object" || metadata === null) return null;
  const value = (metadata as DatafileKvMetadata).publishedAt;
  if (typeof value !== "string" && typeof value !== "number") return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function evictEmptySlots(): void {
  let empty = 0;
  for (const slot of slots.values()) if (!slot.good && !slot.inflight) empty++;
  if (empty <= MAX_EMPTY_SLOTS) return;
  for (const [key, slot] of slots) {
    if (empty <= MAX_EMPTY_SLOTS) break;
    if (!slot.good && !slot.inflight) {
      slots.delete(key);
      empty--;
    }
  }
}

/** One KV read and what follows from it; updates the slot and never rejects. */
async function refresh(
  env: StoreEnv,
  sdkKey: string,
  slot: Slot,
  cacheTtl: number,
): Promise<DatafileEntry | null> {
  try {
    let value: string | null;
    let metadata: unknown;
    try {
      datafileStoreCounters.kvReads++;
      const result = await env.DATAFILES.getWithMetadata<DatafileKvMetadata>(datafileKey(sdkKey), {
        type: "text",
        cacheTtl,
      });
      value = result.value;
      metadata = result.metadata;
    } catch (error) {
      const now = Date.now();
      slot.checkedAt = now;
      slot.lastError = `KV read failed: ${error instanceof Error ? error.message : String(error)}`;
      log(
        slot,
        sdkKey,
        "error",
        `${slot.lastError}${slot.good ? ` (still serving revision ${slot.good.revision})` : ""}`,
        now,
      );
      return slot.good;
    }
    const now = Date.now();
    slot.checkedAt = now;

    if (value === null) {
      if (slot.good)
        log(
          slot,
          sdkKey,
          "warn",
          `${datafileKey(sdkKey)} was deleted: unpublished, requests pass through`,
          now,
        );
      slot.good = null;
      slot.badText = null;
      slot.lastError = `not found: no datafile at ${datafileKey(sdkKey)}`;
      return null;
    }

    const good = slot.good;
    if (good && good.text === value) {
      good.loadedAt = now;
      slot.lastError = null;
      return good;
    }
    if (slot.badText === value) return good; // still the datafile that failed; lastError stands

    datafileStoreCounters.compiles++;
    const loaded = loadDatafile(value);
    if (!loaded.ok) {
      slot.badText = value;
      const errors = loaded.problems.filter((p) => p.severity === "error");
      slot.lastError = `invalid datafile (${errors.length} error(s)): ${formatProblems(errors.slice(0, 3))}${errors.length > 3 ? " …" : ""}`;
      log(
        slot,
        sdkKey,
        "error",
        `${datafileKey(sdkKey)} does not load; ${good ? `still serving revision ${good.revision}` : "requests pass through"}:\n${formatProblems(loaded.problems)}`,
        now,
      );
      return good;
    }
    if (loaded.problems.length > 0) {
      console.warn(
        `splitstream: datafile ${sdkKey} revision ${loaded.compiled.revision} loaded with warnings:\n${formatProblems(loaded.problems)}`,
      );
    }
    if (loaded.compiled.sdkKey !== null && loaded.compiled.sdkKey !== sdkKey) {
      console.warn(
        `splitstream: datafile at ${datafileKey(sdkKey)} says sdkKey "${loaded.compiled.sdkKey}"; it is served as ${sdkKey} all the same`,
      );
    }

    const fromMetadata = metadataDate(metadata);
    const hash = await shortHash(value);
    let lastModified: string;
    if (fromMetadata) {
      lastModified = fromMetadata.toUTCString();
    } else {
      // When this isolate first saw the text, back-dated by up to 10 minutes by the text's hash:
      // the endpoint compares such dates exactly, and two isolates that first saw different
      // texts in the same second must not send the same date. Never equal to the previous one.
      let seconds = Math.floor(now / 1000) - (parseInt(hash.slice(0, 8), 16) % 600);
      if (
        good &&
        !good.lastModifiedFromMetadata &&
        Date.parse(good.lastModified) === seconds * 1000
      )
        seconds -= 1;
      lastModified = new Date(seconds * 1000).toUTCString();
    }
    const revision = loaded.compiled.revision;
    const entry: DatafileEntry = {
      sdkKey,
      compiled: loaded.compiled,
      text: value,
      revision,
      etag: `"${sdkKey}-${revision.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64)}-${hash}"`,
      lastModified,
      lastModifiedFromMetadata: fromMetadata !== null,
      loadedAt: now,
    };
    slot.good = entry;
    slot.badText = null;
    slot.lastError = null;
    return entry;
  } catch (error) {
    // Defensive: nothing above should throw; if it does, keep what we had.
    slot.checkedAt = Date.now();
    slot.lastError = `refresh failed: ${String(error)}`;
    log(slot, sdkKey, "error", slot.lastError, slot.checkedAt);
    return slot.good;
  }
}

function startLoad(
  env: StoreEnv,
  ctx: Ctx,
  sdkKey: string,
  slot: Slot,
  cacheTtl: number,
  now: number,
): Promise<DatafileEntry | null> {
  const promise = refresh(env, sdkKey, slot, cacheTtl).finally(() => {
    if (slot.inflight === promise) slot.inflight = null;
  });
  slot.inflight = promise;
  slot.inflightSince = now;
  // Keeps the read alive even if the request that started it finishes (or, cold, is cancelled).
  ctx.waitUntil(promise);
  return promise;
}

/**
 * The current datafile of `sdkKey`, or null when there is none usable (never published,
 * unpublished, or never loadable). Never throws; costs no I/O while fresh.
 */
export async function getDatafile(
  env: StoreEnv,
  ctx: Ctx,
  sdkKey: string,
  options: DatafileStoreOptions = {},
): Promise<DatafileEntry | null> {
  const freshMs = options.freshMs ?? DEFAULT_FRESH_MS;
  const cacheTtl = Math.max(
    DEFAULT_KV_CACHE_TTL_SECONDS,
    Math.floor(options.kvCacheTtlSeconds ?? DEFAULT_KV_CACHE_TTL_SECONDS),
  );
  const now = Date.now();
  let slot = slots.get(sdkKey);
  if (!slot) {
    slot = {
      good: null,
      checkedAt: -Infinity,
      lastError: null,
      badText: null,
      inflight: null,
      inflightSince: 0,
      lastLog: null,
    };
    slots.set(sdkKey, slot);
    evictEmptySlots();
  }
  const fresh = now - slot.checkedAt < freshMs;
  const inflight =
    slot.inflight !== null && now - slot.inflightSince < INFLIGHT_TIMEOUT_MS ? slot.inflight : null;

  if (slot.good) {
    if (!fresh && !inflight) void startLoad(env, ctx, sdkKey, slot, cacheTtl, now);
    return slot.good;
  }
  if (fresh) return null;
  const load = inflight ?? startLoad(env, ctx, sdkKey, slot, cacheTtl, now);
  return options.coldWaitMs === undefined ? load : withinMs(load, options.coldWaitMs);
}

/** `promise`'s value, or null if it has not settled within `ms`. */
function withinMs<T>(promise: Promise<T | null>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What each sdkKey this isolate has looked up stands at (for /_ss/health). */
export function datafileStoreStatus(): Array<{
  sdkKey: string;
  revision: string | null;
  loadedAt: number | null;
  lastError: string | null;
}> {
  return [...slots]
    .map(([sdkKey, slot]) => ({
      sdkKey,
      revision: slot.good?.revision ?? null,
      loadedAt: slot.good?.loadedAt ?? null,
      lastError: slot.lastError,
    }))
    .sort((a, b) => (a.sdkKey < b.sdkKey ? -1 : a.sdkKey > b.sdkKey ? 1 : 0));
}

/** Whether this isolate has looked `sdkKey` up already (health loads only the ones it has not). */
export function hasDatafileSlot(sdkKey: string): boolean {
  return slots.has(sdkKey);
}

/** Forgets everything (tests). */
export function resetDatafileStore(): void {
  slots.clear();
  datafileStoreCounters.kvReads = 0;
  datafileStoreCounters.compiles = 0;
}
