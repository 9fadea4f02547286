/**
 * Approvals in the admin (src/admin/review-pages.ts; docs/approvals.md): an admin turns review on
 * for an environment; an editor's save and start there go to review (the experiment page says
 * so); the Reviews page lists the request with what it changes, and another editor approves or
 * rejects it through the same services as the API. Cross-site posts are refused.
 */
import { env, exports } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
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
type Fields = Array<[string, string]>;

const ADMIN = `${API_ORIGIN}/_ss/admin`;
const SAME_SITE = { "sec-fetch-site": "same-origin" };

let editor: { id: string; token: string };
let reviewer: { id: string; token: string };
let project: ProjectWithEnvironments;
let experiment: Json;

function adminFetch(path: string, init: RequestInit & { cookie?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set("cookie", init.cookie);
  return exports.default.fetch(`${ADMIN}${path}`, { ...init, headers, redirect: "manual" });
}

async function signIn(token: string): Promise<string> {
  const response = await adminFetch("/login", {
    method: "POST",
    headers: { ...SAME_SITE, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(response.status).toBe(303);
  return response.headers.get("set-cookie")!.split(";")[0]!;
}

function post(path: string, cookie: string, fields: Fields, headers = SAME_SITE) {
  return adminFetch(path, {
    method: "POST",
    cookie,
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
}

async function getPage(path: string, cookie: string): Promise<string> {
  const response = await adminFetch(path, { cookie });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return text;
}

/** Follows a 303 and answers the page it leads to. */
async function followed(response: Response, cookie: string): Promise<string> {
  expect(response.status, await response.clone().text()).toBe(303);
  const location = response.headers.get("location")!;
  return getPage(location.replace("/_ss/admin", ""), cookie);
}

const decode = (s: string) =>
  s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (m) =>
    m === "&amp;" ? "&" : m === "&lt;" ? "<" : m === "&gt;" ? ">" : m === "&quot;" ? '"' : "'",
  );

/** What a browser submits from the page's form (checked boxes, selected options, textareas). */
async function formFields(page: string, form: string): Promise<Fields> {
  const out: Fields = [];
  let current: { name: string; multiple: boolean; options: Array<[string, boolean]> } | null = null;
  let area: { name: string; text: string } | null = null;
  await new HTMLRewriter()
    .on(`${form} input`, {
      element(e) {
        const name = e.getAttribute("name");
        const type = e.getAttribute("type") ?? "text";
        if (!name || type === "submit") return;
        if (type === "checkbox" && !e.hasAttribute("checked")) return;
        out.push([name, decode(e.getAttribute("value") ?? "on")]);
      },
    })
    .on(`${form} select`, {
      element(e) {
        const select = {
          name: e.getAttribute("name") ?? "",
          multiple: e.hasAttribute("multiple"),
          options: [] as Array<[string, boolean]>,
        };
        current = select;
        e.onEndTag(() => {
          const chosen = select.options.filter(([, selected]) => selected).map(([v]) => v);
          if (chosen.length === 0 && !select.multiple && select.options[0])
            chosen.push(select.options[0][0]);
          for (const value of chosen) out.push([select.name, value]);
        });
      },
    })
    .on(`${form} option`, {
      element(e) {
        current?.options.push([decode(e.getAttribute("value") ?? ""), e.hasAttribute("selected")]);
      },
    })
    .on(`${form} textarea`, {
      element(e) {
        const state = { name: e.getAttribute("name") ?? "", text: "" };
        area = state;
        e.onEndTag(() => {
          out.push([state.name, decode(state.text).replace(/^\n/, "")]);
        });
      },
      text(chunk) {
        if (area) area.text += chunk.text;
      },
    })
    .transform(new Response(page))
    .text();
  return out;
}

const environment = (key: string) => project.environments.find((e) => e.key === key)!;

async function kvDatafile(): Promise<string | null> {
  return env.DATAFILES.get(`datafiles/${environment("production").sdkKey}`);
}

beforeAll(async () => {
  editor = await createToken("editor", { name: "Erin" });
  reviewer = await createToken("editor", { name: "Rae" });
});

beforeEach(async () => {
  project = await createProject();
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "simple", value: "https://shop.example/" }] },
  });
  const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "headline",
      name: "Headline",
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        { key: "bold", weight: 5000 },
      ],
    },
  });
});

describe("the review setting of an environment", () => {
  it("is an admin's form; editors and cross-site posts are refused", async () => {
    const production = environment("production");
    const admin = await signIn(ADMIN_TOKEN);
    const before = await getPage(`/environments/${production.id}`, admin);
    expect(before).toContain('data-require-review="no"');
    const fields = await formFields(before, "form[data-form=environment-review]");
    expect(fields.find(([n]) => n === "requireReview")).toBeUndefined();

    const crossSite = await post(
      `/environments/${production.id}/review`,
      admin,
      [...fields, ["requireReview", "on"]],
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);

    const editorSession = await signIn(editor.token);
    const refused = await post(`/environments/${production.id}/review`, editorSession, [
      ...fields,
      ["requireReview", "on"],
    ]);
    expect(refused.status).toBe(403);
    expect((await apiJson("GET", `/environments/${production.id}`, 200)).requireReview).toBe(false);

    const after = await followed(
      await post(`/environments/${production.id}/review`, admin, [
        ...fields,
        ["requireReview", "on"],
      ]),
      admin,
    );
    expect(after).toContain('data-require-review="yes"');
    expect(after).toContain("requires review");
    expect((await apiJson("GET", `/environments/${production.id}`, 200)).requireReview).toBe(true);
  });
});

describe("reviews in the admin", () => {
  beforeEach(async () => {
    await apiJson("PATCH", `/environments/${environment("production").id}`, 200, {
      body: { requireReview: true },
    });
  });

  it("an editor's start goes to review; another editor approves it on the Reviews page", async () => {
    const erin = await signIn(editor.token);
    const before = await kvDatafile();
    const page = await followed(
      await post(`/experiments/${experiment.id}/start`, erin, [["environment", "production"]]),
      erin,
    );
    expect(page).toContain("Sent to review");
    expect(page).toMatch(/data-pending-review="1"/);
    expect(page).toContain('data-status="Not started"');
    expect(await kvDatafile()).toBe(before);

    // The requester sees only Withdraw; the reviewer sees Approve and Reject.
    const own = await getPage(`/projects/${project.id}/reviews`, erin);
    expect(own).toContain('data-decision="withdraw"');
    expect(own).not.toContain('data-decision="approve"');
    const rae = await signIn(reviewer.token);
    const reviews = await getPage(`/projects/${project.id}/reviews`, rae);
    const id = /data-change-request="(\d+)"/.exec(reviews)![1]!;
    expect(reviews).toContain('data-change="start"');
    expect(reviews).toContain('data-decision="approve"');

    // The requester's own approval is refused with the API's message.
    const refused = await post(`/change-requests/${id}/approve`, erin, []);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("cannot approve your own change request");

    const done = await followed(
      await post(`/change-requests/${id}/approve`, rae, [["comment", "go"]]),
      rae,
    );
    expect(done).toContain(`Change request ${id} approved and applied.`);
    expect(done).toContain("Nothing waits for review.");
    const started = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(started.status.production).toBe("Running");
    expect(await kvDatafile()).not.toBe(before);
  });

  it("an editor's save of a running experiment goes to review; a rejection keeps it as it was", async () => {
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200, {
      body: { environment: "production" },
    });
    const before = await kvDatafile();
    const erin = await signIn(editor.token);
    const form = await getPage(`/experiments/${experiment.id}/edit`, erin);
    const fields = (await formFields(form, "form[data-form=experiment]")).map(
      ([n, v]): [string, string] => [n, n === "name" ? "Headline (renamed)" : v],
    );
    const page = await followed(
      await post(`/experiments/${experiment.id}/edit`, erin, fields),
      erin,
    );
    expect(page).toContain("Sent to review, not applied yet");
    expect(page).toMatch(/data-pending-review="1"/);
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).name).toBe("Headline");
    expect(await kvDatafile()).toBe(before);

    const rae = await signIn(reviewer.token);
    const reviews = await getPage(`/projects/${project.id}/reviews`, rae);
    expect(reviews).toContain('data-field="name"');
    // The form sent every field; the unchanged ones are summed up, not listed.
    expect(reviews).not.toContain('data-field="type"');
    expect(reviews).toMatch(/data-unchanged="\d+"/);
    expect(reviews).toContain("Headline (renamed)");
    const id = /data-change-request="(\d+)"/.exec(reviews)![1]!;
    const done = await followed(
      await post(`/change-requests/${id}/reject`, rae, [["comment", "keep the name"]]),
      rae,
    );
    expect(done).toContain(`Change request ${id} rejected.`);
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).name).toBe("Headline");
    expect(await kvDatafile()).toBe(before);
    const all = await getPage(`/projects/${project.id}/reviews?status=all`, rae);
    expect(all).toContain('data-status="rejected"');
    expect(all).toContain("keep the name");
  });
});
