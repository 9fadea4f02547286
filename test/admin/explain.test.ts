/**
 * "Why did I (not) get this?" (src/admin/explain-page.ts, docs/admin.md) through the Worker's
 * fetch handler with real D1/KV: the demo datafile imported into one project (record ids are
 * global, so into one project per file), then the page explains what the edge decides for a URL
 * and a visitor from the published datafile — forced variations, audiences, pages that do not
 * match, the visitor of this browser's own cookie, and refused questions.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import demo from "../../demo/datafile.json";
import {
  API_ORIGIN,
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

const ADMIN = `${API_ORIGIN}/_ss/admin`;

let project: ProjectWithEnvironments;
let cookie: string;

function explain(query: Record<string, string>, cookies = cookie) {
  const search = new URLSearchParams(query).toString();
  return exports.default.fetch(`${ADMIN}/projects/${project.id}/explain?${search}`, {
    headers: { cookie: cookies },
    redirect: "manual",
  });
}

/** The decision row of an experiment on the page: its reason and variation. */
function decisionOf(text: string, experimentKey: string) {
  const row = new RegExp(
    `<tr\\s+data-experiment="${experimentKey}"\\s+data-reason="([^"]+)"\\s+data-variation="([^"]*)"`,
  ).exec(text);
  return row ? { reason: row[1], variation: row[2] } : null;
}

beforeAll(async () => {
  project = await createProject();
  const production = project.environments.find((e) => e.key === "production")!;
  await apiJson("POST", `/environments/${production.id}/datafile/import`, 200, { body: demo });
  cookie = await adminSession();
});

describe("why did I (not) get this?", () => {
  it("without a question it shows the form, linked from the settings", async () => {
    const response = await explain({});
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(`data-form="explain"`);
    expect(text).toContain(`<form\n      method="get"`);
    expect(text).toMatch(/<label for="f-url">Page URL<\/label>/);
    expect(text).toMatch(/<option value="production" selected>/);
    expect(text).not.toContain(`data-section="explanation"`);
    const settings = await exports.default.fetch(`${ADMIN}/projects/${project.id}/settings`, {
      headers: { cookie },
    });
    expect(await settings.text()).toContain(`/projects/${project.id}/explain">Why did I (not)`);
  });

  it("qa-variant on the home page gets home_hero's forced variation, as `splitstream decide` says", async () => {
    const response = await explain({
      environment: "production",
      url: "http://localhost/",
      visitor: "qa-variant",
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/<tr data-page="home" data-matches="true">/);
    expect(text).toMatch(/<tr data-page="pricing" data-matches="false">/);
    expect(decisionOf(text, "home_hero")).toEqual({
      reason: "forced_variation",
      variation: "lifestyle_image",
    });
    expect(text).toContain("forced variations (QA whitelist) name this visitor id");
    // Only the experiments of the matching pages are considered.
    expect(decisionOf(text, "pricing_page_split")).toBeNull();
    const cli = /<pre data-cli>([^<]*)<\/pre>/.exec(text)![1]!;
    expect(cli).toMatch(
      /^visitor &quot;qa-variant&quot; — datafile revision \d+\nexperiment +variation +reason +bucket\n/,
    );
    expect(cli).toMatch(/\nhome_hero +lifestyle_image +forced_variation +-(\n|$)/);
    // Every experiment, as the CLI prints them, behind a disclosure.
    expect(text).toMatch(/<pre data-cli-all>[^<]*pricing_page_split +pricing_b +forced_variation/);
  });

  it("a visitor outside an experiment's audience gets audience_mismatch; inside, a bucket", async () => {
    const audience = await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
      body: {
        name: "Germany",
        conditions: [
          "or",
          { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
        ],
      },
    });
    await apiJson("PATCH", `/experiments/1001`, 200, {
      body: { audienceConditions: ["or", audience.id] },
    });
    const outside = await (
      await explain({
        url: "http://localhost/",
        visitor: "alice",
        attributes: JSON.stringify({ "geo.country": "US" }),
      })
    ).text();
    expect(decisionOf(outside, "home_hero")).toEqual({
      reason: "audience_mismatch",
      variation: "",
    });
    expect(outside).toContain("The visitor is not in the experiment&#39;s audiences.");
    expect(outside).toMatch(/&quot;geo.country&quot;: &quot;US&quot;/);
    expect(outside).toMatch(/&quot;url&quot;: &quot;http:\/\/localhost\/&quot;/);

    const inside = await (
      await explain({
        url: "http://localhost/",
        visitor: "alice",
        attributes: JSON.stringify({ "geo.country": "DE" }),
      })
    ).text();
    expect(decisionOf(inside, "home_hero")?.reason).toBe("bucketed");
    expect(/\nhome_hero +\S+ +bucketed +\d+/.test(/<pre data-cli>([^<]*)</.exec(inside)![1]!)).toBe(
      true,
    );
  });

  it("a URL that matches no page says so, and considers no experiment", async () => {
    const response = await explain({
      url: "http://localhost/assets/logo.png",
      visitor: "qa-variant",
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain("data-no-page");
    expect(text).toContain("No page of the datafile matches");
    expect(text).toContain("None: no page matches.");
    expect(text).not.toMatch(/<tr\s+data-experiment=/);
  });

  it("me is this browser's ss_vid cookie, with its recorded decisions", async () => {
    const text = await (
      await explain(
        { url: "http://localhost/", visitor: "me" },
        `${cookie}; ss_vid=qa-original; ss_dec=1201.1202`,
      )
    ).text();
    expect(text).toContain(`<code data-visitor>qa-original</code>`);
    expect(text).toContain("1 recorded decision(s) from ss_dec");
    expect(decisionOf(text, "home_hero")).toEqual({
      reason: "forced_variation",
      variation: "benefit_headline",
    });
    const none = await explain({ url: "http://localhost/", visitor: "me" });
    expect(none.status).toBe(422);
    expect(await none.text()).toMatch(/id="f-visitor-error">this browser has no ss_vid cookie/);
  });

  it("in development nothing runs: not_running", async () => {
    const text = await (
      await explain({ environment: "development", url: "http://localhost/", visitor: "qa-variant" })
    ).text();
    expect(decisionOf(text, "home_hero")).toEqual({ reason: "not_running", variation: "" });
  });

  it("an environment without a published datafile says nothing is published", async () => {
    const staging = await apiJson("POST", `/projects/${project.id}/environments`, 201, {
      body: { key: "staging", name: "Staging" },
    });
    const text = await (
      await explain({ environment: "staging", url: "http://localhost/", visitor: "bob" })
    ).text();
    expect(text).toContain(`data-datafile="missing"`);
    expect(text).toContain(`no datafiles/${staging.sdkKey}`);
  });

  it("bad questions are 422 with the problem beside each field", async () => {
    const response = await explain({
      environment: "nowhere",
      url: "not a url",
      visitor: "",
      attributes: "[1, 2]",
    });
    expect(response.status).toBe(422);
    const text = await response.text();
    expect(text).toMatch(/id="f-environment-error">the project has no environment/);
    expect(text).toMatch(/id="f-url-error">enter an absolute http\(s\) URL/);
    expect(text).toMatch(/id="f-visitor-error">enter a visitor id/);
    expect(text).toMatch(/id="f-attributes-error">must be a JSON object/);
    expect(text).toContain(`value="not a url"`);
    expect(text).not.toContain(`data-section="explanation"`);
    const invalidJson = await explain({
      url: "http://localhost/",
      visitor: "a",
      attributes: "{nope",
    });
    expect(invalidJson.status).toBe(422);
    expect(await invalidJson.text()).toMatch(/id="f-attributes-error">not valid JSON/);
  });

  it("a viewer may ask; an unknown project is 404", async () => {
    const viewer = await adminSession((await createToken("viewer")).token);
    const text = await (
      await explain({ url: "http://localhost/", visitor: "qa-variant" }, viewer)
    ).text();
    expect(decisionOf(text, "home_hero")?.reason).toBe("forced_variation");
    const missing = await exports.default.fetch(`${ADMIN}/projects/nope/explain`, {
      headers: { cookie },
    });
    expect(missing.status).toBe(404);
  });
});
