/**
 * Redelivering a webhook delivery (docs/webhooks.md "Redelivering";
 * `POST /webhook-deliveries/{id}/redeliver`), in workerd with the real D1 and WEBHOOKS queue and
 * the loopback receiver of test/support/webhook-receiver.ts, which verifies each signature as the
 * docs tell users to: a receiver down for longer than the whole retry schedule gets the event
 * once more, signed with the webhook's current secret; the log links both deliveries; what is
 * refused (pending deliveries, a pending redelivery, disabled webhooks, stored URLs the rules
 * refuse today, viewers and editors) writes nothing; nothing of the request reaches the receiver.
 */
import { createMessageBatch, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { handleWebhookBatch, WEBHOOK_MAX_ATTEMPTS } from "../../src/api/services/webhook-delivery";
import worker from "../../src/index";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ApiErrorBody,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { hookUrl, pollUntil, readInbox, setInbox } from "../helpers/webhook-inbox";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;
let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

/** A webhook for experiment.created whose URL is a fresh inbox; answers it with its secret and inbox. */
async function webhook(failFirst = 0): Promise<Json & { inbox: string }> {
  const name = uid("redeliver");
  const created = await apiJson("POST", `/projects/${project.id}/webhooks`, 201, {
    body: {
      name: `hook ${name}`,
      url: hookUrl(name),
      events: ["experiment.created"],
    },
  });
  await setInbox(name, created.secret, { failFirst });
  return { ...created, inbox: name };
}

const delivery = (id: string): Promise<Json> => apiJson("GET", `/webhook-deliveries/${id}`, 200);
const log = async (webhookId: string): Promise<Json[]> =>
  (await apiJson("GET", `/webhooks/${webhookId}/deliveries?limit=200`, 200)).items;
const redeliver = (id: string, token?: string) =>
  api("POST", `/webhook-deliveries/${id}/redeliver`, token === undefined ? {} : { token });

/** A test delivery to `hook`, once it has finished (delivered or failed). */
async function finishedTest(hook: Json): Promise<Json> {
  const queued = await apiJson("POST", `/webhooks/${hook.id}/test`, 202);
  return pollUntil(
    () => delivery(queued.id),
    (d) => d.status !== "pending",
    "a finished test delivery",
  );
}

/** An experiment.created event (one delivery to each webhook of the project). */
async function createExperiment(key: string): Promise<void> {
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: `page_${key}`, conditions: ["or", { match: "substring", value: `/${key}` }] },
  });
  const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: `event_${key}`, type: "custom" },
  });
  await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key,
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
    },
  });
}

async function errorOf(response: Response, status: number): Promise<ApiErrorBody["error"]> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  return (JSON.parse(text) as ApiErrorBody).error;
}

beforeEach(async () => {
  project = await createProject();
  vi.spyOn(console, "log").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("redelivering a webhook delivery", () => {
  it(
    "a receiver that answered 500 until the delivery was exhausted gets the event once more on redeliver, signed with the current secret; the log links both",
    { timeout: 90_000 },
    async () => {
      const hook = await webhook(WEBHOOK_MAX_ATTEMPTS);
      await createExperiment("receiver_down");
      const [first] = await pollUntil(
        () => log(hook.id),
        (l) => l.length === 1 && l[0].attempts === 1 && l[0].lastStatusCode === 500,
        "attempt 1",
      );
      expect(first.status).toBe("pending");
      // Pending: refused, nothing written.
      const early = await errorOf(await redeliver(first.id), 409);
      expect(early.message).toContain("still pending");
      expect(await log(hook.id)).toHaveLength(1);

      // The rest of the schedule straight through the consumer (test/api/webhooks.test.ts shows
      // the sweep's timing): every attempt answered 500, then the delivery has failed.
      for (let attempt = 2; attempt <= WEBHOOK_MAX_ATTEMPTS; attempt++)
        await handleWebhookBatch(
          createMessageBatch("splitstream-webhooks", [
            {
              id: uid("msg"),
              timestamp: new Date(),
              attempts: 1,
              body: { deliveryId: first.id, attempt },
            },
          ]),
          env,
        );
      const exhausted = await delivery(first.id);
      expect(exhausted).toMatchObject({ status: "failed", attempts: WEBHOOK_MAX_ATTEMPTS });
      expect(exhausted.attemptLog.map((a: Json) => a.statusCode)).toEqual(
        Array<number>(WEBHOOK_MAX_ATTEMPTS).fill(500),
      );
      const down = await readInbox(hook.inbox);
      expect(down).toHaveLength(WEBHOOK_MAX_ATTEMPTS);
      expect(down.every((d) => d.verified && d.answered === 500)).toBe(true);

      // The receiver is back — and the secret was rotated meanwhile: the redelivery is signed with
      // the new one (the receiver knows only the new one now, and its log starts empty).
      const rotated = await apiJson("POST", `/webhooks/${hook.id}/rotate-secret`, 200);
      await setInbox(hook.inbox, rotated.secret);

      const response = await redeliver(first.id);
      expect(response.status).toBe(202);
      const queued = (await response.json()) as Json;
      expect(response.headers.get("location")).toBe(`/_ss/api/v1/webhook-deliveries/${queued.id}`);
      expect(queued).toMatchObject({
        webhookId: hook.id,
        eventId: first.eventId,
        eventType: "experiment.created",
        status: "pending",
        attempts: 0,
        redeliveryOf: first.id,
      });
      expect(queued.id).not.toBe(first.id);

      const [got] = await pollUntil(
        () => readInbox(hook.inbox),
        (l) => l.length >= 1,
        "the redelivery",
      );
      const redelivered = await pollUntil(
        () => delivery(queued.id),
        (d) => d.status === "delivered",
        "the redelivery delivered",
      );
      // Nothing more arrives (one redelivery, one attempt).
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(await readInbox(hook.inbox)).toHaveLength(1);
      expect(got!.verified).toBe(true);
      expect(got!.answered).toBe(200);
      expect(got!.headers["x-splitstream-delivery"]).toBe(queued.id);
      expect(got!.headers["x-splitstream-event"]).toBe("experiment.created");
      // The body as first sent, byte for byte: the same occurrence (its `id`), a new delivery.
      expect(got!.body).toBe(exhausted.body);
      expect(got!.body).toBe(down[0]!.body);
      expect(JSON.parse(got!.body).id).toBe(first.eventId);
      expect(Number(got!.headers["x-splitstream-timestamp"])).toBeGreaterThan(
        Number(down[0]!.headers["x-splitstream-timestamp"]) - 1,
      );
      expect(redelivered.attemptLog).toEqual([
        expect.objectContaining({ attempt: 1, statusCode: 200 }),
      ]);

      // The log: both deliveries, linked both ways.
      const both = await log(hook.id);
      expect(both.map((d: Json) => [d.id, d.status, d.redeliveryOf])).toEqual([
        [queued.id, "delivered", first.id],
        [first.id, "failed", null],
      ]);
      expect((await delivery(first.id)).redeliveries).toEqual([
        { id: queued.id, status: "delivered", createdAt: queued.createdAt },
      ]);
      expect(redelivered.redeliveries).toEqual([]);

      // Audited on the webhook, for viewers of the audit log too.
      const viewer = await createToken("viewer");
      const audit = (
        await apiJson(
          "GET",
          `/projects/${project.id}/audit-log?resourceType=webhook&resourceId=${hook.id}`,
          200,
          { token: viewer.token },
        )
      ).items as Json[];
      expect(audit.filter((a) => a.action === "redeliver")).toEqual([
        expect.objectContaining({
          resourceId: hook.id,
          actor: expect.objectContaining({ id: "admin-token" }),
          details: {
            delivery: first.id,
            redelivery: queued.id,
            eventType: "experiment.created",
            eventId: first.eventId,
          },
        }),
      ]);
    },
  );

  it("a delivered one can be redelivered too; one redelivery at a time, the next once it has finished", async () => {
    const hook = await webhook();
    const delivered = await finishedTest(hook);
    expect(delivered.status).toBe("delivered");

    // The queue refuses the send: the redelivery stays pending (the sweep will queue it).
    vi.spyOn(env.WEBHOOKS, "sendBatch").mockRejectedValueOnce(new Error("queue down"));
    vi.spyOn(console, "error").mockImplementation(() => {});
    const again = await apiJson("POST", `/webhook-deliveries/${delivered.id}/redeliver`, 202);
    expect(again).toMatchObject({ status: "pending", redeliveryOf: delivered.id });
    const twice = await errorOf(await redeliver(delivered.id), 409);
    expect(twice.message).toContain(`is still pending (${again.id})`);
    // The redelivery itself is pending: refused as well.
    await errorOf(await redeliver(again.id), 409);
    expect(await log(hook.id)).toHaveLength(2);

    // The sweep queues it once its first attempt's grace period has passed.
    await worker.scheduled(
      createScheduledController({
        scheduledTime: Date.parse(again.nextAttemptAt) + 1,
        cron: "* * * * *",
      }),
      env,
    );
    await pollUntil(
      () => delivery(again.id),
      (d) => d.status === "delivered",
      "the swept redelivery",
    );
    const third = await apiJson("POST", `/webhook-deliveries/${delivered.id}/redeliver`, 202);
    // A redelivery of a redelivery names the one it was made from.
    const fourth = await apiJson("POST", `/webhook-deliveries/${again.id}/redeliver`, 202);
    expect(fourth.redeliveryOf).toBe(again.id);
    await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 4,
      "four deliveries",
    );
    const got = await readInbox(hook.inbox);
    expect(got.every((d) => d.verified && d.answered === 200)).toBe(true);
    expect(new Set(got.map((d) => d.body)).size).toBe(1);
    expect(got.map((d) => d.headers["x-splitstream-delivery"])).toEqual([
      delivered.id,
      again.id,
      expect.any(String),
      expect.any(String),
    ]);
    expect(new Set(got.map((d) => d.headers["x-splitstream-delivery"]))).toEqual(
      new Set([delivered.id, again.id, third.id, fourth.id]),
    );
  });

  it("viewers and editors are refused; unknown deliveries are 404; a deleted webhook's deliveries are gone", async () => {
    const hook = await webhook();
    const done = await finishedTest(hook);
    for (const role of ["viewer", "editor"] as const) {
      const token = await createToken(role);
      await errorOf(await redeliver(done.id, token.token), 403);
    }
    await errorOf(await redeliver(done.id, "not-a-token"), 401);
    await errorOf(await redeliver("no-such-delivery"), 404);
    expect(await log(hook.id)).toHaveLength(1);
    expect((await delivery(done.id)).redeliveries).toEqual([]);

    expect((await api("DELETE", `/webhooks/${hook.id}`)).status).toBe(204);
    await errorOf(await redeliver(done.id), 404);
  });

  it("a disabled webhook is refused (a test delivery excepted, as test-sends are); the request's body is ignored", async () => {
    const hook = await webhook();
    await createExperiment("disabled_later");
    const [created] = await pollUntil(
      () => log(hook.id),
      (l) => l.length === 1 && l[0].status === "delivered",
      "a delivered event",
    );
    const test = await finishedTest(hook);
    await apiJson("PATCH", `/webhooks/${hook.id}`, 200, { body: { enabled: false } });
    const refused = await errorOf(await redeliver(created.id), 409);
    expect(refused.message).toContain("is disabled");
    expect(await log(hook.id)).toHaveLength(2);
    // A test delivery goes to a disabled webhook (as POST /webhooks/{id}/test does).
    await apiJson("POST", `/webhook-deliveries/${test.id}/redeliver`, 202);

    await apiJson("PATCH", `/webhooks/${hook.id}`, 200, { body: { enabled: true } });
    // Whatever the request carries, the redelivery is the stored body to the stored URL.
    const response = await api("POST", `/webhook-deliveries/${created.id}/redeliver`, {
      body: {
        body: '{"type":"experiment.created","forged":true}',
        url: "https://attacker.example/collect",
        webhookId: "another",
      },
    });
    expect(response.status).toBe(202);
    const queued = (await response.json()) as Json;
    expect(queued.webhookId).toBe(hook.id);
    const sent = await pollUntil(
      () => delivery(queued.id),
      (d) => d.status !== "pending",
      "the redelivery",
    );
    expect(sent.status).toBe("delivered");
    expect(sent.body).toBe((await delivery(created.id)).body);
    const got = await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 4,
      "4 deliveries",
    );
    expect(got.map((d) => d.body)).not.toContain('{"type":"experiment.created","forged":true}');
    expect(got.every((d) => d.verified)).toBe(true);
  });

  it("a stored URL that today's URL rules refuse (stored before a rule) is not called: 409", async () => {
    const hook = await webhook();
    const done = await finishedTest(hook);
    // As if stored before the rules: straight into D1 (the API refuses it, test/api/webhooks.test.ts).
    for (const url of ["https://169.254.169.254/latest/meta-data", "https://hooks.example/a\nb"]) {
      await env.DB.prepare("UPDATE webhooks SET url = ? WHERE id = ?").bind(url, hook.id).run();
      const refused = await errorOf(await redeliver(done.id), 409);
      expect(refused.message).toContain("change the URL");
    }
    expect(await log(hook.id)).toHaveLength(1);
  });
});
