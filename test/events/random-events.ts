/**
 * Seeded random event sets and random batchings of them, for the order-independence tests
 * (test/core/aggregate-order.test.ts on the model, test/events/order-independence.test.ts on D1).
 * No Workers APIs: both the Node and the workerd test projects import it.
 */
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomEventsOptions {
  seed: number;
  /** Events are spread over [start, start + days × 24 h). */
  start: number;
  days?: number;
  sdkKeys?: readonly string[];
  visitors?: number;
  impressions?: number;
  conversions?: number;
  /** Prefix of every uuid (lets several runs share one database). */
  uuidPrefix?: string;
}

const pick = <T>(random: () => number, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)]!;

/**
 * A fixed random set of distinct events: impressions of a few visitors in a few experiments
 * (several per visitor and experiment, in different variations and revisions, some with equal
 * timestamps), and conversions of several events before and after them. Revenue is integer cents
 * and values are multiples of 0.25, so every sum is exact in any order.
 */
export function randomEvents(options: RandomEventsOptions): EventMessage[] {
  const random = prng(options.seed);
  const sdkKeys = options.sdkKeys ?? ["sdk-a", "sdk-b"];
  const visitors = Array.from({ length: options.visitors ?? 12 }, (_, i) => `visitor-${i}`);
  const experiments = ["exp-1", "exp-2", "exp-3"];
  const variations = ["var-a", "var-b", "var-c"];
  const revisions = ["1", "2", "3"];
  const eventIds = ["buy", "signup", "view"];
  const span = (options.days ?? 4) * 24 * 60 * 60 * 1000;
  const prefix = options.uuidPrefix ?? "";
  // Coarse timestamps (whole minutes) so that equal timestamps, broken by uuid, happen.
  const time = () => options.start + Math.floor(random() * (span / 60_000)) * 60_000;
  const out: EventMessage[] = [];
  let n = 0;
  for (let i = 0; i < (options.impressions ?? 60); i++) {
    const impression: ImpressionMessage = {
      v: 1,
      type: "impression",
      uuid: `${prefix}i${String(++n).padStart(4, "0")}-${Math.floor(random() * 1e6)}`,
      sdkKey: pick(random, sdkKeys),
      revision: pick(random, revisions),
      visitorId: pick(random, visitors),
      experimentId: pick(random, experiments),
      variationId: pick(random, variations),
      timestamp: time(),
      source: "edge",
    };
    // Dimensions on most impressions (a visitor's device can differ between impressions): the
    // first exposure's must be kept, whatever the order.
    if (random() < 0.8)
      impression.dims = {
        device: pick(random, ["desktop", "mobile", "tablet"]),
        browser: pick(random, ["chrome", "safari"]),
        ...(random() < 0.5 ? { country: pick(random, ["DE", "US"]) } : {}),
      };
    out.push(impression);
  }
  for (let i = 0; i < (options.conversions ?? 90); i++) {
    const eventId = pick(random, eventIds);
    const conversion: ConversionMessage = {
      v: 1,
      type: "conversion",
      uuid: `${prefix}c${String(++n).padStart(4, "0")}-${Math.floor(random() * 1e6)}`,
      sdkKey: pick(random, sdkKeys),
      revision: pick(random, revisions),
      visitorId: pick(random, visitors),
      eventId,
      eventKey: eventId,
      timestamp: time(),
      source: "browser",
    };
    if (random() < 0.7) conversion.revenue = Math.floor(random() * 5000);
    if (random() < 0.5) conversion.value = Math.floor(random() * 40) / 4;
    out.push(conversion);
  }
  return out;
}

/**
 * `events` in a random order, cut into batches of random sizes (1…maxBatch), with some events
 * repeated in a later batch (queue redelivery): the same set of distinct events either way.
 */
export function randomBatches<T>(
  events: readonly T[],
  seed: number,
  maxBatch: number,
  redeliveries = 0.1,
): T[][] {
  const random = prng(seed);
  const shuffled = [...events];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  const batches: T[][] = [];
  for (let i = 0; i < shuffled.length;) {
    const size = 1 + Math.floor(random() * maxBatch);
    const batch = shuffled.slice(i, i + size);
    i += size;
    // Redeliver a few events already sent (in an earlier batch or this one).
    const sent = shuffled.slice(0, i);
    for (let r = 0; r < Math.round(batch.length * redeliveries); r++)
      batch.push(sent[Math.floor(random() * sent.length)]!);
    batches.push(batch);
  }
  return batches;
}
