/**
 * The admin's **Redeliver** button (docs/webhooks.md "Redelivering") through the Worker's fetch
 * handler with the real D1 and WEBHOOKS queue and the loopback receiver
 * (test/support/webhook-receiver.ts): a delivery the receiver refused with 410 is redelivered
 * from its page, after confirming with the signed-in token, and arrives verified; both pages link
 * the two deliveries. Refused: without the token, from another origin, for a pending delivery,
 * for an editor — and nothing is written then.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { adminPage, adminPost } from "../helpers/admin";
import {
  ADMIN_TOKEN,
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { hookUrl, pollUntil, readInbox, setInbox } from "../helpers/webhook-inbox";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;

/** A webhook whose receiver answers its first `failFirst` deliveries with `failStatus`. */
async function webhook(failFirst: number, failStatus: number): Promise<Json> {
  const inbox = `admin-redeliver-${crypto.randomUUID()}`;
  const created = await apiJson("POST", `/projects/${project.id}/webhooks`, 201, {
    body: { name: "CI", url: hookUrl(inbox), events: ["experiment.created"] },
  });
  await setInbox(inbox, created.secret, { failFirst, failStatus });
  return { ...created, inbox };
}

const log = async (webhookId: string): Promise<Json[]> =>
  (await apiJson("GET", `/webhooks/${webhookId}/deliveries`, 200)).items;

beforeEach(async () => {
  project = await createProject();
});
afterEach(() => vi.restoreAllMocks());

describe("redeliver in the admin", () => {
  it("a delivery the receiver refused with 410 is redelivered from its page after confirming; both pages link the two", async () => {
    const hook = await webhook(1, 410);
    const test = await apiJson("POST", `/webhooks/${hook.id}/test`, 202);
    await pollUntil(
      async () => (await apiJson("GET", `/webhook-deliveries/${test.id}`, 200)).status,
      (status) => status === "failed",
      "the test delivery to fail",
    );
    const cookie = await adminSession();
    const page = await adminPage(`/webhook-deliveries/${test.id}`, cookie);
    expect(page).toContain('data-form="redeliver"');
    expect(page).toContain('name="confirmToken"');
    expect(page).toContain("<td>410</td>");

    // Without the signed-in token, with another token, and from another origin: refused.
    const unconfirmed = await adminPost(`/webhook-deliveries/${test.id}/redeliver`, cookie, []);
    expect(unconfirmed.status).toBe(422);
    expect(await unconfirmed.text()).toContain("confirm with the API token you signed in with");
    const other = await createToken("admin");
    const wrongToken = await adminPost(`/webhook-deliveries/${test.id}/redeliver`, cookie, [
      ["confirmToken", other.token],
    ]);
    expect(wrongToken.status).toBe(422);
    const crossSite = await adminPost(
      `/webhook-deliveries/${test.id}/redeliver`,
      cookie,
      [["confirmToken", ADMIN_TOKEN]],
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);
    expect(await log(hook.id)).toHaveLength(1);

    const sent = await adminPost(`/webhook-deliveries/${test.id}/redeliver`, cookie, [
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(sent.status).toBe(303);
    const location = sent.headers.get("location")!;
    const [redelivery] = (await log(hook.id)).filter((d: Json) => d.redeliveryOf === test.id);
    expect(redelivery).toBeDefined();
    expect(location).toContain(`/_ss/admin/webhook-deliveries/${redelivery.id}?notice=`);

    const got = await pollUntil(
      () => readInbox(hook.inbox),
      (l) => l.length === 2,
      "the original delivery and the redelivery",
    );
    expect(got.map((d) => d.answered)).toEqual([410, 200]);
    expect(got[1]!.verified).toBe(true);

    const newPage = await adminPage(location.replace("/_ss/admin", ""), cookie);
    expect(newPage).toContain("Redelivery queued");
    expect(newPage).toContain(`data-redelivery-of="${test.id}"`);
    const originalPage = await adminPage(`/webhook-deliveries/${test.id}`, cookie);
    expect(originalPage).toContain(`data-redelivery="${redelivery.id}"`);
    const webhookPage = await adminPage(`/webhooks/${hook.id}`, cookie);
    expect(webhookPage).toContain(`data-redelivery-of="${test.id}"`);
  });

  it("a pending delivery has no Redeliver button and a POST is refused; an editor is refused", async () => {
    const hook = await webhook(0, 500);
    // The queue refuses the send: the test delivery stays pending.
    vi.spyOn(env.WEBHOOKS, "sendBatch").mockRejectedValueOnce(new Error("queue down"));
    vi.spyOn(console, "error").mockImplementation(() => {});
    const pending = await apiJson("POST", `/webhooks/${hook.id}/test`, 202);
    const cookie = await adminSession();
    const page = await adminPage(`/webhook-deliveries/${pending.id}`, cookie);
    expect(page).not.toContain('data-form="redeliver"');
    expect(page).toContain("can be redelivered once it has finished");
    const refused = await adminPost(`/webhook-deliveries/${pending.id}/redeliver`, cookie, [
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain("still pending");

    const editor = await createToken("editor");
    const editorCookie = await adminSession(editor.token);
    const denied = await adminPost(`/webhook-deliveries/${pending.id}/redeliver`, editorCookie, [
      ["confirmToken", editor.token],
    ]);
    expect(denied.status).toBe(403);
    expect(await log(hook.id)).toHaveLength(1);
  });
});
