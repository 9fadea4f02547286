/**
 * Management rows (the D1 columns, JSON columns as text) for publishing tests: factories with
 * defaults, a realistic project snapshot, and SQL inserts that put a snapshot into D1 directly
 * (no resource routes involved). Pure except `insertSnapshot`, which takes the D1 binding.
 */
import type {
  AttributeRow,
  AudienceRow,
  EnvironmentRow,
  EventRow,
  ExperimentRow,
  GroupRow,
  ListRow,
  PageRow,
  ProjectRow,
  VariationSpec,
} from "../../src/api/store/rows";
import type { ProjectSnapshot } from "../../src/api/services/datafile-build";

/** created_at values: `at(3)` sorts after `at(2)`. */
export function at(n: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
}

const common = (id: string, n: number) => ({
  id,
  project_id: "100000000001",
  version: 1,
  created_at: at(n),
  updated_at: at(n),
});

export function projectRow(overrides: Partial<ProjectRow> = {}): ProjectRow {
  return {
    id: "100000000001",
    name: "Shop",
    account_id: "900000000001",
    description: "",
    version: 1,
    created_at: at(0),
    updated_at: at(0),
    ...overrides,
  };
}

export function environmentRow(overrides: Partial<EnvironmentRow> = {}): EnvironmentRow {
  return {
    id: "200000000001",
    project_id: "100000000001",
    key: "production",
    name: "Production",
    sdk_key: "shopProdKey0000000000001",
    revision: 0,
    require_review: 0,
    version: 1,
    created_at: at(0),
    updated_at: at(0),
    ...overrides,
  };
}

export function attributeRow(id: string, key: string, n = 1): AttributeRow {
  return { ...common(id, n), key, name: key, description: "" };
}

export function audienceRow(
  id: string,
  conditions: unknown,
  overrides: Partial<AudienceRow> = {},
  n = 2,
): AudienceRow {
  return {
    ...common(id, n),
    name: `Audience ${id}`,
    description: "",
    conditions: JSON.stringify(conditions),
    archived: 0,
    ...overrides,
  };
}

export function pageRow(
  id: string,
  key: string,
  conditions: unknown,
  overrides: Partial<PageRow> = {},
  n = 3,
): PageRow {
  return {
    ...common(id, n),
    key,
    name: key,
    activation: "immediate",
    selector: null,
    conditions: JSON.stringify(conditions),
    archived: 0,
    ...overrides,
  };
}

export function eventRow(
  id: string,
  key: string,
  overrides: Partial<EventRow> = {},
  n = 4,
): EventRow {
  return {
    ...common(id, n),
    key,
    name: key,
    type: "custom",
    page_id: null,
    selector: null,
    max_per_visitor_per_day: null,
    archived: 0,
    ...overrides,
  };
}

export function groupRow(
  id: string,
  allocation: Array<{ experimentId: string; weight: number }>,
  overrides: Partial<GroupRow> = {},
  n = 5,
): GroupRow {
  return {
    ...common(id, n),
    name: `Group ${id}`,
    policy: "random",
    allocation: JSON.stringify(allocation),
    ...overrides,
  };
}

export function listRow(id: string, key: string, values: string[], n = 1): ListRow {
  return { ...common(id, n), key, name: key, values: JSON.stringify(values) };
}

export interface ExperimentSpec {
  id: string;
  key: string;
  n?: number;
  type?: ExperimentRow["type"];
  groupId?: string | null;
  traffic?: number;
  audienceConditions?: unknown;
  pageIds?: string[];
  metrics?: unknown[];
  variations: VariationSpec[];
  sections?: unknown[] | null;
  sharedChanges?: unknown[];
  forcedVariations?: Record<string, string>;
  archived?: boolean;
  allocationPolicy?: ExperimentRow["allocation_policy"];
  flagId?: string;
}

export function experimentRow(spec: ExperimentSpec): ExperimentRow {
  return {
    ...common(spec.id, spec.n ?? 10),
    key: spec.key,
    name: spec.key,
    description: "",
    type: spec.type ?? "ab",
    layer_id: `${spec.id}9`,
    group_id: spec.groupId ?? null,
    flag_id: spec.flagId ?? null,
    traffic: spec.traffic ?? 10000,
    allocation_policy: spec.allocationPolicy ?? "manual",
    audience_conditions:
      spec.audienceConditions === undefined ? null : JSON.stringify(spec.audienceConditions),
    page_ids: JSON.stringify(spec.pageIds ?? []),
    metrics: JSON.stringify(spec.metrics ?? []),
    variations: JSON.stringify(spec.variations),
    sections: spec.sections ? JSON.stringify(spec.sections) : null,
    shared_changes: JSON.stringify(spec.sharedChanges ?? []),
    forced_variations: JSON.stringify(spec.forcedVariations ?? {}),
    archived: spec.archived ? 1 : 0,
  };
}

/** Two variations, control/treatment, with the given weights. */
export function twoVariations(
  prefix: string,
  weights: [number, number] = [5000, 5000],
  changes: unknown[] = [],
): VariationSpec[] {
  return [
    { id: `${prefix}1`, key: "control", name: "Control", weight: weights[0], changes: [] },
    {
      id: `${prefix}2`,
      key: "treatment",
      name: "Treatment",
      weight: weights[1],
      changes: changes as VariationSpec["changes"],
    },
  ];
}

/**
 * A realistic shop: attributes, audiences (one archived and unused, one archived but used), a
 * list, five pages (regex, manual, dom_changed), click/pageview/custom events, and experiments:
 * an A/B test with forced variations, a 2×2 multivariate at 80% traffic behind an audience
 * tree, a Paused split-URL test with a hole, a random group of two (one with an archived
 * sibling's allocation left as a hole), a test with a 0-weight variation, an archived one and
 * one Archived in this environment.
 */
export function realisticSnapshot(statusOverrides: Record<string, string> = {}): ProjectSnapshot {
  const buy = { eventId: "400000000002", aggregator: "unique", winningDirection: "increasing" };
  const revenue = { eventId: "400000000001", aggregator: "sum", field: "revenue" };
  const experiments: ExperimentRow[] = [
    experimentRow({
      id: "600000000001",
      key: "product_page_cta",
      n: 10,
      pageIds: ["300000000002"],
      metrics: [buy, revenue],
      variations: twoVariations(
        "61000000000",
        [5000, 5000],
        [
          {
            type: "attribute",
            selector: "#add-to-cart",
            attributes: { text: "Add to basket", addClass: "btn-green" },
          },
          { type: "custom_css", value: ".btn-green { background: #0a7; }" },
        ],
      ),
      forcedVariations: { "qa-tester-1": "treatment" },
    }),
    experimentRow({
      id: "600000000002",
      key: "homepage_hero",
      n: 11,
      type: "multivariate",
      traffic: 8000,
      audienceConditions: ["or", "500000000001", ["and", "500000000002", ["not", "500000000004"]]],
      pageIds: ["300000000001"],
      metrics: [{ eventId: "400000000003", aggregator: "count" }, revenue],
      sections: [
        {
          id: "s_headline",
          name: "Headline",
          variations: [
            { id: "sv_h_a", name: "Original", changes: [] },
            {
              id: "sv_h_b",
              name: "Benefit",
              changes: [
                {
                  type: "attribute",
                  selector: "h1.hero-title",
                  attributes: { text: "Free repairs" },
                },
              ],
            },
          ],
        },
        {
          id: "s_image",
          name: "Image",
          variations: [
            { id: "sv_i_a", name: "Original", changes: [] },
            {
              id: "sv_i_b",
              name: "Lifestyle",
              changes: [
                { type: "attribute", selector: ".hero img", attributes: { src: "/img/life.jpg" } },
              ],
            },
          ],
        },
      ],
      variations: [
        {
          id: "620000000001",
          key: "Original_Original",
          weight: 2500,
          sectionVariationIds: ["sv_h_a", "sv_i_a"],
          changes: [],
        },
        {
          id: "620000000002",
          key: "Benefit_Original",
          weight: 2500,
          sectionVariationIds: ["sv_h_b", "sv_i_a"],
          changes: [
            { type: "attribute", selector: "h1.hero-title", attributes: { text: "Free repairs" } },
          ],
        },
        {
          id: "620000000003",
          key: "Original_Lifestyle",
          weight: 2500,
          sectionVariationIds: ["sv_h_a", "sv_i_b"],
          changes: [
            { type: "attribute", selector: ".hero img", attributes: { src: "/img/life.jpg" } },
          ],
        },
        {
          id: "620000000004",
          key: "Benefit_Lifestyle",
          weight: 2500,
          sectionVariationIds: ["sv_h_b", "sv_i_b"],
          changes: [
            { type: "attribute", selector: "h1.hero-title", attributes: { text: "Free repairs" } },
            { type: "attribute", selector: ".hero img", attributes: { src: "/img/life.jpg" } },
          ],
        },
      ],
    }),
    experimentRow({
      id: "600000000003",
      key: "checkout_split",
      n: 12,
      type: "split_url",
      traffic: 9000,
      audienceConditions: ["and", "500000000003", ["not", "500000000002"]],
      pageIds: ["300000000004"],
      metrics: [{ eventId: "400000000001", aggregator: "unique" }],
      variations: [
        { id: "630000000001", key: "original", weight: 3333, changes: [] },
        {
          id: "630000000002",
          key: "redirect",
          weight: 3333,
          changes: [
            {
              type: "redirect",
              destination: "https://shop.example.com/checkout-new",
              preserveParameters: true,
              mode: "redirect",
            },
          ],
        },
        {
          id: "630000000003",
          key: "rewrite",
          weight: 3334,
          changes: [
            {
              type: "redirect",
              destination: "/checkout-new",
              preserveParameters: true,
              mode: "rewrite",
            },
          ],
        },
      ],
    }),
    experimentRow({
      id: "600000000004",
      key: "price_savings",
      n: 13,
      groupId: "700000000001",
      pageIds: ["300000000002", "300000000003"],
      metrics: [{ eventId: "400000000001", aggregator: "sum", field: "value" }],
      sharedChanges: [{ type: "custom_css", value: ".savings { color: #c00; }" }],
      variations: twoVariations(
        "64000000000",
        [5000, 5000],
        [
          {
            type: "insert_html",
            selector: ".price",
            position: "append",
            html: '<span class="savings">You save 20%</span>',
          },
        ],
      ),
    }),
    experimentRow({
      id: "600000000005",
      key: "cart_upsell",
      n: 14,
      groupId: "700000000001",
      audienceConditions: ["or", "500000000001"],
      pageIds: ["300000000003", "300000000005"],
      metrics: [buy],
      variations: twoVariations(
        "65000000000",
        [4000, 6000],
        [{ type: "attribute", selector: ".legacy-promo", attributes: { hide: true } }],
      ),
    }),
    experimentRow({
      id: "600000000006",
      key: "zero_weight_arm",
      n: 15,
      traffic: 5000,
      pageIds: ["300000000002"],
      metrics: [buy],
      variations: [
        { id: "660000000001", key: "a", weight: 5000, changes: [] },
        { id: "660000000002", key: "paused_arm", weight: 0, changes: [] },
        { id: "660000000003", key: "b", weight: 5000, changes: [] },
      ],
      forcedVariations: { "qa-tester-2": "paused_arm" },
    }),
    experimentRow({
      id: "600000000007",
      key: "old_archived_test",
      n: 16,
      archived: true,
      pageIds: ["300000000001"],
      metrics: [{ eventId: "400000000004", aggregator: "unique" }],
      variations: twoVariations("67000000000"),
    }),
    experimentRow({
      id: "600000000008",
      key: "archived_here",
      n: 17,
      groupId: "700000000001",
      pageIds: ["300000000001"],
      variations: twoVariations("68000000000"),
    }),
  ];
  return {
    project: projectRow(),
    environment: environmentRow(),
    attributes: [
      attributeRow("800000000001", "plan"),
      attributeRow("800000000002", "lifetime_value"),
      attributeRow("800000000003", "device.type"),
    ],
    audiences: [
      audienceRow("500000000001", [
        "or",
        { type: "custom_attribute", name: "device.type", match: "exact", value: "mobile" },
        { type: "custom_attribute", name: "device.type", match: "exact", value: "tablet" },
      ]),
      audienceRow("500000000002", [
        "and",
        { type: "custom_attribute", name: "plan", match: "exact", value: "premium" },
      ]),
      audienceRow("500000000003", [
        "or",
        { type: "custom_attribute", name: "lifetime_value", match: "ge", value: 500 },
        { type: "custom_attribute", name: "cookie.customer_id", match: "in_list", value: "vip" },
      ]),
      // Archived but still used by homepage_hero: published.
      audienceRow(
        "500000000004",
        ["or", { type: "custom_attribute", name: "plan", match: "exact", value: "blocked" }],
        { archived: 1 },
      ),
      // Archived and unused: not published.
      audienceRow(
        "500000000005",
        ["or", { type: "custom_attribute", name: "plan", match: "exists" }],
        { archived: 1 },
      ),
    ],
    lists: [listRow("900000000011", "vip", ["cust_1", "cust_2"])],
    pages: [
      pageRow("300000000001", "home", [
        "or",
        { match: "simple", value: "https://shop.example.com/" },
      ]),
      pageRow("300000000002", "product", [
        "or",
        { match: "simple", value: "https://shop.example.com/p" },
        { match: "regex", value: "^https://shop\\.example\\.com/p/\\d+$" },
      ]),
      pageRow(
        "300000000003",
        "cart",
        { match: "exact", value: "https://shop.example.com/cart" },
        {
          activation: "manual",
        },
      ),
      pageRow("300000000004", "checkout", ["and", { match: "substring", value: "/checkout" }]),
      pageRow(
        "300000000005",
        "mini_cart",
        ["or", { match: "substring", value: "shop.example.com" }],
        { activation: "dom_changed", selector: "#mini-cart .items" },
      ),
      pageRow("300000000006", "retired", ["or", { match: "substring", value: "/old" }], {
        archived: 1,
      }),
    ],
    events: [
      eventRow("400000000001", "purchase"),
      eventRow("400000000002", "add_to_cart", {
        type: "click",
        page_id: "300000000002",
        selector: "#add-to-cart",
      }),
      eventRow("400000000003", "home_view", { type: "pageview", page_id: "300000000001" }),
      eventRow("400000000004", "retired_click", {
        type: "click",
        page_id: "300000000006",
        selector: ".old",
        archived: 1,
      }),
      eventRow("400000000005", "newsletter_signup"),
    ],
    groups: [
      groupRow("700000000001", [
        { experimentId: "600000000004", weight: 3000 },
        { experimentId: "600000000008", weight: 2000 },
        { experimentId: "600000000005", weight: 4000 },
      ]),
    ],
    experiments,
    flags: [],
    statuses: new Map(
      Object.entries({
        "600000000001": "Running",
        "600000000002": "Running",
        "600000000003": "Paused",
        "600000000004": "Running",
        "600000000005": "Running",
        "600000000006": "Running",
        "600000000008": "Archived",
        ...statusOverrides,
      }),
    ),
  };
}

function insert(db: D1Database, table: string, row: object): D1PreparedStatement {
  const columns = Object.keys(row);
  return db
    .prepare(
      `INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
    )
    .bind(...Object.values(row));
}

/** Inserts a snapshot's rows (project, environment, everything, statuses) into D1. */
export async function insertSnapshot(db: D1Database, snapshot: ProjectSnapshot): Promise<void> {
  const statements = [
    insert(db, "projects", snapshot.project),
    insert(db, "environments", snapshot.environment),
    ...snapshot.attributes.map((r) => insert(db, "attributes", r)),
    ...snapshot.audiences.map((r) => insert(db, "audiences", r)),
    ...snapshot.pages.map((r) => insert(db, "pages", r)),
    ...snapshot.events.map((r) => insert(db, "events", r)),
    ...snapshot.groups.map((r) => insert(db, "groups", r)),
    ...snapshot.lists.map((r) => insert(db, "lists", r)),
    ...snapshot.flags.map((r) => insert(db, "flags", r)),
    ...snapshot.experiments.map((r) => insert(db, "experiments", r)),
    ...[...snapshot.statuses].map(([experimentId, status]) =>
      insert(db, "experiment_status", {
        experiment_id: experimentId,
        environment_id: snapshot.environment.id,
        status,
        updated_at: at(20),
      }),
    ),
  ];
  await db.batch(statements);
}

/**
 * The same snapshot with every 12-digit id shifted by `offset` × 10^6 (in rows and inside JSON
 * columns alike) and its own sdkKey, so several can live in one D1 database.
 */
export function remapIds(
  snapshot: ProjectSnapshot,
  offset: number,
  sdkKey: string,
): ProjectSnapshot {
  const shift = (text: string) =>
    text.replace(/\b[1-9]\d{11}\b/g, (id) => String(Number(id) + offset * 1_000_000));
  const { statuses, ...rows } = snapshot;
  const moved = JSON.parse(shift(JSON.stringify(rows))) as Omit<ProjectSnapshot, "statuses">;
  moved.environment.sdk_key = sdkKey;
  return {
    ...moved,
    statuses: new Map([...statuses].map(([id, status]) => [shift(id), status])),
  };
}
