/**
 * `splitstream webhooks redeliver DELIVERY_ID` (docs/webhooks.md "Redelivering") against a
 * loopback stand-in for the management API (the API itself is tested through the real Worker in
 * test/api/webhook-redeliver.test.ts): the request it sends (a POST without a body), how it
 * reports the new delivery and the link in the log and a delivery's detail, an API refusal, and
 * its usage error.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const seen: Array<{ method: string; url: string; body: string; contentType: string | null }> = [];
let server: Server;
let apiUrl: string;

const original = {
  id: "d1",
  webhookId: "w1",
  eventId: "e1",
  eventType: "experiment.started",
  status: "failed",
  attempts: 8,
  lastStatusCode: 500,
  lastError: "the receiver answered 500",
  createdAt: "2026-12-05T10:00:00.000Z",
  nextAttemptAt: null,
  finishedAt: "2026-12-07T07:00:00.000Z",
  redeliveryOf: null,
};
const redelivery = {
  ...original,
  id: "d2",
  status: "delivered",
  attempts: 1,
  lastStatusCode: 200,
  lastError: null,
  createdAt: "2026-12-07T09:00:00.000Z",
  finishedAt: "2026-12-07T09:00:01.000Z",
  redeliveryOf: "d1",
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        body,
        contentType: req.headers["content-type"] ?? null,
      });
      const json = (status: number, data: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(data));
      };
      const path = req.url!.replace(/\?.*$/, "");
      if (path === "/_ss/api/v1/webhook-deliveries/d1/redeliver" && req.method === "POST")
        return json(202, {
          ...redelivery,
          status: "pending",
          attempts: 0,
          lastStatusCode: null,
          finishedAt: null,
        });
      if (path === "/_ss/api/v1/webhook-deliveries/d9/redeliver" && req.method === "POST")
        return json(409, {
          error: {
            code: "conflict",
            message:
              "webhook delivery d9 is still pending (2 of at most 8 attempts made): redeliver it once it has been delivered or has failed",
            details: null,
          },
        });
      if (path === "/_ss/api/v1/webhooks/w1/deliveries")
        return json(200, { items: [redelivery, original], nextCursor: null });
      if (path === "/_ss/api/v1/webhook-deliveries/d2")
        return json(200, {
          ...redelivery,
          body: "{}",
          redeliveries: [],
          attemptLog: [
            {
              attempt: 1,
              at: redelivery.createdAt,
              statusCode: 200,
              error: null,
              durationMs: 9,
              response: "ok",
            },
          ],
        });
      return json(404, { error: { code: "not_found", message: "no such route", details: null } });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, "bin", "splitstream.js"), ...args], {
      cwd: root,
      env: { ...process.env, SPLITSTREAM_API_URL: apiUrl, SPLITSTREAM_TOKEN: "good" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("splitstream webhooks redeliver", () => {
  it("POSTs to the delivery's redeliver route with no body and reports the new delivery", async () => {
    const r = await cli(["webhooks", "redeliver", "d1"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(seen.at(-1)).toEqual({
      method: "POST",
      url: "/_ss/api/v1/webhook-deliveries/d1/redeliver",
      body: "",
      contentType: null,
    });
    expect(r.stdout).toContain("redelivery d2 of d1 queued");

    const raw = await cli(["webhooks", "redeliver", "d1", "--json"]);
    expect(JSON.parse(raw.stdout)).toMatchObject({ id: "d2", redeliveryOf: "d1" });
  });

  it("the log and the delivery show the link", async () => {
    const log = await cli(["webhooks", "deliveries", "w1"]);
    expect(log.code).toBe(0);
    const lines = log.stdout.split("\n");
    expect(lines[0]).toMatch(/last code\s+redelivery of\s+last error/);
    expect(lines.find((l) => l.startsWith("d2"))).toMatch(/delivered\s+1\s+200\s+d1\b/);
    expect(lines.find((l) => l.startsWith("d1"))).toMatch(
      /failed\s+8\s+500\s+-\s+the receiver answered 500/,
    );
    const one = await cli(["webhooks", "delivery", "d2"]);
    expect(one.stdout.split("\n").slice(0, 2)).toEqual([
      "experiment.started delivered after 1 attempt(s)",
      "redelivery of d1",
    ]);
  });

  it("an API refusal is reported with its message and exits 1; no id is a usage error before any request", async () => {
    const refused = await cli(["webhooks", "redeliver", "d9"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("HTTP 409 conflict");
    expect(refused.stderr).toContain("still pending");
    const before = seen.length;
    const missing = await cli(["webhooks", "redeliver"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("webhooks redeliver needs a DELIVERY_ID");
    expect(seen.length).toBe(before);
  });
});
