/**
 * Wiring only (docs/architecture.md): one Worker with fetch (edge + endpoints), queue (event
 * consumer, webhook deliveries) and scheduled (every minute: experiment schedules and the webhook
 * sweep; hourly also retention, bandit re-allocation, checks) handlers. Routing of `/_ss/`
 * endpoints and routed pages lives here; the work lives in src/edge, src/events, src/api.
 */
import type { Env } from "./env";
import { DATAFILES_PATH_PREFIX, handleDatafileRequest } from "./edge/datafile-endpoint";
import { CLIENT_CONFIG_PATH_PREFIX, handleClientConfig } from "./edge/client-config";
import { CLIENT_SCRIPT_PATH, handleClientScript } from "./edge/client-script";
import { DECIDE_PATH, handleDecide } from "./edge/decide-endpoint";
import { handleEdgeRequest } from "./edge/handle-request";
import { handleEditorRequest, isEditorRequest } from "./edge/editor-preview";
import { handleHealth, HEALTH_PATH } from "./edge/health";
import { loadRoutes, matchRoute } from "./edge/routes";
import { getDatafile } from "./edge/datafile-store";
import { parseCookies } from "./edge/cookies";
import { readVisitor } from "./edge/visitor";
import { impressionDims } from "./edge/impression-dims";
import { readRevisionHoldoutShares } from "./edge/revision-holdouts";
import { ADMIN_BASE_PATH } from "./admin/paths";
import { BROWSER_EVENTS_PATH, SDK_EVENTS_PATH } from "./events/ingest-paths";
import type { IngestEdge } from "./events/ingest-common";
import { errorResponse } from "./shared/error-response";
import { requeueSpilled, sendOrSpill } from "./events/spill";

// What only the API, the admin, the ingest endpoints, the queue consumer and the scheduled work
// need is imported on first use, never at module load: a page view in a fresh isolate does not
// parse or build it (docs/architecture.md "Start-up"). The bundle still holds it all (esbuild
// wraps each such module in an init function that runs on the first `import()`).

// The visitor shards' Durable Object class (wrangler.toml `durable_objects`, docs/scaling.md).
export { VisitorShard } from "./events/visitor-shard";
export { RebuildJob } from "./events/rebuild-job";

const RESERVED_PREFIX = "/_ss/";

/** The webhook deliveries' queue (wrangler.toml); every other batch is the events'. */
const WEBHOOKS_QUEUE = "splitstream-webhooks";
/**
 * The per-minute cron of wrangler.toml: it runs the experiment schedules and the webhook sweep
 * only; any other trigger (the hourly `17 * * * *`) runs the hourly jobs too (docs/deploy.md
 * "Cron triggers").
 */
const EVERY_MINUTE_CRON = "* * * * *";

/** What the ingest endpoints take from the edge (src/edge and src/events do not import each other). */
const ingestEdge: IngestEdge = {
  getDatafile,
  readVisitor: (request) => readVisitor(request, parseCookies(request.headers.get("cookie"))),
  impressionDims: (request) => impressionDims(request),
  holdoutSharesAt: (env, sdkKey, revision) => readRevisionHoldoutShares(env, sdkKey, revision),
};

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
      if (url.pathname === CLIENT_SCRIPT_PATH) return handleClientScript(request, url);
      if (url.pathname.startsWith(CLIENT_CONFIG_PATH_PREFIX))
        return handleClientConfig(request, env, ctx, url);
      if (url.pathname === DECIDE_PATH)
        return handleDecide(request, env, ctx, route, url, sendOrSpill);
      if (url.pathname.startsWith("/_ss/api/") && route.serveApi)
        return (await import("./api/app")).handleApi(request, env, ctx);
      if (
        (url.pathname === ADMIN_BASE_PATH || url.pathname.startsWith(`${ADMIN_BASE_PATH}/`)) &&
        route.serveAdmin
      )
        return (await import("./admin/app")).handleAdmin(request, env, ctx);
      if (url.pathname === BROWSER_EVENTS_PATH)
        return (await import("./events/ingest-browser")).handleBrowserEvents(
          request,
          env,
          ctx,
          route,
          url,
          ingestEdge,
        );
      if (url.pathname === SDK_EVENTS_PATH)
        return (await import("./events/ingest-sdk")).handleSdkEvents(
          request,
          env,
          ctx,
          route,
          ingestEdge,
        );
      return errorResponse(404, "not_found", `no Splitstream endpoint at ${url.pathname}`);
    }
    // The visual editor's previews, on the page's own URL, where the admin is served.
    if (route.serveAdmin && isEditorRequest(request, url))
      return handleEditorRequest(request, env.SIGNING_KEY, route, url);
    return handleEdgeRequest(request, env, ctx, route, url, sendOrSpill);
  },
  // Two queues: the events (src/events/consumer.ts) and the webhook deliveries
  // (docs/webhooks.md "Delivery").
  queue: async (batch, env) =>
    batch.queue === WEBHOOKS_QUEUE
      ? (await import("./api/services/webhook-delivery")).handleWebhookBatch(batch, env)
      : (await import("./events/consumer")).handleEventBatch(batch, env),
  // Every minute: the experiment schedules' due steps (docs/schedules.md) and the webhook sweep
  // (due retries and unqueued deliveries, docs/webhooks.md "Delivery"). Hourly also: retention of the event bookkeeping (docs/events.md
  // "Retention"), the bandit re-allocation round (docs/bandits.md "Running a bandit"), the re-queue
  // of edge events spilled to R2 (docs/reliability.md), the Parquet compaction of the archive
  // (docs/events.md "Columnar archive (Parquet)"), the guardrail checks (docs/statistics.md
  // "Guardrails"), the result alerts and the pruning of the webhook log (docs/webhooks.md); cron
  // in wrangler.toml. All always run: a failure of one is logged and does not stop the others
  // (the run is then reported as failed).
  scheduled: async (controller, env) => {
    const [{ sweepWebhookDeliveries, pruneWebhookLog }, { runSchedules }] = await Promise.all([
      import("./api/services/webhook-delivery"),
      import("./api/services/schedule-run"),
    ]);
    const jobs: Array<[string, () => Promise<unknown>]> = [
      ["schedule run", () => runSchedules(env, controller.scheduledTime)],
      ["webhook sweep", () => sweepWebhookDeliveries(env, controller.scheduledTime)],
    ];
    if (controller.cron !== EVERY_MINUTE_CRON) {
      const [
        { handleScheduled },
        { runBanditRound },
        { compactArchive },
        { runGuardrailChecks },
        { runResultAlerts },
      ] = await Promise.all([
        import("./events/retention"),
        import("./api/services/bandit-round"),
        import("./events/archive-parquet"),
        import("./api/services/guardrails"),
        import("./api/services/result-alerts"),
      ]);
      jobs.push(
        ["retention", () => handleScheduled(controller, env)],
        ["bandit round", () => runBanditRound(env, controller.scheduledTime)],
        ["spill re-queue", () => requeueSpilled(env)],
        ["parquet compaction", () => compactArchive(env.ARCHIVE, controller.scheduledTime)],
        ["guardrail checks", () => runGuardrailChecks(env, controller.scheduledTime)],
        ["result alerts", () => runResultAlerts(env, controller.scheduledTime)],
        ["webhook log pruning", () => pruneWebhookLog(env, controller.scheduledTime)],
      );
    }
    const settled = await Promise.allSettled(jobs.map(([, run]) => run()));
    let failure: unknown = null;
    settled.forEach((result, index) => {
      if (result.status === "fulfilled") return;
      console.error(`splitstream: scheduled ${jobs[index]?.[0] ?? "job"} failed`, result.reason);
      failure ??= result.reason;
    });
    if (failure !== null) throw failure;
  },
} satisfies ExportedHandler<Env>;
