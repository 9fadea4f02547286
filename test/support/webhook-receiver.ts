/**
 * A webhook receiver on loopback for the workers tests (docs/webhooks.md): a plain Node HTTP
 * server, started by vitest.config.ts, which the Worker in workerd reaches through the tests'
 * outboundService (only this server's origin passes; everything else is refused there).
 *
 * It verifies each delivery exactly as docs/webhooks.md "Verifying a delivery" tells users to
 * (Node's crypto, the same code as the docs' example), and answers like a real receiver would:
 *
 * - `PUT /inboxes/{name}` `{"secret", "failFirst"?, "failStatus"?}` sets up an inbox: its first
 *   `failFirst` deliveries are answered `failStatus` (default 500);
 * - `POST /hooks/{name}` is the webhook URL: recorded, then answered as set up; after the failures,
 *   200 when the signature verifies, else 401;
 * - `GET /inboxes/{name}` answers `{"deliveries": [...]}` (every request, in order, with the
 *   verification's result).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";

/** docs/webhooks.md "Verifying a delivery", verbatim. */
export function verifySplitstreamSignature(
  secret: string,
  headers: IncomingHttpHeaders,
  rawBody: string,
  toleranceSeconds = 300,
): boolean {
  const timestamp = String(headers["x-splitstream-timestamp"] ?? "");
  const signature = String(headers["x-splitstream-signature"] ?? "");
  if (!/^\d+$/.test(timestamp)) return false;
  // Refuse old (replayed) deliveries.
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const expected =
    "v1=" + createHmac("sha256", secret).update(`${timestamp}.${rawBody}`).digest("hex");
  const a = Buffer.from(signature);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** One request the receiver got. */
export interface ReceivedDelivery {
  headers: Record<string, string>;
  body: string;
  verified: boolean;
  answered: number;
}

interface Inbox {
  secret: string;
  failFirst: number;
  failStatus: number;
  deliveries: ReceivedDelivery[];
}

/** Starts the receiver on 127.0.0.1 (a free port); answers its origin. */
export async function startWebhookReceiver(): Promise<{ origin: string; close(): void }> {
  const inboxes = new Map<string, Inbox>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url ?? "/", "http://receiver");
      const [, kind, name] = url.pathname.split("/");
      const send = (status: number, text: string): void => {
        res.writeHead(status, { "content-type": "text/plain" });
        res.end(text);
      };
      if (!name) return send(404, "no inbox");
      if (kind === "inboxes" && req.method === "PUT") {
        const setup = JSON.parse(body) as {
          secret: string;
          failFirst?: number;
          failStatus?: number;
        };
        inboxes.set(name, {
          secret: setup.secret,
          failFirst: setup.failFirst ?? 0,
          failStatus: setup.failStatus ?? 500,
          deliveries: [],
        });
        return send(204, "");
      }
      const inbox = inboxes.get(name);
      if (!inbox) return send(404, `no inbox ${name}`);
      if (kind === "inboxes" && req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ deliveries: inbox.deliveries }));
      }
      if (kind === "hooks" && req.method === "POST") {
        const verified = verifySplitstreamSignature(inbox.secret, req.headers, body);
        const answered =
          inbox.deliveries.length < inbox.failFirst ? inbox.failStatus : verified ? 200 : 401;
        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(req.headers))
          if (typeof value === "string") headers[key] = value;
        inbox.deliveries.push({ headers, body, verified, answered });
        return send(answered, answered === 401 ? "invalid signature" : `answer ${answered}`);
      }
      return send(404, "unknown path");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("receiver has no port");
  return { origin: `http://127.0.0.1:${address.port}`, close: () => server.close() };
}
