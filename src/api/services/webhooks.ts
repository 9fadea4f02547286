/**
 * Webhooks, the resource (docs/webhooks.md), admin only: they send project data to outside URLs,
 * and a Slack URL is itself a secret. The signing secret (`whsec_` + 32 url-safe characters) is
 * answered once, by create and by rotate; D1 keeps it (it is needed to sign), the API never shows
 * it again. Every change is audited. The test-send, redelivery and the delivery log are here too;
 * sending is src/api/services/webhook-delivery.ts.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict, notFound, unprocessable } from "../errors";
import { newId, nowIso, randomUrlSafe } from "../ids";
import type {
  WebhookCreate,
  WebhookDeliveryDetailJson,
  WebhookDeliveryJson,
  WebhookJson,
  WebhookUpdate,
} from "../schemas/webhooks";
import { auditIfChanged, auditStatement } from "../store/audit";
import { first, listEnvironments, requireProject } from "../store/db";
import { insertStatement, parseJson, versionedUpdate, versionGuardError } from "../store/sql";
import {
  findDelivery,
  findWebhook,
  insertRedeliveryStatement,
  listAttempts,
  listDeliveryPage,
  listRedeliveries,
  listWebhookPage,
  type WebhookDeliveryRow,
  type WebhookRow,
} from "../store/webhooks";
import { requireActorRole } from "./auth";
import { checkVersion, type IfMatch, type Page, pageAfter, type PageRequest } from "./resources";
import { Problems } from "./validation";
import { WEBHOOK_MAX_ATTEMPTS } from "./webhook-delivery";
import {
  enqueueDeliveries,
  FIRST_ATTEMPT_GRACE_MS,
  queueFirstAttempts,
  WEBHOOK_TEST_EVENT,
} from "./webhook-events";

/** Hosts a webhook may use plain http for: this machine (local development and tests). */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Most webhooks one project may have (each event is one delivery per webhook). */
export const MAX_WEBHOOKS_PER_PROJECT = 50;

/**
 * Whether a host is an IP literal in a private, loopback, link-local, shared or otherwise
 * reserved range (RFC 6890): not a receiver on the internet. `hostname` as URL parses it (IPv4
 * normalised to dotted decimal, IPv6 in brackets).
 */
function isReservedAddress(hostname: string): boolean {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(hostname);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 198 && (b === 18 || b === 19)) ||
      a >= 224
    );
  }
  if (!hostname.startsWith("[")) return false;
  const v6 = hostname.slice(1, -1).toLowerCase();
  return (
    v6 === "::" ||
    v6 === "::1" ||
    /^f[cd]/.test(v6) ||
    /^fe[89ab]/.test(v6) ||
    v6.startsWith("::ffff:") ||
    v6.startsWith("64:ff9b:")
  );
}

/**
 * Why `url` cannot be a webhook's URL, or null when it can: https to a host on the internet, or
 * plain http to this machine (local development and tests; a deployed Worker cannot reach it).
 */
export function webhookUrlProblem(url: string): string | null {
  // The URL parser drops tabs and line breaks silently: the stored URL would not be the one
  // fetched (and shown with a line break in it). Refused instead.
  for (let i = 0; i < url.length; i++) {
    const code = url.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return "must not contain spaces or control characters";
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be an absolute URL (https://…)";
  }
  if (parsed.username || parsed.password) return "must not carry a user name or password";
  if (parsed.hash) return "must not have a #fragment";
  if (parsed.protocol === "http:" && LOOPBACK_HOSTS.has(parsed.hostname)) return null;
  if (parsed.protocol !== "https:")
    return "must be https (http only for localhost, 127.0.0.1 and [::1])";
  if (parsed.hostname === "localhost" || parsed.hostname.endsWith(".localhost"))
    return "must name a host on the internet (plain http://localhost is for local development)";
  if (isReservedAddress(parsed.hostname))
    return "must not be a private, loopback, link-local or reserved IP address";
  return null;
}

/** Scheme and host of a URL, for the audit log: the path of a Slack URL is its secret. */
function auditableUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return "(invalid)";
  }
}

/** A new signing secret. */
export function newWebhookSecret(): string {
  return `whsec_${randomUrlSafe(32)}`;
}

export function webhookJson(row: WebhookRow): WebhookJson {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    url: row.url,
    format: row.format,
    events: parseJson<string[]>(row.events, []),
    environments: parseJson<string[]>(row.environments, []),
    enabled: row.enabled === 1,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function deliveryJson(row: WebhookDeliveryRow): WebhookDeliveryJson {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    eventId: row.event_id,
    eventType: row.event_type,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    createdAt: row.created_at,
    nextAttemptAt: row.status === "pending" ? row.next_attempt_at : null,
    finishedAt: row.finished_at,
    redeliveryOf: row.redelivery_of,
  };
}

/** 422 for a URL or environment key the body may not have (paths as zod's). */
async function checkWebhookFields(
  db: D1Database,
  projectId: string,
  body: { url?: string | undefined; environments?: readonly string[] | undefined },
): Promise<void> {
  const problems = new Problems();
  if (body.url !== undefined) {
    const problem = webhookUrlProblem(body.url);
    if (problem) problems.add(["url"], problem);
  }
  if (body.environments !== undefined && body.environments.length > 0) {
    const keys = new Set((await listEnvironments(db, projectId)).map((e) => e.key));
    body.environments.forEach((key, index) => {
      if (!keys.has(key))
        problems.add(
          ["environments", index],
          `unknown environment ${JSON.stringify(key)} (not an environment key of this project)`,
        );
    });
  }
  problems.throwIfAny();
}

/** Sorted, without duplicates; `*` alone when listed. */
function normaliseEvents(events: readonly string[]): string[] {
  return events.includes("*") ? ["*"] : [...new Set(events)].sort();
}

/** A webhook of the project, or 404. */
export async function requireWebhook(db: D1Database, webhookId: string): Promise<WebhookRow> {
  const row = await findWebhook(db, webhookId);
  if (!row) throw notFound("webhook", webhookId);
  return row;
}

/** Creates a webhook (admin): the row and its secret, which is answered only here. */
export async function createWebhook(
  env: Env,
  actor: Actor,
  projectId: string,
  body: WebhookCreate,
): Promise<{ row: WebhookRow; secret: string }> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  await requireProject(db, projectId);
  await checkWebhookFields(db, projectId, body);
  const count = await first<{ n: number }>(
    db,
    "SELECT COUNT(*) AS n FROM webhooks WHERE project_id = ?",
    projectId,
  );
  if ((count?.n ?? 0) >= MAX_WEBHOOKS_PER_PROJECT)
    throw conflict(
      `a project has at most ${MAX_WEBHOOKS_PER_PROJECT} webhooks; delete one first (one webhook can take every event)`,
      { limit: MAX_WEBHOOKS_PER_PROJECT },
    );
  const now = nowIso();
  const secret = newWebhookSecret();
  const row: WebhookRow = {
    id: newId(),
    project_id: projectId,
    name: body.name,
    url: body.url,
    format: body.format,
    events: JSON.stringify(normaliseEvents(body.events)),
    environments: JSON.stringify([...new Set(body.environments)]),
    secret,
    enabled: body.enabled ? 1 : 0,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  await db.batch([
    insertStatement(db, "webhooks", row),
    auditStatement(db, actor, "create", "webhook", row.id, projectId, {
      name: row.name,
      url: auditableUrl(row.url),
      format: row.format,
      events: parseJson<string[]>(row.events, []),
      environments: parseJson<string[]>(row.environments, []),
      enabled: row.enabled === 1,
    }),
  ]);
  return { row, secret };
}

/** A page of a project's webhooks by id (admin). */
export async function listWebhooks(
  env: Env,
  actor: Actor,
  projectId: string,
  readPage: () => PageRequest,
): Promise<Page<WebhookRow>> {
  requireActorRole(actor, "admin");
  await requireProject(env.DB, projectId);
  // Read once the project is found: an unknown project answers 404 before a bad ?cursor's 422.
  const page = readPage();
  return pageAfter(await listWebhookPage(env.DB, projectId, page.limit, page.cursor), page.limit);
}

/** One webhook (admin), never its secret. */
export async function getWebhook(env: Env, actor: Actor, webhookId: string): Promise<WebhookRow> {
  requireActorRole(actor, "admin");
  return requireWebhook(env.DB, webhookId);
}

/**
 * Changes a webhook (admin): fields sent replace the current ones; 409 when `ifMatch` does not
 * accept its version or another write wins. Pending deliveries keep their body; a new URL or a
 * disable applies to their next attempt.
 */
export async function updateWebhook(
  env: Env,
  actor: Actor,
  webhookId: string,
  body: WebhookUpdate,
  ifMatch: IfMatch,
): Promise<WebhookRow> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const current = await requireWebhook(db, webhookId);
  checkVersion(ifMatch, current.version);
  await checkWebhookFields(db, current.project_id, body);
  const next: WebhookRow = {
    ...current,
    name: body.name ?? current.name,
    url: body.url ?? current.url,
    format: body.format ?? current.format,
    events: body.events ? JSON.stringify(normaliseEvents(body.events)) : current.events,
    environments: body.environments
      ? JSON.stringify([...new Set(body.environments)])
      : current.environments,
    enabled: body.enabled === undefined ? current.enabled : body.enabled ? 1 : 0,
    version: current.version + 1,
    updated_at: nowIso(),
  };
  const results = await db.batch([
    versionedUpdate(db, "webhooks", webhookId, current.version, {
      name: next.name,
      url: next.url,
      format: next.format,
      events: next.events,
      environments: next.environments,
      enabled: next.enabled,
      version: next.version,
      updated_at: next.updated_at,
    }),
    auditIfChanged(db, actor, "update", "webhook", webhookId, current.project_id, {
      fields: Object.keys(body),
      ...(next.url === current.url
        ? {}
        : { url: { from: auditableUrl(current.url), to: auditableUrl(next.url) } }),
      ...(next.enabled === current.enabled ? {} : { enabled: next.enabled === 1 }),
      ...(next.events === current.events ? {} : { events: parseJson<string[]>(next.events, []) }),
      ...(next.environments === current.environments
        ? {}
        : { environments: parseJson<string[]>(next.environments, []) }),
    }),
  ]);
  if ((results[0]?.meta.changes ?? 0) === 0)
    throw await versionGuardError(db, "webhooks", "webhook", webhookId);
  return next;
}

/** Deletes a webhook and its delivery log (admin); queued deliveries are then dropped. */
export async function deleteWebhook(
  env: Env,
  actor: Actor,
  webhookId: string,
  ifMatch: IfMatch,
): Promise<void> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const current = await requireWebhook(db, webhookId);
  checkVersion(ifMatch, current.version);
  const results = await db.batch([
    db
      .prepare("DELETE FROM webhooks WHERE id = ? AND version = ?")
      .bind(webhookId, current.version),
    auditIfChanged(db, actor, "delete", "webhook", webhookId, current.project_id, {
      name: current.name,
    }),
  ]);
  if ((results[0]?.meta.changes ?? 0) === 0)
    throw await versionGuardError(db, "webhooks", "webhook", webhookId);
}

/**
 * A new signing secret (admin), answered once; the old one stops at once: deliveries attempted
 * from now on are signed with the new one.
 */
export async function rotateWebhookSecret(
  env: Env,
  actor: Actor,
  webhookId: string,
  ifMatch: IfMatch,
): Promise<{ row: WebhookRow; secret: string }> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const current = await requireWebhook(db, webhookId);
  checkVersion(ifMatch, current.version);
  const secret = newWebhookSecret();
  const next: WebhookRow = {
    ...current,
    secret,
    version: current.version + 1,
    updated_at: nowIso(),
  };
  const results = await db.batch([
    versionedUpdate(db, "webhooks", webhookId, current.version, {
      secret,
      version: next.version,
      updated_at: next.updated_at,
    }),
    auditIfChanged(db, actor, "rotate_secret", "webhook", webhookId, current.project_id, {}),
  ]);
  if ((results[0]?.meta.changes ?? 0) === 0)
    throw await versionGuardError(db, "webhooks", "webhook", webhookId);
  return { row: next, secret };
}

/**
 * Queues a `webhook.test` delivery to this webhook only (admin), enabled or not, signed and
 * retried like any other; answers the delivery (pending until its first attempt is made).
 */
export async function sendTestWebhook(
  env: Env,
  actor: Actor,
  webhookId: string,
): Promise<WebhookDeliveryRow> {
  requireActorRole(actor, "admin");
  const webhook = await requireWebhook(env.DB, webhookId);
  const [deliveryId] = await enqueueDeliveries(env, [webhook], {
    projectId: webhook.project_id,
    type: WEBHOOK_TEST_EVENT,
    environment: null,
    actor,
    data: { webhookId: webhook.id, name: webhook.name },
    summary: `test delivery to webhook ${webhook.name}`,
  });
  const delivery = deliveryId ? await findDelivery(env.DB, deliveryId) : null;
  if (!delivery) throw notFound("webhook delivery", deliveryId ?? "");
  return delivery;
}

/** Cursor of the delivery log: `createdAt|id` of a page's last item. */
function deliveryCursor(row: WebhookDeliveryRow): string {
  return `${row.created_at}|${row.id}`;
}

/** A page of a webhook's deliveries, newest first (admin). */
export async function listWebhookDeliveries(
  env: Env,
  actor: Actor,
  webhookId: string,
  readPage: () => PageRequest,
): Promise<Page<WebhookDeliveryRow>> {
  requireActorRole(actor, "admin");
  await requireWebhook(env.DB, webhookId);
  const page = readPage();
  let before: { createdAt: string; id: string } | null = null;
  if (page.cursor !== null) {
    const bar = page.cursor.lastIndexOf("|");
    if (bar <= 0)
      throw unprocessable("invalid query parameter cursor", [
        { path: "$.query.cursor", message: "not a cursor returned by this API" },
      ]);
    before = { createdAt: page.cursor.slice(0, bar), id: page.cursor.slice(bar + 1) };
  }
  const rows = await listDeliveryPage(env.DB, webhookId, page.limit, before);
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  return { items, after: rows.length > page.limit && last ? deliveryCursor(last) : null };
}

/** One delivery with its body and every attempt (admin). */
export async function getWebhookDelivery(
  env: Env,
  actor: Actor,
  deliveryId: string,
): Promise<WebhookDeliveryDetailJson> {
  requireActorRole(actor, "admin");
  const row = await findDelivery(env.DB, deliveryId);
  if (!row) throw notFound("webhook delivery", deliveryId);
  const [attempts, redeliveries] = await Promise.all([
    listAttempts(env.DB, deliveryId),
    listRedeliveries(env.DB, deliveryId),
  ]);
  return {
    ...deliveryJson(row),
    body: row.body,
    attemptLog: attempts.map((a) => ({
      attempt: a.attempt,
      at: a.at,
      statusCode: a.status_code,
      error: a.error,
      durationMs: a.duration_ms,
      response: a.response,
    })),
    redeliveries: redeliveries.map((r) => ({
      id: r.id,
      status: r.status,
      createdAt: r.created_at,
    })),
  };
}

/**
 * Redelivers a finished delivery (admin; docs/webhooks.md "Redelivering"): a new delivery — new
 * id, no attempts yet — of the same stored body to the same webhook, linked by `redelivery_of`,
 * queued like any delivery. Nothing of the request goes into it: the body is the one stored when
 * the event happened, the URL the webhook's stored one, and each attempt is signed with the
 * webhook's secret at that time (src/api/services/webhook-delivery.ts), so after a rotation the
 * redelivery verifies with the new secret.
 *
 * 404 for an unknown delivery (a deleted webhook's log is deleted with it); 409 while the
 * delivery is pending (it is still being tried), while one of its redeliveries is pending, when
 * the webhook is disabled (the attempt would end as failed at once; test deliveries excepted, as
 * for sending them), or when the stored URL breaks the URL rules of today (stored before a rule
 * was added: change the URL first). Audited as `redeliver` on the webhook.
 */
export async function redeliverWebhookDelivery(
  env: Env,
  actor: Actor,
  deliveryId: string,
): Promise<WebhookDeliveryRow> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const original = await findDelivery(db, deliveryId);
  if (!original) throw notFound("webhook delivery", deliveryId);
  if (original.status === "pending")
    throw conflict(
      `webhook delivery ${deliveryId} is still pending (${original.attempts} of at most ${WEBHOOK_MAX_ATTEMPTS} attempts made): redeliver it once it has been delivered or has failed`,
      { status: original.status, attempts: original.attempts },
    );
  const webhook = await findWebhook(db, original.webhook_id);
  if (!webhook) throw notFound("webhook", original.webhook_id);
  if (!webhook.enabled && original.event_type !== WEBHOOK_TEST_EVENT)
    throw conflict(
      `webhook ${webhook.name} is disabled: enable it to redeliver (its deliveries would fail at once)`,
      { webhookId: webhook.id, enabled: false },
    );
  const urlProblem = webhookUrlProblem(webhook.url);
  if (urlProblem)
    throw conflict(
      `webhook ${webhook.name}'s stored URL ${urlProblem}: change the URL, then redeliver`,
      { webhookId: webhook.id },
    );
  const createdAt = nowIso();
  const row: WebhookDeliveryRow = {
    id: crypto.randomUUID(),
    webhook_id: webhook.id,
    project_id: webhook.project_id,
    event_id: original.event_id,
    event_type: original.event_type,
    body: original.body,
    status: "pending",
    attempts: 0,
    last_status_code: null,
    last_error: null,
    created_at: createdAt,
    next_attempt_at: new Date(Date.parse(createdAt) + FIRST_ATTEMPT_GRACE_MS).toISOString(),
    finished_at: null,
    redelivery_of: original.id,
  };
  const [inserted] = await db.batch([
    insertRedeliveryStatement(db, { ...row, redelivery_of: original.id }),
    auditIfChanged(db, actor, "redeliver", "webhook", webhook.id, webhook.project_id, {
      delivery: original.id,
      redelivery: row.id,
      eventType: original.event_type,
      eventId: original.event_id,
    }),
  ]);
  if ((inserted?.meta.changes ?? 0) === 0) {
    // The insert's guard refused: a redelivery is pending, or the delivery is gone (its webhook
    // was deleted meanwhile; a finished delivery never becomes pending again).
    const pending = (await listRedeliveries(db, original.id)).find((r) => r.status === "pending");
    if (!pending) throw notFound("webhook delivery", original.id);
    throw conflict(
      `a redelivery of webhook delivery ${original.id} is still pending (${pending.id}): wait until it has been delivered or has failed`,
      { redelivery: pending.id },
    );
  }
  await queueFirstAttempts(env, [row.id]);
  return row;
}
