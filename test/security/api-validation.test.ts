/**
 * Property tests of the management API's validation (docs/security.md "Input validation",
 * docs/api.md "Errors"): arbitrary bodies POSTed and PATCHed to projects, audiences, experiments,
 * events and pages are answered with a 4xx and the error envelope — validation failures with
 * JSON paths that point into the body — never a 5xx; bodies that happen to be valid are simply
 * accepted; and after a burst of bad requests a valid one still works and nothing half-written
 * is left behind.
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  API_BASE,
  apiJson,
  createProject,
  type ProjectWithEnvironments,
} from "../helpers/api";
import {
  SEED,
  defineOwn,
  hostileJson,
  hostileKey,
  hostileNumber,
  hostileString,
  seedProperties,
} from "../support/fast-check";
import { pathExists } from "../support/json-path";

seedProperties(40);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;
let page: Json;
let event: Json;
let audience: Json;
let experiment: Json;

interface Endpoint {
  name: string;
  method: "POST" | "PATCH";
  path: () => string;
  /** A body this endpoint accepts (keys made unique per call). */
  valid: () => Record<string, unknown>;
}

let unique = 0;
const key = (prefix: string) => `${prefix}_${++unique}`;

const ENDPOINTS: Endpoint[] = [
  {
    name: "create project",
    method: "POST",
    path: () => "/projects",
    valid: () => ({ name: key("shop") }),
  },
  {
    name: "rename project",
    method: "PATCH",
    path: () => `/projects/${project.id}`,
    valid: () => ({ name: key("shop"), description: "d" }),
  },
  {
    name: "create audience",
    method: "POST",
    path: () => `/projects/${project.id}/audiences`,
    valid: () => ({
      name: key("Germany"),
      conditions: [
        "or",
        { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
      ],
    }),
  },
  {
    name: "change audience",
    method: "PATCH",
    path: () => `/audiences/${audience.id}`,
    valid: () => ({
      conditions: [
        "and",
        { type: "custom_attribute", name: "path", match: "substring", value: "/p" },
      ],
    }),
  },
  {
    name: "create event",
    method: "POST",
    path: () => `/projects/${project.id}/events`,
    valid: () => ({ key: key("purchase"), type: "custom" }),
  },
  {
    name: "create page",
    method: "POST",
    path: () => `/projects/${project.id}/pages`,
    valid: () => ({
      key: key("home"),
      conditions: ["or", { match: "simple", value: "https://shop.example.com/" }],
    }),
  },
  {
    name: "change page",
    method: "PATCH",
    path: () => `/pages/${page.id}`,
    valid: () => ({ conditions: ["or", { match: "substring", value: "/checkout" }] }),
  },
  {
    name: "create experiment",
    method: "POST",
    path: () => `/projects/${project.id}/experiments`,
    valid: () => ({
      key: key("headline"),
      name: "Headline",
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique", winningDirection: "increasing" }],
      variations: [
        { key: "control", weight: 5000 },
        {
          key: "bold",
          weight: 5000,
          changes: [{ type: "attribute", selector: "h1", attributes: { text: "Bold" } }],
        },
      ],
    }),
  },
  {
    name: "change experiment",
    method: "PATCH",
    path: () => `/experiments/${experiment.id}`,
    valid: () => ({ name: key("Renamed"), audienceConditions: ["or", audience.id] }),
  },
];

function send(
  endpoint: Endpoint,
  body: string,
  contentType = "application/json",
): Promise<Response> {
  return exports.default.fetch(`${API_BASE}${endpoint.path()}`, {
    method: endpoint.method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": contentType },
    body,
  });
}

/** Every place in a JSON value, as [path segments, value] (parents first). */
function places(value: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...places(v, [...at, i])));
  else if (typeof value === "object" && value !== null)
    for (const k of Object.keys(value))
      out.push(...places((value as Record<string, unknown>)[k], [...at, k]));
  return out;
}

/** A valid body with one place replaced, deleted or given an extra key. */
const mutatedBody = (endpoint: Endpoint) =>
  fc
    .tuple(
      fc.nat(),
      fc.oneof(
        fc.record({
          kind: fc.constant("replace" as const),
          value: fc.oneof(hostileJson, hostileString, hostileNumber),
        }),
        fc.record({ kind: fc.constant("delete" as const) }),
        fc.record({ kind: fc.constant("extra" as const), key: hostileKey, value: hostileJson }),
      ),
    )
    .map(([pick, m]) => {
      const body = endpoint.valid() as Record<string, unknown>;
      const all = places(body);
      const at = all[pick % all.length]!;
      if (at.length === 0) return m.kind === "replace" ? m.value : body;
      const parent = at.slice(0, -1).reduce<Json>((node, k) => node[k], body);
      const last = at[at.length - 1]!;
      if (m.kind === "replace") parent[last] = m.value;
      else if (m.kind === "delete") {
        if (Array.isArray(parent)) parent.splice(last as number, 1);
        else delete parent[last];
      } else {
        const target = parent[last];
        if (typeof target === "object" && target !== null && !Array.isArray(target))
          defineOwn(target, m.key, m.value);
        else defineOwn(body, m.key, m.value);
      }
      return body;
    });

const anyBody = (
  endpoint: Endpoint,
): fc.Arbitrary<{ text: string; contentType: string; parsed: unknown }> =>
  fc.oneof(
    fc.oneof(hostileJson, mutatedBody(endpoint)).map((value) => ({
      text: JSON.stringify(value) ?? "null",
      contentType: "application/json",
      parsed: JSON.parse(JSON.stringify(value) ?? "null"),
    })),
    fc
      .tuple(
        fc.string({ unit: "binary", maxLength: 100 }),
        fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded"),
      )
      .map(([text, contentType]) => ({ text, contentType, parsed: undefined })),
  );

beforeAll(async () => {
  project = await createProject();
  page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: {
      key: "home",
      conditions: ["or", { match: "simple", value: "https://shop.example.com/" }],
    },
  });
  event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  audience = await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
    body: {
      name: "DE",
      conditions: [
        "or",
        { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
      ],
    },
  });
  experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: ENDPOINTS.find((e) => e.name === "create experiment")!.valid(),
  });
});

describe(`management API validators with arbitrary bodies (seed ${SEED})`, () => {
  it.each(ENDPOINTS.map((e) => [e.name, e] as const))(
    "%s: a 4xx with the envelope and JSON paths into the body, or success; never 5xx",
    async (_name, endpoint) => {
      const statuses = new Set<number>();
      await fc.assert(
        fc.asyncProperty(anyBody(endpoint), async ({ text, contentType, parsed }) => {
          const response = await send(endpoint, text, contentType);
          const raw = await response.text();
          statuses.add(response.status);
          expect(response.status, raw.slice(0, 500)).toBeLessThan(500);
          expect(response.headers.get("cache-control")).toBe("no-store");
          const body = JSON.parse(raw) as Json;
          if (response.status < 300) {
            expect([200, 201]).toContain(response.status);
            return;
          }
          expect([400, 409, 413, 415, 422]).toContain(response.status);
          expect(Object.keys(body)).toEqual(["error"]);
          expect(Object.keys(body.error).sort()).toEqual(["code", "details", "message"]);
          expect(body.error.message.length).toBeGreaterThan(0);
          if (response.status === 422 && body.error.code === "validation_failed") {
            const details = body.error.details as Array<{ path: string; message: string }>;
            expect(details.length).toBeGreaterThan(0);
            expect(body.error.message).toContain(details[0]!.path);
            for (const detail of details) {
              expect(detail.message.length).toBeGreaterThan(0);
              expect(detail.path).toMatch(/^\$\.(body|params|query)\b/);
              if (detail.path.startsWith("$.body"))
                expect(
                  pathExists({ body: parsed }, detail.path),
                  `${detail.path}: ${detail.message}`,
                ).toBe(true);
            }
          }
          if (response.status === 415) expect(contentType).not.toBe("application/json");
        }),
      );
      // The bodies were not all refused for one trivial reason.
      expect(statuses.has(422)).toBe(true);
      expect(statuses.has(400) || statuses.has(415)).toBe(true);
    },
  );

  it("after a burst of invalid requests a valid one still works, and nothing invalid was stored", async () => {
    const before = await env.DB.prepare("SELECT count(*) AS n FROM audiences WHERE project_id = ?")
      .bind(project.id)
      .first<{ n: number }>();
    const audiences = ENDPOINTS.find((e) => e.name === "create audience")!;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(hostileJson, async (body) => {
        const response = await send(audiences, JSON.stringify(body) ?? "null");
        await response.body?.cancel();
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.status).toBeLessThan(500);
        refused++;
      }),
      { numRuns: 100 },
    );
    expect(refused).toBe(100);
    const after = await env.DB.prepare("SELECT count(*) AS n FROM audiences WHERE project_id = ?")
      .bind(project.id)
      .first<{ n: number }>();
    expect(after?.n).toBe(before?.n);

    for (const endpoint of ENDPOINTS) {
      const response = await send(endpoint, JSON.stringify(endpoint.valid()));
      expect(response.status, `${endpoint.name}: ${await response.clone().text()}`).toBe(
        endpoint.method === "POST" ? 201 : 200,
      );
    }
  });
});
