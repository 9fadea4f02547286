/**
 * The workers tests' side of the loopback webhook receiver (test/support/webhook-receiver.ts,
 * started by vitest.config.ts, which hands its origin to the Worker as TEST_WEBHOOK_RECEIVER):
 * the webhook URL of an inbox, setting an inbox up, reading what it received, and waiting for
 * deliveries — the queue delivers in the background, so a test polls rather than awaits them.
 * One client, so every webhook test speaks to the receiver the same way.
 */
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { ReceivedDelivery } from "../support/webhook-receiver";

export type { ReceivedDelivery };

/** The receiver's origin; the tests' outboundService lets the Worker reach only this one. */
const RECEIVER = (env as unknown as { TEST_WEBHOOK_RECEIVER: string }).TEST_WEBHOOK_RECEIVER;

/** How long pollUntil waits before it fails, and how often it reads meanwhile. */
const POLL_TIMEOUT_MS = 20_000;
const POLL_INTERVAL_MS = 100;

/** The webhook URL whose deliveries land in inbox `name` (set it up with setInbox). */
export function hookUrl(name: string): string {
  return `${RECEIVER}/hooks/${name}`;
}

/**
 * (Re)sets inbox `name`: its log starts empty, deliveries are verified with `secret`, and the
 * first `failFirst` are answered `failStatus` (the receiver's default 500) before it answers as a
 * real receiver would. The test fails unless the receiver took the setup.
 */
export async function setInbox(
  name: string,
  secret: string,
  options: { failFirst?: number; failStatus?: number } = {},
): Promise<void> {
  const response = await fetch(`${RECEIVER}/inboxes/${name}`, {
    method: "PUT",
    body: JSON.stringify({ secret, ...options }),
  });
  expect(response.status).toBe(204);
}

/** Every request inbox `name` has received, in order, with the receiver's verification. */
export async function readInbox(name: string): Promise<ReceivedDelivery[]> {
  const response = await fetch(`${RECEIVER}/inboxes/${name}`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { deliveries: ReceivedDelivery[] }).deliveries;
}

/**
 * Reads `read` until `done` holds and answers that value; after 20 s it fails naming `what` and
 * the last value read (cut to 2,000 characters), so a timeout shows what did arrive.
 */
export async function pollUntil<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
): Promise<T> {
  const deadline = Date.now() + POLL_TIMEOUT_MS;
  let value = await read();
  while (!done(value)) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value).slice(0, 2000)}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    value = await read();
  }
  return value;
}
