/**
 * Watching the EVENTS queue in workerd tests: the Worker's `sendBatch` calls still reach the real
 * local queue binding; every message body is also recorded, in order.
 */
import { env } from "cloudflare:workers";
import { vi } from "vitest";
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
