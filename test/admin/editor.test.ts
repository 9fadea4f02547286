/**
 * The visual editor's admin side (src/admin/editor-routes.ts; docs/visual-editor.md): who may
 * open it, what the page carries (state, token, CSP), saving through the API's validation and
 * version check, refusals re-rendering the draft, and the links to it. The browser side is
 * test/browser/editor.test.ts.
 */
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { EditorState } from "../../src/admin/editor-page";
import { EDITOR_JS_HASH } from "../../src/admin/generated/editor-bundle";
import { verifyEditorToken } from "../../src/edge/editor-preview";
import {
  API_ORIGIN,
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const ADMIN = `${API_ORIGIN}/_ss/admin`;
const SAME_SITE = {
  "sec-fetch-site": "same-origin",
  "sec-fetch-mode": "navigate",
  "sec-fetch-dest": "document",
};
const KEY = (env as unknown as { SIGNING_KEY: string }).SIGNING_KEY;

let project: ProjectWithEnvironments;
let home: Json;
let pricing: Json;
let purchase: Json;
let experiment: Json;
let cookie: string;

function adminFetch(path: string, init: RequestInit = {}, session = cookie) {
  const headers = new Headers(init.headers);
  headers.set("cookie", session);
  return exports.default.fetch(`${ADMIN}${path}`, { ...init, headers, redirect: "manual" });
}

function save(
  id: string,
  fields: Record<string, string>,
  headers: Record<string, string> = SAME_SITE,
) {
  return adminFetch(`/experiments/${id}/editor`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
}

/** The state the page embeds for the editor script. */
function stateOf(page: string): EditorState {
  const match = /<script type="application\/json" id="ss-editor-state">([\s\S]*?)<\/script>/.exec(
    page,
  );
  expect(match).not.toBeNull();
  return JSON.parse(match![1]!) as EditorState;
}

async function openEditor(query: string, session = cookie) {
  const response = await adminFetch(`/experiments/${experiment.id}/editor?${query}`, {}, session);
  return { response, page: await response.text() };
}

beforeEach(async () => {
  project = await createProject();
  home = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "simple", value: "localhost/" }] },
  });
  pricing = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "pricing", conditions: ["or", { match: "substring", value: "/pricing" }] },
  });
  purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "hero_test",
      pageIds: [home.id, pricing.id],
      metrics: [{ eventId: purchase.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        {
          key: "treatment",
          weight: 5000,
          changes: [
            { type: "attribute", selector: "h1", attributes: { text: "Hi" } },
            {
              type: "attribute",
              selector: ".plan",
              attributes: { hide: true },
              pageId: pricing.id,
            },
          ],
        },
      ],
      sharedChanges: [{ type: "custom_css", value: "h1{color:red}", pageId: pricing.id }],
    },
  });
  cookie = await adminSession();
});

describe("GET /_ss/admin/experiments/:id/editor", () => {
  it("opens the first variation with changes on the experiment's first page, on this origin", async () => {
    const { response, page } = await openEditor("environment=production");
    expect(response.status).toBe(200);
    const state = stateOf(page);
    const treatment = experiment.variations[1];
    expect(state.variation).toMatchObject({ id: treatment.id, key: "treatment" });
    // the page's condition (localhost/), shown on the admin's own origin
    // paths: they resolve on the origin the browser sees (behind npm start, not the Worker's)
    expect(state.pageUrl).toBe("/");
    expect(state.previewAction).toBe("/?ss_editor=preview");
    expect(state.sourceAction).toBe("/?ss_editor=source");
    expect(state.changes).toEqual(treatment.changes);
    // the home page matches; shared changes of the pricing page do not apply here
    expect(state.pages).toEqual([
      { id: home.id, key: "home", matches: true },
      { id: pricing.id, key: "pricing", matches: false },
    ]);
    expect(state.defaultPageId).toBe(home.id);
    expect(state.sharedChanges).toEqual([]);
    expect(state.version).toBe(experiment.version);
    expect(state.canSave).toBe(true);
    expect(state.variations.map((v) => v.label)).toEqual([
      "control",
      "treatment",
      "Original page (no changes)",
    ]);
    const grant = await verifyEditorToken(KEY, state.token, Date.now());
    expect(grant).toMatchObject({
      sdkKey: "demo",
      experimentId: experiment.id,
      decisions: "hero_test=treatment",
    });
  });

  it("runs its script by nonce under a strict CSP, and serves it cacheably by hash", async () => {
    const { response, page } = await openEditor("");
    const csp = response.headers.get("content-security-policy")!;
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeTruthy();
    expect(csp).toContain("frame-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-eval");
    expect(page).toContain(`nonce="${nonce}"`);
    expect(page).toContain(`/_ss/admin/assets/editor.js?v=${EDITOR_JS_HASH}`);
    expect(page).toMatch(/<iframe[^>]*sandbox="allow-scripts"/);

    const script = await adminFetch(`/assets/editor.js?v=${EDITOR_JS_HASH}`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toContain("javascript");
    expect(script.headers.get("cache-control")).toContain("immutable");
    expect((await script.text()).length).toBeGreaterThan(1000);
  });

  it("a page of the experiment's other page gets its page-scoped shared changes", async () => {
    const state = stateOf((await openEditor(`url=${encodeURIComponent("/pricing")}`)).page);
    expect(state.pageUrl).toBe("/pricing");
    // a full URL of this host, any port (npm start's proxy), is the same page
    const proxied = stateOf(
      (await openEditor(`url=${encodeURIComponent("http://localhost:8787/pricing?a=1")}`)).page,
    );
    expect(proxied.pageUrl).toBe("/pricing?a=1");
    expect(state.sharedChanges).toEqual([
      { type: "custom_css", value: "h1{color:red}", pageId: pricing.id },
    ]);
    expect(state.defaultPageId).toBe(pricing.id);
  });

  it("the original is read-only and sends no decision", async () => {
    const state = stateOf((await openEditor("variation=original")).page);
    expect(state.variation).toBeNull();
    expect(state.canSave).toBe(false);
    expect((await verifyEditorToken(KEY, state.token, Date.now()))?.decisions).toBe("");
  });

  it("refuses viewers, other origins, unknown variations and split URL experiments", async () => {
    const viewer = await adminSession((await createToken("viewer")).token);
    const asViewer = await openEditor("", viewer);
    expect(asViewer.response.status).toBe(403);

    const other = await openEditor(`url=${encodeURIComponent("https://evil.example/")}`);
    expect(other.response.status).toBe(422);
    expect(other.page).toContain("pages of this site only");

    const own = await openEditor(`url=${encodeURIComponent("/_ss/admin/experiments/x/pause")}`);
    expect(own.response.status).toBe(422);
    expect(own.page).toContain("not pages of the site");

    expect((await openEditor("variation=nope")).response.status).toBe(404);

    const split = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "split",
        type: "split_url",
        pageIds: [home.id],
        metrics: [{ eventId: purchase.id, aggregator: "unique" }],
        variations: [
          { key: "a", weight: 5000 },
          { key: "b", weight: 5000, changes: [{ type: "redirect", destination: "/b" }] },
        ],
      },
    });
    const response = await adminFetch(`/experiments/${split.id}/editor`);
    expect(response.status).toBe(422);
    expect(await response.text()).toContain("Split URL variations are redirects");
  });

  it("the experiment page links every variation to the editor, for editors only", async () => {
    const page = await (await adminFetch(`/experiments/${experiment.id}`)).text();
    for (const v of experiment.variations)
      expect(page).toContain(
        `/_ss/admin/experiments/${experiment.id}/editor?variation=${v.id}&amp;environment=production`,
      );
    const viewer = await adminSession((await createToken("viewer")).token);
    const asViewer = await (await adminFetch(`/experiments/${experiment.id}`, {}, viewer)).text();
    expect(asViewer).not.toContain("/editor?");
  });
});

describe("POST /_ss/admin/experiments/:id/editor (save)", () => {
  const treatmentId = () => experiment.variations[1].id as string;

  it("writes the variation's changes through the API, leaves the rest, and comes back saved", async () => {
    const changes = [
      { type: "attribute", selector: "h1", attributes: { text: "Saved", addClass: "big" } },
      { type: "insert_html", selector: "h1", position: "after", html: "<p>New</p>" },
    ];
    const response = await save(experiment.id, {
      variation: treatmentId(),
      url: "http://localhost/",
      environment: "production",
      version: String(experiment.version),
      changes: JSON.stringify(changes),
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toContain("saved=1");
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.variations[1].changes).toEqual(changes);
    expect(after.variations[0]).toEqual(experiment.variations[0]);
    expect(after.sharedChanges).toEqual(experiment.sharedChanges);
    expect(after.version).toBe(experiment.version + 1);
    const reopened = await adminFetch(response.headers.get("location")!.replace("/_ss/admin", ""));
    const state = stateOf(await reopened.text());
    expect(state.notice).toContain("Saved");
    expect(state.changes).toEqual(changes);
  });

  it("a stale draft is refused (409) and shown again with the posted changes", async () => {
    await apiJson("PATCH", `/experiments/${experiment.id}`, 200, {
      body: { name: "Renamed meanwhile" },
      headers: { "if-match": `W/"v${experiment.version}"` },
    });
    const draft = [{ type: "attribute", selector: "h2", attributes: { text: "Mine" } }];
    const response = await save(experiment.id, {
      variation: treatmentId(),
      url: "http://localhost/",
      environment: "production",
      version: String(experiment.version),
      changes: JSON.stringify(draft),
    });
    expect(response.status).toBe(409);
    const state = stateOf(await response.text());
    expect(state.changes).toEqual(draft);
    expect(state.errors[0]!.message).toMatch(/version/i);
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.variations[1].changes).toEqual(experiment.variations[1].changes);
  });

  it("the API's validation names the change and field (422), nothing saved", async () => {
    const response = await save(experiment.id, {
      variation: treatmentId(),
      url: "http://localhost/",
      environment: "production",
      version: String(experiment.version),
      changes: JSON.stringify([
        { type: "attribute", selector: "h1", attributes: { text: "ok" } },
        { type: "attribute", selector: "", attributes: { text: "no selector" } },
      ]),
    });
    expect(response.status).toBe(422);
    const state = stateOf(await response.text());
    expect(state.errors, JSON.stringify(state.errors)).toContainEqual(
      expect.objectContaining({ path: expect.stringMatching(/^changes\[1\]/) }),
    );
    expect(state.changes).toHaveLength(2);
  });

  it("refuses a selector the edge cannot run on an immediate page, naming it", async () => {
    const response = await save(experiment.id, {
      variation: treatmentId(),
      url: "http://localhost/",
      environment: "production",
      version: String(experiment.version),
      changes: JSON.stringify([
        { type: "attribute", selector: "h1 + p", attributes: { text: "next" } },
      ]),
    });
    expect(response.status).toBe(422);
    const state = stateOf(await response.text());
    expect(state.errors).toContainEqual({
      path: "changes[0].selector",
      message: expect.stringContaining("cannot run at the edge"),
    });
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.version).toBe(experiment.version);
  });

  it("refuses a body that is not a list of changes", async () => {
    const response = await save(experiment.id, {
      variation: treatmentId(),
      url: "http://localhost/",
      environment: "production",
      version: String(experiment.version),
      changes: "{not json",
    });
    expect(response.status).toBe(422);
    expect(stateOf(await response.text()).errors[0]).toEqual({
      path: "changes",
      message: "must be a JSON array of changes",
    });
  });

  it("refuses viewers, fetches and cross-site posts", async () => {
    const fields = {
      variation: treatmentId(),
      version: String(experiment.version),
      changes: "[]",
    };
    expect((await save(experiment.id, fields, { "sec-fetch-site": "cross-site" })).status).toBe(
      403,
    );
    expect(
      (
        await save(experiment.id, fields, {
          "sec-fetch-site": "same-origin",
          "sec-fetch-mode": "cors",
          "sec-fetch-dest": "empty",
        })
      ).status,
    ).toBe(403);
    const viewer = await adminSession((await createToken("viewer")).token);
    const asViewer = await adminFetch(
      `/experiments/${experiment.id}/editor`,
      {
        method: "POST",
        headers: { ...SAME_SITE, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString(),
      },
      viewer,
    );
    expect(asViewer.status).toBe(403);
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.version).toBe(experiment.version);
  });

  it("saves a multivariate section's variation into its section", async () => {
    const mvt = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "mvt",
        type: "multivariate",
        pageIds: [home.id],
        metrics: [{ eventId: purchase.id, aggregator: "unique" }],
        sections: [
          { name: "Headline", variations: [{ name: "Original" }, { name: "Bold" }] },
          { name: "Button", variations: [{ name: "Original" }, { name: "Green" }] },
        ],
      },
    });
    const bold = mvt.sections[0].variations[1];
    const editorPage = await adminFetch(`/experiments/${mvt.id}/editor?variation=${bold.id}`);
    const state = stateOf(await editorPage.text());
    expect(state.variation?.id).toBe(bold.id);
    expect(state.variations.map((v) => v.label)).toContain("Headline: Bold");
    const decisions = (await verifyEditorToken(KEY, state.token, Date.now()))!.decisions;
    expect(decisions).toMatch(/^mvt=/);

    const changes = [{ type: "attribute", selector: "h1", attributes: { addClass: "bold" } }];
    const response = await save(mvt.id, {
      variation: bold.id,
      url: "http://localhost/",
      environment: "production",
      version: String(mvt.version),
      changes: JSON.stringify(changes),
    });
    expect(response.status).toBe(303);
    const after = await apiJson("GET", `/experiments/${mvt.id}`, 200);
    expect(after.sections[0].variations[1].changes).toEqual(changes);
    expect(after.sections[1]).toEqual(mvt.sections[1]);
    // every combination holding "Bold" carries the change
    const withBold = after.variations.filter((v: Json) => v.sectionVariationIds?.includes(bold.id));
    expect(withBold.length).toBe(2);
  });
});
