/**
 * Program administration pages (src/admin/settings-pages.ts, docs/admin.md): new project, project
 * settings and delete, environments, tokens and the audit log, through the Worker's fetch handler
 * with real D1/KV. Each write goes through a form as a browser posts it and is checked through the
 * management API; refused forms answer the API's status with the problem beside its field and
 * change nothing; viewers see no forms and their posts are refused; cross-site posts are 403.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { renderExplanation } from "../../src/core/explain";
import {
  ADMIN_TOKEN,
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
const FORM = {
  "sec-fetch-site": "same-origin",
  "content-type": "application/x-www-form-urlencoded",
};

function adminGet(path: string, cookie: string) {
  return exports.default.fetch(`${ADMIN}${path}`, { headers: { cookie }, redirect: "manual" });
}

function adminPost(
  path: string,
  cookie: string,
  fields: Record<string, string>,
  headers: Record<string, string> = FORM,
) {
  return exports.default.fetch(`${ADMIN}${path}`, {
    method: "POST",
    headers: { ...headers, cookie },
    body: new URLSearchParams(fields).toString(),
    redirect: "manual",
  });
}

async function roleSession(role: "admin" | "editor" | "viewer"): Promise<string> {
  return adminSession((await createToken(role)).token);
}

async function projectCount(): Promise<number> {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM projects").first<{ n: number }>();
  return row?.n ?? 0;
}

const unique = () => crypto.randomUUID().slice(0, 8);

describe("new project", () => {
  it("an admin creates a project with chosen SDK keys through the form", async () => {
    const cookie = await adminSession();
    const form = await adminGet("/new-project", cookie);
    expect(form.status).toBe(200);
    const text = await form.text();
    expect(text).toContain(`data-form="new-project"`);
    expect(text).toMatch(/<label for="f-name">Name<\/label>/);
    expect(text).toContain(`name="sdkKeys.production"`);

    const sdkKey = `shop-${unique()}`;
    const response = await adminPost("/new-project", cookie, {
      name: "Web shop",
      description: "The storefront",
      "sdkKeys.production": sdkKey,
      "sdkKeys.development": "",
    });
    expect(response.status).toBe(303);
    const id = /\/projects\/([^/]+)\/settings$/.exec(response.headers.get("location")!)![1]!;
    const project: ProjectWithEnvironments = await apiJson("GET", `/projects/${id}`, 200);
    expect(project.name).toBe("Web shop");
    expect(project.description).toBe("The storefront");
    const production = project.environments.find((e) => e.key === "production")!;
    expect(production.sdkKey).toBe(sdkKey);
    expect(project.environments.find((e) => e.key === "development")!.sdkKey).not.toBe("");
  });

  it("an invalid form shows the API's problem beside the field, with the values sent, and creates nothing", async () => {
    const cookie = await adminSession();
    const before = await projectCount();
    const response = await adminPost("/new-project", cookie, {
      name: "  ",
      description: "kept <b>as typed</b>",
      "sdkKeys.production": "bad key!",
    });
    expect(response.status).toBe(422);
    const text = await response.text();
    expect(text).toContain(`id="form-errors"`);
    expect(text).toMatch(/id="f-name-error">[^<]+</);
    expect(text).toMatch(/id="f-sdkKeys-production-error">1–128 characters/);
    expect(text).toContain("kept &lt;b&gt;as typed&lt;/b&gt;");
    expect(await projectCount()).toBe(before);
  });

  it("an SDK key already in use is the API's 409, shown beside its field", async () => {
    const cookie = await adminSession();
    const taken = (await createProject()).environments[0]!.sdkKey;
    const before = await projectCount();
    const response = await adminPost("/new-project", cookie, {
      name: "Copy",
      "sdkKeys.development": taken,
    });
    expect(response.status).toBe(409);
    expect(await response.text()).toMatch(
      /id="f-sdkKeys-development-error">an environment already has sdkKey/,
    );
    expect(await projectCount()).toBe(before);
  });

  it("editors and viewers see no form, and their posts are 403 and create nothing", async () => {
    for (const role of ["editor", "viewer"] as const) {
      const cookie = await roleSession(role);
      const text = await (await adminGet("/new-project", cookie)).text();
      expect(text).not.toContain(`data-form="new-project"`);
      expect(text).toContain(`needs role admin; this token has role ${role}`);
      const before = await projectCount();
      const response = await adminPost("/new-project", cookie, { name: `by ${role}` });
      expect(response.status).toBe(403);
      expect(await response.text()).toContain("this needs role admin");
      expect(await projectCount()).toBe(before);
    }
  });

  it("a cross-site post is 403 and creates nothing", async () => {
    const cookie = await adminSession();
    const before = await projectCount();
    const response = await adminPost(
      "/new-project",
      cookie,
      { name: "evil" },
      { "sec-fetch-site": "cross-site", "content-type": "application/x-www-form-urlencoded" },
    );
    expect(response.status).toBe(403);
    expect(await projectCount()).toBe(before);
  });

  it("the projects index links to the form, the project page to its settings", async () => {
    await createProject();
    await createProject();
    const cookie = await adminSession();
    expect(await (await adminGet("", cookie)).text()).toContain(
      `<a href="/_ss/admin/new-project">New project</a>`,
    );
    const project = await createProject();
    expect(await (await adminGet(`/projects/${project.id}`, cookie)).text()).toContain(
      `<a href="/_ss/admin/projects/${project.id}/settings">Settings</a>`,
    );
  });
});

describe("project settings", () => {
  it("shows the project and its environments with SDK key, revision and datafile URL", async () => {
    const project = await createProject("Settings <i>shown</i>");
    const cookie = await roleSession("viewer");
    const response = await adminGet(`/projects/${project.id}/settings`, cookie);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain("Settings: Settings &lt;i&gt;shown&lt;/i&gt;");
    for (const environment of project.environments) {
      expect(text).toContain(`data-environment="${environment.key}"`);
      expect(text).toContain(`<code>${environment.sdkKey}</code>`);
      expect(text).toContain(`/_ss/datafiles/${environment.sdkKey}.json`);
    }
    // Read-only for a viewer: no form posts anything.
    expect(text).not.toContain(`method="post" action="/_ss/admin/projects`);
    expect(text).not.toContain("New environment");
  });

  it("an admin renames and describes the project with If-Match; a stale version is the API's 409", async () => {
    const project = await createProject();
    const cookie = await adminSession();
    const text = await (await adminGet(`/projects/${project.id}/settings`, cookie)).text();
    expect(text).toContain(`data-form="project"`);
    expect(text).toContain(`name="version" value="1"`);
    const saved = await adminPost(`/projects/${project.id}/settings`, cookie, {
      version: "1",
      name: "Renamed",
      description: "Now described",
    });
    expect(saved.status).toBe(303);
    const after = await apiJson("GET", `/projects/${project.id}`, 200);
    expect([after.name, after.description, after.version]).toEqual(["Renamed", "Now described", 2]);

    const stale = await adminPost(`/projects/${project.id}/settings`, cookie, {
      version: "1",
      name: "Lost update",
      description: "",
    });
    expect(stale.status).toBe(409);
    expect(await stale.text()).toContain("the resource was changed by someone else");
    expect((await apiJson("GET", `/projects/${project.id}`, 200)).name).toBe("Renamed");
  });

  it("an invalid rename is 422 beside the field; a viewer's is 403; neither changes anything", async () => {
    const project = await createProject("Unchanged");
    const cookie = await adminSession();
    const invalid = await adminPost(`/projects/${project.id}/settings`, cookie, {
      version: "1",
      name: "",
      description: "",
    });
    expect(invalid.status).toBe(422);
    expect(await invalid.text()).toMatch(/<p class="field invalid">\s*<label for="f-name">/);
    const viewer = await adminPost(
      `/projects/${project.id}/settings`,
      await roleSession("viewer"),
      {
        version: "1",
        name: "By a viewer",
        description: "",
      },
    );
    expect(viewer.status).toBe(403);
    const after = await apiJson("GET", `/projects/${project.id}`, 200);
    expect([after.name, after.version]).toEqual(["Unchanged", 1]);
  });

  it("deleting is refused with the API's 409 while an experiment runs, then deletes", async () => {
    const project = await createProject();
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
    });
    const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "purchase", type: "custom" },
    });
    const experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "hero",
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: [
          { key: "control", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
    const cookie = await adminSession();
    const refused = await adminPost(`/projects/${project.id}/delete`, cookie, {
      version: "1",
      confirmToken: ADMIN_TOKEN,
    });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain("the project has running experiments");
    await apiJson("GET", `/projects/${project.id}`, 200);

    await apiJson("POST", `/experiments/${experiment.id}/pause`, 200);
    const deleted = await adminPost(`/projects/${project.id}/delete`, cookie, {
      version: "1",
      confirmToken: ADMIN_TOKEN,
    });
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("location")).toBe("/_ss/admin");
    await apiJson("GET", `/projects/${project.id}`, 404);
  });

  it("a viewer's or a cross-site delete is 403 and deletes nothing", async () => {
    const project = await createProject();
    const viewer = await adminPost(`/projects/${project.id}/delete`, await roleSession("viewer"), {
      version: "1",
    });
    expect(viewer.status).toBe(403);
    const crossSite = await adminPost(
      `/projects/${project.id}/delete`,
      await adminSession(),
      { version: "1" },
      { origin: "https://evil.example", "content-type": "application/x-www-form-urlencoded" },
    );
    expect(crossSite.status).toBe(403);
    await apiJson("GET", `/projects/${project.id}`, 200);
  });
});

describe("environments", () => {
  it("an admin creates, renames and deletes an environment through the forms", async () => {
    const project = await createProject();
    const cookie = await adminSession();
    const form = await adminGet(`/projects/${project.id}/environments/new`, cookie);
    expect(await form.text()).toContain(`data-form="new-environment"`);
    const created = await adminPost(`/projects/${project.id}/environments/new`, cookie, {
      key: "staging",
      name: "Staging",
    });
    expect(created.status).toBe(303);
    const list = await apiJson("GET", `/projects/${project.id}/environments`, 200);
    const staging = list.items.find((e: Json) => e.key === "staging");
    expect(staging.name).toBe("Staging");

    const page = await (await adminGet(`/environments/${staging.id}`, cookie)).text();
    expect(page).toContain(`<code>${staging.sdkKey}</code>`);
    expect(page).toContain("not published yet");
    expect(page).toContain(`data-form="delete-environment"`);
    const renamed = await adminPost(`/environments/${staging.id}`, cookie, {
      version: "1",
      name: "Pre-production",
    });
    expect(renamed.status).toBe(303);
    expect((await apiJson("GET", `/environments/${staging.id}`, 200)).name).toBe("Pre-production");
    // Without the signed-in token typed again: refused, nothing deleted.
    const unconfirmed = await adminPost(`/environments/${staging.id}/delete`, cookie, {
      version: "2",
    });
    expect(unconfirmed.status).toBe(422);
    await apiJson("GET", `/environments/${staging.id}`, 200);
    const deleted = await adminPost(`/environments/${staging.id}/delete`, cookie, {
      version: "2",
      confirmToken: ADMIN_TOKEN,
    });
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("location")).toContain(`/projects/${project.id}/settings`);
    await apiJson("GET", `/environments/${staging.id}`, 404);
  });

  it("an invalid or taken key is refused beside the field and creates nothing", async () => {
    const project = await createProject();
    const cookie = await adminSession();
    const invalid = await adminPost(`/projects/${project.id}/environments/new`, cookie, {
      key: "Not A Key",
      name: "Bad",
    });
    expect(invalid.status).toBe(422);
    const invalidText = await invalid.text();
    expect(invalidText).toMatch(/id="f-key-error">lowercase letters/);
    expect(invalidText).toContain(`value="Not A Key"`);
    const taken = await adminPost(`/projects/${project.id}/environments/new`, cookie, {
      key: "development",
      name: "Again",
    });
    expect(taken.status).toBe(409);
    expect(await taken.text()).toMatch(/id="f-key-error">the project already has an environment/);
    const list = await apiJson("GET", `/projects/${project.id}/environments`, 200);
    expect(list.items).toHaveLength(2);
  });

  it("production shows no delete form; a viewer sees no form and is refused", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const admin = await (
      await adminGet(`/environments/${production.id}`, await adminSession())
    ).text();
    expect(admin).not.toContain(`data-form="delete-environment"`);
    expect(admin).toContain("cannot be deleted");
    const viewerCookie = await roleSession("viewer");
    const viewer = await (await adminGet(`/environments/${production.id}`, viewerCookie)).text();
    expect(viewer).not.toContain('<form method="post" action="/_ss/admin/environments');
    const rename = await adminPost(`/environments/${production.id}`, viewerCookie, {
      version: "1",
      name: "Hacked",
    });
    expect(rename.status).toBe(403);
    const newEnvironment = await adminPost(
      `/projects/${project.id}/environments/new`,
      viewerCookie,
      { key: "qa", name: "QA" },
    );
    expect(newEnvironment.status).toBe(403);
    expect((await apiJson("GET", `/environments/${production.id}`, 200)).name).toBe("Production");
    const list = await apiJson("GET", `/projects/${project.id}/environments`, 200);
    expect(list.items).toHaveLength(2);
  });
});

describe("tokens", () => {
  it("creating a token needs the signed-in token again, and a script's fetch is refused (a script on the site is same-origin)", async () => {
    const cookie = await adminSession();
    const name = `scripted ${unique()}`;
    const unconfirmed = await adminPost("/tokens", cookie, { name, role: "admin", expiresAt: "" });
    expect(unconfirmed.status).toBe(422);
    expect(await unconfirmed.text()).toMatch(
      /id="f-confirmToken-error">not the token this session signed in with/,
    );
    const wrong = await adminPost("/tokens", cookie, {
      name,
      role: "admin",
      expiresAt: "",
      confirmToken: "ss_guess",
    });
    expect(wrong.status).toBe(422);
    // fetch() from a page of the site: same-origin, but not a navigation.
    const scripted = await exports.default.fetch("http://localhost/_ss/admin/tokens", {
      method: "POST",
      headers: {
        cookie,
        "content-type": "application/x-www-form-urlencoded",
        "sec-fetch-site": "same-origin",
        "sec-fetch-mode": "cors",
        "sec-fetch-dest": "empty",
      },
      body: new URLSearchParams({ name, role: "admin", confirmToken: ADMIN_TOKEN }).toString(),
    });
    expect(scripted.status).toBe(403);
    const tokens = await apiJson("GET", "/tokens?limit=200", 200);
    expect(tokens.items.some((t: Json) => t.name === name)).toBe(false);
  });

  it("an admin creates a token: the secret is shown once, works, and never appears again", async () => {
    const cookie = await adminSession();
    const page = await (await adminGet("/tokens", cookie)).text();
    expect(page).toContain(`data-form="new-token"`);
    const name = `ci ${unique()}`;
    const created = await adminPost("/tokens", cookie, {
      name,
      role: "editor",
      expiresAt: "2099-01-01T00:00",
      confirmToken: ADMIN_TOKEN,
    });
    expect(created.status).toBe(200);
    expect(created.headers.get("cache-control")).toBe("no-store");
    const text = await created.text();
    expect(text.replace(/\s+/g, " ")).toContain("will not be shown again");
    const secret = /<input id="token-secret"[^>]*value="(ss_[^"]+)"/.exec(text)?.[1];
    expect(secret).toBeDefined();
    // The secret authenticates, as an editor expiring when the form said (read as UTC).
    await apiJson("GET", "/projects", 200, { token: secret! });
    await apiJson("GET", "/tokens", 403, { token: secret! });
    const tokens = await apiJson("GET", "/tokens?limit=200", 200);
    const row = tokens.items.find((t: Json) => t.name === name);
    expect(row.role).toBe("editor");
    expect(row.expiresAt).toBe("2099-01-01T00:00:00.000Z");
    // Listed afterwards with its prefix, never its secret.
    const list = await (await adminGet("/tokens", cookie)).text();
    expect(list).toContain(`data-token="${row.id}"`);
    expect(list).toContain(`<code>${row.prefix}…</code>`);
    expect(list).not.toContain(secret!);
  });

  it("an expiry in the past or an unknown role is refused beside its field and creates nothing", async () => {
    const cookie = await adminSession();
    const name = `refused ${unique()}`;
    const past = await adminPost("/tokens", cookie, {
      name,
      role: "viewer",
      expiresAt: "2001-01-01T00:00",
      confirmToken: ADMIN_TOKEN,
    });
    expect(past.status).toBe(422);
    expect(await past.text()).toMatch(/id="f-expiresAt-error">must be in the future/);
    const role = await adminPost("/tokens", cookie, {
      name,
      role: "owner",
      expiresAt: "",
      confirmToken: ADMIN_TOKEN,
    });
    expect(role.status).toBe(422);
    expect(await role.text()).toMatch(/<p class="field invalid">\s*<label for="f-role">/);
    const tokens = await apiJson("GET", "/tokens?limit=200", 200);
    expect(tokens.items.some((t: Json) => t.name === name)).toBe(false);
  });

  it("revoking ends the token at once", async () => {
    const token = await createToken("viewer", { name: `to revoke ${unique()}` });
    const cookie = await adminSession();
    const revoked = await adminPost(`/tokens/${token.id}/revoke`, cookie, {});
    expect(revoked.status).toBe(303);
    expect((await apiJson("GET", `/tokens/${token.id}`, 200)).revokedAt).not.toBeNull();
    await apiJson("GET", "/projects", 401, { token: token.token });
    const list = await (await adminGet("/tokens", cookie)).text();
    const row = new RegExp(`<tr data-token="${token.id}">[^]*?</tr>`).exec(list)![0];
    expect(row).toContain("<time");
    expect(row).not.toContain("<button");
  });

  it("editors and viewers get the API's 403 with no form; their posts change nothing", async () => {
    const target = await createToken("viewer", { name: `kept ${unique()}` });
    for (const role of ["editor", "viewer"] as const) {
      const cookie = await roleSession(role);
      const page = await adminGet("/tokens", cookie);
      expect(page.status).toBe(403);
      const text = await page.text();
      expect(text).not.toContain(`data-form="new-token"`);
      expect(text).toContain("this needs role admin");
      expect((await adminPost("/tokens", cookie, { name: "x", role: "admin" })).status).toBe(403);
      expect((await adminPost(`/tokens/${target.id}/revoke`, cookie, {})).status).toBe(403);
    }
    const cross = await adminPost(
      `/tokens/${target.id}/revoke`,
      await adminSession(),
      {},
      { "sec-fetch-site": "cross-site", "content-type": "application/x-www-form-urlencoded" },
    );
    expect(cross.status).toBe(403);
    expect((await apiJson("GET", `/tokens/${target.id}`, 200)).revokedAt).toBeNull();
  });
});

describe("audit log", () => {
  it("lists the project's entries newest first with actor, action, resource and time", async () => {
    const project = await createProject();
    const token = await createToken("admin", { name: "release bot" });
    await apiJson("PATCH", `/projects/${project.id}`, 200, {
      token: token.token,
      body: { name: "Audited" },
    });
    const response = await adminGet(
      `/projects/${project.id}/audit-log`,
      await roleSession("viewer"),
    );
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(
      /data-action="update"[^]*<time datetime="[^"]+">[^<]+UTC<\/time>[^]*release bot[^]*project <code>[^]*data-action="create"[^]*ADMIN_TOKEN/,
    );
    expect(text).toContain(`<code>${project.id}</code>`);
  });

  it("pages older entries and answers 404 for an unknown project", async () => {
    const project = await createProject();
    for (let i = 0; i < 50; i++)
      await apiJson("PATCH", `/projects/${project.id}`, 200, { body: { description: `d${i}` } });
    const cookie = await adminSession();
    const first = await (await adminGet(`/projects/${project.id}/audit-log`, cookie)).text();
    expect(first.match(/data-audit=/g)).toHaveLength(50);
    const older = /href="\?before=(\d+)">Older entries/.exec(first)![1]!;
    const second = await (
      await adminGet(`/projects/${project.id}/audit-log?before=${older}`, cookie)
    ).text();
    expect(second.match(/data-audit=/g)).toHaveLength(1);
    expect(second).toContain(`data-action="create"`);
    expect((await adminGet(`/projects/nope/audit-log`, cookie)).status).toBe(404);
  });
});

describe("the CLI's explanation (src/core/explain.ts)", () => {
  it("renders the aligned table `splitstream decide` prints", () => {
    const text = renderExplanation("7", "alice", [
      {
        experimentId: "1",
        experimentKey: "home_hero",
        variationId: "11",
        variationKey: "lifestyle_image",
        reason: "bucketed",
        bucket: 7321,
      },
      {
        experimentId: "2",
        experimentKey: "cta",
        variationId: null,
        variationKey: null,
        reason: "audience_mismatch",
        bucket: null,
      },
    ]);
    expect(text).toBe(
      [
        `visitor "alice" — datafile revision 7`,
        "experiment  variation        reason             bucket",
        "home_hero   lifestyle_image  bucketed           7321",
        "cta         -                audience_mismatch  -",
      ].join("\n"),
    );
  });
});
