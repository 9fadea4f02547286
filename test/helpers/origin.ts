import { vi } from "vitest";

/** What the Worker sent to the origin, captured while the request was being handled. */
export interface RecordedRequest {
  url: string;
  method: string;
  headers: Headers;
  /** The body as text (`null` for none). */
  body: string | null;
}

export interface MockedOrigin {
  /** Every request the Worker sent out, in order. */
  readonly requests: RecordedRequest[];
  restore(): void;
}

/**
 * Stands in for the origin (and any other host) the Worker fetches during a test. The Worker
 * runs in the same isolate as the tests, so replacing the global `fetch` intercepts its
 * outbound requests; anything not mocked reaches the `outboundService` in vitest.config.ts,
 * which refuses it. Bodies are read inside the Worker's request context (workerd does not
 * let a test read a stream that belongs to another request), so `requests` holds snapshots.
 */
export function mockOrigin(
  handler: (request: Request) => Response | Promise<Response>,
): MockedOrigin {
  const requests: RecordedRequest[] = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const body = request.body === null ? null : await request.text();
    requests.push({
      url: request.url,
      method: request.method,
      headers: new Headers(request.headers),
      body,
    });
    return handler(new Request(request, { body }));
  });
  return { requests, restore: () => spy.mockRestore() };
}
