/**
 * Flag parity through the edge (docs/flags.md "Where flags are decided"): for generated flag
 * datafiles (rollouts with targeted rules and percentages, Everyone Else, A/B rules running and
 * paused, mutually exclusive groups, whitelists, every variable type) and thousands of visitors,
 * what the Worker sends the origin in `x-ss-flags` and what `GET /_ss/decide` answers are the
 * official SDK's `decide()` for the same visitor, through the real Worker.
 *
 * The visitors' custom attributes go in as the client API stores them (`ss_attrs`); the
 * datafile's audiences are renamed onto custom attribute names, so the request attributes the
 * edge adds (geo, device, time, …) name nothing an audience reads and the SDK can be given the
 * custom attributes alone.
 */
import {
  createInstance,
  createStaticProjectConfigManager,
  type Client,
} from "@optimizely/optimizely-sdk/universal";
import { env } from "cloudflare:workers";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Datafile } from "../../src/core/datafile-types";
import { loadDatafile } from "../../src/core/index";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
import { encodeAttributes, isValidVisitorId } from "../../src/edge/visitor";
import type { BootstrapFlag } from "../../src/shared/bootstrap-types";
import { generateVisitors } from "../support/generate-datafile";
import { generateFlagDatafile } from "../support/generate-flags";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { routedWorker } from "../helpers/pipeline";
import { recordQueued } from "../helpers/queue";

const ORIGIN = "http://localhost:8788";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const site = routedWorker([{ pattern: "localhost/*", sdk_key: "demo", origin: ORIGIN }]);

/** Request-attribute names the generator's audiences use → custom names (see the module comment). */
const RENAMED: Record<string, string> = {
  "geo.country": "home_country",
  "device.type": "device_kind",
  "visitor.new": "first_visit",
  "time.hour": "hour_of_day",
};

function renameAttributes(datafile: Datafile): Datafile {
  let text = JSON.stringify(datafile);
  for (const [from, to] of Object.entries(RENAMED)) {
    text = text.split(JSON.stringify(from)).join(JSON.stringify(to));
    // Legacy audiences carry their conditions as a JSON string: the names are escaped there.
    text = text.split(`\\"${from}\\"`).join(`\\"${to}\\"`);
  }
  return JSON.parse(text) as Datafile;
}

/** Only what `ss_attrs` can carry: strings, finite numbers, booleans (renamed like the datafile). */
function storable(attributes: unknown): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  if (attributes === null || typeof attributes !== "object" || Array.isArray(attributes))
    return out;
  for (const [key, value] of Object.entries(attributes)) {
    const name = RENAMED[key] ?? key;
    if (
      typeof value === "string" ||
      typeof value === "boolean" ||
      (typeof value === "number" && Number.isFinite(value))
    )
      out[name] = value;
  }
  return out;
}

let origin: MockedOrigin;
beforeEach(() => {
  origin = mockOrigin(
    () =>
      new Response("<!doctype html><html><head><title>Shop</title></head><body>Hi</body></html>", {
        headers: { "content-type": "text/html; charset=utf-8" },
      }),
  );
  // Impressions are queued where a test can see them, not counted (test/events covers that).
  recordQueued([]);
});
afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

const SCENARIOS = [
  { seed: 101, visitors: 1000, options: {} },
  { seed: 102, visitors: 1000, options: { base: { randomGroups: 3 }, flags: 24 } },
];

describe.each(SCENARIOS)(
  "edge flags = the SDK's decide(), seed $seed",
  ({ seed, visitors, options }) => {
    let generated: Datafile;
    let datafile: Datafile;
    let client: Client;

    beforeAll(async () => {
      generated = generateFlagDatafile(seed, options);
      datafile = renameAttributes(generated);
      const text = JSON.stringify(datafile);
      const loaded = loadDatafile(text);
      if (!loaded.ok)
        throw new Error(`generated datafile invalid: ${JSON.stringify(loaded.problems)}`);
      await env.DATAFILES.put("datafiles/demo", text);
      resetDatafileStore();
      client = createInstance({
        projectConfigManager: createStaticProjectConfigManager({ datafile: text }),
        // No event processor: the SDK never sends anything.
        requestHandler: {
          makeRequest: () => ({
            abort: () => undefined,
            responsePromise: Promise.reject(new Error("no network in tests")),
          }),
        },
      });
      await client.onReady({ timeout: 10_000 });
    });
    afterAll(async () => {
      await client.close();
    });

    it(`x-ss-flags and /_ss/decide for ${visitors} visitors`, async () => {
      // Whitelisted ids of the datafile's A/B rules come first, so whitelists are exercised.
      const whitelisted = [
        ...datafile.experiments,
        ...datafile.groups.flatMap((g) => g.experiments),
      ]
        .flatMap((x) => Object.keys(x.forcedVariations))
        .filter(isValidVisitorId);
      const people = generateVisitors(seed, visitors, generated, { invalidRate: 0 });
      const kinds = new Set<string>();
      let enabledPairs = 0;
      for (let i = 0; i < visitors; i++) {
        const visitorId = i < whitelisted.length ? whitelisted[i]! : `visitor-${seed}-${i}`;
        const attributes = storable(people[i]?.attributes);
        const encoded = encodeAttributes(attributes);
        const cookie = `ss_vid=${visitorId}${encoded === "" ? "" : `; ss_attrs=${encoded}`}`;
        const user = client.createUserContext(visitorId, attributes);
        if (!user) throw new Error(`the SDK refused visitor ${visitorId}`);
        const expected = new Map<
          string,
          { enabled: boolean; variationKey: string | null; variables: unknown }
        >();
        for (const flag of datafile.featureFlags) {
          let decision;
          try {
            decision = user.decide(flag.key);
          } catch {
            continue; // the SDK has no decision (docs/decisions.md): not compared here
          }
          expected.set(flag.key, {
            enabled: decision.enabled,
            variationKey: decision.variationKey,
            variables: decision.variables,
          });
          kinds.add(`${decision.enabled}:${decision.ruleKey === null ? "none" : "rule"}`);
        }
        const where = `seed ${seed}, visitor ${visitorId} ${JSON.stringify(attributes)}`;

        // The page request: the origin gets the enabled flags.
        const page = await site(`http://localhost/p/${i}`, {
          headers: { "user-agent": BROWSER_UA, "accept-encoding": "identity", cookie },
        });
        expect(page.status, where).toBe(200);
        const header = origin.requests.at(-1)!.headers.get("x-ss-flags") ?? "";
        const sent = new Map(parseDecisionsHeader(header));
        const enabled = [...expected].filter(([, d]) => d.enabled);
        // Enabled flags in datafile order, as the 4 KB cap keeps whole pairs from the start.
        expect([...sent], where).toEqual(
          enabled.slice(0, sent.size).map(([key, d]) => [key, d.variationKey]),
        );
        if (header.length < 3500) expect(sent.size, where).toBe(enabled.length);
        enabledPairs += sent.size;

        // /_ss/decide: every flag, with its variables.
        const answer = await site(
          `http://localhost/_ss/decide?url=${encodeURIComponent(`http://localhost/p/${i}`)}`,
          {
            headers: { "user-agent": BROWSER_UA, "accept-encoding": "identity", cookie },
          },
        );
        expect(answer.status, where).toBe(200);
        const body = (await answer.json()) as { f?: BootstrapFlag[] };
        const flags = new Map((body.f ?? []).map((f) => [f.k, f]));
        for (const [key, d] of expected) {
          const f = flags.get(key);
          expect(f, `${where}: ${key} missing from /_ss/decide`).toBeDefined();
          expect(
            { enabled: f!.e === 1, variationKey: f!.v ?? null, variables: f!.x ?? {} },
            `${where}: ${key}`,
          ).toEqual(JSON.parse(JSON.stringify(d)));
        }
      }
      // The run exercised enabled and disabled outcomes, decided by rules and by none.
      expect(kinds.size, [...kinds].join(", ")).toBeGreaterThanOrEqual(3);
      expect(enabledPairs).toBeGreaterThan(visitors);
    }, 240_000);
  },
);
