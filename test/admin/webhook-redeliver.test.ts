/**
 * The admin's **Redeliver** button (docs/webhooks.md "Redelivering") through the Worker's fetch
 * handler with the real D1 and WEBHOOKS queue and the loopback receiver
 * (test/support/webhook-receiver.ts): a delivery the receiver refused with 410 is redelivered
 * from its page, after confirming with the signed-in token, and arrives verified; both pages link
 * the two deliveries. Refused: without the token, from another origin, for a pending delivery,
 * for an editor — and nothing is written then.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  ADMIN_TOKEN,
  API_ORIGIN,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const ADMIN = `${API_ORIGIN}/_ss/admin`;
const SAME_SITE = { "sec-fetch-site": "same-origin" };
const RECEIVER = (env as unknown as { TEST_WEBHOOK_RECEIVER: string }).TEST_WEBHOOK_RECEIVER;

let project: ProjectWithEnvironments;

function adminFetch(path: string, init: RequestInit & { cookie?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set("cookie", init.cookie);
  return exports.default.fetch(`${ADMIN}${path}`, { ...init, headers, redirect: "manual" });
}

async function signIn(token = ADMIN_TOKEN): Promise<string> {
  const response = await adminFetch("/login", {
    method: "POST",
    headers: { ...SAME_SITE, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(response.status).toBe(303);
  return response.headers.get("set-cookie")!.split(";")[0]!;
}

function post(
  path: string,
  cookie: string,
  fields: Array<[string, string]>,
  headers: Record<string, string> = SAME_SITE,
) {
  return adminFetch(path, {
    method: "POST",
    cookie,
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
}

async function received(inbox: string): Promise<Array<{ verified: boolean; answered: number }>> {
  return ((await (await fetch(`${RECEIVER}/inboxes/${inbox}`)).json()) as Json).deliveries;
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 20_000;
  let value = await read();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

/** A webhook whose receiver answers its first `failFirst` deliveries with `failStatus`. */
async function webhook(failFirst: number, failStatus: number): Promise<Json> {
  const inbox = `admin-redeliver-${crypto.randomUUID()}`;
  const created = await apiJson("POST", `/projects/${project.id}/webhooks`, 201, {
    body: { name: "CI", url: `${RECEIVER}/hooks/${inbox}`, events: ["experiment.created"] },
  });
  const setup = await fetch(`${RECEIVER}/inboxes/${inbox}`, {
    method: "PUT",
    body: JSON.stringify({ secret: created.secret, failFirst, failStatus }),
  });
  expect(setup.status).toBe(204);
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
    await until(
      async () => (await apiJson("GET", `/webhook-deliveries/${test.id}`, 200)).status,
      (status) => status === "failed",
    );
    const cookie = await signIn();
    const page = await (await adminFetch(`/webhook-deliveries/${test.id}`, { cookie })).text();
    expect(page).toContain('data-form="redeliver"');
    expect(page).toContain('name="confirmToken"');
    expect(page).toContain("<td>410</td>");

    // Without the signed-in token, with another token, and from another origin: refused.
    const unconfirmed = await post(`/webhook-deliveries/${test.id}/redeliver`, cookie, []);
    expect(unconfirmed.status).toBe(422);
    expect(await unconfirmed.text()).toContain("confirm with the API token you signed in with");
    const other = await createToken("admin");
    const wrongToken = await post(`/webhook-deliveries/${test.id}/redeliver`, cookie, [
      ["confirmToken", other.token],
    ]);
    expect(wrongToken.status).toBe(422);
    const crossSite = await post(
      `/webhook-deliveries/${test.id}/redeliver`,
      cookie,
      [["confirmToken", ADMIN_TOKEN]],
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);
    expect(await log(hook.id)).toHaveLength(1);

    const sent = await post(`/webhook-deliveries/${test.id}/redeliver`, cookie, [
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(sent.status).toBe(303);
    const location = sent.headers.get("location")!;
    const [redelivery] = (await log(hook.id)).filter((d: Json) => d.redeliveryOf === test.id);
    expect(redelivery).toBeDefined();
    expect(location).toContain(`/_ss/admin/webhook-deliveries/${redelivery.id}?notice=`);

    const got = await until(
      () => received(hook.inbox),
      (l) => l.length === 2,
    );
    expect(got.map((d) => d.answered)).toEqual([410, 200]);
    expect(got[1]!.verified).toBe(true);

    const newPage = await (await adminFetch(location.replace("/_ss/admin", ""), { cookie })).text();
    expect(newPage).toContain("Redelivery queued");
    expect(newPage).toContain(`data-redelivery-of="${test.id}"`);
    const originalPage = await (
      await adminFetch(`/webhook-deliveries/${test.id}`, { cookie })
    ).text();
    expect(originalPage).toContain(`data-redelivery="${redelivery.id}"`);
    const webhookPage = await (await adminFetch(`/webhooks/${hook.id}`, { cookie })).text();
    expect(webhookPage).toContain(`data-redelivery-of="${test.id}"`);
  });

  it("a pending delivery has no Redeliver button and a POST is refused; an editor is refused", async () => {
    const hook = await webhook(0, 500);
    // The queue refuses the send: the test delivery stays pending.
    vi.spyOn(env.WEBHOOKS, "sendBatch").mockRejectedValueOnce(new Error("queue down"));
    vi.spyOn(console, "error").mockImplementation(() => {});
    const pending = await apiJson("POST", `/webhooks/${hook.id}/test`, 202);
    const cookie = await signIn();
    const page = await (await adminFetch(`/webhook-deliveries/${pending.id}`, { cookie })).text();
    expect(page).not.toContain('data-form="redeliver"');
    expect(page).toContain("can be redelivered once it has finished");
    const refused = await post(`/webhook-deliveries/${pending.id}/redeliver`, cookie, [
      ["confirmToken", ADMIN_TOKEN],
    ]);
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain("still pending");

    const editor = await createToken("editor");
    const editorCookie = await signIn(editor.token);
    const denied = await post(`/webhook-deliveries/${pending.id}/redeliver`, editorCookie, [
      ["confirmToken", editor.token],
    ]);
    expect(denied.status).toBe(403);
    expect(await log(hook.id)).toHaveLength(1);
  });
});
