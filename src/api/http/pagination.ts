/**
 * Pagination of list endpoints (docs/api.md "Lists"): `?limit` and an opaque `?cursor`.
 */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { unprocessable } from "../errors";

// Pagination: `?limit=1..200` (default 50) and `?cursor=<opaque>`; lists answer
// `{ "items": [...], "nextCursor": string | null }`.

export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 200;

/** base64url (no padding) of a UTF-8 string. */
export function encodeCursor(lastId: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(lastId)) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Inverse of encodeCursor; null when `cursor` is not one. */
export function decodeCursor(cursor: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  try {
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    return text === "" ? null : text;
  } catch {
    return null;
  }
}

/**
 * Reads `?limit` (1..200, default 50) and `?cursor`. The returned `cursor` is already DECODED:
 * it is the id of the last item of the previous page (null on the first page), so a query is
 * `… WHERE id > ?cursor ORDER BY id LIMIT ?limit+1` (or `id < ?` for newest-first lists), and
 * the page is `pageOf(rows, limit)`. Bad values → 422 with paths `$.query.limit` / `$.query.cursor`.
 */
export function parsePagination(c: Context): { limit: number; cursor: string | null } {
  const rawLimit = c.req.query("limit");
  const rawCursor = c.req.query("cursor");
  let limit = DEFAULT_PAGE_LIMIT;
  if (rawLimit !== undefined && rawLimit !== "") {
    limit = Number(rawLimit);
    if (!/^\d+$/.test(rawLimit) || limit < 1 || limit > MAX_PAGE_LIMIT)
      throw unprocessable("invalid query parameter limit", [
        { path: "$.query.limit", message: `must be an integer from 1 to ${MAX_PAGE_LIMIT}` },
      ]);
  }
  let cursor: string | null = null;
  if (rawCursor !== undefined && rawCursor !== "") {
    cursor = decodeCursor(rawCursor);
    if (cursor === null)
      throw unprocessable("invalid query parameter cursor", [
        { path: "$.query.cursor", message: "not a cursor returned by this API" },
      ]);
  }
  return { limit, cursor };
}

/** A page from rows fetched with LIMIT `limit + 1`: the first `limit`, and the cursor after them. */
export function pageOf<T extends { id: string }>(
  rows: T[],
  limit: number,
): { items: T[]; nextCursor: string | null } {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: last ? encodeCursor(last.id) : null };
}

/** `?limit&cursor` for route definitions: `request: { query: PaginationQuery }` (or `.extend({...})`). */
export const PaginationQuery = z.object({
  limit: z
    .string()
    .regex(/^\d+$/, "must be an integer")
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      description: `Page size, 1..${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT}).`,
      example: "50",
    }),
  cursor: z
    .string()
    .optional()
    .openapi({
      param: { name: "cursor", in: "query" },
      description: "`nextCursor` of the previous page; absent for the first page.",
    }),
});

/** The list envelope schema for OpenAPI: `{ items: T[], nextCursor: string | null }`. */
export function pageSchema<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z
        .string()
        .nullable()
        .openapi({ description: "Pass as `?cursor=` for the next page; null on the last page." }),
    })
    .openapi(name);
}
