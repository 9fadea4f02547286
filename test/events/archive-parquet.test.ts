/**
 * The Parquet copy of the raw-events archive (docs/events.md "Columnar archive (Parquet)") in
 * local R2: NDJSON objects as the consumer writes them (`events/{day}/{hh}/…`), compacted hour by
 * hour into `parquet/date=…/sdk_key=…/hour=…/part-nnnn.parquet`, read back with hyparquet (the
 * reader hyparquet-writer is built on) to check that every value round-trips exactly; then the
 * marker, rerun idempotence, and which hours the scheduled job picks.
 */
import { env } from "cloudflare:workers";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { describe, expect, it } from "vitest";
import {
  compactArchive,
  compactArchiveHour,
  dayMarkerKey,
  hourMarkerKey,
  parquetKey,
  PARQUET_PREFIX,
  type HourCompaction,
} from "../../src/events/archive-parquet";
import { toNdjson } from "../../src/events/aggregate";
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows decoded from Parquet
type Row = Record<string, any>;

const bucket = env.ARCHIVE;
const DAY = "2026-12-01";
const HOUR = "13";
const T = Date.parse(`${DAY}T${HOUR}:00:00Z`);
const ALPHA = "alpha";
/** Unicode and a slash: its folder is `sdk_key=beta%2F%CE%B2`. */
const BETA = "beta/β";

function imp(uuid: string, sdkKey: string, at: number, over: Partial<ImpressionMessage> = {}) {
  return {
    v: 1,
    type: "impression",
    uuid,
    sdkKey,
    revision: "12",
    visitorId: `v-${uuid}`,
    experimentId: "exp-1",
    variationId: "var-b",
    timestamp: T + at,
    source: "edge",
    ...over,
  } satisfies ImpressionMessage;
}

function conv(uuid: string, sdkKey: string, at: number, over: Partial<ConversionMessage> = {}) {
  return {
    v: 1,
    type: "conversion",
    uuid,
    sdkKey,
    revision: "12",
    visitorId: `v-${uuid}`,
    eventId: "ev-9",
    eventKey: "purchase",
    timestamp: T + at,
    source: "browser",
    ...over,
  } satisfies ConversionMessage;
}

const big = conv("c-big", ALPHA, 200, {
  revenue: Number.MAX_SAFE_INTEGER,
  value: 0.1,
  // JSON.parse: a `__proto__` key in an object literal would set the prototype, not a tag.
  tags: JSON.parse('{"plan":"pro","seats":3,"trial":true,"__proto__":"kept"}'),
});
const refund = conv("c-refund", BETA, 40, {
  revenue: -1999,
  value: -2.5,
  visitorId: "visitör-🎉-東京",
  source: "offline",
});
const u1 = imp("i-1", ALPHA, 300);
/** The archive objects of the hour, in key order (the names sort as listed). */
const OBJECTS: Array<[string, string]> = [
  [
    "m-001-4.ndjson",
    // a blank line and a malformed one inside an object
    toNdjson([u1, imp("i-2", BETA, 100)]) + "\n" + "{not json\n",
  ],
  // u1 again in the same chunk: dropped (deduplicated within a part)
  ["m-002-2.ndjson", toNdjson([big, u1])],
  [
    "m-003-3.ndjson",
    // a line that is JSON but no event (no uuid): invalid
    toNdjson([refund, imp("i-5", ALPHA, 50), { v: 1, type: "impression", sdkKey: ALPHA }]),
  ],
  // u1 once more in another chunk: kept (duplicates across parts are the reader's to drop)
  ["m-004-2.ndjson", toNdjson([u1, conv("c-6", BETA, 700)])],
  ["m-005-1.ndjson", toNdjson([imp("i-7", BETA, 10, { revision: "13" })])],
];

/** What a Parquet row of `e` decodes to. */
function rowOf(e: EventMessage): Row {
  return {
    uuid: e.uuid,
    type: e.type,
    sdk_key: e.sdkKey,
    revision: e.revision,
    visitor_id: e.visitorId,
    experiment_id: e.type === "impression" ? e.experimentId : null,
    variation_id: e.type === "impression" ? e.variationId : null,
    event_id: e.type === "conversion" ? e.eventId : null,
    event_key: e.type === "conversion" ? e.eventKey : null,
    timestamp: new Date(e.timestamp),
    revenue: e.type === "conversion" && e.revenue !== undefined ? BigInt(e.revenue) : null,
    value: e.type === "conversion" && e.value !== undefined ? e.value : null,
    tags: e.type === "conversion" && e.tags !== undefined ? JSON.stringify(e.tags) : null,
    source: e.source,
  };
}

/** Every key under `prefix`. */
async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor });
    keys.push(...page.objects.map((o) => o.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}

async function readPart(key: string): Promise<Row[]> {
  const file = await (await bucket.get(key))!.arrayBuffer();
  return parquetReadObjects({ file });
}

async function putHour(day: string, hour: string, objects: Array<[string, string]>) {
  for (const [name, body] of objects) await bucket.put(`events/${day}/${hour}/${name}`, body);
}

describe("compactArchiveHour", () => {
  it("writes one part per chunk and sdkKey, values exact, then the marker", async () => {
    await putHour(DAY, HOUR, OBJECTS);
    const result = await compactArchiveHour(bucket, DAY, HOUR, { objectsPerPart: 2 });

    const expectedKeys = [
      `parquet/date=2026-12-01/sdk_key=alpha/hour=13/part-0000.parquet`,
      `parquet/date=2026-12-01/sdk_key=beta%2F%CE%B2/hour=13/part-0000.parquet`,
      `parquet/date=2026-12-01/sdk_key=alpha/hour=13/part-0001.parquet`,
      `parquet/date=2026-12-01/sdk_key=beta%2F%CE%B2/hour=13/part-0001.parquet`,
      `parquet/date=2026-12-01/sdk_key=beta%2F%CE%B2/hour=13/part-0002.parquet`,
    ];
    expect(parquetKey(DAY, BETA, HOUR, 2)).toBe(expectedKeys[4]);
    expect(result).toMatchObject({
      day: DAY,
      hour: HOUR,
      objects: 5,
      missingObjects: 0,
      events: 9,
      rows: 8,
      duplicates: 1,
      blankLines: 1,
      invalidLines: 2,
      parts: 5,
      keys: expectedKeys,
    } satisfies Partial<HourCompaction>);
    expect((await keysUnder(PARQUET_PREFIX)).sort()).toEqual(
      [...expectedKeys, hourMarkerKey(DAY, HOUR)].sort(),
    );
    const marker = await (await bucket.get(hourMarkerKey(DAY, HOUR)))!.json();
    expect(marker).toEqual(result);

    // Each part: its sdkKey's events of its chunk, deduplicated, by (timestamp, uuid).
    const expected: Record<string, EventMessage[]> = {
      [expectedKeys[0]!]: [big, u1], // chunk 0 (objects 1, 2); big is earlier
      [expectedKeys[1]!]: [imp("i-2", BETA, 100)],
      [expectedKeys[2]!]: [imp("i-5", ALPHA, 50), u1], // chunk 1 (objects 3, 4)
      [expectedKeys[3]!]: [refund, conv("c-6", BETA, 700)],
      [expectedKeys[4]!]: [imp("i-7", BETA, 10, { revision: "13" })], // chunk 2 (object 5)
    };
    for (const [key, events] of Object.entries(expected)) {
      expect(await readPart(key), key).toEqual(events.map(rowOf));
    }

    const [bigRow] = (await readPart(expectedKeys[0]!)).filter((r) => r.uuid === "c-big");
    expect(bigRow!.revenue).toBe(9007199254740991n);
    expect(JSON.parse(bigRow!.tags)).toEqual(big.tags);
    expect(Object.keys(JSON.parse(bigRow!.tags))).toContain("__proto__");
    const [refundRow] = await readPart(expectedKeys[3]!);
    expect(refundRow).toMatchObject({
      revenue: -1999n,
      visitor_id: "visitör-🎉-東京",
      value: -2.5,
    });

    // The file itself: Snappy, the schema version, the logical types readers rely on.
    const metadata = parquetMetadata(await (await bucket.get(expectedKeys[0]!))!.arrayBuffer());
    expect(metadata.key_value_metadata).toContainEqual({
      key: "splitstream.schema",
      value: "splitstream.events/1",
    });
    const column = (name: string) => metadata.schema.find((s) => s.name === name)!;
    expect(column("timestamp")).toMatchObject({
      type: "INT64",
      converted_type: "TIMESTAMP_MILLIS",
      repetition_type: "REQUIRED",
    });
    expect(column("revenue")).toMatchObject({ type: "INT64", repetition_type: "OPTIONAL" });
    expect(column("experiment_id")).toMatchObject({ converted_type: "UTF8" });
    expect(metadata.row_groups[0]!.columns.every((c) => c.meta_data?.codec === "SNAPPY")).toBe(
      true,
    );
  });

  it("gives the same keys and bytes on a rerun, and drops parts it no longer writes", async () => {
    const before = await bucket.list({ prefix: "parquet/date=" });
    const etags = new Map(before.objects.map((o) => [o.key, o.etag]));
    const again = await compactArchiveHour(bucket, DAY, HOUR, { objectsPerPart: 2 });
    const after = await bucket.list({ prefix: "parquet/date=" });
    expect(after.objects.map((o) => [o.key, o.etag])).toEqual([...etags]);
    expect(again.parts).toBe(5);

    // An archive object gone (e.g. a lifecycle rule): the rerun removes the part it fed.
    await bucket.delete(`events/${DAY}/${HOUR}/m-005-1.ndjson`);
    const smaller = await compactArchiveHour(bucket, DAY, HOUR, { objectsPerPart: 2 });
    expect(smaller.parts).toBe(4);
    expect(await keysUnder("parquet/date=")).toEqual(
      [...etags.keys()].filter((k) => !k.endsWith("hour=13/part-0002.parquet")),
    );
    await putHour(DAY, HOUR, [OBJECTS[4]!]);
    await compactArchiveHour(bucket, DAY, HOUR, { objectsPerPart: 2 });
    expect(await keysUnder("parquet/date=")).toEqual([...etags.keys()]);
  });

  it("writes a marker and no part for an hour without events", async () => {
    await putHour("2026-11-30", "05", [["m-1-1.ndjson", "\n{oops\n"]]);
    const result = await compactArchiveHour(bucket, "2026-11-30", "05");
    expect(result).toMatchObject({ objects: 1, events: 0, blankLines: 1, invalidLines: 1 });
    expect(result.parts).toBe(0);
    expect(await keysUnder("parquet/date=2026-11-30/")).toEqual([]);
    expect(await bucket.head(hourMarkerKey("2026-11-30", "05"))).not.toBeNull();
  });
});

describe("compactArchive", () => {
  it("compacts finished hours without a marker, oldest first, bounded per run", async () => {
    const one = (uuid: string, day: string, hour: string): Array<[string, string]> => [
      [
        `m-${uuid}-1.ndjson`,
        toNdjson([imp(uuid, ALPHA, 0, { timestamp: Date.parse(`${day}T${hour}:05:00Z`) })]),
      ],
    ];
    await putHour(DAY, "15", one("x-15", DAY, "15"));
    for (const hour of ["10", "11", "12"])
      await putHour("2026-12-02", hour, one(`y-${hour}`, "2026-12-02", hour));
    // 12:05: hour 10 ended at 11:00 (finished), hour 11 ends at 12:00 (+10 min margin: not yet).
    const now = Date.parse("2026-12-02T12:05:00Z");

    const first = await compactArchive(bucket, now, { maxHours: 1 });
    expect(first.hours.map((h) => `${h.day} ${h.hour}`)).toEqual(["2026-12-01 15"]);
    expect(first.complete).toBe(false);
    // Every hour of 2026-12-01 is done now (13 earlier, 15 here): the day is marked.
    expect(await bucket.head(dayMarkerKey(DAY))).not.toBeNull();

    const second = await compactArchive(bucket, now, { maxHours: 1 });
    expect(second.hours.map((h) => `${h.day} ${h.hour}`)).toEqual(["2026-12-02 10"]);
    expect(second.complete).toBe(true);
    expect(await bucket.head(hourMarkerKey("2026-12-02", "11"))).toBeNull();
    expect(await bucket.head(dayMarkerKey("2026-12-02"))).toBeNull();
    expect(await keysUnder("parquet/date=2026-12-02/")).toEqual([
      "parquet/date=2026-12-02/sdk_key=alpha/hour=10/part-0000.parquet",
    ]);

    // Nothing new: a run does nothing.
    expect(await compactArchive(bucket, now)).toEqual({ hours: [], complete: true });
    // 12:15: hour 11 is finished, hour 12 is not.
    const third = await compactArchive(bucket, Date.parse("2026-12-02T12:15:00Z"));
    expect(third.hours.map((h) => `${h.day} ${h.hour}`)).toEqual(["2026-12-02 11"]);
    const [row] = await readPart("parquet/date=2026-12-02/sdk_key=alpha/hour=11/part-0000.parquet");
    expect(row).toMatchObject({ uuid: "y-11", timestamp: new Date("2026-12-02T11:05:00Z") });
    // The next day: 12 is done, and 2026-12-02 gets its day marker.
    const fourth = await compactArchive(bucket, Date.parse("2026-12-03T00:10:00Z"));
    expect(fourth.hours.map((h) => `${h.day} ${h.hour}`)).toEqual(["2026-12-02 12"]);
    expect(await bucket.head(dayMarkerKey("2026-12-02"))).not.toBeNull();
  });

  it("stops starting hours once maxObjects archive objects were read", async () => {
    for (const hour of ["01", "02"]) {
      await putHour("2026-12-05", hour, [
        ["m-a-1.ndjson", toNdjson([imp(`z-${hour}-a`, ALPHA, 0)])],
        ["m-b-1.ndjson", toNdjson([imp(`z-${hour}-b`, ALPHA, 0)])],
      ]);
    }
    const now = Date.parse("2026-12-05T12:00:00Z");
    const run = await compactArchive(bucket, now, { maxObjects: 1 });
    expect(run.hours.map((h) => `${h.day} ${h.hour}`)).toEqual(["2026-12-05 01"]);
    expect(run.complete).toBe(false);
    const next = await compactArchive(bucket, now, { maxObjects: 1 });
    expect(next.hours.map((h) => `${h.day} ${h.hour}`)).toEqual(["2026-12-05 02"]);
    expect(next.complete).toBe(true);
  });
});
