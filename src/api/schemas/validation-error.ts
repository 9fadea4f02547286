/**
 * Request validation failures (zod) → the 422 `validation_failed` error with one detail per
 * problem, each naming its JSON path (`$.body.variations[1].key`).
 */
import { z } from "@hono/zod-openapi";
import { formatPath } from "../../core/problem";
import { ApiError, unprocessable, type ValidationDetail } from "../errors";

const TARGET_ROOT: Record<string, string> = {
  json: "body",
  form: "body",
  query: "query",
  param: "params",
  header: "headers",
  cookie: "cookies",
};

/**
 * Zod issues → `[{path: "$.body.variations[0].key", message}]`. Unknown keys of strict objects
 * get one entry each, pointing at the key itself.
 */
export function issuesToDetails(
  issues: readonly z.core.$ZodIssue[],
  root: string = "body",
): ValidationDetail[] {
  const details: ValidationDetail[] = [];
  for (const issue of issues) {
    const base = [root, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys)
        details.push({ path: formatPath([...base, key]), message: "unknown field" });
    } else {
      details.push({ path: formatPath(base), message: issue.message });
    }
  }
  return details;
}

/** The `validation_failed` ApiError for a failed zod parse of a request part. */
export function validationError(error: z.ZodError, target: string): ApiError {
  const root = TARGET_ROOT[target] ?? target;
  const details = issuesToDetails(error.issues, root);
  const firstDetail = details[0];
  const message = firstDetail
    ? `invalid request ${root}: ${firstDetail.path}: ${firstDetail.message}${details.length > 1 ? ` (and ${details.length - 1} more)` : ""}`
    : `invalid request ${root}`;
  return unprocessable(message, details);
}

/**
 * `schema`'s parse of a request body, or the 422 `validation_failed` the API's validator answers
 * for it — for callers without an HTTP request (the admin pages, services), so a value is refused
 * with the API's message whichever side it came through.
 */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw validationError(parsed.error, "json");
  return parsed.data;
}
