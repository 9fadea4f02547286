/**
 * Experiment editing in the admin (src/admin/experiment-pages.ts, experiment-draft.ts,
 * change-fields.ts; docs/admin.md): the new and edit forms submitted as a browser would submit what the page
 * rendered (the fields are read off the HTML with HTMLRewriter), checked through the API; row
 * buttons; 422 problems beside their fields; the stale form's 409; archive, duplicate, history,
 * preview links; viewers and cross-site posts refused. The last test goes from the form to a
 * visitor: created, started, published, and applied by the edge.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fieldId } from "../../src/admin/forms";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { verifyPreview } from "../../src/edge/preview";
import { adminPage, adminPost, decodeHtml, submittedFields } from "../helpers/admin";
import {
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;
type Fields = Array<[string, string]>;

let project: ProjectWithEnvironments;
let homePage: Json;
let cartPage: Json;
let purchase: Json;
let signup: Json;
let pros: Json;
let germans: Json;
let admin: string;

/** What a browser would submit from the page's experiment form (without any button). */
const formFields = (page: string) => submittedFields(page, "form[data-form=experiment]");

/** `fields` with `name` set to `values` (replacing every value it had, else appended). */
function withField(fields: Fields, name: string, ...values: string[]): Fields {
  const at = fields.findIndex(([n]) => n === name);
  const rest = fields.filter(([n]) => n !== name);
  const added = values.map((v): [string, string] => [name, v]);
  if (at < 0) return [...rest, ...added];
  rest.splice(at, 0, ...added);
  return rest;
}

/** Fills `values` into `fields` in order. */
function filled(fields: Fields, values: Record<string, string | string[]>): Fields {
  let out = fields;
  for (const [name, value] of Object.entries(values))
    out = withField(out, name, ...(Array.isArray(value) ? value : [value]));
  return out;
}

/**
 * The page's form after pressing a row button (the form re-rendered from what was posted);
 * `extra` sets fields first (the type select next to an "Add change" button).
 */
async function press(
  path: string,
  cookie: string,
  fields: Fields,
  button: [string, string],
  extra: Fields = [],
): Promise<{ page: string; fields: Fields }> {
  let sent = fields;
  for (const [name, value] of extra) sent = withField(sent, name, value);
  const response = await adminPost(path, cookie, [...sent, button]);
  expect(response.status).toBe(200);
  const page = await response.text();
  return { page, fields: await formFields(page) };
}

async function experiments(): Promise<Json[]> {
  return (await apiJson("GET", `/projects/${project.id}/experiments`, 200)).items;
}

/** The definition of an experiment: what the form edits (no version, dates or status). */
function definition(x: Json): Json {
  const { version: _v, updatedAt: _u, createdAt: _c, status: _s, ...rest } = x;
  return rest;
}

/** A form for a new A/B experiment on the home page, with a text change in variation 2. */
async function newAbFields(cookie: string, text = "Hello from the form"): Promise<Fields> {
  const path = `/projects/${project.id}/experiments/new`;
  let fields = await formFields(await adminPage(path, cookie));
  ({ fields } = await press(
    path,
    cookie,
    fields,
    ["_add", "variations[1].changes"],
    [["_type.variations[1].changes", "attribute"]],
  ));
  return filled(fields, {
    key: "hero_test",
    name: "Hero test",
    pageIds: homePage.id,
    "variations[0].weight": "0",
    "variations[1].key": "treatment",
    "variations[1].weight": "100",
    "variations[1].changes[0].selector": "h1",
    "variations[1].changes[0].attributes.text": text,
    "metrics[0].eventId": purchase.id,
  });
}

beforeEach(async () => {
  project = await createProject();
  homePage = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
  });
  cartPage = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: {
      key: "cart",
      conditions: ["or", { match: "simple", value: "https://shop.example.com/cart" }],
    },
  });
  purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  signup = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "signup", type: "custom" },
  });
  const leaf = (name: string, value: string) => ({
    type: "custom_attribute",
    name,
    match: "exact",
    value,
  });
  pros = await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
    body: { name: "Mobile", conditions: ["and", leaf("device.type", "mobile")] },
  });
  germans = await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
    body: { name: "Germans", conditions: ["and", leaf("geo.country", "DE")] },
  });
  admin = await adminSession();
});

describe("new experiment form", () => {
  it("renders the project's pages, audiences and events for editors; viewers get no form", async () => {
    const editor = await adminSession((await createToken("editor")).token);
    const page = await adminPage(`/projects/${project.id}/experiments/new`, editor);
    expect(page).toContain(`action="/_ss/admin/projects/${project.id}/experiments/new"`);
    for (const name of ["key", "pageIds", "audienceConditions", "traffic", "variations[1].weight"])
      expect(page).toContain(`name="${name}"`);
    for (const label of ["home", "cart", "purchase", "signup", "Mobile", "Germans"])
      expect(page).toContain(label);
    expect(page).toContain(`<label for="${fieldId("variations[0].key")}">`);

    const viewer = await adminSession((await createToken("viewer")).token);
    const readOnly = await adminPage(`/projects/${project.id}/experiments/new`, viewer);
    expect(readOnly).not.toContain('<form method="post" action="/_ss/admin/projects');
    expect(readOnly).toContain("needs the editor role");
  });

  it("row buttons re-render the form from what was posted and create nothing", async () => {
    const path = `/projects/${project.id}/experiments/new`;
    let { page, fields } = await press(
      path,
      admin,
      filled(await formFields(await adminPage(path, admin)), { key: "kept_key" }),
      ["_add", "variations"],
    );
    expect(page).toContain(`name="variations[2].key"`);
    expect(page).toContain(`value="kept_key"`);
    // 50/50 was the equal split: a third variation re-splits it.
    expect(fields.filter(([n]) => n.endsWith(".weight")).map(([, v]) => v)).toEqual([
      "33.34",
      "33.33",
      "33.33",
    ]);

    ({ page, fields } = await press(
      path,
      admin,
      fields,
      ["_add", "variations[2].changes"],
      [["_type.variations[2].changes", "insert_html"]],
    ));
    expect(page).toContain(`name="variations[2].changes[0].position"`);
    expect(page).not.toContain(`name="variations[2].changes[0].attributes.text"`);

    // Another type takes effect with "Show fields for this type".
    ({ page, fields } = await press(
      path,
      admin,
      withField(fields, "variations[2].changes[0].type", "redirect"),
      ["_refresh", "variations[2].changes[0]"],
    ));
    expect(page).toContain(`name="variations[2].changes[0].destination"`);
    expect(fields).toContainEqual(["variations[2].changes[0].preserveParameters", "on"]);

    ({ page, fields } = await press(path, admin, fields, ["_remove", "variations[1]"]));
    expect(page).not.toContain(`name="variations[2].key"`);
    expect(page).toContain(`name="variations[1].changes[0].destination"`);

    ({ page } = await press(path, admin, fields, ["_add", "metrics"]));
    expect(page).toContain(`name="metrics[1].eventId"`);
    expect(await experiments()).toEqual([]);
  });

  it("an editor creates an A/B experiment with a text change", async () => {
    const editor = await adminSession((await createToken("editor")).token);
    const fields = filled(await newAbFields(editor), {
      audienceConditions: [pros.id, germans.id],
      traffic: "80",
      "metrics[0].aggregator": "sum",
      "metrics[0].field": "revenue",
      forcedVariations: "qa-1=treatment",
    });
    const response = await adminPost(`/projects/${project.id}/experiments/new`, editor, [
      ...fields,
      ["_save", "1"],
    ]);
    expect(response.status).toBe(303);
    const [x] = await experiments();
    expect(response.headers.get("location")).toBe(`/_ss/admin/experiments/${x.id}`);
    expect(x).toMatchObject({
      key: "hero_test",
      name: "Hero test",
      type: "ab",
      pageIds: [homePage.id],
      audienceConditions: ["or", pros.id, germans.id],
      traffic: 8000,
      metrics: [{ eventId: purchase.id, aggregator: "sum", field: "revenue" }],
      forcedVariations: { "qa-1": "treatment" },
      groupId: null,
      status: { production: "Not started", development: "Not started" },
    });
    expect(x.variations.map((v: Json) => [v.key, v.weight, v.changes])).toEqual([
      ["control", 0, []],
      [
        "treatment",
        10000,
        [{ type: "attribute", selector: "h1", attributes: { text: "Hello from the form" } }],
      ],
    ]);
  });

  it("an invalid form answers 422 with each problem beside its field and creates nothing", async () => {
    const fields = filled(await newAbFields(admin), {
      key: "bad key!",
      "variations[0].weight": "10",
      "variations[1].changes[0].attributes.href": "javascript:alert(1)",
    });
    const response = await adminPost(`/projects/${project.id}/experiments/new`, admin, [
      ...fields,
      ["_save", "1"],
    ]);
    expect(response.status).toBe(422);
    const page = await response.text();
    expect(page).toContain(`id="${fieldId("key")}-error"`);
    expect(page).toContain(`aria-invalid="true"`);
    expect(page).toContain("1–64 characters");
    // The values sent are kept.
    expect(page).toContain(`value="bad key!"`);
    expect(await experiments()).toEqual([]);

    // With the key fixed, the rules below the schema speak: the weights, the unsafe URL.
    const second = await adminPost(`/projects/${project.id}/experiments/new`, admin, [
      ...withField(fields, "key", "good_key"),
      ["_save", "1"],
    ]);
    expect(second.status).toBe(422);
    const text = await second.text();
    expect(text).toContain(`id="${fieldId("variations")}-error"`);
    expect(text).toContain("the variation weights sum to 11000");
    // Then the changes, as the edge's datafile validator sees them.
    const third = await adminPost(`/projects/${project.id}/experiments/new`, admin, [
      ...filled(fields, { key: "good_key", "variations[0].weight": "0" }),
      ["_save", "1"],
    ]);
    expect(third.status).toBe(422);
    expect(await third.text()).toContain(
      `id="${fieldId("variations[1].changes[0].attributes.href")}-error"`,
    );
    expect(await experiments()).toEqual([]);
  });

  it("multivariate and split URL experiments through the form", async () => {
    const path = `/projects/${project.id}/experiments/new`;
    const multivariate = await press(
      path,
      admin,
      withField(await formFields(await adminPage(path, admin)), "type", "multivariate"),
      ["_refresh", "type"],
    );
    expect(multivariate.page).toContain(`name="sections[0].variations[1].name"`);
    expect(multivariate.page).not.toContain(`name="variations[0].key"`);
    let { fields } = await press(path, admin, multivariate.fields, ["_add", "sections"]);
    ({ fields } = await press(
      path,
      admin,
      fields,
      ["_add", "sections[1].variations[1].changes"],
      [["_type.sections[1].variations[1].changes", "custom_css"]],
    ));
    const mvt = await adminPost(path, admin, [
      ...filled(fields, {
        key: "mvt",
        pageIds: [homePage.id, cartPage.id],
        "sections[0].name": "Headline",
        "sections[1].name": "Button",
        "sections[1].variations[1].name": "Green",
        "sections[1].variations[1].changes[0].value": ".buy{background:green}",
        "metrics[0].eventId": purchase.id,
      }),
      ["_save", "1"],
    ]);
    expect(mvt.status).toBe(303);
    const created = (await experiments()).find((x) => x.key === "mvt");
    expect(created.pageIds).toEqual([homePage.id, cartPage.id]);
    expect(created.sections.map((s: Json) => s.name)).toEqual(["Headline", "Button"]);
    expect(created.variations.map((v: Json) => v.key)).toEqual([
      "original_original",
      "original_green",
      "option_1_original",
      "option_1_green",
    ]);
    expect(created.variations[1].changes).toEqual([
      { type: "custom_css", value: ".buy{background:green}" },
    ]);

    ({ fields } = await press(
      path,
      admin,
      withField(await formFields(await adminPage(path, admin)), "type", "split_url"),
      ["_refresh", "type"],
    ));
    ({ fields } = await press(
      path,
      admin,
      fields,
      ["_add", "variations[1].changes"],
      [["_type.variations[1].changes", "redirect"]],
    ));
    const split = await adminPost(path, admin, [
      ...filled(fields, {
        key: "split",
        pageIds: homePage.id,
        "variations[1].changes[0].destination": "/home-b",
        "variations[1].changes[0].mode": "rewrite",
        "metrics[0].eventId": signup.id,
      }),
      ["_save", "1"],
    ]);
    expect(split.status).toBe(303);
    const splitX = (await experiments()).find((x) => x.key === "split");
    expect(splitX.type).toBe("split_url");
    expect(splitX.variations[1].changes).toEqual([
      { type: "redirect", destination: "/home-b", preserveParameters: true, mode: "rewrite" },
    ]);

    // Both round-trip through the edit form: saved unchanged, ids and definitions stay.
    for (const x of [created, splitX]) {
      const before = await apiJson("GET", `/experiments/${x.id}`, 200);
      const edit = await formFields(await adminPage(`/experiments/${x.id}/edit`, admin));
      const saved = await adminPost(`/experiments/${x.id}/edit`, admin, [...edit, ["_save", "1"]]);
      expect(saved.status).toBe(303);
      expect(definition(await apiJson("GET", `/experiments/${x.id}`, 200))).toEqual(
        definition(before),
      );
    }
  });

  it("a move change: its fields, saved exactly, shown again, saved unchanged; problems beside its fields", async () => {
    const path = `/projects/${project.id}/experiments/new`;
    const added = await press(
      path,
      admin,
      await newAbFields(admin),
      ["_add", "variations[1].changes"],
      [["_type.variations[1].changes", "move"]],
    );
    const at = "variations[1].changes[1]";
    expect(added.page).toContain(`<label for="${fieldId(`${at}.target`)}">Move next to</label>`);
    expect(added.page).toContain("Moved HTML (captured when the move was made)");
    expect(added.page).toContain("The visual editor captures the element&#39;s HTML");
    expect(added.page).not.toContain(`name="${at}.value"`);
    const move = {
      type: "move",
      selector: "#buy",
      target: "main h1",
      position: "before",
      html: '<button id="buy" class="btn">Add to cart</button>',
      pageId: homePage.id,
    };
    const fields = filled(added.fields, {
      [`${at}.selector`]: move.selector,
      [`${at}.target`]: move.target,
      [`${at}.position`]: move.position,
      [`${at}.html`]: move.html,
      [`${at}.pageId`]: move.pageId,
    });

    // Problems land beside the move's own fields: the schema's first, then the validator's.
    const badPosition = await adminPost(path, admin, [
      ...withField(fields, `${at}.position`, "inside"),
      ["_save", "1"],
    ]);
    expect(badPosition.status).toBe(422);
    expect(await badPosition.text()).toContain(`id="${fieldId(`${at}.position`)}-error"`);
    const noTarget = await adminPost(path, admin, [
      ...withField(fields, `${at}.target`, ""),
      ["_save", "1"],
    ]);
    expect(noTarget.status).toBe(422);
    const noTargetPage = await noTarget.text();
    expect(noTargetPage).toContain(`id="${fieldId(`${at}.target`)}-error"`);
    expect(noTargetPage).not.toContain(`id="${fieldId(`${at}.selector`)}-error"`);
    expect(await experiments()).toEqual([]);

    const created = await adminPost(path, admin, [...fields, ["_save", "1"]]);
    expect(created.status).toBe(303);
    const [x] = await experiments();
    expect(x.variations[1].changes[1]).toEqual(move);

    // The edit form shows it again, and saving it unchanged keeps it exactly.
    const edit = await formFields(await adminPage(`/experiments/${x.id}/edit`, admin));
    for (const [key, value] of Object.entries(move))
      expect(edit).toContainEqual([`${at}.${key}`, value]);
    const saved = await adminPost(`/experiments/${x.id}/edit`, admin, [...edit, ["_save", "1"]]);
    expect(saved.status).toBe(303);
    expect(definition(await apiJson("GET", `/experiments/${x.id}`, 200))).toEqual(definition(x));
  });

  it("a viewer's POST and a cross-site POST are refused with 403 and create nothing", async () => {
    const fields = await newAbFields(admin);
    const viewer = await adminSession((await createToken("viewer")).token);
    const asViewer = await adminPost(`/projects/${project.id}/experiments/new`, viewer, [
      ...fields,
      ["_save", "1"],
    ]);
    expect(asViewer.status).toBe(403);
    expect(await asViewer.text()).toContain("role editor");
    const crossSite = await adminPost(
      `/projects/${project.id}/experiments/new`,
      admin,
      [...fields, ["_save", "1"]],
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);
    expect(await experiments()).toEqual([]);
  });
});

describe("edit form", () => {
  let x: Json;

  beforeEach(async () => {
    const created = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "checkout",
        name: "Checkout",
        description: "Two buttons",
        pageIds: [homePage.id, cartPage.id],
        metrics: [
          { eventId: purchase.id, aggregator: "unique", winningDirection: "increasing" },
          {
            eventId: signup.id,
            aggregator: "count",
            winningDirection: "decreasing",
            capping: { type: "percentile", value: 0.99 },
          },
        ],
        audienceConditions: ["and", pros.id, ["not", germans.id]],
        traffic: 5000,
        variations: [
          { key: "control", name: "Control", weight: 3334, changes: [] },
          {
            key: "green",
            weight: 6666,
            featureEnabled: true,
            changes: [
              {
                type: "attribute",
                selector: "#buy",
                attributes: {
                  text: "Buy now",
                  addClass: "green big",
                  style: "color:white",
                  href: "/checkout?a=1&b=2",
                  hide: true,
                  set: { "data-variant": "green", title: "x=y" },
                  unset: ["disabled"],
                },
                id: "imported-1",
              },
              { type: "insert_html", selector: "h1", position: "before", html: "<p>Sale</p>" },
              { type: "custom_code", value: "console.log('a');\nconsole.log(\"b\");" },
              { type: "custom_css", value: "h1{color:red}", pageId: cartPage.id },
            ],
          },
        ],
        sharedChanges: [{ type: "attribute", selector: "footer", attributes: { remove: true } }],
        forcedVariations: { "qa-1": "green" },
      },
    });
    x = await apiJson("GET", `/experiments/${created.id}`, 200);
  });

  it("is filled from the experiment: saved unchanged, the definition stays the same", async () => {
    const page = await adminPage(`/experiments/${x.id}/edit`, admin);
    expect(page).toContain(`name="version" value="${x.version}"`);
    expect(page).toContain("Keep these conditions");
    const ids = [...page.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.length).toBeGreaterThan(100);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    // Every input, select and textarea has a label pointing at it.
    for (const [, id] of page.matchAll(/<(?:input|select|textarea)\s+id="([^"]+)"/g))
      expect(page).toContain(`for="${id}"`);
    const fields = await formFields(page);
    expect(fields).toContainEqual([
      "variations[1].changes[0].attributes.set",
      "data-variant=green\ntitle=x=y",
    ]);
    const response = await adminPost(`/experiments/${x.id}/edit`, admin, [
      ...fields,
      ["_save", "1"],
    ]);
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(`/_ss/admin/experiments/${x.id}`);
    const after = await apiJson("GET", `/experiments/${x.id}`, 200);
    expect(after.version).toBe(x.version + 1);
    expect(definition(after)).toEqual(definition(x));
  });

  it("an editor changes fields and a change; the version goes as If-Match", async () => {
    const editor = await adminSession((await createToken("editor")).token);
    const fields = await formFields(await adminPage(`/experiments/${x.id}/edit`, editor));
    const response = await adminPost(`/experiments/${x.id}/edit`, editor, [
      ...filled(fields, {
        name: "Checkout v2",
        "variations[1].key": "emerald",
        "variations[1].changes[0].attributes.text": "Pay now",
        "variations[1].changes[2].value": "console.log('c');",
        forcedVariations: "qa-1=emerald",
        // Untick "Keep these conditions": the list below applies.
        _keepAudience: [],
        audienceConditions: germans.id,
      }),
      ["_save", "1"],
    ]);
    expect(response.status).toBe(303);
    const after = await apiJson("GET", `/experiments/${x.id}`, 200);
    expect(after.name).toBe("Checkout v2");
    expect(after.audienceConditions).toEqual(["or", germans.id]);
    // The variation was renamed with its id sent: it keeps its id (and buckets).
    expect(after.variations[1]).toMatchObject({ id: x.variations[1].id, key: "emerald" });
    expect(after.variations[1].changes[0]).toEqual({
      ...x.variations[1].changes[0],
      attributes: { ...x.variations[1].changes[0].attributes, text: "Pay now" },
    });
    expect(after.variations[1].changes[2].value).toBe("console.log('c');");
    expect(after.forcedVariations).toEqual({ "qa-1": "emerald" });
  });

  it("a stale form gets the API's 409 and changes nothing", async () => {
    const fields = await formFields(await adminPage(`/experiments/${x.id}/edit`, admin));
    await apiJson("PATCH", `/experiments/${x.id}`, 200, { body: { name: "Changed elsewhere" } });
    const response = await adminPost(`/experiments/${x.id}/edit`, admin, [
      ...withField(fields, "name", "Mine"),
      ["_save", "1"],
    ]);
    expect(response.status).toBe(409);
    const page = await response.text();
    expect(page).toContain("changed by someone else");
    expect(page).toContain(`value="Mine"`);
    expect(page).toContain(`name="version" value="${x.version}"`);
    const after = await apiJson("GET", `/experiments/${x.id}`, 200);
    expect(after.name).toBe("Changed elsewhere");
    expect(after.version).toBe(x.version + 1);
  });

  it("an invalid edit answers 422 beside the field and changes nothing", async () => {
    const fields = await formFields(await adminPage(`/experiments/${x.id}/edit`, admin));
    const response = await adminPost(`/experiments/${x.id}/edit`, admin, [
      ...filled(fields, {
        "variations[1].changes[1].position": "inside",
        "metrics[1].eventId": "",
      }),
      ["_save", "1"],
    ]);
    expect(response.status).toBe(422);
    const page = await response.text();
    expect(page).toContain(`id="${fieldId("variations[1].changes[1].position")}-error"`);
    expect(await apiJson("GET", `/experiments/${x.id}`, 200)).toEqual(x);
  });

  it("viewers see a read-only summary; their POST is 403 and changes nothing", async () => {
    const viewer = await adminSession((await createToken("viewer")).token);
    const page = await adminPage(`/experiments/${x.id}/edit`, viewer);
    expect(page).not.toContain('data-form="experiment"');
    expect(page).toContain("needs the editor role");
    expect(page).toContain("attribute #buy: text=&quot;Buy now&quot;");
    const fields = await formFields(await adminPage(`/experiments/${x.id}/edit`, admin));
    const response = await adminPost(`/experiments/${x.id}/edit`, viewer, [
      ...withField(fields, "name", "Viewer was here"),
      ["_save", "1"],
    ]);
    expect(response.status).toBe(403);
    const crossSite = await adminPost(
      `/experiments/${x.id}/edit`,
      admin,
      [...withField(fields, "name", "Cross site"), ["_save", "1"]],
      { "sec-fetch-site": "cross-site" },
    );
    expect(crossSite.status).toBe(403);
    expect(await apiJson("GET", `/experiments/${x.id}`, 200)).toEqual(x);
  });

  it("the project and experiment pages link to the form for editors only", async () => {
    const viewer = await adminSession((await createToken("viewer")).token);
    const projectPage = await adminPage(`/projects/${project.id}`, admin);
    expect(projectPage).toContain(`href="/_ss/admin/projects/${project.id}/experiments/new"`);
    expect(await adminPage(`/projects/${project.id}`, viewer)).not.toContain("/experiments/new");
    const experimentPage = await adminPage(`/experiments/${x.id}`, admin);
    expect(experimentPage).toContain(`href="/_ss/admin/experiments/${x.id}/edit"`);
    expect(experimentPage).toContain(`data-action="archive"`);
    expect(experimentPage).toContain(`data-action="duplicate"`);
    const viewerPage = await adminPage(`/experiments/${x.id}`, viewer);
    expect(viewerPage).not.toContain(`/experiments/${x.id}/edit`);
    expect(viewerPage).not.toContain(`data-action="archive"`);
    expect(viewerPage).toContain(`href="/_ss/admin/experiments/${x.id}/history"`);
  });

  it("cross-site archive, duplicate and preview posts are 403 and change nothing", async () => {
    const crossSite = { "sec-fetch-site": "cross-site" };
    const archive: Fields = [
      ["environment", "production"],
      ["confirm", "yes"],
    ];
    expect(
      (await adminPost(`/experiments/${x.id}/archive`, admin, archive, crossSite)).status,
    ).toBe(403);
    expect((await adminPost(`/experiments/${x.id}/duplicate`, admin, [], crossSite)).status).toBe(
      403,
    );
    const preview = await adminPost(
      `/experiments/${x.id}/preview`,
      admin,
      [
        ["variationId", x.variations[1].id],
        ["environment", "production"],
        ["expiresIn", "3600"],
      ],
      crossSite,
    );
    expect(preview.status).toBe(403);
    expect(await preview.text()).not.toContain("ss_preview=");
    expect(await experiments()).toEqual([x]);
  });

  it("archive needs the tick, then archives in the environment; viewers get 403", async () => {
    const unticked = await adminPost(`/experiments/${x.id}/archive`, admin, [
      ["environment", "production"],
    ]);
    expect(unticked.status).toBe(303);
    expect(decodeURIComponent(unticked.headers.get("location")!)).toContain("Not archived");
    expect((await apiJson("GET", `/experiments/${x.id}`, 200)).status.production).toBe(
      "Not started",
    );
    const viewer = await adminSession((await createToken("viewer")).token);
    const refused = await adminPost(`/experiments/${x.id}/archive`, viewer, [
      ["environment", "production"],
      ["confirm", "yes"],
    ]);
    expect(refused.status).toBe(403);
    const archived = await adminPost(`/experiments/${x.id}/archive`, admin, [
      ["environment", "production"],
      ["confirm", "yes"],
    ]);
    expect(archived.status).toBe(303);
    expect(archived.headers.get("location")).toBe(
      `/_ss/admin/experiments/${x.id}?environment=production`,
    );
    expect((await apiJson("GET", `/experiments/${x.id}`, 200)).status).toEqual({
      production: "Archived",
      development: "Not started",
    });
  });

  it("duplicate creates <key>_copy, then _copy2, not started; viewers get 403", async () => {
    await apiJson("POST", `/experiments/${x.id}/start`, 200);
    const first = await adminPost(`/experiments/${x.id}/duplicate`, admin, [
      ["environment", "production"],
    ]);
    expect(first.status).toBe(303);
    const second = await adminPost(`/experiments/${x.id}/duplicate`, admin, []);
    expect(second.status).toBe(303);
    const all = await experiments();
    const copy = all.find((e) => e.key === "checkout_copy");
    expect(first.headers.get("location")).toContain(`/_ss/admin/experiments/${copy.id}?`);
    expect(copy).toMatchObject({
      name: "Checkout (copy)",
      status: { production: "Not started", development: "Not started" },
      audienceConditions: x.audienceConditions,
      metrics: x.metrics,
      sharedChanges: x.sharedChanges,
    });
    expect(copy.variations.map((v: Json) => [v.key, v.weight, v.changes])).toEqual(
      x.variations.map((v: Json) => [v.key, v.weight, v.changes]),
    );
    expect(copy.variations[0].id).not.toBe(x.variations[0].id);
    expect(all.map((e) => e.key).sort()).toEqual(["checkout", "checkout_copy", "checkout_copy2"]);
    const viewer = await adminSession((await createToken("viewer")).token);
    expect((await adminPost(`/experiments/${x.id}/duplicate`, viewer, [])).status).toBe(403);
    expect(await experiments()).toHaveLength(3);
  });

  it("history lists the audit entries of the experiment, newest first", async () => {
    const editor = await createToken("editor", { name: "Ed" });
    const cookie = await adminSession(editor.token);
    const fields = await formFields(await adminPage(`/experiments/${x.id}/edit`, cookie));
    await adminPost(`/experiments/${x.id}/edit`, cookie, [
      ...withField(fields, "description", "New words"),
      ["_save", "1"],
    ]);
    await adminPost(`/experiments/${x.id}/start`, cookie, [["environment", "production"]]);
    const page = await adminPage(`/experiments/${x.id}/history`, admin);
    const actions = [...page.matchAll(/<tr data-action="([a-z_]+)"/g)].map((m) => m[1]);
    expect(actions).toEqual(["start", "update", "create"]);
    expect(page).toContain("Ed");
    expect(page).toContain("ADMIN_TOKEN");
    expect(page).toContain("production: Not started → Running");
    expect(page).toContain('<th scope="col">Action</th>');
  });

  it("preview links: a signed link per variation for editors, refused for viewers", async () => {
    const page = await adminPage(`/experiments/${x.id}/preview`, admin);
    expect(page).toContain(`name="variationId" value="${x.variations[1].id}"`);
    const response = await adminPost(`/experiments/${x.id}/preview`, admin, [
      ["variationId", x.variations[1].id],
      ["environment", "development"],
      ["expiresIn", "86400"],
    ]);
    expect(response.status).toBe(200);
    const result = await response.text();
    const link = decodeHtml(
      /id="preview-link" type="text" readonly value="([^"]+)"/.exec(result)![1]!,
    );
    // The home page's conditions name no URL: the link goes to the site these pages are on.
    expect(link.startsWith("http://localhost/?ss_preview=")).toBe(true);
    const token = new URL(link).searchParams.get("ss_preview")!;
    const grant = await verifyPreview(env.SIGNING_KEY, token, Date.now());
    const development = project.environments.find((e) => e.key === "development")!;
    expect(grant).toMatchObject({
      sdkKey: development.sdkKey,
      variations: { [x.id]: x.variations[1].id },
    });
    expect(grant!.expiresAt).toBeGreaterThan(Date.now() + 86_000_000);
    expect(grant!.expiresAt).toBeLessThanOrEqual(Date.now() + 86_400_000);

    const bad = await adminPost(`/experiments/${x.id}/preview`, admin, [
      ["variationId", "nope"],
      ["environment", "production"],
      ["expiresIn", "3600"],
    ]);
    expect(bad.status).toBe(422);

    const viewer = await adminSession((await createToken("viewer")).token);
    const viewerPage = await adminPage(`/experiments/${x.id}/preview`, viewer);
    expect(viewerPage).not.toContain('name="variationId"');
    const refused = await adminPost(`/experiments/${x.id}/preview`, viewer, [
      ["variationId", x.variations[1].id],
      ["environment", "production"],
      ["expiresIn", "3600"],
    ]);
    expect(refused.status).toBe(403);
  });
});

describe("from the form to a visitor", () => {
  let origin: MockedOrigin | undefined;

  afterEach(() => {
    origin?.restore();
    origin = undefined;
  });

  it("created with a text change, previewed, started: published and applied by the edge", async () => {
    // wrangler.toml routes localhost/* with sdk_key "demo": this project's production serves it.
    project = await apiJson("POST", "/projects", 201, {
      body: { name: "Demo site", sdkKeys: { production: "demo" } },
    });
    homePage = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "home", conditions: ["or", { match: "simple", value: "http://localhost/" }] },
    });
    purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "purchase", type: "custom" },
    });
    const created = await adminPost(`/projects/${project.id}/experiments/new`, admin, [
      ...(await newAbFields(admin, "Hello from the admin")),
      ["_save", "1"],
    ]);
    expect(created.status).toBe(303);
    const [x] = await experiments();

    origin = mockOrigin(
      () =>
        new Response("<!doctype html><html><head></head><body><h1>Welcome</h1></body></html>", {
          headers: { "content-type": "text/html; charset=utf-8" },
        }),
    );
    const visit = async (url: string) => {
      resetDatafileStore();
      const response = await exports.default.fetch(url, { redirect: "manual" });
      expect(response.status).toBe(200);
      return response.text();
    };

    // Not started: visitors see the original, a preview link shows the variation.
    expect(await visit("http://localhost/")).toContain("<h1>Welcome</h1>");
    const preview = await adminPost(`/experiments/${x.id}/preview`, admin, [
      ["variationId", x.variations[1].id],
      ["environment", "production"],
      ["expiresIn", "3600"],
    ]);
    const link = decodeHtml(
      /id="preview-link" type="text" readonly value="([^"]+)"/.exec(await preview.text())![1]!,
    );
    expect(link.startsWith("http://localhost/?ss_preview=")).toBe(true);
    expect(await visit(link)).toContain("<h1>Hello from the admin</h1>");

    const started = await adminPost(`/experiments/${x.id}/start`, admin, [
      ["environment", "production"],
    ]);
    expect(started.status).toBe(303);
    const datafile = JSON.parse((await env.DATAFILES.get("datafiles/demo"))!) as Json;
    expect(datafile.experiments.find((e: Json) => e.id === x.id)).toMatchObject({
      key: "hero_test",
      status: "Running",
    });
    expect(JSON.stringify(datafile)).toContain("Hello from the admin");

    const html = await visit("http://localhost/");
    expect(html).toContain("<h1>Hello from the admin</h1>");
    expect(html).not.toContain("Welcome");
  });
});
