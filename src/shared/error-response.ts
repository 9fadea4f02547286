/** The one error envelope for every Splitstream endpoint: `{"error":{"code","message","details"}}` (docs/api.md). */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  details: unknown = null,
  headers: Record<string, string> = {},
): Response {
  return Response.json(
    { error: { code, message, details } },
    { status, headers: { "cache-control": "no-store", ...headers } },
  );
}
