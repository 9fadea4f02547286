/**
 * Webhooks end to end (docs/webhooks.md), in workerd with the real D1, KV and WEBHOOKS queue:
 * events made through the API and the scheduled checks are queued, the real queue hands them to
 * the Worker's `queue` handler, which POSTs them to a receiver on loopback
 * (test/support/webhook-receiver.ts, a Node server that verifies each signature as the docs tell
 * users to). Time is controlled by calling the `scheduled` handler with a chosen `scheduledTime`:
 * retries are due when their backoff has passed, never before.
 */
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  handleWebhookBatch,
  WEBHOOK_MAX_ATTEMPTS,
  WEBHOOK_RETRY_DELAYS_MS,
} from "../../src/api/services/webhook-delivery";
import worker from "../../src/index";
import type { ConversionMessage, ImpressionMessage } from "../../src/shared/event-messages";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { deliverToConsumer } from "../helpers/queue";
import { hookUrl, pollUntil, readInbox, setInbox } from "../helpers/webhook-inbox";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

let project: ProjectWithEnvironments;
const production = () => project.environments.find((e) => e.key === "production")!;
const collection = (plural: string) => `/projects/${project.id}/${plural}`;

/** A webhook (admin) whose URL is a fresh inbox of the receiver; answers it with its secret. */
async function webhook(
  body: Json,
  options: { failFirst?: number; failStatus?: number; receiverSecret?: string } = {},
): Promise<Json & { inbox: string }> {
  const name = uid("inbox");
  const created = await apiJson("POST", collection("webhooks"), 201, {
    body: { name: `hook ${name}`, url: hookUrl(name), ...body },
  });
  expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{32}$/);
  await setInbox(name, options.receiverSecret ?? created.secret, options);
  return { ...created, inbox: name };
}

async function deliveries(webhookId: string): Promise<Json[]> {
  return (await apiJson("GET", `/webhooks/${webhookId}/deliveries?limit=200`, 200)).items;
}

async function delivery(id: string): Promise<Json> {
  return apiJson("GET", `/webhook-deliveries/${id}`, 200);
}

/** An experiment on its own page, with one variation and one metric. */
async function simpleExperiment(key: string): Promise<Json> {
  const page = await apiJson("POST", collection("pages"), 201, {
    body: { key: `page_${key}`, conditions: ["or", { match: "substring", value: `/${key}` }] },
  });
  const event = await apiJson("POST", collection("events"), 201, {
    body: { key: `event_${key}`, type: "custom" },
  });
  return apiJson("POST", collection("experiments"), 201, {
    body: {
      key,
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
    },
  });
}

/** The per-minute cron at `at`: the webhook sweep. */
async function minuteRun(at: number): Promise<void> {
  await worker.scheduled(createScheduledController({ scheduledTime: at, cron: "* * * * *" }), env);
}

beforeEach(async () => {
  project = await createProject();
  vi.spyOn(console, "log").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("webhook events", () => {
  it(
    "a receiver gets each event type once per occurrence, every delivery signed as documented",
    { timeout: 90_000 },
    async () => {
      const hook = await webhook({ events: ["*"] });
      const page = await apiJson("POST", collection("pages"), 201, {
        body: { key: "shop", conditions: ["or", { match: "substring", value: "/shop" }] },
      });
      const purchase = await apiJson("POST", collection("events"), 201, {
        body: { key: "purchase", type: "custom" },
      });
      const cart = await apiJson("POST", collection("events"), 201, {
        body: { key: "add_to_cart", type: "custom" },
      });
      const experiment = await apiJson("POST", collection("experiments"), 201, {
        body: {
          key: "checkout",
          pageIds: [page.id],
          metrics: [
            { eventId: purchase.id, aggregator: "unique" },
            { eventId: cart.id, aggregator: "unique", guardrail: { action: "mark" } },
          ],
          variations: ["a", "b"].map((key) => ({ key, weight: 5000 })),
        },
      });
      await apiJson("POST", `/experiments/${experiment.id}/start`, 200);

      // Traffic: b wins on purchases (10 % → 40 %), harms add_to_cart (30 % → 12 %), and gets
      // 300 visitors to a's 400 on a 50/50 split (a sample-ratio mismatch, p ≈ 0.0002).
      const at = Date.now() - 3_600_000;
      const bodies: unknown[] = [];
      const plan = [
        { variation: experiment.variations[0], visitors: 400, purchase: 40, cart: 120 },
        { variation: experiment.variations[1], visitors: 300, purchase: 120, cart: 36 },
      ];
      for (const arm of plan)
        for (let n = 0; n < arm.visitors; n++) {
          const visitorId = uid("visitor");
          bodies.push({
            v: 1,
            type: "impression",
            uuid: uid("i"),
            sdkKey: production().sdkKey,
            revision: "2",
            visitorId,
            experimentId: experiment.id,
            variationId: arm.variation.id,
            timestamp: at,
            source: "edge",
          } satisfies ImpressionMessage);
          for (const [event, converters] of [
            [purchase, arm.purchase],
            [cart, arm.cart],
          ] as const)
            if (n < converters)
              bodies.push({
                v: 1,
                type: "conversion",
                uuid: uid("c"),
                sdkKey: production().sdkKey,
                revision: "2",
                visitorId,
                eventId: event.id,
                eventKey: event.key,
                timestamp: at + 60_000,
                source: "browser",
              } satisfies ConversionMessage);
        }
      await deliverToConsumer(bodies);

      // The hourly run: guardrail breach, significance and SRM — twice: each is told once.
      for (let run = 0; run < 2; run++)
        await worker.scheduled(
          createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
          env,
        );

      await apiJson("POST", `/experiments/${experiment.id}/pause`, 200);
      await apiJson("POST", `/experiments/${experiment.id}/resume`, 200);
      const revisionsBefore = (
        await apiJson("GET", `/environments/${production().id}/revisions`, 200)
      ).items;
      await apiJson("POST", `/environments/${production().id}/rollback`, 200, {
        body: { revision: revisionsBefore[1].revision },
      });
      await apiJson("POST", `/experiments/${experiment.id}/archive`, 200);

      // What happened, from the API's own records: every published revision of both environments.
      const published: string[] = [];
      const rolledBack: string[] = [];
      for (const environment of project.environments) {
        const revisions = (
          await apiJson("GET", `/environments/${environment.id}/revisions?limit=200`, 200)
        ).items as Json[];
        for (const r of revisions)
          (r.rollbackOf === null ? published : rolledBack).push(`${environment.key}#${r.revision}`);
      }
      expect(rolledBack).toHaveLength(1);

      const expected: Record<string, number> = {
        "experiment.created": 1,
        "experiment.started": 1,
        "experiment.paused": 1,
        "experiment.resumed": 1,
        "experiment.archived": 1,
        "datafile.published": published.length,
        "datafile.rolled_back": 1,
        "significance.reached": 1,
        "srm.detected": 1,
        "guardrail.breached": 1,
      };
      const total = Object.values(expected).reduce((a, b) => a + b, 0);
      const got = await pollUntil(
        () => readInbox(hook.inbox),
        (list) => list.length >= total,
        `${total} deliveries`,
      );
      // Nothing more arrives later (no duplicates from the queue or the second hourly run).
      await minuteRun(Date.now());
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const all = await readInbox(hook.inbox);
      expect(all).toHaveLength(got.length);

      const bodiesByType = new Map<string, Json[]>();
      for (const d of all) {
        expect(d.verified).toBe(true);
        expect(d.answered).toBe(200);
        expect(d.headers["content-type"]).toBe("application/json");
        const envelope = JSON.parse(d.body);
        expect(d.headers["x-splitstream-event"]).toBe(envelope.type);
        expect(envelope.projectId).toBe(project.id);
        bodiesByType.set(envelope.type, [...(bodiesByType.get(envelope.type) ?? []), envelope]);
      }
      expect(
        Object.fromEntries([...bodiesByType].map(([type, list]) => [type, list.length])),
      ).toEqual(expected);
      // One delivery id and one event id per delivery.
      expect(new Set(all.map((d) => d.headers["x-splitstream-delivery"])).size).toBe(all.length);
      expect(new Set(all.map((d) => JSON.parse(d.body).id)).size).toBe(all.length);
      // Each publish is told once: the (environment, revision) pairs are exactly the revisions.
      expect(
        bodiesByType
          .get("datafile.published")!
          .map((e) => `${e.environment}#${e.data.revision}`)
          .sort(),
      ).toEqual(published.sort());
      expect(bodiesByType.get("datafile.rolled_back")![0].data).toMatchObject({
        rollbackOf: revisionsBefore[1].revision,
        environment: { key: "production", sdkKey: production().sdkKey },
      });

      const [started] = bodiesByType.get("experiment.started")!;
      expect(started).toMatchObject({
        environment: "production",
        actor: { id: "admin-token" },
        data: {
          experiment: { id: experiment.id, key: "checkout" },
          previousStatus: "Not started",
          status: "Running",
        },
      });
      const [significance] = bodiesByType.get("significance.reached")!;
      expect(significance.data).toMatchObject({
        experiment: { id: experiment.id, key: "checkout" },
        metric: { eventId: purchase.id, eventKey: "purchase", aggregator: "unique" },
        variation: { id: experiment.variations[1].id, key: "b" },
        verdict: "winner",
        mode: "sequential",
      });
      expect(significance.data.pValue).toBeLessThan(0.1);
      const [srm] = bodiesByType.get("srm.detected")!;
      expect(srm.data.pValue).toBeLessThan(0.001);
      expect(srm.data.visitors).toEqual({ a: 400, b: 300 });
      const [breach] = bodiesByType.get("guardrail.breached")!;
      expect(breach).toMatchObject({
        actor: { id: "guardrail" },
        data: { eventKey: "add_to_cart", variationKey: "b", action: "mark" },
      });

      // The delivery log has them all, delivered on the first attempt.
      const log = await deliveries(hook.id);
      expect(log).toHaveLength(total);
      expect(log.every((d: Json) => d.status === "delivered" && d.attempts === 1)).toBe(true);
    },
  );

  it("filters by event type and environment; a Slack webhook gets {text}", async () => {
    const onlyStarts = await webhook({
      events: ["experiment.started"],
      environments: ["development"],
    });
    const slack = await webhook({ events: ["experiment.started"], format: "slack" });
    const experiment = await simpleExperiment("hero");
    // Names are the users': Slack's mrkdwn gets them escaped.
    const editor = await createToken("editor", { name: "Ed <b>&</b>" });
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200, {
      token: editor.token,
      body: { environment: "production" },
    });
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200, {
      token: editor.token,
      body: { environment: "development" },
    });
    const slackGot = await pollUntil(
      () => readInbox(slack.inbox),
      (l) => l.length >= 2,
      "2 slack",
    );
    const filteredGot = await pollUntil(
      () => readInbox(onlyStarts.inbox),
      (l) => l.length >= 1,
      "1 filtered",
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await readInbox(onlyStarts.inbox)).toHaveLength(1);
    expect(JSON.parse(filteredGot[0]!.body)).toMatchObject({
      type: "experiment.started",
      environment: "development",
    });
    expect(slackGot).toHaveLength(2);
    for (const d of slackGot) {
      expect(d.verified).toBe(true);
      const body = JSON.parse(d.body);
      expect(Object.keys(body)).toEqual(["text"]);
      expect(body.text).toMatch(
        /^Splitstream: experiment .* started in (production|development) by /,
      );
      expect(body.text).toContain("by Ed &lt;b&gt;&amp;&lt;/b&gt;");
    }
  });
});

describe("webhook delivery", () => {
  it(
    "a receiver answering 500 three times gets the delivery on the fourth try, after the backoff; the log shows all four",
    { timeout: 60_000 },
    async () => {
      const hook = await webhook({ events: ["experiment.created"] }, { failFirst: 3 });
      await simpleExperiment("retry_me");
      const [queued] = await pollUntil(
        () => deliveries(hook.id),
        (l) =>
          l.length === 1 &&
          l[0].attempts === 1 &&
          l[0].nextAttemptAt !== null &&
          l[0].lastStatusCode === 500,
        "attempt 1",
      );
      let current = await delivery(queued.id);
      for (let attempt = 2; attempt <= 4; attempt++) {
        const previous = current.attemptLog[attempt - 2];
        const due = Date.parse(current.nextAttemptAt);
        // The backoff after attempt n − 1.
        expect(due - Date.parse(previous.at) - previous.durationMs).toBeGreaterThanOrEqual(
          WEBHOOK_RETRY_DELAYS_MS[attempt - 2]!,
        );
        // Before it is due, the sweep leaves it alone.
        await minuteRun(due - 1_000);
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await delivery(queued.id)).attempts).toBe(attempt - 1);
        // Once due, the sweep queues it and the queue delivers it.
        await minuteRun(due + 1);
        current = await pollUntil(
          () => delivery(queued.id),
          (d) =>
            d.attemptLog.length === attempt &&
            (d.status !== "pending" || d.nextAttemptAt !== null) &&
            d.attempts === attempt &&
            (attempt === 4 ? d.status === "delivered" : d.lastStatusCode === 500),
          `attempt ${attempt}`,
        );
      }
      expect(current.status).toBe("delivered");
      expect(current.attemptLog.map((a: Json) => a.statusCode)).toEqual([500, 500, 500, 200]);
      expect(current.attemptLog.map((a: Json) => a.attempt)).toEqual([1, 2, 3, 4]);
      expect(current.nextAttemptAt).toBeNull();
      expect(current.finishedAt).not.toBeNull();

      const got = await readInbox(hook.inbox);
      expect(got.map((d) => d.answered)).toEqual([500, 500, 500, 200]);
      // The same delivery, the same body, each attempt freshly signed and verified.
      expect(new Set(got.map((d) => d.headers["x-splitstream-delivery"]))).toEqual(
        new Set([queued.id]),
      );
      expect(new Set(got.map((d) => d.body)).size).toBe(1);
      expect(got.every((d) => d.verified)).toBe(true);
      // Nothing more is sent.
      await minuteRun(Date.now() + 7 * 86_400_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await readInbox(hook.inbox)).toHaveLength(4);
    },
  );

  it("a receiver that refuses the signature answers 401: the delivery fails at once and the log says so", async () => {
    const hook = await webhook(
      { events: ["experiment.created"] },
      { receiverSecret: "whsec_not-the-secret-the-receiver-should-have" },
    );
    await simpleExperiment("wrong_secret");
    const [failed] = await pollUntil(
      () => deliveries(hook.id),
      (l) => l.length === 1 && l[0].status === "failed",
      "a failed delivery",
    );
    const detail = await delivery(failed.id);
    expect(detail.attemptLog).toEqual([
      expect.objectContaining({ attempt: 1, statusCode: 401, response: "invalid signature" }),
    ]);
    expect(detail.lastStatusCode).toBe(401);
    const got = await readInbox(hook.inbox);
    expect(got).toHaveLength(1);
    expect(got[0]!.verified).toBe(false);
  });

  it("rotating the secret: later deliveries verify only with the new one", async () => {
    const hook = await webhook({ events: ["experiment.created"] });
    const rotated = await apiJson("POST", `/webhooks/${hook.id}/rotate-secret`, 200);
    expect(rotated.secret).not.toBe(hook.secret);
    // The receiver still has the old secret: refused.
    await simpleExperiment("after_rotation");
    await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 1,
      "one delivery",
    );
    expect((await readInbox(hook.inbox))[0]!.verified).toBe(false);
    // Given the new one, it verifies.
    await setInbox(hook.inbox, rotated.secret);
    await simpleExperiment("after_rotation_2");
    const got = await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 1,
      "one delivery",
    );
    expect(got[0]!.verified).toBe(true);
  });

  it(
    "test-send delivers webhook.test; an unreachable receiver is retried, then given up after the last attempt",
    { timeout: 60_000 },
    async () => {
      const hook = await webhook({ events: ["experiment.created"] });
      const queued = await apiJson("POST", `/webhooks/${hook.id}/test`, 202);
      expect(queued).toMatchObject({ eventType: "webhook.test", status: "pending", attempts: 0 });
      const [got] = await pollUntil(
        () => readInbox(hook.inbox),
        (l) => l.length === 1,
        "test delivery",
      );
      expect(got!.verified).toBe(true);
      expect(JSON.parse(got!.body)).toMatchObject({
        type: "webhook.test",
        data: { webhookId: hook.id },
      });

      // A URL nothing answers (the tests' outbound refuses it with 599: a 5xx).
      const gone = await apiJson("POST", collection("webhooks"), 201, {
        body: { name: "nowhere", url: "https://nowhere.example/hook", events: ["*"] },
      });
      const test = await apiJson("POST", `/webhooks/${gone.id}/test`, 202);
      let current = await pollUntil(
        () => delivery(test.id),
        (d) => d.attempts === 1 && d.nextAttemptAt !== null && d.attemptLog.length === 1,
        "attempt 1",
      );
      // The later attempts straight through the consumer (the sweep's queueing is shown above).
      for (let attempt = 2; attempt <= WEBHOOK_MAX_ATTEMPTS; attempt++) {
        const batch = createMessageBatch("splitstream-webhooks", [
          {
            id: uid("msg"),
            timestamp: new Date(),
            attempts: 1,
            body: { deliveryId: test.id, attempt },
          },
        ]);
        await handleWebhookBatch(batch, env);
        current = await delivery(test.id);
        expect(current.attemptLog).toHaveLength(attempt);
        expect(current.status).toBe(attempt < WEBHOOK_MAX_ATTEMPTS ? "pending" : "failed");
      }
      expect(current.status).toBe("failed");
      expect(current.attemptLog).toHaveLength(WEBHOOK_MAX_ATTEMPTS);
      expect(current.attemptLog.every((a: Json) => a.statusCode === 599)).toBe(true);
    },
  );

  it("a queue message delivered twice makes one attempt; a malformed message is dropped, the rest of its batch delivered", async () => {
    const hook = await webhook({ events: ["experiment.created"] });
    const queued = await apiJson("POST", `/webhooks/${hook.id}/test`, 202);
    const message = (body: unknown) => ({
      id: uid("msg"),
      timestamp: new Date(),
      attempts: 1,
      body,
    });
    const batch = createMessageBatch("splitstream-webhooks", [
      message({ deliveryId: queued.id, attempt: 1 }),
      message({ deliveryId: queued.id, attempt: 1 }),
      message("not a message"),
      message({ deliveryId: queued.id, attempt: 2 ** 53 }),
      message(null),
    ]);
    await handleWebhookBatch(batch, env);
    expect((await getQueueResult(batch, createExecutionContext())).ackAll).toBe(false);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(5);
    // The real queue also delivers the message: still one attempt in all.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const detail = await delivery(queued.id);
    expect(detail.attemptLog).toHaveLength(1);
    expect(detail.status).toBe("delivered");
    expect(await readInbox(hook.inbox)).toHaveLength(1);
  });

  it("when the queue refuses the send, the change still succeeds and the sweep delivers it later", async () => {
    const hook = await webhook({ events: ["experiment.created"] });
    vi.spyOn(env.WEBHOOKS, "sendBatch").mockRejectedValueOnce(new Error("queue down"));
    vi.spyOn(console, "error").mockImplementation(() => {});
    await simpleExperiment("queue_down");
    const [pending] = await deliveries(hook.id);
    expect(pending).toMatchObject({ status: "pending", attempts: 0 });
    // Not yet: the first attempt's grace period (the queue may still hand it over).
    await minuteRun(Date.now());
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await readInbox(hook.inbox)).toHaveLength(0);
    await minuteRun(Date.parse(pending.nextAttemptAt) + 1);
    const got = await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 1,
      "swept delivery",
    );
    expect(got[0]!.verified).toBe(true);
  });
});

describe("webhooks API", () => {
  it("admin only; the secret is shown once; URLs, events and environments are validated with paths", async () => {
    const editor = await createToken("editor");
    const denied = await api("POST", collection("webhooks"), {
      token: editor.token,
      body: { name: "x", url: "https://example.com/h", events: ["*"] },
    });
    expect(denied.status).toBe(403);
    expect((await api("GET", collection("webhooks"), { token: editor.token })).status).toBe(403);

    const invalid = async (body: Json, path: string) => {
      const response = await api("POST", collection("webhooks"), { body });
      expect(response.status, JSON.stringify(body)).toBe(422);
      const error = ((await response.json()) as Json).error;
      expect(
        error.details.map((d: Json) => d.path),
        JSON.stringify(error),
      ).toContain(path);
    };
    const base = { name: "hook", url: "https://example.com/h", events: ["*"] };
    await invalid({ ...base, url: "http://example.com/h" }, "$.body.url");
    await invalid({ ...base, url: "ftp://example.com/h" }, "$.body.url");
    await invalid({ ...base, url: "https://user:pw@example.com/h" }, "$.body.url");
    await invalid({ ...base, url: "not a url" }, "$.body.url");
    await invalid({ ...base, url: "https://hooks.example.com/a\r\nX-Injected: y" }, "$.body.url");
    await invalid({ ...base, url: "https://hooks.example.com/a b" }, "$.body.url");
    // Nothing inside: private, loopback, link-local and reserved addresses (https too).
    for (const url of [
      "https://169.254.169.254/latest",
      "https://10.0.0.1/h",
      "https://172.16.5.4/h",
      "https://192.168.1.1/h",
      "https://127.0.0.1/h",
      "https://0x7f000001/h",
      "https://[::1]/h",
      "https://[fd00::1]/h",
      "https://[::ffff:10.0.0.1]/h",
      "https://localhost/h",
      "https://printer.localhost/h",
    ])
      await invalid({ ...base, url }, "$.body.url");
    await invalid({ ...base, url: `https://example.com/${"a".repeat(3000)}` }, "$.body.url");
    await invalid({ ...base, events: ["experiment.exploded"] }, "$.body.events[0]");
    await invalid({ ...base, events: [] }, "$.body.events");
    await invalid({ ...base, environments: ["staging"] }, "$.body.environments[0]");
    await invalid({ ...base, format: "xml" }, "$.body.format");
    await invalid({ ...base, secret: "mine" }, "$.body.secret");

    const created = await apiJson("POST", collection("webhooks"), 201, {
      body: {
        ...base,
        url: "http://localhost:9999/h",
        events: ["srm.detected", "experiment.started", "srm.detected"],
      },
    });
    expect(created.events).toEqual(["experiment.started", "srm.detected"]);
    const read = await apiJson("GET", `/webhooks/${created.id}`, 200);
    expect(read.secret).toBeUndefined();
    expect(JSON.stringify(await apiJson("GET", collection("webhooks"), 200))).not.toContain(
      created.secret,
    );

    // If-Match: a stale version is refused.
    const stale = await api("PATCH", `/webhooks/${created.id}`, {
      body: { enabled: false },
      headers: { "if-match": `"${created.version + 5}"` },
    });
    expect(stale.status).toBe(409);
    const patched = await apiJson("PATCH", `/webhooks/${created.id}`, 200, {
      body: { enabled: false, events: ["*", "srm.detected"] },
    });
    expect(patched).toMatchObject({ enabled: false, events: ["*"], version: created.version + 1 });

    // Audited, without the secret, and with the URL's host only (a Slack URL's path is a secret):
    // viewers read the audit log.
    const slack = await apiJson("POST", collection("webhooks"), 201, {
      body: { ...base, url: "https://hooks.slack.com/services/T000/B000/XXXXSECRET" },
    });
    await apiJson("PATCH", `/webhooks/${slack.id}`, 200, {
      body: { url: "https://hooks.slack.com/services/T000/B000/YYYYSECRET" },
    });
    const viewer = await createToken("viewer");
    const audit = (
      await apiJson("GET", `/projects/${project.id}/audit-log?resourceType=webhook`, 200, {
        token: viewer.token,
      })
    ).items as Json[];
    expect(audit.map((a) => a.action).sort()).toEqual(["create", "create", "update", "update"]);
    const auditText = JSON.stringify(audit);
    expect(auditText).not.toContain(created.secret);
    expect(auditText).not.toContain("SECRET");
    expect(auditText).toContain("https://hooks.slack.com/…");

    expect((await api("DELETE", `/webhooks/${created.id}`)).status).toBe(204);
    expect((await api("GET", `/webhooks/${created.id}`)).status).toBe(404);
    expect((await api("GET", `/webhooks/${created.id}/deliveries`)).status).toBe(404);
    expect((await api("GET", `/projects/000000000000/webhooks`)).status).toBe(404);
    expect((await api("GET", `/webhook-deliveries/nope`)).status).toBe(404);
  });

  it("a disabled webhook gets nothing; deleting one drops its queued deliveries", async () => {
    const hook = await webhook({ events: ["experiment.created"], enabled: false });
    await simpleExperiment("while_disabled");
    expect(await deliveries(hook.id)).toEqual([]);
    await apiJson("PATCH", `/webhooks/${hook.id}`, 200, { body: { enabled: true } });
    await simpleExperiment("while_enabled");
    await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 1,
      "one delivery",
    );
    expect(JSON.parse((await readInbox(hook.inbox))[0]!.body).data.experiment.key).toBe(
      "while_enabled",
    );

    // A delivery the queue did not take yet, then the webhook is deleted: nothing is sent.
    vi.spyOn(env.WEBHOOKS, "sendBatch").mockRejectedValueOnce(new Error("queue down"));
    vi.spyOn(console, "error").mockImplementation(() => {});
    await simpleExperiment("before_delete");
    const [pending] = (await deliveries(hook.id)).filter((d: Json) => d.status === "pending");
    expect(pending).toBeDefined();
    expect((await api("DELETE", `/webhooks/${hook.id}`)).status).toBe(204);
    expect((await api("GET", `/webhook-deliveries/${pending.id}`)).status).toBe(404);
    await minuteRun(Date.now() + 3_600_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await readInbox(hook.inbox)).toHaveLength(1);
  });
});

describe("result alerts", () => {
  it("a sample-ratio mismatch is told once, to the webhooks that want it in that environment; one nobody wanted is told later", async () => {
    const staging = await webhook({ events: ["srm.detected"], environments: ["development"] });
    const experiment = await simpleExperiment("lopsided");
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
    const at = Date.now() - 3_600_000;
    const bodies: unknown[] = [];
    for (const [variation, visitors] of [
      [experiment.variations[0], 400],
      [experiment.variations[1], 300],
    ] as const)
      for (let n = 0; n < visitors; n++)
        bodies.push({
          v: 1,
          type: "impression",
          uuid: uid("i"),
          sdkKey: production().sdkKey,
          revision: "2",
          visitorId: uid("visitor"),
          experimentId: experiment.id,
          variationId: variation.id,
          timestamp: at,
          source: "edge",
        } satisfies ImpressionMessage);
    await deliverToConsumer(bodies);
    const hourly = () =>
      worker.scheduled(
        createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
        env,
      );
    // Only a development webhook listens: the production mismatch is told to nobody, and kept
    // for a webhook that wants it.
    await hourly();
    expect(await deliveries(staging.id)).toEqual([]);
    const prodHook = await webhook({ events: ["srm.detected"], environments: ["production"] });
    await hourly();
    await hourly();
    const got = await pollUntil(
      () => readInbox(prodHook.inbox),
      (l) => l.length >= 1,
      "srm",
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await readInbox(prodHook.inbox)).toHaveLength(1);
    expect(JSON.parse(got[0]!.body)).toMatchObject({
      type: "srm.detected",
      environment: "production",
      data: { experiment: { id: experiment.id }, visitors: { a: 400, b: 300 } },
    });
    expect(await deliveries(staging.id)).toEqual([]);
  });
});
