import type { Env } from "../env";
import { datafileStoreStatus, getDatafile, hasDatafileSlot } from "./datafile-store";
import { errorResponse } from "./errors";
import { loadRouteTable } from "./routes";

export const HEALTH_PATH = "/_ss/health";

/** Lets health load datafiles when the caller has no ExecutionContext to give (the load is awaited anyway). */
const awaitedContext: Pick<ExecutionContext, "waitUntil"> = { waitUntil: () => {} };

/**
 * `GET /_ss/health`: liveness of this Worker, its routes (and ROUTES problems), and per sdkKey
 * the datafile revision this isolate decides with (CONTRACT §5). Never cached.
 *
 * Cheap: routes are memoized; a routed sdkKey this isolate has never looked up is loaded once
 * (one KV read, then it is in memory for the edge path too); everything else is read from memory.
 */
export async function handleHealth(
  request: Request,
  env: Pick<Env, "ROUTES" | "DATAFILES">,
  ctx?: Pick<ExecutionContext, "waitUntil">,
): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorResponse(
      405,
      "method_not_allowed",
      `${request.method} is not allowed on ${HEALTH_PATH}`,
      { allow: ["GET", "HEAD"] },
      { allow: "GET, HEAD" },
    );
  }
  const table = loadRouteTable(env);
  const unseen = [...new Set(table.routes.map((r) => r.sdkKey))].filter(
    (sdkKey) => !hasDatafileSlot(sdkKey),
  );
  await Promise.all(unseen.map((sdkKey) => getDatafile(env, ctx ?? awaitedContext, sdkKey)));

  const body = JSON.stringify({
    status: "ok",
    service: "splitstream",
    routes: table.routes.map((r) => ({ pattern: r.pattern, sdkKey: r.sdkKey })),
    routeProblems: table.problems,
    datafiles: datafileStoreStatus(),
  });
  return new Response(request.method === "HEAD" ? null : body, {
    status: 200,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}
