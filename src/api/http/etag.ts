/**
 * Optimistic concurrency (docs/api.md "Versions"): every resource has a version, its ETag is
 * `W/"v<version>"`, and writes honour `If-Match`.
 */
import type { Context } from "hono";
import { versionConflict } from "../errors";

/** The ETag of a resource at `version`: `W/"v<version>"`. */
export function etagFor(version: number): string {
  return `W/"v${version}"`;
}

/** The versions an If-Match header names (`*` → "any"); weak and strong forms compare alike. */
function ifMatchVersions(header: string): number[] | "any" {
  const out: number[] = [];
  for (const part of header.split(",")) {
    const tag = part.trim();
    if (tag === "*") return "any";
    const match = /^(?:W\/)?"v(\d+)"$/.exec(tag);
    if (match) out.push(Number(match[1]));
  }
  return out;
}

/**
 * Optimistic concurrency: when the request has `If-Match` and it does not name `version`
 * (the resource's current version), throws 409 `version_conflict` with details `{current}`.
 * No If-Match → allowed (clients SHOULD send it; docs/api.md). For a race-free write, also put
 * `AND version = ?` in the UPDATE and treat "no row changed" as a conflict.
 */
export function checkIfMatch(c: Context, version: number): void {
  const header = c.req.header("if-match");
  if (header === undefined) return;
  const versions = ifMatchVersions(header);
  if (versions === "any") return;
  if (!versions.includes(version)) throw versionConflict(version);
}

/** The version If-Match asks for (the first one named), or null when absent or `*`. */
export function ifMatchVersion(c: Context): number | null {
  const header = c.req.header("if-match");
  if (header === undefined) return null;
  const versions = ifMatchVersions(header);
  return versions === "any" ? null : (versions[0] ?? null);
}

/** Sets `ETag: W/"v<version>"` on the response being built. */
export function setEtag(c: Context, version: number): void {
  c.header("ETag", etagFor(version));
}
