/**
 * Event delivery to `POST /_ss/events` (docs/client.md "Delivery"):
 * - every event gets a uuid when it is queued; the server counts a uuid once, so sending an event
 *   twice is harmless and the rule here is "at least once";
 * - events are batched (sent 1 s after the first one, at once from 20), with `fetch` +
 *   `keepalive`, as `text/plain` (no CORS preflight);
 * - an event stays in sessionStorage until a response confirms it: a network error, 429 or 5xx
 *   retries with backoff (2 s … 32 s), and a page that unloads first leaves it for the next page
 *   of the tab, which sends it again;
 * - when the page is hidden or unloaded, the pending events go out with `navigator.sendBeacon`
 *   (fetch keepalive when the beacon is refused) and stay stored until a later page confirms them;
 * - 2xx and other 4xx answers (an invalid event is not retried) end an event's life, as do 22 h
 *   (the endpoint refuses events older than a day).
 */

export type EventBody = Record<string, unknown>;

interface Item {
  /** the event as posted */
  e: EventBody;
  /** when it was queued (local clock), for expiry only: the server timestamps events */
  t: number;
  /** beaconed by this page (not sent again by it) */
  b?: 1;
}

const STORAGE_KEY = "ss_q";
const ENDPOINT = "/_ss/events";
const MAX_AGE_MS = 8e7;

let items: Item[] = [];
const inFlight = new Set<Item>();
let timer: ReturnType<typeof setTimeout> | 0 = 0;
let failures = 0;

const save = (): void => {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(items));
  } catch {
    // storage full or disabled: memory only
  }
};

/** 32 random hex characters. */
export const uuid = (): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    (b + 256).toString(16).slice(1),
  ).join("");

function arm(ms: number): void {
  if (!timer) timer = setTimeout(flush, ms);
}

function flush(unloading?: boolean): void {
  clearTimeout(timer);
  timer = 0;
  const batch = items.filter((x) => !x.b && !inFlight.has(x)).slice(0, 100);
  if (!batch.length) return;
  const body = JSON.stringify({ events: batch.map((x) => x.e) });
  if (unloading && navigator.sendBeacon?.(ENDPOINT, body)) {
    for (const x of batch) x.b = 1;
    return save();
  }
  for (const x of batch) inFlight.add(x);
  fetch(ENDPOINT, {
    method: "POST",
    body,
    keepalive: true,
    credentials: "same-origin",
    headers: { "content-type": "text/plain" },
  })
    .then((r) => {
      if (r.status > 499 || r.status == 429) throw r;
      failures = 0;
      items = items.filter((x) => !batch.includes(x));
      save();
    })
    .catch(() => {
      failures++;
    })
    .finally(() => {
      for (const x of batch) inFlight.delete(x);
      if (items.some((x) => !x.b)) arm(failures ? 1000 * 2 ** Math.min(failures, 5) : 0);
    });
}

/** Starts delivery: events left by earlier pages of this tab are sent again. */
export function startTransport(): void {
  try {
    // `delete` is true: a stored event is pending again on this page, beaconed or not.
    items = (JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "[]") as Item[])
      .filter((x) => x.t > Date.now() - MAX_AGE_MS && delete x.b)
      .concat(items);
  } catch {
    // unreadable: what this page queued stays
  }
  if (items.length) arm(1000);
  addEventListener("pagehide", () => flush(true));
  document.addEventListener(
    "visibilitychange",
    () => document.visibilityState == "hidden" && flush(true),
  );
}

/** Queues one event (a uuid is added). */
export function send(event: EventBody): void {
  event.uuid = uuid();
  items.push({ e: event, t: Date.now() });
  save();
  if (items.length >= 20) flush();
  else arm(1000);
}

/** Drops every queued event (opt-out). */
export function clearQueue(): void {
  items = [];
  save();
}
