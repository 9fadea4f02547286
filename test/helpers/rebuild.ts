/**
 * Running a rebuild job to its end in a test (src/events/rebuild-job.ts): start it through the
 * API, then read it until it settles — its Durable Object's alarm runs the steps on its own, as in
 * production.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;
import { apiJson } from "./api";

const SETTLED = new Set(["compared", "applied", "cancelled", "failed"]);

/** Reads the current job until it is compared, applied, cancelled or failed. */
export async function settleRebuild(timeoutMs = 120_000): Promise<Json> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = await apiJson("GET", "/admin/rebuild", 200);
    if (SETTLED.has(job.status)) return job;
    if (Date.now() > until) throw new Error(`rebuild did not settle: ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Starts a rebuild with `body`, waits for it, and returns the settled job. */
export async function runRebuild(body?: Record<string, unknown>): Promise<Json> {
  // A job left running by an earlier test must end first (one job at a time).
  await settleIfAny();
  await apiJson("POST", "/admin/rebuild", 202, body === undefined ? {} : { body });
  return settleRebuild();
}

/** Starts a rebuild with `body` and returns its report (the job must not fail). */
export async function rebuildReport(body?: Record<string, unknown>): Promise<Json> {
  const job = await runRebuild(body);
  if (job.status === "failed" || job.report === null)
    throw new Error(`rebuild ended without a report: ${JSON.stringify(job)}`);
  return job.report;
}

/** Waits for a job that is still running, if there is one. */
export async function settleIfAny(): Promise<void> {
  const { api } = await import("./api");
  const response = await api("GET", "/admin/rebuild");
  if (response.status === 404) return;
  const job = (await response.json()) as Json;
  if (!SETTLED.has(job.status)) await settleRebuild();
}
