/**
 * Seeded generators for benchmark inputs: visitors, audience conditions, and Optimizely v4
 * datafiles with Splitstream's `web` extension (docs/datafile.md). Conditions are built in a neutral
 * form first and then translated, so Splitstream, the Optimizely SDK and GrowthBook all
 * evaluate exactly the same targeting on exactly the same visitors.
 */

// ---------------------------------------------------------------- random

/** sfc32: small, fast, seedable; good enough for generating fixtures deterministically. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    let t = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    t = (t + this.d) | 0;
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks by weight: entries are [value, weight]. */
  weighted<T>(entries: ReadonlyArray<readonly [T, number]>): T {
    let total = 0;
    for (const [, w] of entries) total += w;
    let x = this.next() * total;
    for (const [value, w] of entries) {
      x -= w;
      if (x < 0) return value;
    }
    return entries[entries.length - 1]![0];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  hex(length: number): string {
    let s = "";
    for (let i = 0; i < length; i++) s += Math.floor(this.next() * 16).toString(16);
    return s;
  }
}

/** Unique numeric string ids, like Optimizely's. */
export class IdFactory {
  private readonly used = new Set<string>();
  constructor(private readonly rng: Rng) {}
  next(): string {
    for (;;) {
      const id = String(this.rng.int(1_000_000_000, 9_999_999_999));
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }
}

// ---------------------------------------------------------------- visitors

export type Attributes = Record<string, string | number | boolean>;

export interface BenchVisitor {
  visitorId: string;
  attributes: Attributes;
}

const COUNTRIES = [
  ["US", 35],
  ["DE", 15],
  ["GB", 12],
  ["FR", 10],
  ["NL", 8],
  ["CA", 7],
  ["ES", 7],
  ["IT", 6],
] as const;
const PLANS = [
  ["free", 60],
  ["pro", 30],
  ["enterprise", 10],
] as const;
const DEVICES = [
  ["desktop", 55],
  ["mobile", 40],
  ["tablet", 5],
] as const;
const PATHS = [
  ["/", 20],
  ["/products/shoes", 15],
  ["/products/bags", 10],
  ["/sale/summer", 12],
  ["/checkout", 8],
  ["/cart", 8],
  ["/blog/how-to-choose", 10],
  ["/account/orders", 7],
  ["/search", 10],
] as const;
const STRING_ATTRIBUTES = { country: COUNTRIES, plan: PLANS, device: DEVICES } as const;
const SUBSTRINGS = [
  "/products",
  "sale",
  "utm_source=newsletter",
  "/checkout",
  "/blog",
  "shoes",
] as const;

export const ATTRIBUTE_KEYS = ["country", "plan", "device", "age", "visits", "url"] as const;

export function generateVisitors(rng: Rng, count: number): BenchVisitor[] {
  const visitors: BenchVisitor[] = [];
  for (let i = 0; i < count; i++) {
    const query = rng.chance(0.3)
      ? "?utm_source=newsletter&utm_medium=email"
      : rng.chance(0.2)
        ? "?q=" + rng.hex(4)
        : "";
    visitors.push({
      visitorId: `${rng.hex(8)}-${rng.hex(4)}-4${rng.hex(3)}-${rng.hex(12)}`,
      attributes: {
        country: rng.weighted(COUNTRIES),
        plan: rng.weighted(PLANS),
        device: rng.weighted(DEVICES),
        age: rng.int(16, 79),
        visits: Math.min(60, 1 + Math.floor(-Math.log(1 - rng.next()) * 6)),
        url: "https://shop.example.com" + rng.weighted(PATHS) + query,
      },
    });
  }
  return flatten(visitors);
}

/**
 * Round-trips through JSON so every string is flat, as strings parsed from a request (cookie,
 * header, JSON body) are. Strings built by concatenation are V8 "cons strings" (ropes), and
 * reading one character at a time from a rope — which every SDK's hash function does — is many
 * times slower than from a flat string; benchmarking on ropes would measure the generator.
 */
export function flatten<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

// ---------------------------------------------------------------- conditions

export type Match = "exact" | "gt" | "substring";
export interface Leaf {
  attr: string;
  match: Match;
  value: string | number;
}
export interface Branch {
  op: "and" | "or";
  children: Cond[];
}
export type Cond = Leaf | Branch;

const isLeaf = (c: Cond): c is Leaf => "attr" in c;

export function countLeaves(c: Cond): number {
  return isLeaf(c) ? 1 : c.children.reduce((n, child) => n + countLeaves(child), 0);
}

function exactLeaf(rng: Rng): Leaf {
  const attr = rng.pick(["country", "country", "plan", "device"] as const);
  const values = STRING_ATTRIBUTES[attr];
  // Targeting usually aims at the big segments: the most common value more often than not.
  return { attr, match: "exact", value: rng.chance(0.6) ? values[0][0] : rng.weighted(values) };
}
function gtLeaf(rng: Rng): Leaf {
  return rng.chance(0.6)
    ? { attr: "age", match: "gt", value: rng.int(18, 40) }
    : { attr: "visits", match: "gt", value: rng.int(1, 3) };
}
function substringLeaf(rng: Rng): Leaf {
  return { attr: "url", match: "substring", value: rng.pick(SUBSTRINGS) };
}

/**
 * An audience of 2–3 conditions: exact on a string attribute, gt on a number, and (three
 * times in five) a substring on the URL — flat `and`, or exact AND (gt OR substring).
 */
export function generateAudienceCondition(rng: Rng): Cond {
  const shape = rng.weighted([
    [0, 40],
    [1, 20],
    [2, 40],
  ] as const);
  if (shape === 0) return { op: "and", children: [exactLeaf(rng), gtLeaf(rng)] };
  if (shape === 1)
    return { op: "and", children: [exactLeaf(rng), gtLeaf(rng), substringLeaf(rng)] };
  return {
    op: "and",
    children: [exactLeaf(rng), { op: "or", children: [gtLeaf(rng), substringLeaf(rng)] }],
  };
}

/** Optimizely typed-audience condition tree. */
export function toOptimizelyConditions(c: Cond): unknown {
  if (isLeaf(c)) return { type: "custom_attribute", name: c.attr, match: c.match, value: c.value };
  return [c.op, ...c.children.map(toOptimizelyConditions)];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** GrowthBook (mongo-style) condition with the same meaning. */
export function toGrowthBookCondition(c: Cond): Record<string, unknown> {
  if (isLeaf(c)) {
    if (c.match === "exact") return { [c.attr]: c.value };
    if (c.match === "gt") return { [c.attr]: { $gt: c.value } };
    // GrowthBook has no substring operator; an escaped literal regex is the equivalent.
    return { [c.attr]: { $regex: escapeRegex(String(c.value)) } };
  }
  const parts = c.children.map(toGrowthBookCondition);
  if (c.op === "or") return { $or: parts };
  // `and`: one flat object (GrowthBook's usual style) when no key repeats, else $and.
  const merged: Record<string, unknown> = {};
  for (const part of parts) {
    for (const [k, v] of Object.entries(part)) {
      if (k in merged) return { $and: parts };
      merged[k] = v;
    }
  }
  return merged;
}

/** Reference evaluation of the neutral form (all visitors carry every attribute). */
export function evaluate(c: Cond, attributes: Attributes): boolean {
  if (!isLeaf(c)) {
    return c.op === "and"
      ? c.children.every((x) => evaluate(x, attributes))
      : c.children.some((x) => evaluate(x, attributes));
  }
  const actual = attributes[c.attr];
  if (c.match === "exact") return actual === c.value;
  if (c.match === "gt") return typeof actual === "number" && actual > (c.value as number);
  return typeof actual === "string" && actual.includes(String(c.value));
}

// ---------------------------------------------------------------- datafile pieces

type Json = Record<string, unknown>;

function allocation(
  ids: readonly string[],
  coverage: number,
): Array<{ entityId: string; endOfRange: number }> {
  const total = Math.round(coverage * 10000);
  let end = 0;
  return ids.map((entityId, i) => {
    end = i === ids.length - 1 ? total : Math.round(((i + 1) * total) / ids.length);
    return { entityId, endOfRange: end };
  });
}

const DUMMY_AUDIENCE_CONDITIONS =
  '["or", {"match": "exact", "name": "$opt_dummy_attribute", "type": "custom_attribute", "value": "$opt_dummy_value"}]';

function attributeDefs(ids: IdFactory): Json[] {
  return ATTRIBUTE_KEYS.map((key) => ({ id: ids.next(), key }));
}

/** Typed audience + the legacy placeholder Optimizely's own datafiles carry for it. */
function audiencePair(id: string, name: string, cond: Cond): { legacy: Json; typed: Json } {
  return {
    legacy: { id, name, conditions: DUMMY_AUDIENCE_CONDITIONS },
    typed: { id, name, conditions: ["or", toOptimizelyConditions(cond)] },
  };
}

// ---------------------------------------------------------------- decide scenario

export interface ScenarioExperiment {
  id: string;
  key: string;
  variationKeys: string[];
  coverage: number;
  condition: Cond;
}

export interface DecideScenario {
  datafile: Json;
  json: string;
  experiments: ScenarioExperiment[];
  visitors: BenchVisitor[];
}

/**
 * The decision benchmark's world: `experiments` running experiments (2–4 variations, coverage
 * 50–100 %, one audience of 2–3 conditions each), no groups, and `visitors` visitors.
 */
export function generateDecideScenario(
  seed: number,
  experimentCount: number,
  visitorCount: number,
): DecideScenario {
  const rng = new Rng(seed);
  const ids = new IdFactory(rng);
  const experiments: ScenarioExperiment[] = [];
  const dfExperiments: Json[] = [];
  const audiences: Json[] = [];
  const typedAudiences: Json[] = [];
  for (let i = 0; i < experimentCount; i++) {
    const id = ids.next();
    const key = `exp_${i}_${rng.hex(4)}`;
    const n = rng.int(2, 4);
    const variationIds = Array.from({ length: n }, () => ids.next());
    const variationKeys = variationIds.map((_, j) => (j === 0 ? "control" : `treatment_${j}`));
    const coverage = rng.pick([1, 1, 1, 0.9, 0.5]);
    const condition = generateAudienceCondition(rng);
    const audienceId = ids.next();
    const pair = audiencePair(audienceId, `audience of ${key}`, condition);
    audiences.push(pair.legacy);
    typedAudiences.push(pair.typed);
    experiments.push({ id, key, variationKeys, coverage, condition });
    dfExperiments.push({
      id,
      key,
      status: "Running",
      layerId: ids.next(),
      variations: variationIds.map((vid, j) => ({
        id: vid,
        key: variationKeys[j],
        featureEnabled: false,
        variables: [],
      })),
      trafficAllocation: allocation(variationIds, coverage),
      audienceIds: [audienceId],
      audienceConditions: ["or", audienceId],
      forcedVariations: {},
    });
  }
  const datafile: Json = {
    version: "4",
    accountId: "1000000001",
    projectId: "1000000002",
    revision: "1",
    sdkKey: "bench-decide",
    environmentKey: "production",
    anonymizeIP: true,
    botFiltering: false,
    sendFlagDecisions: false,
    attributes: attributeDefs(ids),
    audiences,
    typedAudiences,
    events: [{ id: ids.next(), key: "purchase", experimentIds: experiments.map((e) => e.id) }],
    experiments: dfExperiments,
    groups: [],
    featureFlags: [],
    rollouts: [],
    integrations: [],
  };
  return {
    datafile,
    json: JSON.stringify(datafile),
    experiments: flatten(experiments),
    visitors: generateVisitors(rng, visitorCount),
  };
}

// ---------------------------------------------------------------- large datafile

export interface LargeDatafileOptions {
  experiments: number;
  /** Of which this many sit in mutually exclusive groups of `groupSize`. */
  grouped: number;
  groupSize: number;
  audiences: number;
  pages: number;
  events: number;
  featureFlags: number;
}

export const LARGE_DEFAULTS: LargeDatafileOptions = {
  experiments: 500,
  grouped: 100,
  groupSize: 5,
  audiences: 200,
  pages: 120,
  events: 150,
  featureFlags: 25,
};

const SELECTORS = [
  "#hero h1",
  ".cta-primary",
  "#buy",
  ".product-card .price",
  "header nav",
  "#newsletter-form",
  ".banner",
];
const WORDS =
  "fast free shipping today only new arrivals save more limited offer exclusive best seller try it now".split(
    " ",
  );

function sentence(rng: Rng, words: number): string {
  return Array.from({ length: words }, () => rng.pick(WORDS)).join(" ");
}

function change(rng: Rng, pageId: string): Json {
  const kind = rng.weighted([
    ["text", 30],
    ["style", 20],
    ["insert", 20],
    ["css", 15],
    ["code", 10],
    ["hide", 5],
  ] as const);
  const selector = rng.pick(SELECTORS);
  switch (kind) {
    case "text":
      return {
        type: "attribute",
        selector,
        attributes: { text: sentence(rng, rng.int(3, 12)) },
        pageId,
      };
    case "style":
      return {
        type: "attribute",
        selector,
        attributes: {
          style: `color: #${rng.hex(6)}; background: #${rng.hex(6)}; font-weight: 600`,
          addClass: "ss-variant",
        },
        pageId,
      };
    case "insert":
      return {
        type: "insert_html",
        selector,
        position: rng.pick(["before", "after", "prepend", "append", "replace"] as const),
        html: `<div class="ss-banner ss-${rng.hex(4)}"><strong>${sentence(rng, 4)}</strong> <a href="/sale?src=${rng.hex(6)}">${sentence(rng, 3)}</a></div>`,
        pageId,
      };
    case "css":
      return {
        type: "custom_css",
        value: `.ss-banner{padding:12px 16px;border-radius:8px;background:#${rng.hex(6)}} ${selector}{margin-top:${rng.int(0, 24)}px}`,
        pageId,
      };
    case "code":
      return {
        type: "custom_code",
        value: `document.querySelectorAll(${JSON.stringify(selector)}).forEach(function(el){el.dataset.ssVariant=${JSON.stringify(rng.hex(6))};});`,
        pageId,
      };
    case "hide":
      return { type: "attribute", selector, attributes: { hide: true }, pageId };
  }
}

/**
 * A datafile like a busy production project's: `experiments` experiments (some paused, some in
 * random groups, some behind feature flags), typed audiences combined with and/or, forced
 * variations, rollouts, events, and a `web` section with pages, changes, metrics and lists.
 */
export function generateLargeDatafile(
  seed: number,
  options: LargeDatafileOptions = LARGE_DEFAULTS,
): Json {
  const rng = new Rng(seed);
  const ids = new IdFactory(rng);

  const audienceIds: string[] = [];
  const audiences: Json[] = [];
  const typedAudiences: Json[] = [];
  for (let i = 0; i < options.audiences; i++) {
    const id = ids.next();
    audienceIds.push(id);
    const pair = audiencePair(id, `audience ${i}`, generateAudienceCondition(rng));
    audiences.push(pair.legacy);
    typedAudiences.push(pair.typed);
  }

  const pages: Json[] = [];
  for (let i = 0; i < options.pages; i++) {
    const path = rng.weighted(PATHS) + (i > 8 ? `/${rng.hex(6)}` : "");
    const activation = rng.weighted([
      ["immediate", 80],
      ["manual", 8],
      ["url_changed", 7],
      ["dom_changed", 5],
    ] as const);
    const conditions: unknown[] = [
      "or",
      { match: "simple", value: `https://shop.example.com${path}` },
    ];
    if (rng.chance(0.5))
      conditions.push({
        match: "regex",
        value: `^https://shop\\.example\\.com${path.replace(/[.]/g, "\\.")}/\\d+$`,
      });
    if (rng.chance(0.3)) conditions.push({ match: "substring", value: `${path}?` });
    pages.push({
      id: `p${i}`,
      key: `page_${i}`,
      activation,
      ...(activation === "dom_changed" ? { selector: rng.pick(SELECTORS) } : {}),
      conditions,
    });
  }

  const eventIds = Array.from({ length: options.events }, () => ids.next());
  const eventExperiments = new Map<string, string[]>(eventIds.map((id) => [id, []]));

  // Feature flags and their variables (defined up front: flag experiments need the variable ids).
  const flags = Array.from({ length: options.featureFlags }, (_, i) => ({
    id: ids.next(),
    key: `flag_${i}`,
    rolloutId: ids.next(),
    experimentIds: [] as string[],
    variables: [
      { id: ids.next(), key: "enabled_copy", type: "string", defaultValue: "Buy now" },
      { id: ids.next(), key: "discount", type: "double", defaultValue: "0" },
      {
        id: ids.next(),
        key: "layout",
        type: "string",
        subType: "json",
        defaultValue: '{"columns":3}',
      },
    ],
  }));

  const webExperiments: Json[] = [];
  const makeExperiment = (index: number, flag: (typeof flags)[number] | null): Json => {
    const id = ids.next();
    const key = `exp_${index}_${rng.hex(4)}`;
    const n = rng.int(2, 4);
    const variationIds = Array.from({ length: n }, () => ids.next());
    const status = rng.weighted([
      ["Running", 85],
      ["Paused", 10],
      ["Not started", 5],
    ] as const);
    const a = rng.pick(audienceIds);
    const b = rng.pick(audienceIds);
    const audienceShape = rng.int(0, 3);
    const expAudienceIds = audienceShape === 0 ? [] : audienceShape === 1 ? [a] : [a, b];
    const audienceConditions =
      audienceShape === 0
        ? []
        : audienceShape === 1
          ? ["or", a]
          : [audienceShape === 2 ? "and" : "or", a, b];
    const forcedVariations: Record<string, string> = {};
    if (rng.chance(0.2)) forcedVariations[`qa-${rng.hex(6)}`] = "control";
    const myEvents = [rng.pick(eventIds), rng.pick(eventIds)];
    for (const e of myEvents) eventExperiments.get(e)!.push(id);
    const pageIds = [`p${rng.int(0, options.pages - 1)}`];
    const second = `p${rng.int(0, options.pages - 1)}`;
    if (rng.chance(0.2) && second !== pageIds[0]) pageIds.push(second);
    const isSplitUrl = rng.chance(0.05);
    webExperiments.push({
      id,
      type: isSplitUrl ? "split_url" : "ab",
      pageIds,
      metrics: [
        { eventId: myEvents[0], aggregator: "unique", winningDirection: "increasing" },
        {
          eventId: myEvents[1],
          aggregator: "sum",
          field: "revenue",
          winningDirection: "increasing",
        },
      ],
      sharedChanges: rng.chance(0.2) ? [change(rng, pageIds[0]!)] : [],
      variations: variationIds.map((vid, j) => ({
        id: vid,
        changes:
          j === 0
            ? []
            : isSplitUrl
              ? [
                  {
                    type: "redirect",
                    destination: `https://shop.example.com/lp/${rng.hex(6)}`,
                    preserveParameters: true,
                    mode: rng.pick(["redirect", "rewrite"] as const),
                    pageId: pageIds[0],
                  },
                ]
              : Array.from({ length: rng.int(1, 4) }, () => change(rng, rng.pick(pageIds))),
      })),
    });
    return {
      id,
      key,
      status,
      layerId: ids.next(),
      variations: variationIds.map((vid, j) => ({
        id: vid,
        key: j === 0 ? "control" : `variation_${j}`,
        featureEnabled: flag !== null && j > 0,
        variables: flag
          ? [
              { id: flag.variables[0]!.id, value: j === 0 ? "Buy now" : `Buy ${rng.pick(WORDS)}` },
              { id: flag.variables[1]!.id, value: String(j * 5) },
              { id: flag.variables[2]!.id, value: JSON.stringify({ columns: 2 + j }) },
            ]
          : [],
      })),
      trafficAllocation: allocation(variationIds, rng.pick([1, 1, 1, 0.8, 0.5])),
      audienceIds: expAudienceIds,
      audienceConditions,
      forcedVariations,
    };
  };

  const topLevel = options.experiments - options.grouped;
  const experiments: Json[] = [];
  for (let i = 0; i < topLevel; i++) {
    const flag = i < flags.length ? flags[i]! : null;
    const experiment = makeExperiment(i, flag);
    if (flag) flag.experimentIds.push(experiment.id as string);
    experiments.push(experiment);
  }

  const groups: Json[] = [];
  for (let g = 0; g < options.grouped / options.groupSize; g++) {
    const members = Array.from({ length: options.groupSize }, (_, j) =>
      makeExperiment(topLevel + g * options.groupSize + j, null),
    );
    groups.push({
      id: ids.next(),
      policy: "random",
      experiments: members,
      trafficAllocation: allocation(
        members.map((m) => m.id as string),
        rng.pick([1, 0.9]),
      ),
    });
  }

  const rollouts = flags.map((flag) => {
    const rule = (key: string, everyone: boolean): Json => {
      const vid = ids.next();
      return {
        id: ids.next(),
        key,
        status: "Running",
        layerId: flag.rolloutId,
        variations: [{ id: vid, key: "on", featureEnabled: true, variables: [] }],
        trafficAllocation: [{ entityId: vid, endOfRange: everyone ? 10000 : 5000 }],
        audienceIds: everyone ? [] : [rng.pick(audienceIds)],
        audienceConditions: everyone ? [] : ["or", rng.pick(audienceIds)],
        forcedVariations: {},
      };
    };
    // Optimizely names the everyone-else rule "default-rollout-<rollout>-<flag>": unique per flag.
    return {
      id: flag.rolloutId,
      experiments: [
        rule(`${flag.key}_targeted`, false),
        rule(`default-rollout-${flag.rolloutId}-${flag.id}`, true),
      ],
    };
  });

  const events = eventIds.map((id, i) => ({
    id,
    key: `event_${i}`,
    experimentIds: eventExperiments.get(id)!,
  }));
  const webEvents = eventIds.map((id, i) =>
    i % 3 === 0
      ? { id, type: "pageview", pageId: `p${i % options.pages}` }
      : i % 3 === 1
        ? { id, type: "click", pageId: `p${i % options.pages}`, selector: rng.pick(SELECTORS) }
        : { id, type: "custom" },
  );

  return {
    version: "4",
    accountId: "1000000001",
    projectId: "1000000003",
    revision: "317",
    sdkKey: "bench-large",
    environmentKey: "production",
    anonymizeIP: true,
    botFiltering: true,
    sendFlagDecisions: true,
    attributes: attributeDefs(ids),
    audiences,
    typedAudiences,
    events,
    experiments,
    groups,
    featureFlags: flags,
    rollouts,
    integrations: [],
    web: {
      pages,
      experiments: webExperiments,
      events: webEvents,
      lists: [
        {
          id: "l1",
          key: "vip",
          values: Array.from({ length: 200 }, () => `${rng.hex(8)}-${rng.hex(4)}`),
        },
        {
          id: "l2",
          key: "employees",
          values: Array.from({ length: 50 }, () => `${rng.hex(8)}@example.com`),
        },
      ],
      integrations: { dataLayer: true, segment: false },
    },
  };
}
