/**
 * `splitstream headline create` against a loopback stand-in for the management API (the API
 * itself is tested through the real Worker in test/api/bandit.test.ts): what the CLI sends, how
 * it reports, and its usage errors.
 */
import { spawn } from "node:child_process";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}
const seen: Seen[] = [];
let server: Server;
let apiUrl: string;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => resolve(body));
  });
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const body = await readBody(req);
    seen.push({
      method: req.method!,
      url: req.url!,
      authorization: req.headers.authorization,
      body,
    });
    const json = (status: number, data: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(data));
    };
    if (req.url === "/_ss/api/v1/projects/p1/headline-tests" && req.method === "POST")
      return json(201, {
        experiment: {
          id: "x1",
          key: "budget",
          variations: [
            { key: "original", name: "A", weight: 5000 },
            { key: "headline_2", name: "B", weight: 5000 },
          ],
          status: { production: "Running", development: "Not started" },
        },
        page: { id: "pg1", key: "budget" },
        event: { id: "ev1", key: "subscribe", type: "custom" },
        created: { page: true, event: false },
        published: [
          { environmentKey: "production", revision: 7, changed: true },
          { environmentKey: "development", revision: 3, changed: true },
        ],
      });
    if (req.url === "/_ss/api/v1/projects/p2/headline-tests")
      return json(422, {
        error: {
          code: "validation_failed",
          message: "invalid request body: $.body.headlines[1].imageUrl: unsafe URL",
          details: [{ path: "$.body.headlines[1].imageUrl", message: "unsafe URL" }],
        },
      });
    return json(404, { error: { code: "not_found", message: "no such route", details: null } });
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

describe("splitstream headline create", () => {
  it("posts one headline test and prints what was created", async () => {
    const r = await cli([
      "headline",
      "create",
      "--project",
      "p1",
      "--key",
      "budget",
      "--url-substring",
      "/article/",
      "--headline-id",
      "hero",
      "--headline",
      "A",
      "--headline",
      "B",
      "--event",
      "ev1",
      "--start",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const sent = seen.at(-1)!;
    expect(sent).toMatchObject({
      method: "POST",
      url: "/_ss/api/v1/projects/p1/headline-tests",
      authorization: "Bearer good",
    });
    expect(JSON.parse(sent.body)).toEqual({
      key: "budget",
      url: { match: "substring", value: "/article/" },
      headlineId: "hero",
      headlines: [{ text: "A" }, { text: "B" }],
      metricEventId: "ev1",
      start: true,
    });
    expect(r.stdout).toContain("headline test budget (experiment x1)");
    expect(r.stdout).toMatch(/page\s+budget \(pg1\) — created/);
    expect(r.stdout).toMatch(/headline_2\s+5000 bp\s+B/);
    expect(r.stdout).toContain("production: Running");
    expect(r.stdout).toContain("production r7");
  });

  it("sends a selector and an existing page as given", async () => {
    const r = await cli([
      "headline",
      "create",
      "--project",
      "p1",
      "--key",
      "budget",
      "--page",
      "pg1",
      "--selector",
      "article h1",
      "--headline",
      "A",
      "--headline",
      "B",
      "--headline",
      "C",
      "--json",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(seen.at(-1)!.body)).toEqual({
      key: "budget",
      pageId: "pg1",
      selector: "article h1",
      headlines: [{ text: "A" }, { text: "B" }, { text: "C" }],
    });
    expect(JSON.parse(r.stdout).experiment.id).toBe("x1");
  });

  it("reports the API's validation problems and usage errors", async () => {
    const refused = await cli([
      "headline",
      "create",
      "--project",
      "p2",
      "--key",
      "k",
      "--url-exact",
      "https://news.example.com/a",
      "--headline-id",
      "hero",
      "--headline",
      "A",
      "--headline",
      "B",
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("$.body.headlines[1].imageUrl");

    const before = seen.length;
    for (const args of [
      ["--key", "k", "--url-substring", "/a/", "--headline-id", "h", "--headline", "only one"],
      ["--key", "k", "--headline-id", "h", "--headline", "A", "--headline", "B"],
      ["--key", "k", "--url-substring", "/a/", "--page", "p", "--headline-id", "h"],
      ["--key", "k", "--url-substring", "/a/", "--headline", "A", "--headline", "B"],
    ]) {
      const r = await cli(["headline", "create", "--project", "p1", ...args]);
      expect(r.code, args.join(" ")).toBe(2);
    }
    // Usage errors never reach the API.
    expect(seen.length).toBe(before);
  });
});
