/**
 * The EVENTS queue in workerd tests: watching what the Worker queues (its `sendBatch` calls still
 * reach the real local queue binding; every message body is also recorded, in order), and
 * delivering messages to the real consumer.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";

/** Pushes every message the Worker queues into `into` from now on (undone by vi.restoreAllMocks). */
export function recordQueued(into: EventMessage[]): void {
  const send = env.EVENTS.sendBatch.bind(env.EVENTS);
  vi.spyOn(env.EVENTS, "sendBatch").mockImplementation((messages, options) => {
    const list = [...messages];
    for (const m of list) into.push(m.body as EventMessage);
    return send(list, options);
  });
}

let delivered = 0;

/**
 * Hands `bodies` to the real queue consumer (handleEventBatch) in queue-sized batches of 100, as
 * the EVENTS queue would, and expects every batch acknowledged.
 */
export async function deliverToConsumer(bodies: readonly unknown[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 100) {
    const batch = createMessageBatch(
      "splitstream-events",
      bodies.slice(i, i + 100).map((body) => ({
        id: `msg-${crypto.randomUUID()}-${++delivered}`,
        timestamp: new Date(),
        attempts: 1,
        body,
      })),
    );
    await handleEventBatch(batch, env);
    expect((await getQueueResult(batch, createExecutionContext())).ackAll).toBe(true);
  }
}
