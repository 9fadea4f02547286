/**
 * The datafiles this isolate decides with (docs/datafile.md KV layout, §4): read from KV
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
 * List members (docs/datafile.md "Lists"): a datafile whose lists have no inline `values` (every
 * one the API publishes) is compiled with the members of KV `lists/{sdkKey}/{revision}`
 * (src/edge/list-members.ts), read once with the datafile's text — so the per-request `in_list`
 * check is a lookup in a Set built once per revision. Members that cannot be found leave those
 * lists unknown (`in_list` on them matches nobody), are reported in `lastError` (/_ss/health) and
 * are looked for again at every refresh. The endpoint serves `publicText`, never `text`.
 *
 * Last-Modified: from the KV value's metadata `publishedAt` (ISO 8601 string or epoch ms —
 * the same in every isolate) when present; else the time this isolate first saw the text,
 * back-dated by 0-599 s derived from the text's hash (see below), which the datafile endpoint
 * then only honours as an exact `If-Modified-Since` match.
 */
import { compileParsed, type CompiledDatafile, type LoadResult } from "../core/index";
import { parseDatafile } from "../core/datafile-parse";
import type { Datafile } from "../core/datafile-types";
import { listsWithoutValues, publicDatafileText, type ListMembers } from "../core/list-members";
import { formatProblems } from "../core/problem";
import { sha256, toHex } from "../shared/hash";
import type { Env } from "../env";
import { formatRevisionHeader } from "./decisions-header";
import { listMembersKey, readListMembers } from "./list-members";

export interface DatafileEntry {
  sdkKey: string;
  compiled: CompiledDatafile;
  /** The exact JSON text from KV. May hold inline list members: never serve it. */
  text: string;
  /**
   * What the datafile endpoint serves: `text` byte for byte, or — when a hand-written datafile
   * carries list members inline — the same JSON with every list reduced to `{id, key}`.
   */
  publicText: string;
  /** Keys of the lists whose members were not found (unknown to `in_list` until they are). */
  missingLists: string[];
  revision: string;
  /**
   * Strong ETag: `"<sdkKey>-<encoded revision, first 64 characters>-<16 hex of
   * SHA-256(publicText)>"` — of the bytes served — the same in every isolate.
   */
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

/** Counters for tests and diagnostics (`kvReads`: of the datafile keys). */
export const datafileStoreCounters = { kvReads: 0, compiles: 0 };
/** Reads of private list members keys (`lists/{sdkKey}/{revision}`), for tests and diagnostics. */
export const listMemberCounters = { reads: 0 };

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
  return toHex(new Uint8Array(await sha256(text), 0, 8));
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
      if (good.missingLists.length === 0) {
        slot.lastError = null;
        return good;
      }
      // Same text, but some list members were missing: look again (no re-parse needed).
      const members = await findListMembers(env, sdkKey, good.compiled.datafile, cacheTtl);
      slot.lastError = members.problem;
      if (members.missing.length >= good.missingLists.length) return good; // none new
      datafileStoreCounters.compiles++;
      const recompiled = compileParsed(
        { ok: true, datafile: good.compiled.datafile, problems: [] },
        { listMembers: members.listMembers },
      );
      if (recompiled.ok)
        slot.good = { ...good, compiled: recompiled.compiled, missingLists: members.missing };
      return slot.good;
    }
    if (slot.badText === value) return good; // still the datafile that failed; lastError stands

    datafileStoreCounters.compiles++;
    // Selectors the edge cannot run are not checked here: a datafile published before the
    // validator refused them must keep serving its other changes, and the rewriter finds and
    // skips such a change itself, asking HTMLRewriter (cached per selector), so the check would
    // only cost time on a cold start (docs/changes.md "Selectors").
    const parsed = parseDatafile(value, { edgeSelectors: "off" });
    let members: FoundListMembers = { listMembers: undefined, missing: [], problem: null };
    if (parsed.ok) {
      try {
        members = await findListMembers(env, sdkKey, parsed.datafile, cacheTtl);
      } catch (error) {
        // Transient: keep what we had, do not remember the text as bad, try again next refresh.
        slot.lastError = `KV read of ${listMembersKey(sdkKey, parsed.datafile.revision)} failed: ${error instanceof Error ? error.message : String(error)}`;
        log(
          slot,
          sdkKey,
          "error",
          `${slot.lastError}${good ? ` (still serving revision ${good.revision})` : ""}`,
          now,
        );
        return good;
      }
    }
    const loaded: LoadResult = compileParsed(parsed, { listMembers: members.listMembers });
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
    const publicText = publicDatafileText(value, loaded.compiled.datafile);
    // The ETag names the bytes served (RFC 9110 §8.8.3), and a hash of `value` would also be a
    // digest of private members when a hand-written datafile carries them inline.
    const hash = await shortHash(publicText);
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
      publicText,
      missingLists: members.missing,
      revision,
      // The revision through the one header encoder (src/edge/decisions-header.ts): its output
      // is ASCII without quotes, so the ETag stays one valid entity-tag whatever the datafile says.
      etag: `"${sdkKey}-${formatRevisionHeader(revision).slice(0, 64)}-${hash}"`,
      lastModified,
      lastModifiedFromMetadata: fromMetadata !== null,
      loadedAt: now,
    };
    slot.good = entry;
    slot.badText = null;
    slot.lastError = members.problem;
    if (members.problem !== null) log(slot, sdkKey, "warn", members.problem, now);
    return entry;
  } catch (error) {
    // Defensive: nothing above should throw; if it does, keep what we had.
    slot.checkedAt = Date.now();
    slot.lastError = `refresh failed: ${String(error)}`;
    log(slot, sdkKey, "error", slot.lastError, slot.checkedAt);
    return slot.good;
  }
}

interface FoundListMembers {
  /** By list id, for the lists without inline values; undefined when none was needed or found. */
  listMembers: ListMembers | undefined;
  /** Keys of the lists whose members are nowhere. */
  missing: string[];
  /** Why some are missing (for /_ss/health), or null. */
  problem: string | null;
}

/**
 * The private members of the lists of `datafile` that have no inline values (none when every
 * list has them, as in a hand-written datafile: no KV read). Rejects when KV fails.
 */
async function findListMembers(
  env: StoreEnv,
  sdkKey: string,
  datafile: Datafile,
  cacheTtl: number,
): Promise<FoundListMembers> {
  const needed = listsWithoutValues(datafile);
  if (needed.length === 0) return { listMembers: undefined, missing: [], problem: null };
  listMemberCounters.reads++;
  const key = listMembersKey(sdkKey, datafile.revision);
  // The key is immutable once its revision is published, so KV's edge cache may keep it.
  const result = await readListMembers(env.DATAFILES, sdkKey, datafile.revision, cacheTtl);
  const listMembers = result?.ok ? result.members : undefined;
  const missing = needed.filter((l) => !listMembers?.has(l.id)).map((l) => l.key);
  if (missing.length === 0) return { listMembers, missing, problem: null };
  const which = `list(s) ${missing.map((k) => JSON.stringify(k)).join(", ")}`;
  const problem =
    result === null
      ? `no list members at ${key}: ${which} match nobody`
      : !result.ok
        ? `${key} is not a list members document (${result.message}): ${which} match nobody`
        : `${key} has no members for ${which}: they match nobody`;
  return { listMembers, missing, problem };
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
  listMemberCounters.reads = 0;
}
