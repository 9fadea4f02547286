/**
 * Wiring only (CONTRACT §1): one Worker with fetch (edge + endpoints), and later queue and
 * scheduled handlers. Routing of `/_ss/` endpoints and routed pages lives here; the work lives
 * in src/edge, src/events, src/api.
 */
import type { Env } from "./env";
import { DATAFILES_PATH_PREFIX, handleDatafileRequest } from "./edge/datafile-endpoint";
import { handleEdgeRequest } from "./edge/handle-request";
import { handleHealth, HEALTH_PATH } from "./edge/health";
import { loadRoutes, matchRoute } from "./edge/routes";
import { errorResponse } from "./edge/errors";
import { handleApi } from "./api/app";
import { ADMIN_BASE_PATH, handleAdmin } from "./admin/app";
import { handleEventBatch } from "./events/consumer";
import { BROWSER_EVENTS_PATH, handleBrowserEvents } from "./events/ingest-browser";
import { handleSdkEvents, SDK_EVENTS_PATH } from "./events/ingest-sdk";

const RESERVED_PREFIX = "/_ss/";

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const url = new URL(request.url);
    // Liveness answers on every host the Worker sees.
    if (url.pathname === HEALTH_PATH) return handleHealth(request, env);
    const route = matchRoute(loadRoutes(env), url);
    // Not ours: to the origin, untouched.
    if (!route) return fetch(request);
    if (url.pathname.startsWith(RESERVED_PREFIX)) {
      if (url.pathname.startsWith(DATAFILES_PATH_PREFIX))
        return handleDatafileRequest(request, env, ctx);
      if (url.pathname.startsWith("/_ss/api/") && route.serveApi)
        return handleApi(request, env, ctx);
      if (
        (url.pathname === ADMIN_BASE_PATH || url.pathname.startsWith(`${ADMIN_BASE_PATH}/`)) &&
        route.serveAdmin
      )
        return handleAdmin(request, env, ctx);
      if (url.pathname === BROWSER_EVENTS_PATH)
        return handleBrowserEvents(request, env, ctx, route, url);
      if (url.pathname === SDK_EVENTS_PATH) return handleSdkEvents(request, env, ctx, route);
      return errorResponse(404, "not_found", `no Splitstream endpoint at ${url.pathname}`);
    }
    return handleEdgeRequest(request, env, ctx, route, url);
  },
  queue: (batch, env) => handleEventBatch(batch, env),
} satisfies ExportedHandler<Env>;
