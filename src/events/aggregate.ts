/**
 * The counting, as pure code (no Workers APIs; unit-tested in Node by test/core/aggregate.test.ts).
 *
 * `planBatch` turns the valid messages of one queue batch into an ordered list of operations:
 * duplicates inside the batch dropped (first occurrence wins), impressions before conversions (so
 * a conversion sent together with its impression — as the edge does — is attributed whatever the
 * order inside the batch), each group in timestamp order (earliest impression / conversion wins).
 * The consumer (src/events/consumer.ts) turns each operation into SQL statements run in one
 * atomic D1 batch; whether an operation counts depends on database state (the uuid not seen
 * before, the visitor's exposures), which the SQL checks.
 *
 * `applyPlan` is the reference model of exactly those semantics on in-memory state: it documents
 * what the SQL must do and the tests compare the two.
 */
import type { EventMessage } from "./messages";

export interface ImpressionOp {
  kind: "impression";
  uuid: string;
  sdkKey: string;
  revision: string;
  visitorId: string;
  experimentId: string;
  variationId: string;
  timestamp: number;
  /** UTC day of the impression, `yyyy-mm-dd`. */
  day: string;
}

export interface ConversionOp {
  kind: "conversion";
  uuid: string;
  sdkKey: string;
  revision: string;
  visitorId: string;
  eventId: string;
  timestamp: number;
  /** UTC day of the conversion, `yyyy-mm-dd`. */
  day: string;
  /** Integer cents, 0 when absent. */
  revenue: number;
  /** 0 when absent. */
  value: number;
}

export type EventOp = ImpressionOp | ConversionOp;

export interface BatchPlan {
  ops: EventOp[];
  /** Messages dropped because an earlier message of the same batch had the same uuid. */
  duplicatesInBatch: number;
}

/** `yyyy-mm-dd` (UTC) of a ms timestamp. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** `hh` (UTC, two digits) of a ms timestamp. */
export function utcHour(ms: number): string {
  return new Date(ms).toISOString().slice(11, 13);
}

/** R2 key of the raw-events archive object of one batch. */
export function archiveKey(now: number, firstMessageId: string, count: number): string {
  return `events/${utcDay(now)}/${utcHour(now)}/${firstMessageId}-${count}.ndjson`;
}

/** R2 key of the rejected-messages object of one batch. */
export function rejectedKey(now: number, firstMessageId: string): string {
  return `rejected/${utcDay(now)}/${firstMessageId}.ndjson`;
}

/** One JSON document per line, newline-terminated. */
export function toNdjson(values: readonly unknown[]): string {
  return values.map((value) => `${JSON.stringify(value)}\n`).join("");
}

export function planBatch(messages: readonly EventMessage[]): BatchPlan {
  const seen = new Set<string>();
  const impressions: ImpressionOp[] = [];
  const conversions: ConversionOp[] = [];
  let duplicatesInBatch = 0;
  for (const m of messages) {
    if (seen.has(m.uuid)) {
      duplicatesInBatch++;
      continue;
    }
    seen.add(m.uuid);
    const base = {
      uuid: m.uuid,
      sdkKey: m.sdkKey,
      revision: m.revision,
      visitorId: m.visitorId,
      timestamp: m.timestamp,
      day: utcDay(m.timestamp),
    };
    if (m.type === "impression") {
      impressions.push({
        ...base,
        kind: "impression",
        experimentId: m.experimentId,
        variationId: m.variationId,
      });
    } else {
      conversions.push({
        ...base,
        kind: "conversion",
        eventId: m.eventId,
        revenue: m.revenue ?? 0,
        value: m.value ?? 0,
      });
    }
  }
  // Array.prototype.sort is stable: equal timestamps keep arrival order.
  impressions.sort((a, b) => a.timestamp - b.timestamp);
  conversions.sort((a, b) => a.timestamp - b.timestamp);
  return { ops: [...impressions, ...conversions], duplicatesInBatch };
}

// ---- reference model -------------------------------------------------------------------------

export interface Exposure {
  variationId: string;
  firstAt: number;
  revision: string;
  uuid: string;
}

export interface MetricCell {
  converters: number;
  events: number;
  revenueSum: number;
  revenueSumSq: number;
  valueSum: number;
  valueSumSq: number;
}

/** In-memory mirror of the D1 tables (keys are JSON arrays of the primary-key columns). */
export interface AggregateState {
  /** seen_events: uuid */
  seen: Set<string>;
  /** exposures: [sdkKey, experimentId, visitorId] */
  exposures: Map<string, Exposure>;
  /** converters: [sdkKey, experimentId, eventId, visitorId] */
  converters: Set<string>;
  /** variation_daily: [sdkKey, experimentId, variationId, revision, day] → visitors */
  variationDaily: Map<string, number>;
  /** metric_daily: [sdkKey, experimentId, variationId, revision, eventId, day] */
  metricDaily: Map<string, MetricCell>;
}

export function emptyState(): AggregateState {
  return {
    seen: new Set(),
    exposures: new Map(),
    converters: new Set(),
    variationDaily: new Map(),
    metricDaily: new Map(),
  };
}

const key = (...parts: string[]): string => JSON.stringify(parts);

/** Applies a plan to `state` (mutating it), with the consumer's SQL semantics. */
export function applyPlan(state: AggregateState, plan: BatchPlan): AggregateState {
  for (const op of plan.ops) {
    if (state.seen.has(op.uuid)) continue;
    state.seen.add(op.uuid);
    if (op.kind === "impression") {
      const k = key(op.sdkKey, op.experimentId, op.visitorId);
      if (state.exposures.has(k)) continue;
      state.exposures.set(k, {
        variationId: op.variationId,
        firstAt: op.timestamp,
        revision: op.revision,
        uuid: op.uuid,
      });
      const vk = key(op.sdkKey, op.experimentId, op.variationId, op.revision, op.day);
      state.variationDaily.set(vk, (state.variationDaily.get(vk) ?? 0) + 1);
      continue;
    }
    for (const [k, exposure] of state.exposures) {
      const [sdkKey, experimentId, visitorId] = JSON.parse(k) as [string, string, string];
      if (sdkKey !== op.sdkKey || visitorId !== op.visitorId) continue;
      if (exposure.firstAt > op.timestamp) continue;
      const ck = key(op.sdkKey, experimentId, op.eventId, op.visitorId);
      const newConverter = !state.converters.has(ck);
      if (newConverter) state.converters.add(ck);
      const mk = key(
        op.sdkKey,
        experimentId,
        exposure.variationId,
        exposure.revision,
        op.eventId,
        op.day,
      );
      const cell = state.metricDaily.get(mk) ?? {
        converters: 0,
        events: 0,
        revenueSum: 0,
        revenueSumSq: 0,
        valueSum: 0,
        valueSumSq: 0,
      };
      cell.converters += newConverter ? 1 : 0;
      cell.events += 1;
      cell.revenueSum += op.revenue;
      cell.revenueSumSq += op.revenue * op.revenue;
      cell.valueSum += op.value;
      cell.valueSumSq += op.value * op.value;
      state.metricDaily.set(mk, cell);
    }
  }
  return state;
}
