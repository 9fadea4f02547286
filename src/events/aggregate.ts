/**
 * The counting, as pure code (no Workers APIs; unit-tested in Node by test/core/aggregate*.test.ts).
 *
 * The rule (docs/events.md "Attribution"): the aggregates are a function of the SET
 * of distinct events processed so far, whatever the queue's batch order or split:
 * - a visitor's exposure to an experiment is their EARLIEST impression in it, by (timestamp,
 *   uuid) — variation, revision and day included;
 * - a conversion counts for every experiment of the same sdkKey where the visitor's exposure came
 *   at or before it, under the exposure's variation and revision;
 * - per visitor, event and UTC day at most the event's cap of conversions count (docs/events.md
 *   "The per-visitor budget"): the first ones by (timestamp, uuid) among those processed together;
 *   conversions beyond it are dropped. This is the one place where arrival order matters, and only
 *   for a visitor above the cap: which of their conversions count then depends on the batches;
 * - a visitor converts (unique converters) on the day of their earliest attributed conversion
 *   of that event, by (timestamp, uuid);
 * - per (experiment, event, visitor) the converters row keeps the visitor's totals over their
 *   attributed conversions (count, revenue, value), and metric_daily the per-visitor sums of
 *   squares as increments: the k-th attributed conversion in (timestamp, uuid) order adds
 *   S_k² − S_{k−1}² (S_k = the visitor's running total after it) to its own day's cell, so the
 *   increments of all days add up to Σ over visitors of (their total)² (docs/events.md).
 *
 * `planBatch` turns the valid messages of one queue batch into operations: duplicates inside the
 * batch dropped (first occurrence wins) and, per (sdkKey, experiment, visitor), the batch's
 * earliest impression as the only candidate exposure (the others can never win against it).
 * The consumer (src/events/consumer.ts) applies a plan with a fixed number of set-based SQL
 * statements in one atomic D1 batch.
 *
 * `applyPlan` is the incremental reference model of exactly those statements on in-memory state
 * (the tests compare the two), and `foldEvents` is the rule above computed from scratch (the tests
 * check that applyPlan over any split and order of a set of events equals it).
 */
import { DEFAULT_DAILY_CONVERSION_CAP } from "../shared/event-limits";
import {
  BREAKDOWN_DIMENSIONS,
  type EventMessage,
  type ImpressionDims,
} from "../shared/event-messages";

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
  /** The impression's dimensions as canonical JSON (breakdowns), null without any. */
  dims: string | null;
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
  /**
   * How many of the visitor's conversions of this event count per UTC day (docs/events.md
   * "The per-visitor budget"); a fresh conversion beyond it is marked seen but not counted.
   */
  cap: number;
}

/** The daily cap of an event of an sdkKey (the event's own setting, else the default). */
export type CapOf = (sdkKey: string, eventId: string) => number;

const defaultCap: CapOf = () => DEFAULT_DAILY_CONVERSION_CAP;

export type EventOp = ImpressionOp | ConversionOp;

export interface BatchPlan {
  /** Every distinct event of the batch: impressions (by time), then conversions (by time). */
  ops: EventOp[];
  /** Per (sdkKey, experimentId, visitorId), the batch's earliest impression by (timestamp, uuid). */
  candidates: ImpressionOp[];
  /** The batch's distinct conversions (the conversion ops of `ops`). */
  conversions: ConversionOp[];
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

/** R2 key prefix of the raw-events archive (docs/events.md). */
export const ARCHIVE_PREFIX = "events/";

/** R2 key of the raw-events archive object of one batch. */
export function archiveKey(now: number, firstMessageId: string, count: number): string {
  return `${ARCHIVE_PREFIX}${utcDay(now)}/${utcHour(now)}/${firstMessageId}-${count}.ndjson`;
}

/**
 * R2 key prefix of the records of conversions the per-visitor budget dropped (docs/events.md):
 * `dropped/{day}/{first message id}.ndjson`, one `{uuid, sdkKey, visitorId, eventId, timestamp}`
 * per line. The rebuild leaves these out instead of deciding the budget again.
 */
export const DROPPED_PREFIX = "dropped/";

/** R2 key of the dropped-conversions record of one batch. */
export function droppedKey(now: number, firstMessageId: string): string {
  return `${DROPPED_PREFIX}${utcDay(now)}/${firstMessageId}.ndjson`;
}

/** R2 key prefix of the messages the consumer did not count (docs/events.md). */
export const REJECTED_PREFIX = "rejected/";

/** R2 key of the rejected-messages object of one batch. */
export function rejectedKey(now: number, firstMessageId: string): string {
  return `${REJECTED_PREFIX}${utcDay(now)}/${firstMessageId}.ndjson`;
}

/** One JSON document per line, newline-terminated. */
export function toNdjson(values: readonly unknown[]): string {
  return values.map((value) => `${JSON.stringify(value)}\n`).join("");
}

/**
 * Compares two strings the way SQLite's default BINARY collation does (UTF-8 bytes, i.e. code
 * points), so that the model and the SQL break timestamp ties identically even for non-ASCII.
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const x = [...a];
  const y = [...b];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const cx = x[i]!.codePointAt(0)!;
    const cy = y[i]!.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
  return x.length - y.length < 0 ? -1 : x.length === y.length ? 0 : 1;
}

/**
 * An impression's dimensions as canonical JSON — keys in BREAKDOWN_DIMENSIONS order, so that the
 * same dimensions always give the same text (the exposures' `dims` column compares as text).
 */
export function dimsText(dims: ImpressionDims | undefined): string | null {
  if (dims === undefined) return null;
  const out: Record<string, string> = {};
  for (const key of BREAKDOWN_DIMENSIONS) {
    const value = dims[key];
    if (value !== undefined) out[key] = value;
  }
  return Object.keys(out).length === 0 ? null : JSON.stringify(out);
}

/** True when event (t1, u1) comes strictly before (t2, u2): by timestamp, ties by uuid. */
export function isBefore(t1: number, u1: string, t2: number, u2: string): boolean {
  return t1 < t2 || (t1 === t2 && compareText(u1, u2) < 0);
}

const key = (...parts: string[]): string => JSON.stringify(parts);

export function planBatch(messages: readonly EventMessage[], capOf: CapOf = defaultCap): BatchPlan {
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
        dims: dimsText(m.dims),
      });
    } else {
      conversions.push({
        ...base,
        kind: "conversion",
        eventId: m.eventId,
        revenue: m.revenue ?? 0,
        value: m.value ?? 0,
        cap: capOf(m.sdkKey, m.eventId),
      });
    }
  }
  // Array.prototype.sort is stable: equal timestamps keep arrival order.
  impressions.sort((a, b) => a.timestamp - b.timestamp);
  conversions.sort((a, b) => a.timestamp - b.timestamp);
  const best = new Map<string, ImpressionOp>();
  for (const op of impressions) {
    const k = key(op.sdkKey, op.experimentId, op.visitorId);
    const current = best.get(k);
    if (!current || isBefore(op.timestamp, op.uuid, current.timestamp, current.uuid))
      best.set(k, op);
  }
  return {
    ops: [...impressions, ...conversions],
    candidates: [...best.values()],
    conversions,
    duplicatesInBatch,
  };
}

// ---- reference model -------------------------------------------------------------------------

/** exposures row: the visitor's earliest impression in an experiment. */
export interface Exposure {
  variationId: string;
  firstAt: number;
  revision: string;
  /** The impression's uuid. */
  uuid: string;
  /** The impression's dimensions (canonical JSON), null without any. */
  dims: string | null;
}

/**
 * converters row: the visitor's earliest attributed conversion of an event in an experiment, and
 * their totals over all of their attributed conversions of that event.
 */
export interface Converter {
  variationId: string;
  convertedAt: number;
  /** The conversion's uuid. */
  uuid: string;
  /** Attributed conversions (x of a `count` metric). */
  events: number;
  /** Their revenue, integer cents (x of a `sum` revenue metric). */
  revenue: number;
  /** Their value (x of a `sum` value metric). */
  value: number;
}

/** conversions row: a counted conversion, kept so that a late impression can attribute it. */
export interface StoredConversion {
  uuid: string;
  sdkKey: string;
  visitorId: string;
  eventId: string;
  timestamp: number;
  day: string;
  revenue: number;
  value: number;
  revision: string;
}

/**
 * metric_daily's counts of one cell ([sdkKey, experimentId, variationId, revision, eventId, day]);
 * the column of each field is METRIC_DAILY_COLUMNS in src/events/tables.ts.
 */
export interface MetricCell {
  converters: number;
  events: number;
  revenueSum: number;
  /** Σ revenue² over events. */
  revenueSumSq: number;
  valueSum: number;
  /** Σ value² over events. */
  valueSumSq: number;
  /** Per-visitor Σx² increments (see the module comment) of the visitors' event counts… */
  eventsVisitorSumSq: number;
  /** …revenue totals… */
  revenueVisitorSumSq: number;
  /** …and value totals. */
  valueVisitorSumSq: number;
}

/** What one conversion changes in the per-visitor sums of squares (metric_daily). */
export interface VisitorSq {
  events: number;
  revenue: number;
  value: number;
}

/** What the model keeps per (sdkKey, visitorId), to find a visitor's rows without scanning. */
interface VisitorIndex {
  experiments: Set<string>;
  conversions: StoredConversion[];
}

/** In-memory mirror of the D1 tables (keys are JSON arrays of the primary-key columns). */
export interface AggregateState {
  /** seen_events: uuid */
  seen: Set<string>;
  /** exposures: [sdkKey, experimentId, visitorId] */
  exposures: Map<string, Exposure>;
  /** conversions: uuid */
  conversions: Map<string, StoredConversion>;
  /** converters: [sdkKey, experimentId, eventId, visitorId] */
  converters: Map<string, Converter>;
  /** variation_daily: [sdkKey, experimentId, variationId, revision, day] → visitors */
  variationDaily: Map<string, number>;
  /** metric_daily: [sdkKey, experimentId, variationId, revision, eventId, day] */
  metricDaily: Map<string, MetricCell>;
  /** Index [sdkKey, visitorId] → the visitor's experiments and stored conversions. */
  visitors: Map<string, VisitorIndex>;
  /** Fresh conversions not counted because their visitor had reached the event's daily cap. */
  capped: number;
}

export function emptyState(): AggregateState {
  return {
    seen: new Set(),
    exposures: new Map(),
    conversions: new Map(),
    converters: new Map(),
    variationDaily: new Map(),
    metricDaily: new Map(),
    visitors: new Map(),
    capped: 0,
  };
}

/**
 * The fresh conversions that fit their visitor's daily budget (SQL statement 2 of
 * src/events/count-sql.ts): per (sdkKey, visitor, event, day), in (timestamp, uuid) order, a
 * conversion counts while the visitor's stored conversions of that event and day plus those
 * before it in the batch stay within its cap. The others are counted in `state.capped`.
 */
function withinBudget(state: AggregateState, ops: ConversionOp[]): ConversionOp[] {
  const groups = new Map<string, ConversionOp[]>();
  for (const op of ops) {
    const k = key(op.sdkKey, op.visitorId, op.eventId, op.day);
    const group = groups.get(k);
    if (group) group.push(op);
    else groups.set(k, [op]);
  }
  const over = new Set<string>();
  for (const group of groups.values()) {
    const { sdkKey, visitorId, eventId, day } = group[0]!;
    let stored = 0;
    for (const c of state.visitors.get(key(sdkKey, visitorId))?.conversions ?? [])
      if (c.eventId === eventId && c.day === day) stored++;
    group.sort((a, b) => (isBefore(a.timestamp, a.uuid, b.timestamp, b.uuid) ? -1 : 1));
    group.forEach((op, i) => {
      if (stored + i + 1 > op.cap) over.add(op.uuid);
    });
  }
  if (over.size === 0) return ops;
  state.capped += over.size;
  return ops.filter((op) => !over.has(op.uuid));
}

/** A metric_daily cell with nothing counted. */
export const emptyMetricCell = (): MetricCell => ({
  converters: 0,
  events: 0,
  revenueSum: 0,
  revenueSumSq: 0,
  valueSum: 0,
  valueSumSq: 0,
  eventsVisitorSumSq: 0,
  revenueVisitorSumSq: 0,
  valueVisitorSumSq: 0,
});

function visitorIndex(state: AggregateState, sdkKey: string, visitorId: string): VisitorIndex {
  const k = key(sdkKey, visitorId);
  let index = state.visitors.get(k);
  if (!index) state.visitors.set(k, (index = { experiments: new Set(), conversions: [] }));
  return index;
}

function storedConversion(op: ConversionOp): StoredConversion {
  return {
    uuid: op.uuid,
    sdkKey: op.sdkKey,
    visitorId: op.visitorId,
    eventId: op.eventId,
    timestamp: op.timestamp,
    day: op.day,
    revenue: op.revenue,
    value: op.value,
    revision: op.revision,
  };
}

/**
 * Adds `sign` × one conversion (and `converter` × sign converters, and `sq` × sign to the
 * per-visitor sums of squares) to a metric_daily cell.
 */
function addToCell(
  state: AggregateState,
  cellKey: string,
  sign: 1 | -1,
  conversion: Pick<StoredConversion, "revenue" | "value"> | null,
  converter: boolean,
  sq: VisitorSq | null = null,
): void {
  const existing = state.metricDaily.get(cellKey);
  // Subtracting is an UPDATE in SQL: it never creates a row.
  if (!existing && sign === -1) return;
  const cell = existing ?? emptyMetricCell();
  if (converter) cell.converters += sign;
  if (conversion) {
    cell.events += sign;
    cell.revenueSum += sign * conversion.revenue;
    cell.revenueSumSq += sign * conversion.revenue * conversion.revenue;
    cell.valueSum += sign * conversion.value;
    cell.valueSumSq += sign * conversion.value * conversion.value;
  }
  if (sq) {
    cell.eventsVisitorSumSq += sign * sq.events;
    cell.revenueVisitorSumSq += sign * sq.revenue;
    cell.valueVisitorSumSq += sign * sq.value;
  }
  state.metricDaily.set(cellKey, cell);
}

/** Orders conversions by (timestamp, uuid), the order of the per-visitor running totals. */
const byTime = (a: StoredConversion, b: StoredConversion): number =>
  a.timestamp - b.timestamp || compareText(a.uuid, b.uuid);

/**
 * The per-visitor Σx² increments of one visitor's attributed conversions of one event in one
 * experiment, all of them: conversion k (in (timestamp, uuid) order) adds
 * S_k² − S_{k−1}² = x_k·(2·S_k − x_k), S_k = the running total after it. They add up to the
 * square of the visitor's total.
 */
export function visitorIncrements(
  conversions: readonly StoredConversion[],
): Array<{ conversion: StoredConversion; sq: VisitorSq }> {
  let events = 0;
  let revenue = 0;
  let value = 0;
  return [...conversions].sort(byTime).map((c) => {
    events += 1;
    revenue += c.revenue;
    value += c.value;
    return {
      conversion: c,
      sq: {
        events: 2 * events - 1,
        revenue: c.revenue * (2 * revenue - c.revenue),
        value: c.value * (2 * value - c.value),
      },
    };
  });
}

/** {@link visitorIncrements} per event of one visitor's conversions attributed to one exposure. */
function incrementsByEvent(
  conversions: readonly StoredConversion[],
): Array<{ conversion: StoredConversion; sq: VisitorSq }> {
  const byEvent = new Map<string, StoredConversion[]>();
  for (const c of conversions) {
    const list = byEvent.get(c.eventId);
    if (list) list.push(c);
    else byEvent.set(c.eventId, [c]);
  }
  return [...byEvent.values()].flatMap(visitorIncrements);
}

const cellKey = (
  sdkKey: string,
  experimentId: string,
  exposure: Pick<Exposure, "variationId" | "revision">,
  eventId: string,
  day: string,
) => key(sdkKey, experimentId, exposure.variationId, exposure.revision, eventId, day);

/** Per key, the earliest (timestamp, uuid) conversion of `pairs`. */
function earliestPerKey<T extends { key: string; conversion: StoredConversion }>(
  pairs: readonly T[],
): Map<string, T> {
  const out = new Map<string, T>();
  for (const pair of pairs) {
    const current = out.get(pair.key);
    const c = pair.conversion;
    if (
      !current ||
      isBefore(c.timestamp, c.uuid, current.conversion.timestamp, current.conversion.uuid)
    )
      out.set(pair.key, pair);
  }
  return out;
}

/**
 * Applies a plan to `state` (mutating it), step by step as the consumer's SQL statements do
 * (src/events/consumer.ts, same numbering):
 *
 * 1. dedupe: only events whose uuid was never seen count ("fresh");
 * 1b. budget: a fresh conversion beyond its visitor's daily cap for the event is seen (never
 *    counted later) but not counted (`withinBudget`);
 * 2–3. a fresh candidate impression earlier than the visitor's exposure (or the first one)
 *    becomes the exposure: one visitor less in the old cell, one more in the new one;
 * 4–6. everything the replaced exposure had counted is taken back (its attributed stored
 *    conversions with their per-visitor Σx² increments, its converters), and a converter of an
 *    unchanged exposure whose earliest conversion is now a fresh, earlier one leaves its old day;
 * 7–8. exposures and the fresh conversions are stored;
 * 9–10. changed exposures count all of the visitor's stored conversions from their first_at on;
 *    unchanged exposures count the fresh conversions at or after their first_at; converters are
 *    (re)set to the earliest attributed conversion and counted on its day, their totals grow by
 *    the newly counted conversions, and the per-visitor Σx² increments of the new conversions
 *    and of the later ones whose running totals grew are added.
 * Cells left at zero visitors / events are deleted, as the SQL does.
 */
export function applyPlan(state: AggregateState, plan: BatchPlan): AggregateState {
  // 1. dedupe
  const fresh = new Set<string>();
  for (const op of plan.ops) {
    if (state.seen.has(op.uuid)) continue;
    state.seen.add(op.uuid);
    fresh.add(op.uuid);
  }
  const candidates = plan.candidates.filter((c) => fresh.has(c.uuid));
  const freshConversions = withinBudget(
    state,
    plan.conversions.filter((c) => fresh.has(c.uuid)),
  ).map(storedConversion);

  // Which candidates win, and which exposures they replace.
  const changed: Array<{ k: string; op: ImpressionOp; old: Exposure | undefined }> = [];
  for (const op of candidates) {
    const k = key(op.sdkKey, op.experimentId, op.visitorId);
    const old = state.exposures.get(k);
    if (!old || isBefore(op.timestamp, op.uuid, old.firstAt, old.uuid))
      changed.push({ k, op, old });
  }
  const changedKeys = new Set(changed.map((c) => c.k));

  // 2–3. variation_daily: the old cell loses the visitor, the new cell gains them.
  const touchedVisitorCells: string[] = [];
  for (const { op, old } of changed) {
    if (old) {
      const vk = key(
        op.sdkKey,
        op.experimentId,
        old.variationId,
        old.revision,
        utcDay(old.firstAt),
      );
      state.variationDaily.set(vk, (state.variationDaily.get(vk) ?? 0) - 1);
      touchedVisitorCells.push(vk);
    }
    const nk = key(op.sdkKey, op.experimentId, op.variationId, op.revision, op.day);
    state.variationDaily.set(nk, (state.variationDaily.get(nk) ?? 0) + 1);
  }
  for (const vk of touchedVisitorCells)
    if ((state.variationDaily.get(vk) ?? 0) <= 0) state.variationDaily.delete(vk);

  // 4. metric_daily: take back what replaced exposures counted…
  const touchedMetricCells: string[] = [];
  for (const { op, old } of changed) {
    if (!old) continue;
    // Every conversion the old exposure counted is still stored (it is younger than the fresh,
    // earlier impression), so its increments are recomputed from a running total from 0.
    const stored = (state.visitors.get(key(op.sdkKey, op.visitorId))?.conversions ?? []).filter(
      (c) => c.timestamp >= old.firstAt,
    );
    for (const { conversion: c, sq } of incrementsByEvent(stored)) {
      const converter = state.converters.get(
        key(op.sdkKey, op.experimentId, c.eventId, op.visitorId),
      );
      const mk = cellKey(op.sdkKey, op.experimentId, old, c.eventId, c.day);
      addToCell(state, mk, -1, c, converter?.uuid === c.uuid, sq);
      touchedMetricCells.push(mk);
    }
  }
  // …and move converters of unchanged exposures that a fresh, earlier conversion takes over.
  const unchangedPairs = attributedPairs(state, freshConversions, (k) => !changedKeys.has(k));
  for (const pair of earliestPerKey(unchangedPairs).values()) {
    const current = state.converters.get(pair.key);
    const c = pair.conversion;
    if (current && isBefore(c.timestamp, c.uuid, current.convertedAt, current.uuid))
      addToCell(
        state,
        cellKey(c.sdkKey, pair.experimentId, pair.exposure, c.eventId, utcDay(current.convertedAt)),
        -1,
        null,
        true,
      );
  }
  // 5. cells with no events left are deleted.
  for (const mk of touchedMetricCells)
    if ((state.metricDaily.get(mk)?.events ?? 0) <= 0) state.metricDaily.delete(mk);

  // 6. converters of replaced exposures are recomputed from scratch.
  for (const { op, old } of changed) {
    if (!old) continue;
    // A converters row exists only for an event the visitor has a stored conversion of.
    for (const c of state.visitors.get(key(op.sdkKey, op.visitorId))?.conversions ?? [])
      state.converters.delete(key(op.sdkKey, op.experimentId, c.eventId, op.visitorId));
  }

  // 7. exposures, 8. conversions.
  for (const { k, op } of changed) {
    state.exposures.set(k, {
      variationId: op.variationId,
      firstAt: op.timestamp,
      revision: op.revision,
      uuid: op.uuid,
      dims: op.dims,
    });
    visitorIndex(state, op.sdkKey, op.visitorId).experiments.add(op.experimentId);
  }
  for (const c of freshConversions) {
    state.conversions.set(c.uuid, c);
    visitorIndex(state, c.sdkKey, c.visitorId).conversions.push(c);
  }

  // 9. converters: changed exposures over all stored conversions, unchanged over fresh ones.
  const changedPairs: AttributedPair[] = [];
  for (const { op } of changed) {
    const exposure = state.exposures.get(key(op.sdkKey, op.experimentId, op.visitorId))!;
    for (const c of state.visitors.get(key(op.sdkKey, op.visitorId))?.conversions ?? [])
      if (c.timestamp >= exposure.firstAt)
        changedPairs.push({
          key: key(op.sdkKey, op.experimentId, c.eventId, op.visitorId),
          exposureKey: key(op.sdkKey, op.experimentId, op.visitorId),
          experimentId: op.experimentId,
          exposure,
          conversion: c,
        });
  }
  const pairs = [...changedPairs, ...unchangedPairs];
  for (const pair of earliestPerKey(pairs).values()) {
    const current = state.converters.get(pair.key);
    const c = pair.conversion;
    if (!current)
      state.converters.set(pair.key, {
        variationId: pair.exposure.variationId,
        convertedAt: c.timestamp,
        uuid: c.uuid,
        events: 0,
        revenue: 0,
        value: 0,
      });
    else if (isBefore(c.timestamp, c.uuid, current.convertedAt, current.uuid)) {
      current.variationId = pair.exposure.variationId;
      current.convertedAt = c.timestamp;
      current.uuid = c.uuid;
    }
  }
  // …and the visitor's totals grow by every newly attributed conversion.
  for (const pair of pairs) {
    const converter = state.converters.get(pair.key)!;
    converter.events += 1;
    converter.revenue += pair.conversion.revenue;
    converter.value += pair.conversion.value;
  }

  // 10. metric_daily: count the pairs, each converter on its conversion's cell, and the changes
  // of the per-visitor sums of squares, per (experiment, event, visitor) group:
  // - changed exposures: every attributed (stored) conversion is new;
  // - unchanged exposures: the stored conversions from the group's earliest fresh one on, the
  //   fresh ones new. Older ones keep their running totals (and may be pruned in D1).
  // With T = the visitor's total after step 9, G = Σ x of the group's rows, R_j = Σ x of its rows
  // up to and including j and N_j = Σ x of its new rows up to j: T − G is the total before the
  // group's first row, so a new row adds its increment x_j·(2·(T − G + R_j) − x_j), an old row
  // 2·x_j·N_j (its running total grew by N_j).
  const groups = new Map<string, { pair: AttributedPair; rows: StoredConversion[] }>();
  for (const pair of changedPairs) {
    const group = groups.get(pair.key);
    if (group) group.rows.push(pair.conversion);
    else groups.set(pair.key, { pair, rows: [pair.conversion] });
  }
  const since = new Map<string, AttributedPair>();
  for (const pair of unchangedPairs) {
    const current = since.get(pair.key);
    if (!current || pair.conversion.timestamp < current.conversion.timestamp)
      since.set(pair.key, pair);
  }
  for (const [k, pair] of since) {
    const c = pair.conversion;
    const rows = (state.visitors.get(key(c.sdkKey, c.visitorId))?.conversions ?? []).filter(
      (s) => s.eventId === c.eventId && s.timestamp >= c.timestamp,
    );
    groups.set(k, { pair, rows });
  }
  for (const [k, { pair, rows }] of groups) {
    const isNew = (c: StoredConversion) => changedKeys.has(pair.exposureKey) || fresh.has(c.uuid);
    const total = state.converters.get(k)!;
    const sorted = [...rows].sort(byTime);
    const base = { events: total.events, revenue: total.revenue, value: total.value };
    for (const c of sorted) {
      base.events -= 1;
      base.revenue -= c.revenue;
      base.value -= c.value;
    }
    const running = { events: 0, revenue: 0, value: 0 };
    const newRunning = { events: 0, revenue: 0, value: 0 };
    for (const c of sorted) {
      const added = isNew(c);
      running.events += 1;
      running.revenue += c.revenue;
      running.value += c.value;
      const sq: VisitorSq = added
        ? {
            events: 2 * (base.events + running.events) - 1,
            revenue: c.revenue * (2 * (base.revenue + running.revenue) - c.revenue),
            value: c.value * (2 * (base.value + running.value) - c.value),
          }
        : {
            events: 2 * newRunning.events,
            revenue: 2 * c.revenue * newRunning.revenue,
            value: 2 * c.value * newRunning.value,
          };
      if (added) {
        newRunning.events += 1;
        newRunning.revenue += c.revenue;
        newRunning.value += c.value;
      }
      addToCell(
        state,
        cellKey(c.sdkKey, pair.experimentId, pair.exposure, c.eventId, c.day),
        1,
        added ? c : null,
        added && total.uuid === c.uuid,
        sq,
      );
    }
  }
  return state;
}

interface AttributedPair {
  /** converters key [sdkKey, experimentId, eventId, visitorId] */
  key: string;
  /** exposures key [sdkKey, experimentId, visitorId] */
  exposureKey: string;
  experimentId: string;
  exposure: Exposure;
  conversion: StoredConversion;
}

/** Every (exposure, conversion) of `conversions` where the exposure came at or before it. */
function attributedPairs(
  state: AggregateState,
  conversions: readonly StoredConversion[],
  exposureFilter: (exposureKey: string) => boolean,
): AttributedPair[] {
  const out: AttributedPair[] = [];
  for (const c of conversions) {
    const index = state.visitors.get(key(c.sdkKey, c.visitorId));
    if (!index) continue;
    for (const experimentId of index.experiments) {
      const ek = key(c.sdkKey, experimentId, c.visitorId);
      const exposure = state.exposures.get(ek);
      if (!exposure || !exposureFilter(ek) || exposure.firstAt > c.timestamp) continue;
      out.push({
        key: key(c.sdkKey, experimentId, c.eventId, c.visitorId),
        exposureKey: ek,
        experimentId,
        exposure,
        conversion: c,
      });
    }
  }
  return out;
}

/**
 * The aggregates of a set of events computed from scratch by the rule of the module comment —
 * the definition `applyPlan` must reach whatever the batch order and split. Duplicate uuids:
 * the first occurrence in `events` wins.
 */
export function foldEvents(events: Iterable<EventMessage>): AggregateState {
  const state = emptyState();
  const plan = planBatch([...events]);
  for (const op of plan.ops) state.seen.add(op.uuid);

  for (const op of plan.candidates) {
    state.exposures.set(key(op.sdkKey, op.experimentId, op.visitorId), {
      variationId: op.variationId,
      firstAt: op.timestamp,
      revision: op.revision,
      uuid: op.uuid,
      dims: op.dims,
    });
    visitorIndex(state, op.sdkKey, op.visitorId).experiments.add(op.experimentId);
    const vk = key(op.sdkKey, op.experimentId, op.variationId, op.revision, op.day);
    state.variationDaily.set(vk, (state.variationDaily.get(vk) ?? 0) + 1);
  }
  for (const op of withinBudget(state, plan.conversions)) {
    const c = storedConversion(op);
    state.conversions.set(c.uuid, c);
    visitorIndex(state, c.sdkKey, c.visitorId).conversions.push(c);
  }
  for (const [ek, exposure] of state.exposures) {
    const [sdkKey, experimentId, visitorId] = JSON.parse(ek) as [string, string, string];
    const attributed = (state.visitors.get(key(sdkKey, visitorId))?.conversions ?? []).filter(
      (c) => c.timestamp >= exposure.firstAt,
    );
    const earliest = new Map<string, StoredConversion>();
    for (const c of attributed) {
      const current = earliest.get(c.eventId);
      if (!current || isBefore(c.timestamp, c.uuid, current.timestamp, current.uuid))
        earliest.set(c.eventId, c);
    }
    for (const [eventId, c] of earliest) {
      const mine = attributed.filter((a) => a.eventId === eventId);
      state.converters.set(key(sdkKey, experimentId, eventId, visitorId), {
        variationId: exposure.variationId,
        convertedAt: c.timestamp,
        uuid: c.uuid,
        events: mine.length,
        revenue: mine.reduce((sum, a) => sum + a.revenue, 0),
        value: mine.reduce((sum, a) => sum + a.value, 0),
      });
    }
    for (const { conversion: c, sq } of incrementsByEvent(attributed))
      addToCell(
        state,
        cellKey(sdkKey, experimentId, exposure, c.eventId, c.day),
        1,
        c,
        earliest.get(c.eventId)?.uuid === c.uuid,
        sq,
      );
  }
  return state;
}
