/**
 * Property tests of the event ingest endpoints with arbitrary bodies (docs/security.md "Input
 * validation", docs/ingest.md): `POST /_ss/events` (browsers) and `POST /_ss/v1/events`
 * (Optimizely SDKs) always answer 204, or 400/413/415 with the error envelope — never a 5xx —
 * and in a batch that mixes valid events with garbage, every valid event is still queued and
 * every rejection is reported with its index and JSON path (nothing is silently lost).
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import type { EventMessage } from "../../src/shared/event-messages";
import edgeDatafile from "../fixtures/datafiles/edge.json";
import {
  SEED,
  defineOwn,
  hostileJson,
  hostileKey,
  hostileNumber,
  hostileString,
  seedProperties,
} from "../support/fast-check";
import { recordQueued } from "../helpers/queue";

seedProperties(100);

const SITE = "http://localhost";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const EVENTS: ReadonlyArray<{ id: string; key: string }> = edgeDatafile.events;

let queued: EventMessage[];

beforeEach(async () => {
  queued = [];
  recordQueued(queued);
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(edgeDatafile));
  resetDatafileStore();
});

afterEach(() => {
  vi.restoreAllMocks();
});

interface Envelope {
  error: {
    code: string;
    message: string;
    details: {
      accepted?: number;
      rejected?: Array<{ index: number; path: string; reason: string }>;
    } | null;
  };
}

/** Checks the answer's shape: 204 with no body, or an allowed error status with the envelope. */
async function answer(response: Response, allowed: number[]): Promise<Envelope | null> {
  const text = await response.text();
  expect(allowed, `${response.status} ${text.slice(0, 300)}`).toContain(response.status);
  expect(response.headers.get("cache-control")).toBe("no-store");
  if (response.status === 204) {
    expect(text).toBe("");
    return null;
  }
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const body = JSON.parse(text) as Envelope;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(typeof body.error.code).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  expect("details" in body.error).toBe(true);
  return body;
}

/** A 204 or a 400 `events_rejected` after `n` items: checks the report and returns the rejected indexes. */
function rejectedIndexes(
  body: Envelope | null,
  n: number,
  pathOf: (index: number) => string,
): Set<number> {
  if (body === null) {
    expect(queued).toHaveLength(n);
    return new Set();
  }
  expect(body.error.code).toBe("events_rejected");
  const { accepted, rejected } = body.error.details!;
  expect(accepted! + rejected!.length).toBe(n);
  expect(body.error.message).toBe(`${accepted} accepted, ${rejected!.length} rejected`);
  expect(queued).toHaveLength(accepted!);
  const indexes = rejected!.map((r) => r.index);
  expect(new Set(indexes).size).toBe(indexes.length);
  for (const r of rejected!) {
    expect(r.path.startsWith(pathOf(r.index))).toBe(true);
    expect(r.reason.length).toBeGreaterThan(0);
  }
  return new Set(indexes);
}

const validTags = fc
  .array(
    fc.tuple(
      fc.oneof(
        hostileKey.filter((k) => k.length > 0 && k.length <= 64),
        fc.string({ minLength: 1, maxLength: 8 }),
      ),
      fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.boolean()),
    ),
    { maxLength: 5 },
  )
  .map((entries) => {
    const tags: Record<string, unknown> = {};
    for (const [k, v] of entries) defineOwn(tags, k, v);
    return tags;
  });

/** Optional conversion fields, all valid. */
const extras = fc.record(
  {
    revenue: fc.nat({ max: 10_000_000 }),
    // Within the bound of src/shared/event-limits.ts (beyond it: a rejection, below).
    value: fc.double({ noNaN: true, min: -1e12, max: 1e12 }),
    tags: validTags,
  },
  { requiredKeys: [] },
);

/** One field of a conversion made invalid: the item must be rejected. */
const brokenField: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    revenue: fc.constantFrom(-1, 1.5, "100", Number.MAX_VALUE, true, {}, 100_000_000_001),
  }),
  fc.record({ value: fc.constantFrom("1", true, {}, [1], 1e13, -Number.MAX_VALUE) }),
  fc.record({ uuid: fc.constantFrom("", "has space", "u".repeat(65), 7, "ünï") }),
  fc.record({ timestamp: fc.constantFrom(0, -1, 1.5, "now", Date.now() + 3_600_000, 1e20) }),
  fc.record({
    tags: fc.constantFrom(
      "x",
      [],
      { k: { nested: 1 } },
      { k: null },
      { "": 1 },
      { ["k".repeat(65)]: 1 },
    ),
  }),
);

let counter = 0;
const uniqueUuid = () => `prop-${++counter}-${crypto.randomUUID().slice(0, 8)}`;

describe(`POST /_ss/events with arbitrary bodies (seed ${SEED})`, () => {
  const post = (body: string, contentType: string | null) =>
    exports.default.fetch(
      new Request(`${SITE}/_ss/events`, {
        method: "POST",
        headers: {
          ...(contentType === null ? {} : { "content-type": contentType }),
          cookie: "ss_vid=visitor1",
          "user-agent": BROWSER_UA,
        },
        body,
      }),
    );

  it("answers 204 / 400 / 413 / 415 with the envelope, never 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 300 }),
          hostileJson.map((v) => JSON.stringify(v)),
          hostileJson.map((events) => JSON.stringify({ events })),
          fc.array(hostileJson, { maxLength: 8 }).map((events) => JSON.stringify({ events })),
          fc
            .nat({ max: 300 })
            .map((n) =>
              JSON.stringify({ events: Array.from({ length: n }, () => ({ key: "buy_click" })) }),
            ),
          fc.constant("x".repeat(70_000)),
        ),
        fc.constantFrom(
          "application/json",
          "text/plain;charset=UTF-8",
          null,
          "application/x-www-form-urlencoded",
          "multipart/form-data",
        ),
        async (body, contentType) => {
          queued.length = 0;
          const response = await post(body, contentType);
          const envelope = await answer(response, [204, 400, 413, 415]);
          if (envelope === null || envelope.error.code !== "events_rejected") {
            if (envelope !== null) expect(queued).toHaveLength(0);
          }
        },
      ),
    );
  });

  it("a batch mixing valid events and garbage: every valid event is queued, each rejection reported", async () => {
    let mixed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            {
              weight: 2,
              arbitrary: fc.tuple(
                fc.constant("valid" as const),
                fc.constantFrom(...EVENTS),
                extras,
              ),
            },
            {
              weight: 1,
              arbitrary: fc.tuple(
                fc.constant("broken" as const),
                fc.constantFrom(...EVENTS),
                brokenField,
              ),
            },
            { weight: 1, arbitrary: fc.tuple(fc.constant("garbage" as const), hostileJson) },
            {
              weight: 1,
              arbitrary: fc.tuple(
                fc.constant("unknown-key" as const),
                fc.oneof(hostileString, hostileNumber),
              ),
            },
          ),
          { minLength: 1, maxLength: 30 },
        ),
        async (specs) => {
          queued.length = 0;
          const validUuids: string[] = [];
          const mustReject: number[] = [];
          const items = specs.map((spec, index) => {
            switch (spec[0]) {
              case "valid": {
                const uuid = uniqueUuid();
                validUuids.push(uuid);
                return { key: spec[1].key, uuid, ...spec[2] };
              }
              case "broken":
                mustReject.push(index);
                return { key: spec[1].key, uuid: uniqueUuid(), ...spec[2] };
              case "garbage":
                return spec[1];
              case "unknown-key":
                mustReject.push(index);
                return { key: spec[1] };
            }
          });
          const body = JSON.stringify({ events: items });
          fc.pre(body.length < 60_000);
          const envelope = await answer(await post(body, "application/json"), [204, 400]);
          const rejected = rejectedIndexes(envelope, items.length, (i) => `events[${i}]`);
          // Nothing valid is lost, nothing invalid gets through.
          const queuedUuids = new Set(queued.map((m) => m.uuid));
          for (const uuid of validUuids) expect(queuedUuids).toContain(uuid);
          for (const index of mustReject) expect(rejected).toContain(index);
          specs.forEach((spec, index) => {
            if (spec[0] === "valid") expect(rejected).not.toContain(index);
          });
          for (const m of queued) {
            expect(m).toMatchObject({
              v: 1,
              type: "conversion",
              visitorId: "visitor1",
              source: "browser",
            });
          }
          if (validUuids.length > 0 && mustReject.length > 0) mixed++;
        },
      ),
    );
    expect(mixed).toBeGreaterThan(20);
  });
});

describe(`POST /_ss/v1/events with arbitrary bodies (seed ${SEED})`, () => {
  const post = (body: string) =>
    exports.default.fetch(
      new Request(`${SITE}/_ss/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }),
    );
  const batchOf = (events: unknown[], extra: Record<string, unknown> = {}) => ({
    account_id: edgeDatafile.accountId,
    project_id: edgeDatafile.projectId,
    revision: edgeDatafile.revision,
    client_name: "property-test",
    visitors: [
      {
        visitor_id: "sdk-visitor",
        attributes: [],
        snapshots: [
          {
            decisions: [{ campaign_id: "1001", experiment_id: "1001", variation_id: "v_h_new" }],
            events,
          },
        ],
      },
    ],
    ...extra,
  });

  it("answers 204 / 400 / 413 with the envelope, never 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 300 }),
          hostileJson.map((v) => JSON.stringify(v)),
          hostileJson.map((visitors) => JSON.stringify({ visitors })),
          // account / project ids of any type, prototype-member keys included
          fc
            .tuple(hostileJson, hostileJson, fc.array(hostileJson, { maxLength: 3 }))
            .map(([account_id, project_id, events]) =>
              JSON.stringify({ ...batchOf(events), account_id, project_id }),
            ),
          fc.array(hostileJson, { maxLength: 8 }).map((events) => JSON.stringify(batchOf(events))),
          fc.array(fc.array(hostileJson, { maxLength: 3 }), { maxLength: 4 }).map((snapshots) =>
            JSON.stringify({
              ...batchOf([]),
              visitors: [{ visitor_id: "v", snapshots: snapshots.map((events) => ({ events })) }],
            }),
          ),
        ),
        async (body) => {
          queued.length = 0;
          const envelope = await answer(await post(body), [204, 400, 413]);
          if (envelope !== null && envelope.error.code !== "events_rejected")
            expect(queued).toHaveLength(0);
        },
      ),
    );
  });

  it("account_id / project_id objects that cannot become strings are a 400, not a crash", async () => {
    for (const value of [
      { toString: 1 },
      { toString: {}, valueOf: {} },
      { valueOf: null, toString: null },
    ])
      for (const field of ["account_id", "project_id"]) {
        const envelope = await answer(
          await post(JSON.stringify({ ...batchOf([]), [field]: value })),
          [400],
        );
        expect(envelope!.error.code).toBe("project_mismatch");
      }
  });

  it("a batch mixing valid events and garbage: every valid event is queued, each rejection reported", async () => {
    let mixed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            {
              weight: 2,
              arbitrary: fc.tuple(
                fc.constant("conversion" as const),
                fc.constantFrom(...EVENTS),
                extras,
              ),
            },
            { weight: 1, arbitrary: fc.tuple(fc.constant("impression" as const)) },
            {
              weight: 1,
              arbitrary: fc.tuple(
                fc.constant("broken" as const),
                fc.constantFrom(...EVENTS),
                brokenField,
              ),
            },
            { weight: 1, arbitrary: fc.tuple(fc.constant("garbage" as const), hostileJson) },
            { weight: 1, arbitrary: fc.tuple(fc.constant("wrong-id" as const), hostileString) },
          ),
          { minLength: 1, maxLength: 30 },
        ),
        async (specs) => {
          queued.length = 0;
          const validUuids: string[] = [];
          const mustReject: number[] = [];
          const now = Date.now();
          const events = specs.map((spec, index) => {
            switch (spec[0]) {
              case "conversion": {
                const uuid = uniqueUuid();
                validUuids.push(uuid);
                // The SDK copies revenue and value into tags too.
                const tags = {
                  ...(spec[2].tags ?? {}),
                  ...("revenue" in spec[2] ? { revenue: spec[2].revenue } : {}),
                };
                return {
                  entity_id: spec[1].id,
                  key: spec[1].key,
                  uuid,
                  timestamp: now,
                  ...spec[2],
                  tags,
                };
              }
              case "impression": {
                const uuid = uniqueUuid();
                validUuids.push(uuid);
                return { entity_id: "1001", key: "campaign_activated", uuid, timestamp: now };
              }
              case "broken":
                mustReject.push(index);
                return {
                  entity_id: spec[1].id,
                  key: spec[1].key,
                  uuid: uniqueUuid(),
                  timestamp: now,
                  ...spec[2],
                };
              case "garbage":
                return spec[1];
              case "wrong-id":
                mustReject.push(index);
                return { entity_id: spec[1], key: "buy_click", uuid: uniqueUuid(), timestamp: now };
            }
          });
          const envelope = await answer(await post(JSON.stringify(batchOf(events))), [204, 400]);
          const rejected = rejectedIndexes(
            envelope,
            events.length,
            () => `visitors[0].snapshots[0]`,
          );
          const queuedUuids = new Set(queued.map((m) => m.uuid));
          for (const uuid of validUuids) expect(queuedUuids).toContain(uuid);
          for (const index of mustReject) expect(rejected).toContain(index);
          for (const m of queued)
            expect(m).toMatchObject({ v: 1, visitorId: "sdk-visitor", source: "sdk" });
          if (validUuids.length > 0 && mustReject.length > 0) mixed++;
        },
      ),
    );
    expect(mixed).toBeGreaterThan(20);
  });
});
