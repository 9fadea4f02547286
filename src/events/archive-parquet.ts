/**
 * The columnar copy of the raw-events archive (docs/events.md "Columnar archive (Parquet)").
 *
 * The consumer writes every queue batch's events as one NDJSON object under
 * `events/{yyyy-mm-dd}/{hh}/` (processing time, UTC; `archiveKey` in src/events/aggregate.ts).
 * Those objects stay the source of truth: the rebuild reads them, and nothing here changes them.
 * This module derives a Parquet copy of each finished hour, partitioned Hive-style by processing
 * date, sdkKey and hour, so that DuckDB, Spark and the like can read the archive without parsing
 * JSON: `parquet/date={day}/sdk_key={sdkKey, URI-encoded}/hour={h}/part-{nnnn}.parquet`.
 *
 * - `encodeEventsParquet` is pure (no Workers API at module load or in its body), so the Node
 *   tests and tools can write the same files the Worker writes.
 * - `compactArchiveHour` turns one hour into parts: its objects in key order, `objectsPerPart` at
 *   a time (bounded memory), one part per (chunk, sdkKey) numbered by the chunk, then a `_done`
 *   marker. The same objects always give the same keys and bytes, so a rerun overwrites.
 * - `compactArchive` is the hourly scheduled job: finished hours without a marker, oldest first,
 *   a bounded number per run.
 *
 * The archive is at least once (a redelivered batch, or a retry that crossed an hour boundary, is
 * archived twice — docs/events.md "Retries and the dead-letter queue"): events are deduplicated by
 * uuid within a part only, so readers must dedupe by uuid across parts.
 */
import type { EventMessage, EventSource } from "../shared/event-messages";
import { ARCHIVE_PREFIX, compareText } from "./aggregate";
import { parquetWriteBuffer, type ColumnSource } from "hyparquet-writer";

/** R2 key prefix of the Parquet copy. */
export const PARQUET_PREFIX = "parquet/";
/**
 * R2 key prefix of the compaction markers: `{day}/{hh}.json` per compacted hour, `{day}.json` per
 * day whose finished hours are all compacted. The leading `_` keeps them out of Hive-style
 * dataset scans (Spark and Hive skip `_`-prefixed folders; DuckDB's `*.parquet` glob never
 * matches them).
 */
export const PARQUET_DONE_PREFIX = `${PARQUET_PREFIX}_done/`;
/** Archive objects read into one part (≈ 100 events each at `max_batch_size = 100`). */
export const OBJECTS_PER_PART = 200;
/** Hours one scheduled run compacts at most. */
export const HOURS_PER_RUN = 6;
/**
 * Once a run has read this many archive objects, it starts no further hour (an hour is always
 * compacted whole). Every object is one R2 read, i.e. one subrequest of the scheduled
 * invocation, which the spill re-queue and the other scheduled work share.
 */
export const OBJECTS_PER_RUN = 5000;
/**
 * An hour is compacted once it ended this long ago. The consumer computes its archive key from
 * the time the batch started (src/events/consumer.ts) and writes the object seconds later, so an
 * object can still appear in an hour shortly after the hour ended.
 */
export const FINISHED_MARGIN_MS = 10 * 60 * 1000;
/** Archive objects fetched at the same time (as the rebuild does). */
const READ_CONCURRENCY = 8;
/** Rows per Parquet row group: a part is a single row group at the default part size. */
const ROW_GROUP_ROWS = 100_000;
/** Written into each file's key-value metadata; raise it when the columns change. */
export const PARQUET_SCHEMA_VERSION = "splitstream.events/1";

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const HOUR_PATTERN = /^\d{2}$/;

/**
 * The Parquet key of part `part` of (day, hour, sdkKey), `hour` being the archive's `hh`.
 *
 * - `sdk_key` is URI-encoded: sdkKeys are validated only for length
 *   (src/events/validate-message.ts), so one may contain `/` (which would add a folder level), `=`
 *   (which Hive-style readers split on) or `%`; encodeURIComponent escapes all three, and DuckDB's
 *   hive_partitioning decodes the value back (test/core/archive-duckdb.test.ts).
 * - `hour` is written without its leading zero (`hour=9`, not `hour=09`): DuckDB types a
 *   partition column from its values and reads `09` as text but `13` as a number, so a padded hour
 *   would be VARCHAR or BIGINT depending on the hours a query touches. Unpadded, it is BIGINT.
 */
export function parquetKey(day: string, sdkKey: string, hour: string, part: number): string {
  return `${PARQUET_PREFIX}date=${day}/sdk_key=${encodeURIComponent(sdkKey)}/hour=${Number(hour)}/part-${String(part).padStart(4, "0")}.parquet`;
}

/** The marker key of a compacted hour. */
export function hourMarkerKey(day: string, hour: string): string {
  return `${PARQUET_DONE_PREFIX}${day}/${hour}.json`;
}

/** The marker key of a day whose hours are all compacted. */
export function dayMarkerKey(day: string): string {
  return `${PARQUET_DONE_PREFIX}${day}.json`;
}

/**
 * Events as one Parquet file (Snappy, one row group up to 100,000 rows), rows in the order given.
 * The schema is fixed, whatever the events (docs/events.md has the table):
 *
 * - `uuid`, `type`, `sdk_key`, `revision`, `visitor_id`, `source`: STRING (UTF-8), required;
 * - `experiment_id`, `variation_id`: STRING, null for conversions; `event_id`, `event_key`:
 *   STRING, null for impressions;
 * - `timestamp`: INT64 annotated TIMESTAMP_MILLIS — the event's own time, UTC; DuckDB reads it as
 *   a `TIMESTAMP`, Spark as a timestamp;
 * - `revenue`: INT64, integer cents, nullable (every safe integer exactly, e.g. 2^53 − 1);
 * - `value`: DOUBLE, nullable;
 * - `tags`: the tags object as JSON text in a STRING column, nullable. Not the JSON logical type:
 *   the writer's JSON conversion rebuilds objects by assignment and would drop a tag named
 *   `__proto__`, which the validator keeps as data. DuckDB's JSON functions take the text as is.
 *
 * `sdk_key` is kept in the file although it is also a partition folder: a part read on its own
 * (hyparquet, pandas, a copied file) still says whose events it holds, with the sdkKey as sent,
 * not URI-encoded; as a constant column it costs a few bytes. `date` and `hour` are left out:
 * they are when the consumer archived the batch, a property of the archive object, not of the
 * event (the event's time is `timestamp`).
 */
export function encodeEventsParquet(events: readonly EventMessage[]): Uint8Array {
  const impression = (pick: (e: Extract<EventMessage, { type: "impression" }>) => string) =>
    events.map((e) => (e.type === "impression" ? pick(e) : null));
  const conversion = <T>(pick: (e: Extract<EventMessage, { type: "conversion" }>) => T | null) =>
    events.map((e) => (e.type === "conversion" ? pick(e) : null));
  const required = (name: string, data: string[]): ColumnSource => ({
    name,
    data,
    type: "STRING",
    nullable: false,
  });
  const columnData: ColumnSource[] = [
    required(
      "uuid",
      events.map((e) => e.uuid),
    ),
    required(
      "type",
      events.map((e) => e.type),
    ),
    required(
      "sdk_key",
      events.map((e) => e.sdkKey),
    ),
    required(
      "revision",
      events.map((e) => e.revision),
    ),
    required(
      "visitor_id",
      events.map((e) => e.visitorId),
    ),
    { name: "experiment_id", data: impression((e) => e.experimentId), type: "STRING" },
    { name: "variation_id", data: impression((e) => e.variationId), type: "STRING" },
    { name: "event_id", data: conversion((e) => e.eventId), type: "STRING" },
    { name: "event_key", data: conversion((e) => e.eventKey), type: "STRING" },
    {
      name: "timestamp",
      data: events.map((e) => BigInt(e.timestamp)),
      type: "TIMESTAMP",
      nullable: false,
    },
    {
      // The writer takes INT64 values as BigInt; revenue is a safe integer, so BigInt is exact.
      name: "revenue",
      data: conversion((e) => (e.revenue === undefined ? null : BigInt(e.revenue))),
      type: "INT64",
    },
    { name: "value", data: conversion((e) => e.value ?? null), type: "DOUBLE" },
    {
      name: "tags",
      data: conversion((e) => (e.tags === undefined ? null : JSON.stringify(e.tags))),
      type: "STRING",
    },
    required(
      "source",
      events.map((e) => e.source),
    ),
  ];
  const buffer = parquetWriteBuffer({
    columnData,
    codec: "SNAPPY",
    rowGroupSize: ROW_GROUP_ROWS,
    kvMetadata: [{ key: "splitstream.schema", value: PARQUET_SCHEMA_VERSION }],
    createdBy: "splitstream",
  });
  return new Uint8Array(buffer);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isText = (value: unknown): value is string => typeof value === "string" && value !== "";

/**
 * One archive line as an EventMessage, or null when it does not fit the Parquet schema.
 *
 * A shape check, not `validateMessage`: the archive holds what the consumer accepted when it
 * archived it, and the copy must not drop a line because today's bounds (the 30-day window, the
 * revenue cap of src/shared/event-limits.ts) differ. What cannot be represented exactly is left
 * out and counted: a timestamp or revenue that is not a safe integer, a non-finite value, tags
 * that are not a flat object of strings, finite numbers and booleans.
 */
export function archivedEvent(body: unknown): EventMessage | null {
  if (!isRecord(body) || body.v !== 1) return null;
  const { uuid, sdkKey, revision, visitorId, timestamp, source } = body;
  if (!isText(uuid) || !isText(sdkKey) || !isText(revision) || !isText(visitorId)) return null;
  if (!isText(source) || typeof timestamp !== "number" || !Number.isSafeInteger(timestamp))
    return null;
  const common = { v: 1 as const, uuid, sdkKey, revision, visitorId, timestamp };
  // The consumer only archives the sources it knows; any other text is still kept as text.
  const from = source as EventSource;
  if (body.type === "impression") {
    const { experimentId, variationId } = body;
    if (!isText(experimentId) || !isText(variationId)) return null;
    return { ...common, type: "impression", experimentId, variationId, source: from };
  }
  if (body.type !== "conversion") return null;
  const { eventId, eventKey, revenue, value, tags } = body;
  if (!isText(eventId) || !isText(eventKey)) return null;
  const event: EventMessage = { ...common, type: "conversion", eventId, eventKey, source: from };
  if (revenue !== undefined) {
    if (typeof revenue !== "number" || !Number.isSafeInteger(revenue)) return null;
    event.revenue = revenue;
  }
  if (value !== undefined) {
    if (typeof value !== "number" || !Number.isFinite(value)) return null;
    event.value = value;
  }
  if (tags !== undefined) {
    if (!isRecord(tags)) return null;
    for (const tag of Object.values(tags)) {
      const ok =
        typeof tag === "string" ||
        typeof tag === "boolean" ||
        (typeof tag === "number" && Number.isFinite(tag));
      if (!ok) return null;
    }
    // JSON.parse made `tags` with own properties only (a "__proto__" key included), as
    // validate-message.ts builds them.
    event.tags = tags as Record<string, string | number | boolean>;
  }
  return event;
}

/** What `compactArchiveHour` did; also the content of the hour's marker object. */
export interface HourCompaction {
  day: string;
  hour: string;
  /** Archive objects listed under `events/{day}/{hour}/`. */
  objects: number;
  /** Listed objects that were gone when read (deleted in between). */
  missingObjects: number;
  /** Lines that are events (all sdkKeys, duplicates included). */
  events: number;
  /** Rows written: `events` minus the duplicates dropped within a part. */
  rows: number;
  /** Lines whose uuid appeared earlier in the same part (dropped). */
  duplicates: number;
  /** Empty or whitespace-only lines inside an object (the final newline ends a line, it is none). */
  blankLines: number;
  /** Lines that are not JSON or do not fit the schema (`archivedEvent`); left out. */
  invalidLines: number;
  /** Parquet objects written. */
  parts: number;
  /** Their keys, in the order written. A rerun deletes the ones it does not write again. */
  keys: string[];
  /** ISO 8601 time of the compaction. */
  compactedAt: string;
}

export interface CompactHourOptions {
  /** Archive objects per part (default OBJECTS_PER_PART). */
  objectsPerPart?: number;
  /** The compaction time written to the marker (default Date.now()). */
  now?: number;
}

/** Every key under `prefix`, in key order, listed page by page (R2 returns ≤ 1000 per page). */
async function listKeys(bucket: R2Bucket, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor, limit: 1000 });
    for (const object of page.objects) keys.push(object.key);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor !== undefined);
  return keys;
}

/**
 * The next folder names under `prefix` (`delimiter: "/"`), in order: the delimited prefixes with
 * `prefix` and the trailing slash cut off; plus the names of the objects directly under it.
 */
async function listLevel(
  bucket: R2Bucket,
  prefix: string,
): Promise<{ folders: string[]; objects: string[] }> {
  const folders: string[] = [];
  const objects: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, delimiter: "/", cursor, limit: 1000 });
    for (const folder of page.delimitedPrefixes) folders.push(folder.slice(prefix.length, -1));
    for (const object of page.objects) objects.push(object.key.slice(prefix.length));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor !== undefined);
  folders.sort(compareText);
  objects.sort(compareText);
  return { folders, objects };
}

/** The contents of `keys`, READ_CONCURRENCY at a time, in the order of `keys` (null = gone). */
async function readObjects(bucket: R2Bucket, keys: readonly string[]): Promise<(string | null)[]> {
  const texts: (string | null)[] = [];
  for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
    const slice = keys.slice(i, i + READ_CONCURRENCY);
    const read = await Promise.all(
      slice.map(async (key) => (await bucket.get(key))?.text() ?? null),
    );
    texts.push(...read);
  }
  return texts;
}

/** Earlier event time first, then uuid (code point order): deterministic, and tight statistics. */
function byTime(a: EventMessage, b: EventMessage): number {
  return a.timestamp - b.timestamp || compareText(a.uuid, b.uuid);
}

/**
 * Compacts one hour of the archive into Parquet parts and writes its marker (see the module
 * comment). `day` is `yyyy-mm-dd`, `hour` is `hh` (UTC processing time, as in the archive keys).
 * The hour should be finished (`compactArchive` only picks those): objects added later are only
 * picked up by compacting the hour again.
 *
 * Part `n` of an sdkKey holds that sdkKey's events of the n-th chunk of `objectsPerPart` objects,
 * deduplicated by uuid (first in key and line order wins) and sorted by (timestamp, uuid); chunks
 * without events of an sdkKey write no part for it, so an sdkKey's part numbers can have gaps. A
 * rerun writes the same keys with the same bytes and deletes the parts of the previous marker it
 * did not write again; the marker is written last, so an interrupted run is simply redone.
 */
export async function compactArchiveHour(
  bucket: R2Bucket,
  day: string,
  hour: string,
  opts: CompactHourOptions = {},
): Promise<HourCompaction> {
  if (!DAY_PATTERN.test(day) || !HOUR_PATTERN.test(hour))
    throw new Error(`archive hour must be yyyy-mm-dd and hh, got ${day} ${hour}`);
  const objectsPerPart = Math.max(1, Math.floor(opts.objectsPerPart ?? OBJECTS_PER_PART));
  const keys = await listKeys(bucket, `${ARCHIVE_PREFIX}${day}/${hour}/`);
  const result: HourCompaction = {
    day,
    hour,
    objects: keys.length,
    missingObjects: 0,
    events: 0,
    rows: 0,
    duplicates: 0,
    blankLines: 0,
    invalidLines: 0,
    parts: 0,
    keys: [],
    compactedAt: new Date(opts.now ?? Date.now()).toISOString(),
  };

  for (let part = 0; part * objectsPerPart < keys.length; part++) {
    const chunk = keys.slice(part * objectsPerPart, (part + 1) * objectsPerPart);
    const bySdkKey = new Map<string, { events: EventMessage[]; uuids: Set<string> }>();
    for (const text of await readObjects(bucket, chunk)) {
      if (text === null) {
        result.missingObjects++;
        continue;
      }
      const lines = text.split("\n");
      // toNdjson ends every line with "\n": the empty string after the last one is no line.
      if (lines.at(-1) === "") lines.pop();
      for (const line of lines) {
        if (line.trim() === "") {
          result.blankLines++;
          continue;
        }
        let event: EventMessage | null = null;
        try {
          event = archivedEvent(JSON.parse(line));
        } catch {
          // Not JSON: counted below like a line that does not fit.
        }
        if (event === null) {
          result.invalidLines++;
          continue;
        }
        result.events++;
        let group = bySdkKey.get(event.sdkKey);
        if (!group) bySdkKey.set(event.sdkKey, (group = { events: [], uuids: new Set() }));
        if (group.uuids.has(event.uuid)) {
          result.duplicates++;
          continue;
        }
        group.uuids.add(event.uuid);
        group.events.push(event);
      }
    }
    for (const sdkKey of [...bySdkKey.keys()].sort(compareText)) {
      const events = bySdkKey.get(sdkKey)!.events.sort(byTime);
      const key = parquetKey(day, sdkKey, hour, part);
      await bucket.put(key, encodeEventsParquet(events), {
        httpMetadata: { contentType: "application/vnd.apache.parquet" },
      });
      result.keys.push(key);
      result.rows += events.length;
    }
  }
  result.parts = result.keys.length;

  // Parts an earlier compaction of this hour wrote and this one did not (the hour's objects
  // changed in between, e.g. a lifecycle rule deleted some): without this they would linger.
  const previous = await bucket.get(hourMarkerKey(day, hour));
  if (previous) {
    const written = new Set(result.keys);
    const before = ((await previous.json()) as Partial<HourCompaction>).keys ?? [];
    const stale = before.filter((key) => !written.has(key) && key.startsWith(PARQUET_PREFIX));
    for (let i = 0; i < stale.length; i += 1000) await bucket.delete(stale.slice(i, i + 1000));
  }
  await bucket.put(hourMarkerKey(day, hour), JSON.stringify(result), {
    httpMetadata: { contentType: "application/json" },
  });
  return result;
}

export interface CompactArchiveOptions extends Pick<CompactHourOptions, "objectsPerPart"> {
  /** Hours compacted at most per run (default HOURS_PER_RUN). */
  maxHours?: number;
  /** No further hour is started once this many archive objects were read (OBJECTS_PER_RUN). */
  maxObjects?: number;
  /** An hour is finished this long after its end (default FINISHED_MARGIN_MS). */
  marginMs?: number;
}

export interface ArchiveCompaction {
  /** The hours compacted by this run, oldest first. */
  hours: HourCompaction[];
  /** False when finished hours without a marker are left for the next run. */
  complete: boolean;
}

/** ms since epoch of the start of (day, hour), UTC. */
function hourStart(day: string, hour: string): number {
  return Date.parse(`${day}T${hour}:00:00Z`);
}

/**
 * The scheduled job: compacts the finished hours of the archive that have no marker yet, oldest
 * first, at most `maxHours` per run and no new hour after `maxObjects` objects were read. An hour
 * is finished when its end plus `marginMs` is at or before `now` (the trigger's scheduled time).
 *
 * It walks folders, never every object: the day folders under `events/` and the day markers
 * (one delimited listing each), then, for each day without a day marker, its hour folders and
 * hour markers. A finished day whose hours all have markers gets a day marker, so later runs skip
 * it with no listing of its own. Logs one line per run; a failure is logged and rethrown, and the
 * next run redoes the unfinished hour.
 */
export async function compactArchive(
  bucket: R2Bucket,
  now: number,
  opts: CompactArchiveOptions = {},
): Promise<ArchiveCompaction> {
  const maxHours = opts.maxHours ?? HOURS_PER_RUN;
  const maxObjects = opts.maxObjects ?? OBJECTS_PER_RUN;
  const marginMs = opts.marginMs ?? FINISHED_MARGIN_MS;
  const hourOptions: CompactHourOptions = { objectsPerPart: opts.objectsPerPart };
  const hours: HourCompaction[] = [];
  let objectsRead = 0;
  let complete = true;
  try {
    const days = (await listLevel(bucket, ARCHIVE_PREFIX)).folders.filter((d) =>
      DAY_PATTERN.test(d),
    );
    const doneDays = new Set(
      (await listLevel(bucket, PARQUET_DONE_PREFIX)).objects.map((name) => name.slice(0, -5)),
    );
    walk: for (const day of days) {
      if (doneDays.has(day)) continue;
      const dayStart = Date.parse(`${day}T00:00:00Z`);
      if (!(dayStart + HOUR_MS + marginMs <= now)) continue; // not even its first hour finished
      const { folders } = await listLevel(bucket, `${ARCHIVE_PREFIX}${day}/`);
      const done = new Set(
        (await listLevel(bucket, `${PARQUET_DONE_PREFIX}${day}/`)).objects.map((n) =>
          n.slice(0, -5),
        ),
      );
      for (const hour of folders.filter((h) => HOUR_PATTERN.test(h))) {
        if (done.has(hour)) continue;
        // Unfinished (or not a real hour: NaN compares false).
        if (!(hourStart(day, hour) + HOUR_MS + marginMs <= now)) continue;
        if (hours.length >= maxHours || objectsRead >= maxObjects) {
          complete = false;
          break walk;
        }
        const compacted = await compactArchiveHour(bucket, day, hour, hourOptions);
        hours.push(compacted);
        objectsRead += compacted.objects;
        done.add(hour);
      }
      const pending = folders.some((h) => HOUR_PATTERN.test(h) && !done.has(h));
      if (!pending && dayStart + DAY_MS + marginMs <= now) {
        await bucket.put(dayMarkerKey(day), JSON.stringify({ day, hours: [...done].sort() }), {
          httpMetadata: { contentType: "application/json" },
        });
      }
    }
  } catch (error) {
    console.error(
      `splitstream: parquet compaction failed after ${hours.length} hour(s)`,
      error instanceof Error ? error.message : error,
    );
    throw error;
  }
  const rows = hours.reduce((sum, h) => sum + h.rows, 0);
  const parts = hours.reduce((sum, h) => sum + h.parts, 0);
  const names = hours.map((h) => `${h.day}T${h.hour}`).join(", ");
  console.log(
    `splitstream: parquet compaction wrote ${parts} part(s), ${rows} row(s) from ${objectsRead} archive object(s) for ${hours.length} hour(s)${names ? ` (${names})` : ""}${complete ? "" : "; more left for the next run"}`,
  );
  return { hours, complete };
}
