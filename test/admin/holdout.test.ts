/**
 * The admin's holdout page (src/admin/holdout-page.ts, docs/holdouts.md): an admin sets the share
 * and metrics through the form (published, as through the API), a refused form shows the API's
 * problem beside its field and changes nothing, viewers see the results but no form and their
 * posts are 403; the environment page links to it.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Datafile } from "../../src/core/datafile-types";
import { API_ORIGIN, adminSession, apiJson, createProject, createToken } from "../helpers/api";

const ADMIN = `${API_ORIGIN}/_ss/admin`;
const FORM = {
  "sec-fetch-site": "same-origin",
  "content-type": "application/x-www-form-urlencoded",
};

const get = (path: string, cookie: string) =>
  exports.default.fetch(`${ADMIN}${path}`, { headers: { cookie }, redirect: "manual" });
const post = (path: string, cookie: string, body: URLSearchParams) =>
  exports.default.fetch(`${ADMIN}${path}`, {
    method: "POST",
    headers: { ...FORM, cookie },
    body: body.toString(),
    redirect: "manual",
  });

describe("admin holdout page", () => {
  it("an admin sets share and metrics; refusals keep the values; viewers only read", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "signup", type: "custom" },
    });
    const cookie = await adminSession();
    const path = `/environments/${production.id}/holdout`;

    expect(await (await get(`/environments/${production.id}`, cookie)).text()).toContain(
      `href="/_ss/admin${path}"`,
    );
    const page = await (await get(path, cookie)).text();
    expect(page).toContain(`data-form="holdout"`);
    expect(page).toContain("No holdout");
    expect(page).toContain(`value="${event.id}"`);

    const refused = await post(
      path,
      cookie,
      new URLSearchParams([
        ["version", String(production.version)],
        ["percent", "60"],
        ["metrics", event.id],
      ]),
    );
    expect(refused.status).toBe(422);
    const refusedText = await refused.text();
    expect(refusedText).toMatch(/id="f-percent-error">[^<]+/);
    expect(refusedText).toContain(`value="60"`);
    expect((await apiJson("GET", path, 200)).percent).toBe(0);

    const saved = await post(
      path,
      cookie,
      new URLSearchParams([
        ["version", String(production.version)],
        ["percent", "4.5"],
        ["metrics", event.id],
      ]),
    );
    expect(saved.status).toBe(303);
    expect(await apiJson("GET", path, 200)).toMatchObject({ percent: 4.5, metrics: [event.id] });
    const datafile = JSON.parse(
      (await env.DATAFILES.get(`datafiles/${production.sdkKey}`))!,
    ) as Datafile;
    expect(datafile.holdouts?.[0]?.trafficAllocation).toEqual([
      { entityId: expect.any(String), endOfRange: 450 },
    ]);
    const after = await (await get(path, cookie)).text();
    expect(after).toContain("4.5 % of this environment");
    expect(after).toContain(`data-list="holdout-results"`);
    expect(after).toContain("checked");

    // Which visitors are counted, and the switch to everyone (docs/holdouts.md "Share changes").
    expect(after).toMatch(/data-cohort="share">\s*Counting the visitors first exposed at 4.5 %/);
    expect(after).toContain(`href="/_ss/admin${path}?since=all"`);
    const everyone = await (await get(`${path}?since=all`, cookie)).text();
    expect(everyone).toContain(`data-cohort="all"`);
    expect(everyone).not.toContain("data-mixed-shares");

    const viewer = await adminSession((await createToken("viewer")).token);
    const read = await (await get(path, viewer)).text();
    expect(read).not.toContain(`data-form="holdout"`);
    expect(read).toContain("needs role admin; this token has role viewer");
    expect(read).toContain(`data-list="holdout-results"`);
    const denied = await post(path, viewer, new URLSearchParams([["percent", "1"]]));
    expect(denied.status).toBe(403);
    expect((await apiJson("GET", path, 200)).percent).toBe(4.5);
  }, 60_000);
});
