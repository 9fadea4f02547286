/**
 * What the CLI tests (test/core/cli*.test.ts, Node) share: running the real `splitstream` bin in
 * a child process (as `npx splitstream` would), and a loopback stand-in for the management API's HTTP surface that records
 * every request and answers as the test's handler says. The API itself is tested through the
 * real Worker (test/api); these tests check what the CLI sends and how it reports.
 */
import { spawn, spawnSync } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/** The repository (the CLI runs from there, as `npx splitstream` would). */
export const repoRoot = join(import.meta.dirname, "..", "..");

const BIN = join(repoRoot, "bin", "splitstream.js");
/** The most output a synchronous run keeps (a batch's stdout runs to many megabytes). */
const MAX_OUTPUT = 1 << 28;

/** How a CLI run ended and what it wrote. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bin/splitstream.js args` with this process's environment and `env` over it (e.g. the
 * stand-in's URL as SPLITSTREAM_API_URL) and resolves when it exits.
 */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the bin to its end with `input` on its stdin (a minute at most); stdout as text. */
export function runCliSync(args: string[], input?: string): CliRun {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: repoRoot,
    input,
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: MAX_OUTPUT,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** runCliSync with stdin and stdout as bytes, for byte-for-byte comparisons. */
export function runCliSyncBytes(
  args: string[],
  input?: Buffer,
): { code: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: repoRoot,
    input,
    timeout: 60_000,
    maxBuffer: MAX_OUTPUT,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

/** One request the stand-in got: `body` as the stand-in's `parseBody` made it (default: the text). */
export interface SeenRequest<B = string> {
  method: string;
  url: string;
  authorization: string | undefined;
  body: B;
}

/** Answers `status` with `data` as JSON. */
export type JsonReply = (status: number, data: unknown) => void;

/** The test's API: answers `req` (its body already read) through `json`, or `res` itself. */
export type StandInHandler<B> = (
  req: IncomingMessage,
  body: B,
  json: JsonReply,
  res: ServerResponse,
) => unknown;

export interface StandInApi<B = string> {
  /** `http://127.0.0.1:PORT`, for SPLITSTREAM_API_URL or `--api-url`. */
  url: string;
  /** Every request so far, in order. */
  seen: Array<SeenRequest<B>>;
  close(): Promise<void>;
}

/** Starts a stand-in API on a free loopback port; `parseBody` turns each request body's text into `B`. */
export async function startStandInApi<B = string>(
  handler: StandInHandler<B>,
  parseBody: (text: string) => B = (text) => text as B,
): Promise<StandInApi<B>> {
  const seen: Array<SeenRequest<B>> = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString("utf8")));
    req.on("end", () => {
      const body = parseBody(text);
      seen.push({
        method: req.method!,
        url: req.url!,
        authorization: req.headers.authorization,
        body,
      });
      const json: JsonReply = (status, data) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(data));
      };
      void handler(req, body, json, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
