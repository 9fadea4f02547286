/**
 * Approvals in the admin (src/admin/review-pages.ts; docs/approvals.md): an admin turns review on
 * for an environment; an editor's save and start there go to review (the experiment page says
 * so); the Reviews page lists the request with what it changes, and another editor approves or
 * rejects it through the same services as the API. Cross-site posts are refused.
 */
import { env } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { adminPage, adminPost, submittedFields } from "../helpers/admin";
import {
  ADMIN_TOKEN,
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let editor: { id: string; token: string };
let reviewer: { id: string; token: string };
let project: ProjectWithEnvironments;
let experiment: Json;

/** Follows a 303 and answers the page it leads to. */
async function followed(response: Response, cookie: string): Promise<string> {
  expect(response.status, await response.clone().text()).toBe(303);
  const location = response.headers.get("location")!;
  return adminPage(location.replace("/_ss/admin", ""), cookie);
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
    const admin = await adminSession(ADMIN_TOKEN);
    const before = await adminPage(`/environments/${production.id}`, admin);
    expect(before).toContain('data-require-review="no"');
    const fields = await submittedFields(before, "form[data-form=environment-review]");
    expect(fields.find(([n]) => n === "requireReview")).toBeUndefined();

    const crossSite = await adminPost(
      `/environments/${production.id}/review`,
      admin,
      [...fields, ["requireReview", "on"]],
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);

    const editorSession = await adminSession(editor.token);
    const refused = await adminPost(`/environments/${production.id}/review`, editorSession, [
      ...fields,
      ["requireReview", "on"],
    ]);
    expect(refused.status).toBe(403);
    expect((await apiJson("GET", `/environments/${production.id}`, 200)).requireReview).toBe(false);

    const after = await followed(
      await adminPost(`/environments/${production.id}/review`, admin, [
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
    const erin = await adminSession(editor.token);
    const before = await kvDatafile();
    const page = await followed(
      await adminPost(`/experiments/${experiment.id}/start`, erin, [["environment", "production"]]),
      erin,
    );
    expect(page).toContain("Sent to review");
    expect(page).toMatch(/data-pending-review="1"/);
    expect(page).toContain('data-status="Not started"');
    expect(await kvDatafile()).toBe(before);

    // The requester sees only Withdraw; the reviewer sees Approve and Reject.
    const own = await adminPage(`/projects/${project.id}/reviews`, erin);
    expect(own).toContain('data-decision="withdraw"');
    expect(own).not.toContain('data-decision="approve"');
    const rae = await adminSession(reviewer.token);
    const reviews = await adminPage(`/projects/${project.id}/reviews`, rae);
    const id = /data-change-request="(\d+)"/.exec(reviews)![1]!;
    expect(reviews).toContain('data-change="start"');
    expect(reviews).toContain('data-decision="approve"');

    // The requester's own approval is refused with the API's message.
    const refused = await adminPost(`/change-requests/${id}/approve`, erin, []);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain("cannot approve your own change request");

    const done = await followed(
      await adminPost(`/change-requests/${id}/approve`, rae, [["comment", "go"]]),
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
    const erin = await adminSession(editor.token);
    const form = await adminPage(`/experiments/${experiment.id}/edit`, erin);
    const fields = (await submittedFields(form, "form[data-form=experiment]")).map(
      ([n, v]): [string, string] => [n, n === "name" ? "Headline (renamed)" : v],
    );
    const page = await followed(
      await adminPost(`/experiments/${experiment.id}/edit`, erin, fields),
      erin,
    );
    expect(page).toContain("Sent to review, not applied yet");
    expect(page).toMatch(/data-pending-review="1"/);
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).name).toBe("Headline");
    expect(await kvDatafile()).toBe(before);

    const rae = await adminSession(reviewer.token);
    const reviews = await adminPage(`/projects/${project.id}/reviews`, rae);
    expect(reviews).toContain('data-field="name"');
    // The form sent every field; the unchanged ones are summed up, not listed.
    expect(reviews).not.toContain('data-field="type"');
    expect(reviews).toMatch(/data-unchanged="\d+"/);
    expect(reviews).toContain("Headline (renamed)");
    const id = /data-change-request="(\d+)"/.exec(reviews)![1]!;
    const done = await followed(
      await adminPost(`/change-requests/${id}/reject`, rae, [["comment", "keep the name"]]),
      rae,
    );
    expect(done).toContain(`Change request ${id} rejected.`);
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).name).toBe("Headline");
    expect(await kvDatafile()).toBe(before);
    const all = await adminPage(`/projects/${project.id}/reviews?status=all`, rae);
    expect(all).toContain('data-status="rejected"');
    expect(all).toContain("keep the name");
  });
});

describe("the Reviews page", () => {
  it("pages through many pending requests, 50 at a time", async () => {
    const production = environment("production");
    await apiJson("PATCH", `/environments/${production.id}`, 200, {
      body: { requireReview: true },
    });
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200, {
      body: { environment: "production" },
    });
    for (let i = 0; i < 53; i++)
      await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
        token: editor.token,
        body: { name: `Headline ${i}` },
      });
    const rae = await adminSession(reviewer.token);
    const first = await adminPage(`/projects/${project.id}/reviews`, rae);
    const idsOf = (page: string) =>
      [...page.matchAll(/data-change-request="(\d+)"/g)].map((m) => m[1]);
    expect(idsOf(first)).toHaveLength(50);
    const next = /href="(\?after=[^"]+)" rel="next"/.exec(first);
    expect(next).not.toBeNull();
    const second = await adminPage(
      `/projects/${project.id}/reviews${next![1]!.replaceAll("&amp;", "&")}`,
      rae,
    );
    expect(idsOf(second)).toHaveLength(3);
    expect(second).not.toContain('rel="next"');
    expect(second).toContain("First page");
    expect(new Set([...idsOf(first), ...idsOf(second)]).size).toBe(53);
    // Newest first across both pages (the API's order).
    const timesOf = (page: string) =>
      [...page.matchAll(/Requested by [^<]*? at (\S+Z) /g)].map((m) => m[1]!);
    const times = [...timesOf(first), ...timesOf(second)];
    expect(times).toHaveLength(53);
    expect([...times].sort().reverse()).toEqual(times);
    // A cursor that is not one shows the first page.
    const forged = await adminPage(`/projects/${project.id}/reviews?after=%3Cscript%3E`, rae);
    expect(idsOf(forged)).toEqual(idsOf(first));
  }, 60_000);

  it("the experiment page's Review link shows that experiment's requests only", async () => {
    const production = environment("production");
    await apiJson("PATCH", `/environments/${production.id}`, 200, {
      body: { requireReview: true },
    });
    const other = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "other",
        name: "Other",
        pageIds: experiment.pageIds,
        metrics: [{ eventId: experiment.metrics[0].eventId, aggregator: "unique" }],
        variations: [
          { key: "control", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
    const requests: Record<string, string> = {};
    for (const x of [experiment, other]) {
      await apiJson("POST", `/experiments/${x.id}/start`, 200, {
        body: { environment: "production" },
      });
      const sent = await apiJson("PATCH", `/experiments/${x.id}`, 202, {
        token: editor.token,
        body: { name: `${x.name} renamed` },
      });
      requests[x.id] = sent.changeRequest.id;
    }
    const rae = await adminSession(reviewer.token);
    const experimentPage = await adminPage(`/experiments/${experiment.id}`, rae);
    const link =
      /<a href="\/_ss\/admin(\/projects\/[^"]+\/reviews\?experiment=[^"]+)">Review</.exec(
        experimentPage,
      );
    expect(link?.[1]).toBe(`/projects/${project.id}/reviews?experiment=${experiment.id}`);
    const filtered = await adminPage(link![1]!, rae);
    expect(filtered).toContain(`data-change-request="${requests[experiment.id]}"`);
    expect(filtered).not.toContain(`data-change-request="${requests[other.id]}"`);
    expect(filtered).toContain(`data-experiment-filter="${experiment.id}"`);
    // Unfiltered, and with a filter that is no id (control characters): both.
    for (const path of [
      `/projects/${project.id}/reviews`,
      `/projects/${project.id}/reviews?experiment=%0D%0A%3Cscript%3E`,
    ]) {
      const page = await adminPage(path, rae);
      expect(page).toContain(`data-change-request="${requests[experiment.id]}"`);
      expect(page).toContain(`data-change-request="${requests[other.id]}"`);
      expect(page).not.toContain("<script>");
    }
    // A filter naming no experiment of ours shows none, and is escaped where it is shown.
    const hostile = await adminPage(
      `/projects/${project.id}/reviews?experiment=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E`,
      rae,
    );
    expect(hostile).not.toContain("data-change-request=");
    expect(hostile).not.toContain("<script>alert(1)");
    expect(hostile).toContain("&lt;script&gt;");
    // Approving there comes back to that experiment's requests, with the notice.
    const fields = await submittedFields(filtered, 'form[action$="/approve"]');
    expect(fields).toContainEqual(["experiment", experiment.id]);
    const approved = await adminPost(
      `/change-requests/${requests[experiment.id]}/approve`,
      rae,
      fields,
    );
    expect(approved.status, await approved.clone().text()).toBe(303);
    const back = new URL(approved.headers.get("location")!, "http://localhost");
    expect(back.pathname).toBe(`/_ss/admin/projects/${project.id}/reviews`);
    expect(back.searchParams.get("experiment")).toBe(experiment.id);
    expect(back.searchParams.get("notice")).toContain("approved");
    const after = await followed(approved, rae);
    expect(after).not.toContain(`data-change-request="${requests[experiment.id]}"`);
    expect(after).toContain(`data-experiment-filter="${experiment.id}"`);
  });
});
