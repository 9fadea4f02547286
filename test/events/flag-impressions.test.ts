/**
 * Impressions of a feature flag's A/B rule (docs/events.md "Feature flag impressions"): the queue
 * message's `flagKey` and `ruleType` are validated like its other strings, an impression carrying
 * them is counted exactly like any impression of its experiment, a bad one is archived under
 * `rejected/` without costing the rest of its batch, and the archive keeps the fields (raw NDJSON)
 * or leaves them out (Parquet) without refusing the event.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { utcDay } from "../../src/events/aggregate";
import { archivedEvent, encodeEventsParquet } from "../../src/events/archive-parquet";
import { handleEventBatch } from "../../src/events/consumer";
import { validateMessage } from "../../src/events/validate-message";
import { readDerivedRows } from "../../src/events/visitor-state";
import type { ImpressionMessage } from "../../src/shared/event-messages";
import { LAYOUTS, useLayout } from "../helpers/event-layout";

const T0 = Date.now() - 60 * 60 * 1000;
let seq = 0;
const uid = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${++seq}`;

function flagImpression(sdkKey: string, over: Record<string, unknown> = {}): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: uid("i"),
    sdkKey,
    revision: "7",
    visitorId: "alice",
    experimentId: "3001",
    variationId: "v_s_on",
    timestamp: T0,
    source: "edge",
    dims: { device: "desktop" },
    flagKey: "search_ranking",
    ruleType: "feature-test",
    ...over,
  } as ImpressionMessage;
}

describe("validateMessage: flagKey and ruleType", () => {
  it("keeps them on a valid impression", () => {
    const message = flagImpression("sdk");
    expect(validateMessage(message)).toEqual({ ok: true, message });
    // Unicode is fine (datafile keys may be any text), as long as nothing is a control character.
    const unicode = flagImpression("sdk", { flagKey: "nouvelle_caisse_été_😀" });
    expect(validateMessage(unicode)).toEqual({ ok: true, message: unicode });
    // Without them, an impression is what it always was.
    const { flagKey: _k, ruleType: _r, ...plain } = message;
    expect(validateMessage(plain)).toEqual({ ok: true, message: plain });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["a flagKey alone", { ruleType: undefined }, "flagKey and ruleType must be given together"],
    ["a ruleType alone", { flagKey: undefined }, "flagKey and ruleType must be given together"],
    ["an empty flagKey", { flagKey: "" }, "flagKey must not be empty"],
    ["a numeric flagKey", { flagKey: 42 }, "flagKey must be a string"],
    ["an overlong flagKey", { flagKey: "f".repeat(257) }, "flagKey is longer than 256 characters"],
    [
      "a flagKey with a line break",
      { flagKey: "flag\nx" },
      "flagKey must not contain control characters or lone surrogates",
    ],
    [
      "a flagKey with NUL",
      { flagKey: "flag\u0000" },
      "flagKey must not contain control characters or lone surrogates",
    ],
    [
      "a flagKey with a lone surrogate",
      { flagKey: "flag\ud800" },
      "flagKey must not contain control characters or lone surrogates",
    ],
    ["a rollout ruleType", { ruleType: "rollout" }, "ruleType must be one of feature-test"],
    [
      "a ruleType of another type",
      { ruleType: ["feature-test"] },
      "ruleType must be one of feature-test",
    ],
  ])("rejects %s with a clear reason", (_name, over, reason) => {
    expect(validateMessage(flagImpression("sdk", over))).toEqual({ ok: false, reason });
  });

  it("flag fields on a conversion are not part of it (dropped, like any unknown key)", () => {
    const result = validateMessage({
      v: 1,
      type: "conversion",
      uuid: "c1",
      sdkKey: "sdk",
      revision: "7",
      visitorId: "alice",
      eventId: "e1",
      eventKey: "buy",
      timestamp: T0,
      source: "browser",
      flagKey: "x\n",
    });
    expect(result.ok && "flagKey" in result.message).toBe(false);
  });
});

async function readNdjson(key: string): Promise<unknown[]> {
  const object = await env.ARCHIVE.get(key);
  expect(object, `R2 object ${key}`).not.toBeNull();
  return (await object!.text())
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as unknown);
}

async function visitors(sdkKey: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const row of await readDerivedRows(env, "variation_daily", sdkKey))
    out[`${row.experiment_id}/${row.variation_id}`] =
      (out[`${row.experiment_id}/${row.variation_id}`] ?? 0) + Number(row.visitors);
  return out;
}

describe.each(LAYOUTS)("the consumer, $name", ({ shards }) => {
  beforeAll(() => useLayout(shards));

  it("counts flag impressions like any impression; a bad one goes to rejected/, the batch is acked", async () => {
    const sdk = uid("sdk");
    const good = flagImpression(sdk);
    const other = flagImpression(sdk, { visitorId: "bob", variationId: "v_s_off" });
    const plain = { ...flagImpression(sdk, { visitorId: "carol" }) } as Record<string, unknown>;
    delete plain.flagKey;
    delete plain.ruleType;
    const bad = flagImpression(sdk, { visitorId: "dave", flagKey: "evil\r\nkey" });
    const lonely = flagImpression(sdk, { visitorId: "erin", ruleType: undefined });
    const bodies = [good, bad, other, lonely, plain];
    const ids = bodies.map(() => uid("m"));
    const now = new Date().toISOString();
    const batch = createMessageBatch(
      "splitstream-events",
      bodies.map((body, i) => ({ id: ids[i]!, timestamp: new Date(), attempts: 1, body })),
    );
    await handleEventBatch(batch, env);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.ackAll).toBe(true);
    expect(result.retryBatch.retry).toBe(false);

    // alice and carol in v_s_on, bob in v_s_off: the invalid ones (dave, erin) are not counted.
    expect(await visitors(sdk)).toEqual({ "3001/v_s_on": 2, "3001/v_s_off": 1 });
    const rejected = await readNdjson(`rejected/${utcDay(Date.now())}/${ids[0]}.ndjson`);
    expect(rejected).toEqual([
      {
        id: ids[1],
        stage: "invalid",
        reason: "flagKey must not contain control characters or lone surrogates",
        body: bad,
      },
      {
        id: ids[3],
        stage: "invalid",
        reason: "flagKey and ruleType must be given together",
        body: JSON.parse(JSON.stringify(lonely)),
      },
    ]);

    // The raw archive keeps the flag fields.
    const listed = await env.ARCHIVE.list({ prefix: `events/${now.slice(0, 10)}/` });
    const key = listed.objects.map((o) => o.key).find((k) => k.endsWith(`/${ids[0]}-3.ndjson`));
    expect(key, "the batch's archive object").toBeDefined();
    expect(await readNdjson(key!)).toEqual([good, other, plain]);
  });
});

describe("the Parquet copy of the archive", () => {
  it("accepts flag impressions and leaves their flag fields out (raw NDJSON keeps them)", () => {
    const line = JSON.parse(JSON.stringify(flagImpression("sdk"))) as unknown;
    const event = archivedEvent(line);
    expect(event).toMatchObject({
      type: "impression",
      experimentId: "3001",
      variationId: "v_s_on",
    });
    expect(event && "flagKey" in event).toBe(false);
    const bytes = encodeEventsParquet([event!, flagImpression("sdk")]);
    expect(bytes.byteLength).toBeGreaterThan(0);
    // PAR1 magic at both ends: a complete file.
    const magic = new TextDecoder().decode(bytes.slice(0, 4));
    expect([magic, new TextDecoder().decode(bytes.slice(-4))]).toEqual(["PAR1", "PAR1"]);
  });
});
