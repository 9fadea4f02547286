/**
 * The edge's events when the queue refuses them (docs/reliability.md "No event silently lost").
 *
 * The edge sends a page's impressions and pageview goals after the page has streamed, inside
 * `ctx.waitUntil`: there is no client left to answer 503 to. So instead of dropping them:
 *
 * 1. `sendOrSpill` tries the queue again after each of SEND_RETRY_DELAYS_MS (the whole thing stays
 *    well inside the 30 s a `waitUntil` may run after the response);
 * 2. if the queue still refuses, it writes the events to R2 as one NDJSON object,
 *    `spill/{yyyy-mm-dd}/{random uuid}.ndjson` (UTC day of the spill), one event message per line;
 * 3. the `scheduled` handler (`requeueSpilled`, hourly cron) sends spilled events to the queue
 *    again and deletes each object once all of its events were accepted.
 *
 * Re-sending is safe however often it happens (a run that sent but could not delete, two
 * overlapping runs): every event keeps its uuid and the consumer counts a uuid once (docs/events.md).
 * Only when the queue AND R2 both refuse are the events lost; that is logged as an error with
 * the number of events.
 */
import type { Env } from "../env";
import { toNdjson, utcDay } from "./aggregate";
import { isPlainObject, queueMessages } from "./ingest-common";
import type { EventMessage } from "../shared/event-messages";

/** R2 key prefix of spilled edge events. */
export const SPILL_PREFIX = "spill/";
/** Queue attempts before spilling, and the waits between them (ms). */
export const SEND_RETRY_DELAYS_MS: readonly number[] = [50, 250];
/** Spill objects one scheduled run re-queues at most (each is one R2 read; see requeueSpilled). */
export const SPILL_OBJECTS_PER_RUN = 250;

const NDJSON = { httpMetadata: { contentType: "application/x-ndjson" } };

type SpillEnv = Pick<Env, "EVENTS" | "ARCHIVE">;

/** R2 key of one spilled batch. */
export function spillKey(now: number, id: string): string {
  return `${SPILL_PREFIX}${utcDay(now)}/${id}.ndjson`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `queueMessages`, tried again after each delay of `delays` while the queue refuses. */
export async function sendWithRetry(
  env: Pick<Env, "EVENTS">,
  messages: EventMessage[],
  delays: readonly number[] = SEND_RETRY_DELAYS_MS,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await queueMessages(env, messages);
      return;
    } catch (error) {
      const delay = delays[attempt];
      if (delay === undefined) throw error;
      await sleep(delay);
    }
  }
}

export type SendOutcome = "sent" | "spilled" | "lost";

/**
 * Sends `messages` to the EVENTS queue, retrying; when the queue keeps refusing, writes them to
 * R2 under `spill/` for the scheduled handler to re-queue. Never rejects.
 */
export async function sendOrSpill(
  env: SpillEnv,
  messages: EventMessage[],
  delays: readonly number[] = SEND_RETRY_DELAYS_MS,
): Promise<SendOutcome> {
  if (messages.length === 0) return "sent";
  try {
    await sendWithRetry(env, messages, delays);
    return "sent";
  } catch (queueError) {
    const key = spillKey(Date.now(), crypto.randomUUID());
    try {
      await env.ARCHIVE.put(key, toNdjson(messages), NDJSON);
      console.warn(
        `splitstream: the EVENTS queue refused ${messages.length} event(s) ${delays.length + 1} times; spilled to R2 ${key} for the scheduled re-queue`,
        queueError,
      );
      return "spilled";
    } catch (spillError) {
      console.error(
        `splitstream: LOST ${messages.length} event(s): the EVENTS queue refused them and the spill to R2 failed`,
        queueError,
        spillError,
      );
      return "lost";
    }
  }
}

export interface RequeueResult {
  /** Spill objects whose events were all re-queued (and that were then deleted). */
  objects: number;
  /** Events re-queued. */
  events: number;
  /** Lines that were not JSON objects (skipped; never expected). */
  invalidLines: number;
  /** False when spill objects are left for the next run (the per-run limit, or the queue refused). */
  complete: boolean;
}

function parseSpill(text: string): { messages: EventMessage[]; invalid: number } {
  const messages: EventMessage[] = [];
  let invalid = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (isPlainObject(value)) messages.push(value as unknown as EventMessage);
      else invalid++;
    } catch {
      invalid++;
    }
  }
  return { messages, invalid };
}

/**
 * Re-queues spilled edge events (the scheduled handler): lists `spill/`, reads up to
 * `maxObjects` objects, sends their events (in as few `sendBatch` calls as the queue allows) and
 * deletes the objects whose events were all accepted, in one R2 delete. Subrequests per run: one
 * list, one read per object, about one send per 100 events, one delete. When the queue refuses,
 * the objects stay for the next run and the error is rethrown (the run shows as failed).
 */
export async function requeueSpilled(
  env: SpillEnv,
  { maxObjects = SPILL_OBJECTS_PER_RUN }: { maxObjects?: number } = {},
): Promise<RequeueResult> {
  const listed = await env.ARCHIVE.list({ prefix: SPILL_PREFIX, limit: maxObjects });
  const result: RequeueResult = { objects: 0, events: 0, invalidLines: 0, complete: true };
  if (listed.truncated) result.complete = false;

  const keys: string[] = [];
  const messages: EventMessage[] = [];
  for (const object of listed.objects) {
    const body = await env.ARCHIVE.get(object.key);
    if (body === null) continue; // deleted by an overlapping run
    const parsed = parseSpill(await body.text());
    keys.push(object.key);
    messages.push(...parsed.messages);
    result.invalidLines += parsed.invalid;
  }
  if (result.invalidLines > 0)
    console.error(
      `splitstream: ${result.invalidLines} spilled line(s) are not JSON objects; skipped`,
    );
  if (keys.length === 0) return result;

  try {
    await queueMessages(env, messages);
  } catch (error) {
    console.error(
      `splitstream: re-queueing ${messages.length} spilled event(s) failed; they stay in R2 for the next run`,
      error,
    );
    throw error;
  }
  // Sent: a failure from here on only means they are sent again next run (uuids dedupe).
  await env.ARCHIVE.delete(keys);
  result.objects = keys.length;
  result.events = messages.length;
  console.log(
    `splitstream: re-queued ${messages.length} spilled event(s) from ${keys.length} R2 object(s)${result.complete ? "" : "; more left for the next run"}`,
  );
  return result;
}
