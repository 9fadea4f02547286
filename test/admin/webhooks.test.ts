/**
 * The webhook pages of the admin (docs/webhooks.md "In the admin") through the Worker's fetch
 * handler with the real D1 and WEBHOOKS queue: create (secret shown once, after confirming with
 * the signed-in token), the page with its delivery log, test-send delivered to the loopback
 * receiver (test/support/webhook-receiver.ts), a delivery's attempts, change, rotate, delete, and
 * the refusals (an editor; a missing confirmation; a bad URL named beside its field).
 */
import { beforeEach, describe, expect, it } from "vitest";
import { adminFetch, adminPost } from "../helpers/admin";
import {
  ADMIN_TOKEN,
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { hookUrl, pollUntil, readInbox, setInbox } from "../helpers/webhook-inbox";

let project: ProjectWithEnvironments;

beforeEach(async () => {
  project = await createProject();
});

describe("webhook pages", () => {
  it("an admin creates a webhook, sees its secret once, sends a test that the receiver verifies, and reads the log", async () => {
    const cookie = await adminSession();
    const empty = await adminFetch(`/projects/${project.id}/webhooks`, { cookie });
    expect(empty.status).toBe(200);
    expect(await empty.text()).toContain("No webhooks yet.");

    // A bad URL and no confirmation: refused, each beside its field.
    const refused = await adminPost(`/projects/${project.id}/webhooks`, cookie, [
      ["name", "CI"],
      ["url", "http://example.com/hook"],
      ["format", "json"],
      ["events", "experiment.started"],
      ["enabled", "on"],
      ["confirmToken", "wrong"],
    ]);
    expect(refused.status).toBe(422);
    const refusedPage = await refused.text();
    expect(refusedPage).toContain("confirm with the API token you signed in with");

    const refusedUrl = await adminPost(`/projects/${project.id}/webhooks`, cookie, [
      ["name", "CI"],
      ["url", "http://example.com/hook"],
      ["format", "json"],
      ["events", "experiment.started"],
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(refusedUrl.status).toBe(422);
    expect(await refusedUrl.text()).toContain("must be https");

    const inbox = `admin-${crypto.randomUUID()}`;
    const created = await adminPost(`/projects/${project.id}/webhooks`, cookie, [
      ["name", "Team <channel>"],
      ["url", hookUrl(inbox)],
      ["format", "json"],
      ["events", "experiment.started"],
      ["events", "guardrail.breached"],
      ["environments", "production"],
      ["enabled", "on"],
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(created.status).toBe(200);
    const createdPage = await created.text();
    const secret = /value="(whsec_[A-Za-z0-9_-]{32})"/.exec(createdPage)?.[1];
    expect(secret).toBeDefined();
    expect(createdPage).toContain("Team &lt;channel&gt;");
    expect(created.headers.get("cache-control")).toContain("no-store");
    await setInbox(inbox, secret!);

    const [hook] = (await apiJson("GET", `/projects/${project.id}/webhooks`, 200)).items;
    expect(hook).toMatchObject({
      name: "Team <channel>",
      events: ["experiment.started", "guardrail.breached"],
      environments: ["production"],
      enabled: true,
    });
    // Listed; the secret is on no other page.
    const list = await (await adminFetch(`/projects/${project.id}/webhooks`, { cookie })).text();
    expect(list).toContain(`data-webhook="${hook.id}"`);
    expect(list).not.toContain(secret);

    const sent = await adminPost(`/webhooks/${hook.id}/test`, cookie, []);
    expect(sent.status).toBe(303);
    const received = await pollUntil(
      () => readInbox(inbox),
      (l) => l.length > 0,
      "the test delivery",
    );
    expect(received).toHaveLength(1);
    expect(received[0]!.verified).toBe(true);

    const page = await (await adminFetch(`/webhooks/${hook.id}`, { cookie })).text();
    expect(page).not.toContain(secret);
    const deliveryId = /data-delivery="([^"]+)"/.exec(page)?.[1];
    expect(deliveryId).toBeDefined();
    expect(page).toContain("webhook.test");
    const detail = await (await adminFetch(`/webhook-deliveries/${deliveryId}`, { cookie })).text();
    expect(detail).toContain('data-attempt="1"');
    expect(detail).toContain("<td>200</td>");

    // Change: disable it.
    const changeForm: Array<[string, string]> = [
      ["version", String(hook.version)],
      ["name", "Team"],
      ["url", hook.url],
      ["format", "slack"],
      ["events", "*"],
    ];
    // Without the signed-in token: refused (a script on the site could re-point the webhook).
    const unconfirmed = await adminPost(`/webhooks/${hook.id}`, cookie, changeForm);
    expect(unconfirmed.status).toBe(422);
    expect((await apiJson("GET", `/webhooks/${hook.id}`, 200)).enabled).toBe(true);
    const changed = await adminPost(`/webhooks/${hook.id}`, cookie, [
      ...changeForm,
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(changed.status).toBe(303);
    expect(await apiJson("GET", `/webhooks/${hook.id}`, 200)).toMatchObject({
      name: "Team",
      format: "slack",
      events: ["*"],
      environments: [],
      enabled: false,
    });

    // Rotate: a new secret, shown once.
    const current = await apiJson("GET", `/webhooks/${hook.id}`, 200);
    const rotated = await adminPost(`/webhooks/${hook.id}/rotate`, cookie, [
      ["version", String(current.version)],
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(rotated.status).toBe(200);
    const newSecret = /value="(whsec_[A-Za-z0-9_-]{32})"/.exec(await rotated.text())?.[1];
    expect(newSecret).toBeDefined();
    expect(newSecret).not.toBe(secret);

    // Delete (confirmed).
    const after = await apiJson("GET", `/webhooks/${hook.id}`, 200);
    const deleted = await adminPost(`/webhooks/${hook.id}/delete`, cookie, [
      ["version", String(after.version)],
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(deleted.status).toBe(303);
    expect((await adminFetch(`/webhooks/${hook.id}`, { cookie })).status).toBe(404);
  });

  it("an editor sees no webhooks and cannot create one", async () => {
    const editor = await createToken("editor");
    const cookie = await adminSession(editor.token);
    const page = await adminFetch(`/projects/${project.id}/webhooks`, { cookie });
    expect(page.status).toBe(403);
    expect(await page.text()).toContain("Webhooks need role admin");
    const refused = await adminPost(`/projects/${project.id}/webhooks`, cookie, [
      ["name", "x"],
      ["url", "https://example.com/h"],
      ["events", "*"],
      ["confirmToken", editor.token],
    ]);
    expect(refused.status).toBe(403);
    expect((await apiJson("GET", `/projects/${project.id}/webhooks`, 200)).items).toEqual([]);
  });
});
