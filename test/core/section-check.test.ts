/**
 * The section checkers of src/core/section-check.ts against the way the management API checked a
 * page, web event or web experiment before they existed: a stub datafile built around the
 * fragment, run through parseDatafile, problems kept under the fragment's prefix
 * (`datafileProblems`, copied below as the reference, from src/api/services/validation.ts at commit
 * 898e494). For every fragment here, both must report the same problems — same paths, same
 * messages, same order — which is the proof that moving the API to the section checkers changes
 * nothing it answers.
 */
import { describe, expect, it } from "vitest";
import {
  AUDIENCE_MATCH_TYPES,
  MAX_CONDITION_DEPTH,
  MAX_SELECTOR_LENGTH,
  parseDatafile,
} from "../../src/core/datafile-parse";
import type { Problem } from "../../src/core/problem";
import {
  checkAudienceConditions,
  checkUrlConditions,
  checkWebEvent,
  checkWebExperimentChanges,
  checkWebPage,
} from "../../src/core/section-check";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- fragments of every shape, good and bad
type Json = any;

interface ValidationDetail {
  path: string;
  message: string;
}

interface FragmentPage {
  id: string;
  key?: string;
  activation?: string;
  selector?: string | null;
  conditions?: unknown;
}

interface FragmentEvent {
  id: string;
  type: string;
  pageId?: string | null;
  selector?: string | null;
}

interface FragmentExperiment {
  type: string;
  pageIds: string[];
  sharedChanges: unknown[];
  variations: Array<{ changes: unknown[] }>;
  sections?: Array<{ name?: string; variations: Array<{ name?: string; changes: unknown[] }> }>;
}

interface Fragment {
  page?: FragmentPage;
  event?: FragmentEvent;
  experiment?: FragmentExperiment;
  pageIds?: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// The reference: the API's datafileProblems as it was, split in two so the warnings can be
// compared too (`stubProblems` keeps every problem under the prefix, with its severity).

const STUB_CONDITIONS = ["or", { match: "substring", value: "/" }];

/**
 * The activation of the stub pages: the edge applies the changes of p1 (and of any other page),
 * the browser those of p2 and p3 — which decides whether a selector the edge cannot run is an
 * error (docs/changes.md "Selectors").
 */
const ACTIVATION_OF: Record<string, string> = { p2: "manual", p3: "url_changed" };
const activationOf = (id: string): string => ACTIVATION_OF[id] ?? "immediate";

function stubProblems(fragment: Fragment): Problem[] {
  const pages: Record<string, unknown>[] = [];
  let prefix: string;
  if (fragment.page) {
    const page: Record<string, unknown> = {
      id: fragment.page.id,
      key: fragment.page.key ?? fragment.page.id,
      activation: fragment.page.activation ?? "immediate",
      conditions: fragment.page.conditions ?? STUB_CONDITIONS,
    };
    if (typeof fragment.page.selector === "string") page.selector = fragment.page.selector;
    pages.push(page);
    prefix = "$.web.pages[0]";
  } else if (fragment.event) {
    prefix = "$.web.events[0]";
  } else {
    prefix = "$.web.experiments[0]";
  }
  for (const id of fragment.pageIds ?? []) {
    if (pages.some((p) => p.id === id)) continue;
    pages.push({
      id,
      key: `page_${id}`,
      activation: activationOf(id),
      conditions: STUB_CONDITIONS,
    });
  }

  const events: Record<string, unknown>[] = [];
  const webEvents: Record<string, unknown>[] = [];
  if (fragment.event) {
    const e = fragment.event;
    events.push({ id: e.id, key: `event_${e.id}`, experimentIds: [] });
    const web: Record<string, unknown> = { id: e.id, type: e.type };
    if (typeof e.pageId === "string") web.pageId = e.pageId;
    if (typeof e.selector === "string") web.selector = e.selector;
    webEvents.push(web);
  }

  const experiments: Record<string, unknown>[] = [];
  const webExperiments: Record<string, unknown>[] = [];
  if (fragment.experiment) {
    const x = fragment.experiment;
    const variationIds = x.variations.map((_, i) => `v${i}`);
    experiments.push({
      id: "x",
      key: "x",
      status: "Not started",
      layerId: "x",
      variations: variationIds.map((id) => ({ id, key: id })),
      trafficAllocation: [],
      audienceIds: [],
      forcedVariations: {},
    });
    const web: Record<string, unknown> = {
      id: "x",
      type: x.type,
      pageIds: x.pageIds,
      metrics: [],
      sharedChanges: x.sharedChanges,
      variations: x.variations.map((v, i) => ({ id: variationIds[i], changes: v.changes })),
    };
    if (x.sections)
      web.sections = x.sections.map((s, i) => ({
        id: `s${i}`,
        variations: s.variations.map((v, j) => ({ id: `s${i}v${j}`, changes: v.changes })),
      }));
    webExperiments.push(web);
  }

  const result = parseDatafile({
    version: "4",
    accountId: "0",
    projectId: "0",
    revision: "0",
    attributes: [],
    audiences: [],
    events,
    experiments,
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: { pages, events: webEvents, experiments: webExperiments, lists: [], integrations: {} },
  });
  return underPrefix(result.problems, prefix);
}

/** The problems at or under `prefix`, re-rooted at `$.body`. */
function underPrefix(problems: readonly Problem[], prefix: string): Problem[] {
  const out: Problem[] = [];
  for (const problem of problems) {
    const path = problem.path;
    if (path !== prefix && !path.startsWith(`${prefix}.`) && !path.startsWith(`${prefix}[`))
      continue;
    out.push({ ...problem, path: `$.body${path.slice(prefix.length)}` });
  }
  return out;
}

/** The API's datafileProblems: the errors of `stubProblems`, as validation details. */
function referenceDatafileProblems(fragment: Fragment): ValidationDetail[] {
  return stubProblems(fragment)
    .filter((p) => p.severity === "error")
    .map((p) => ({ path: p.path, message: p.message }));
}

// ---------------------------------------------------------------------------------------------
// The candidate: datafileProblems rewritten on the section checkers (the sketch for the API).

/** Every problem of the section checkers for `fragment`, at `$.body`. */
function sectionProblems(fragment: Fragment): Problem[] {
  const root = "$.body";
  const pageIds = fragment.pageIds ?? [];
  if (fragment.page) {
    const p = fragment.page;
    return checkWebPage(
      {
        key: p.key ?? p.id,
        activation: p.activation ?? "immediate",
        conditions: p.conditions ?? [],
        ...(typeof p.selector === "string" ? { selector: p.selector } : {}),
      },
      { root },
    );
  }
  if (fragment.event) {
    const e = fragment.event;
    return checkWebEvent(
      {
        type: e.type,
        ...(typeof e.pageId === "string" ? { pageId: e.pageId } : {}),
        ...(typeof e.selector === "string" ? { selector: e.selector } : {}),
      },
      { root, pageIds },
    );
  }
  return checkWebExperimentChanges(fragment.experiment, {
    root,
    pageIds,
    pages: pageIds.map((id) => ({ id, key: `page_${id}`, activation: activationOf(id) })),
  });
}

function newDatafileProblems(fragment: Fragment): ValidationDetail[] {
  return sectionProblems(fragment)
    .filter((p) => p.severity === "error")
    .map((p) => ({ path: p.path, message: p.message }));
}

// ---------------------------------------------------------------------------------------------
// Fragments

const PAGES = ["p1", "p2", "p3"];

const SELECTORS: string[] = [
  "h1",
  "#main > .hero",
  "h1 + p",
  "ul ~ li",
  "a:hover",
  "div.card h2",
  'a[href="/x"]',
  "a[href='{']",
  "li:nth-child(2n+1)",
  "a, b",
  "a\\{b",
  "",
  "   ",
  "h1 +",
  "h1 >",
  "div ~",
  "div {",
  "div }",
  "a; b",
  "<script>",
  "a[href",
  "a]",
  "a:not(b",
  "a)",
  "a, , b",
  ", a",
  "a,",
  'a[title="x',
  'a[title="x\ny"]',
  "a\u0000b",
  "a\u0001b",
  "a\\",
  "x".repeat(MAX_SELECTOR_LENGTH),
  "x".repeat(MAX_SELECTOR_LENGTH + 1),
];

const DESTINATIONS: string[] = [
  "https://shop.example.com/new",
  "http://shop.example.com/new",
  "//cdn.example.com/landing",
  "/landing?x=1",
  "javascript:alert(1)",
  " JaVaScRiPt:alert(1)",
  "vbscript:msgbox",
  "data:text/html,hi",
  "ftp://files.example.com/",
  "relative/path",
  "landing",
  "",
  "   ",
  "https://[::1",
  "http://",
  "mailto:someone@example.com",
];

const URL_LEAVES: Json[] = [
  { match: "simple", value: "https://shop.example.com/products" },
  { match: "exact", value: "https://shop.example.com/" },
  { match: "substring", value: "/cart" },
  { match: "regex", value: "^https://shop\\.example\\.com/p/\\d+$" },
  { match: "regex", value: "(" },
  { match: "regex", value: "[a-" },
  { match: "regex", value: "a{2,1}" },
  { match: "glob", value: "*" },
  { match: "simple" },
  { match: "simple", value: 5 },
  { value: "/x" },
  { match: "substring", value: "" },
  { match: "exact", value: "" },
  { match: "regex", value: "" },
  "https://shop.example.com/",
  null,
  42,
];

/** A tree nested `levels` arrays deep around one leaf. */
function nested(levels: number, leaf: unknown): unknown {
  let tree: unknown = leaf;
  for (let i = 0; i < levels; i++) tree = ["and", tree];
  return tree;
}

const URL_TREES: Json[] = [
  ...URL_LEAVES.map((leaf) => ["or", leaf]),
  ["and", URL_LEAVES[0], ["not", URL_LEAVES[4]]],
  ["not", URL_LEAVES[0], URL_LEAVES[1]],
  ["not"],
  [],
  [URL_LEAVES[0], URL_LEAVES[4]],
  URL_LEAVES[0],
  nested(MAX_CONDITION_DEPTH - 1, URL_LEAVES[0]),
  nested(MAX_CONDITION_DEPTH, URL_LEAVES[0]),
  nested(MAX_CONDITION_DEPTH + 5, URL_LEAVES[4]),
  "not a tree",
];

const ATTRIBUTE_SETS: Json[] = [
  { text: "Hello" },
  { html: "<b>Hi</b>" },
  { text: "a", html: "b" },
  { class: "x", addClass: "y", removeClass: "z", style: "color: red" },
  { hide: true },
  { remove: "yes" },
  { hide: 1 },
  { text: 5 },
  {},
  { colour: "red" },
  { href: "https://example.com" },
  { href: "javascript:alert(1)" },
  { src: "  java\tscript:alert(1)" },
  { href: "vbscript:x" },
  { set: { "data-x": "1", title: "t" } },
  { set: { onclick: "alert(1)" } },
  { set: { OnMouseOver: "x" } },
  { set: { "bad name": "x" } },
  { set: { 'a"b': "x" } },
  { set: { href: "javascript:alert(1)" } },
  { set: { FormAction: "JAVASCRIPT:x" } },
  { set: { "xlink:href": "javascript:x" } },
  { set: { title: "javascript:fine as text" } },
  { set: { title: 5 } },
  { set: "title=x" },
  { unset: ["title", "bad name", 5] },
  { unset: "title" },
  { set: { o: "x", on: "y" } },
];

const CHANGES: Json[] = [
  ...SELECTORS.map((selector) => ({ type: "attribute", selector, attributes: { text: "x" } })),
  ...ATTRIBUTE_SETS.map((attributes) => ({ type: "attribute", selector: "h1", attributes })),
  ...DESTINATIONS.map((destination) => ({ type: "redirect", destination })),
  { type: "redirect", destination: "/x", preserveParameters: true, mode: "rewrite" },
  { type: "redirect", destination: "/x", preserveParameters: "yes", mode: "bounce" },
  { type: "redirect" },
  { type: "redirect", destination: 5 },
  { type: "insert_html", selector: "main", position: "append", html: "<p>x</p>" },
  { type: "insert_html", selector: "main {", position: "sideways" },
  { type: "insert_html", selector: "h1 + p", position: "before", html: 5 },
  { type: "insert_html", selector: "li:last-child", position: "after", html: "<hr>" },
  { type: "move", selector: "#promo", target: "main > h1", position: "after", html: "<p>x</p>" },
  { type: "move", selector: "#promo", target: "h1 + p", position: "before", html: "<p>x</p>" },
  { type: "move", selector: "p::first-line", target: "h1", position: "append", html: "" },
  { type: "move", selector: "#a", target: "#a", position: "prepend", html: "<i>a</i>" },
  { type: "move", selector: "#a", target: "#b", position: "replace", html: "<i>a</i>" },
  { type: "move", selector: "#a", target: "#b", position: "inside", html: "<i>a</i>" },
  { type: "move", selector: "#a {", position: "after" },
  { type: "move", selector: "#a", target: 5, position: "after", html: 5 },
  { type: "move", selector: "ul ~ li", target: "h1", position: "after", html: "", pageId: "p2" },
  { type: "custom_css", value: "h1 { color: red }" },
  { type: "custom_css" },
  { type: "custom_code", value: "console.log(1)" },
  { type: "custom_code", value: 5 },
  { type: "attribute", selector: "h1" },
  { type: "attribute", attributes: { text: "x" } },
  { type: "attribute", selector: 5, attributes: "x" },
  { type: "rewrite", selector: "h1" },
  { selector: "h1" },
  { type: "attribute", selector: "h1", attributes: { text: "x" }, pageId: "p1" },
  { type: "attribute", selector: "h1", attributes: { text: "x" }, pageId: "p2" },
  { type: "attribute", selector: "h1", attributes: { text: "x" }, pageId: "nope" },
  { type: "custom_css", value: "x", pageId: 5 },
  "not a change",
  null,
  [],
];

function pageFragments(): Fragment[] {
  const out: Fragment[] = [];
  const page = (extra: Partial<FragmentPage>): FragmentPage => ({
    id: "pg",
    activation: "immediate",
    conditions: ["or", URL_LEAVES[0]],
    ...extra,
  });
  for (const conditions of URL_TREES) out.push({ page: page({ conditions }) });
  for (const selector of SELECTORS)
    out.push({ page: page({ activation: "dom_changed", selector }) });
  for (const activation of ["immediate", "manual", "url_changed", "dom_changed", "sometimes", ""])
    out.push({ page: page({ activation }) });
  out.push(
    { page: { id: "pg" } },
    { page: page({ selector: null }) },
    { page: page({ key: "home" }) },
    { page: page({ key: 5 as Json }) },
    { page: page({ key: "page_p1" }), pageIds: PAGES },
    { page: page({ id: "p1" }), pageIds: PAGES },
    { page: page({ conditions: undefined }) },
    { page: page({ activation: 3 as Json, selector: 4 as Json, conditions: 5 }) },
  );
  return out;
}

function eventFragments(): Fragment[] {
  const out: Fragment[] = [];
  for (const type of ["custom", "pageview", "click", "hover", ""])
    for (const pageId of [undefined, null, "p1", "nope"])
      for (const selector of [undefined, null, "#buy", "button {"])
        out.push({ event: { id: "e1", type, pageId, selector }, pageIds: PAGES });
  for (const selector of SELECTORS)
    out.push({ event: { id: "e1", type: "click", pageId: "p2", selector }, pageIds: PAGES });
  out.push(
    { event: { id: "e1", type: "pageview", pageId: "p1" } },
    { event: { id: "e1", type: "click", pageId: "p1", selector: "a" }, pageIds: [] },
    { event: { id: "e1", type: 5 as Json, pageId: "p1" }, pageIds: PAGES },
  );
  return out;
}

function experimentFragments(): Fragment[] {
  const out: Fragment[] = [];
  const ab = (changes: unknown[], extra: Partial<FragmentExperiment> = {}): FragmentExperiment => ({
    type: "ab",
    pageIds: ["p1"],
    sharedChanges: [],
    variations: [{ changes: [] }, { changes }],
    ...extra,
  });
  // Every change alone in a variation, and all of them at once in each place.
  for (const change of CHANGES) out.push({ experiment: ab([change]), pageIds: PAGES });
  out.push({ experiment: ab(CHANGES), pageIds: PAGES });
  // On pages the browser handles, and on a mix: selectors the edge cannot run are not errors.
  out.push({ experiment: ab(CHANGES, { pageIds: ["p2"] }), pageIds: PAGES });
  out.push({ experiment: ab(CHANGES, { pageIds: ["p2", "p3", "p1"] }), pageIds: PAGES });
  out.push({ experiment: ab([], { sharedChanges: CHANGES }), pageIds: PAGES });
  out.push({
    experiment: ab([], { type: "split_url", variations: [{ changes: CHANGES }, { changes: [] }] }),
    pageIds: PAGES,
  });
  // Multivariate: changes in sections.
  const multivariate = (
    sections: FragmentExperiment["sections"],
    extra: Partial<FragmentExperiment> = {},
  ): FragmentExperiment => ({
    type: "multivariate",
    pageIds: ["p1", "p2"],
    sharedChanges: [],
    variations: [],
    sections,
    ...extra,
  });
  out.push(
    {
      experiment: multivariate([
        { name: "Headline", variations: [{ changes: [] }, { changes: [CHANGES[0]] }] },
        { name: "Button", variations: [{ name: "a", changes: CHANGES.slice(0, 40) }] },
        { variations: [{ changes: CHANGES.slice(40) }, { changes: [] }] },
      ]),
      pageIds: PAGES,
    },
    { experiment: multivariate(undefined), pageIds: PAGES },
    { experiment: multivariate([]), pageIds: PAGES },
    { experiment: multivariate([{ variations: [] }]), pageIds: PAGES },
    {
      experiment: multivariate([
        { variations: [{ changes: "x" as Json }, { changes: 5 as Json }] },
      ]),
      pageIds: PAGES,
    },
    {
      experiment: multivariate([{ variations: [{ changes: undefined as Json }] }]),
      pageIds: PAGES,
    },
    {
      experiment: multivariate([{ variations: [{ changes: [CHANGES[0]] }] }], {
        sharedChanges: [{ type: "custom_css", value: "x", pageId: "p3" }],
        variations: [{ changes: [{ type: "redirect", destination: "javascript:x" }] }],
      }),
      pageIds: PAGES,
    },
  );
  // Types and page ids.
  for (const type of ["ab", "multivariate", "split_url", "mvt", ""])
    out.push({ experiment: ab([CHANGES[0]], { type }), pageIds: PAGES });
  for (const pageIds of [[], ["p1", "p1"], ["p1", "nope", "p2", "nope"], ["p3", 5 as Json]])
    out.push({ experiment: ab([CHANGES[0]], { pageIds }), pageIds: PAGES });
  out.push(
    { experiment: ab([CHANGES[0]], { pageIds: "p1" as Json }), pageIds: PAGES },
    { experiment: ab([CHANGES[0]]) },
    { experiment: ab([CHANGES[0]], { sharedChanges: "x" as Json }), pageIds: PAGES },
    { experiment: ab([CHANGES[0]], { sharedChanges: undefined as Json }), pageIds: PAGES },
    {
      experiment: ab([], {
        variations: [{ changes: "x" as Json }, { changes: undefined as Json }],
      }),
      pageIds: PAGES,
    },
    { experiment: ab([], { variations: [] }), pageIds: PAGES },
  );
  return out;
}

const FRAGMENTS = {
  page: pageFragments(),
  event: eventFragments(),
  experiment: experimentFragments(),
};

// ---------------------------------------------------------------------------------------------
// Tests

describe("section checkers = the API's stub-datafile check", () => {
  for (const [kind, fragments] of Object.entries(FRAGMENTS)) {
    it(`${kind}: ${fragments.length} fragments, same errors as datafileProblems`, () => {
      let failing = 0;
      for (const fragment of fragments) {
        const expected = referenceDatafileProblems(fragment);
        if (expected.length > 0) failing++;
        expect(newDatafileProblems(fragment), JSON.stringify(fragment)).toEqual(expected);
      }
      // The fragments exercise both outcomes.
      expect(failing).toBeGreaterThan(5);
      expect(failing).toBeLessThan(fragments.length);
    });

    it(`${kind}: same warnings too`, () => {
      for (const fragment of fragments)
        expect(sectionProblems(fragment), JSON.stringify(fragment)).toEqual(stubProblems(fragment));
    });
  }

  it("reports what datafileProblems reported, by message", () => {
    const messages = (fragment: Fragment) =>
      newDatafileProblems(fragment).map((d) => `${d.path}: ${d.message}`);
    expect(
      messages({
        experiment: {
          type: "ab",
          pageIds: ["p1", "nope"],
          sharedChanges: [],
          variations: [
            {
              changes: [
                { type: "redirect", destination: "javascript:alert(1)" },
                { type: "attribute", selector: "h1 +", attributes: { set: { onclick: "x" } } },
              ],
            },
          ],
        },
        pageIds: ["p1"],
      }),
    ).toEqual([
      '$.body.pageIds[1]: unknown page id "nope"',
      '$.body.variations[0].changes[0].destination: destination must be an http(s) URL or a path starting with "/", got "javascript:alert(1)"',
      '$.body.variations[0].changes[1].selector: invalid selector "h1 +": ends with the combinator "+"',
      '$.body.variations[0].changes[1].attributes.set.onclick: event-handler attribute "onclick" cannot be set; put JavaScript in a custom_code change',
    ]);
    expect(messages({ page: { id: "p", conditions: ["or", { match: "regex", value: "(" }] } }))
      .toMatchInlineSnapshot(`
        [
          "$.body.conditions[1].value: invalid regular expression: /(/: Unterminated group",
        ]
      `);
    expect(messages({ event: { id: "e", type: "click", pageId: "p9" }, pageIds: ["p1"] })).toEqual([
      '$.body.pageId: unknown page id "p9"',
      "$.body.selector: missing selector (a click event needs the element clicked)",
    ]);
  });
});

// Condition trees: the API does not check them through datafileProblems today; the reference is
// the same stub approach (a page's conditions, a typed audience's conditions).

function stubUrlTreeProblems(tree: unknown): Problem[] {
  const result = parseDatafile({
    version: "4",
    accountId: "0",
    projectId: "0",
    revision: "0",
    attributes: [],
    audiences: [],
    events: [],
    experiments: [],
    groups: [],
    web: { pages: [{ id: "p", key: "p", activation: "immediate", conditions: tree }] },
  });
  return underPrefix(result.problems, "$.web.pages[0].conditions");
}

function stubAudienceTreeProblems(tree: unknown, listKeys: readonly string[]): Problem[] {
  const result = parseDatafile({
    version: "4",
    accountId: "0",
    projectId: "0",
    revision: "0",
    attributes: [],
    audiences: [],
    typedAudiences: [{ id: "a", name: "a", conditions: tree }],
    events: [],
    experiments: [],
    groups: [],
    web: { lists: listKeys.map((key, i) => ({ id: `l${i}`, key })) },
  });
  return underPrefix(result.problems, "$.typedAudiences[0].conditions");
}

const leaf = (name: unknown, match?: unknown, value?: unknown): Json => {
  const out: Json = { type: "custom_attribute", name };
  if (match !== undefined) out.match = match;
  if (value !== undefined) out.value = value;
  return out;
};

const AUDIENCE_LEAVES: Json[] = [
  leaf("geo.country", "exact", "DE"),
  leaf("age", undefined, 30),
  leaf("plan", "exact", true),
  leaf("plan", "exact", null),
  leaf("plan", "exact", 2 ** 60),
  leaf("plan", "exists"),
  leaf("plan", "substring", "pro"),
  leaf("plan", "substring", 5),
  leaf("age", "gt", 18),
  leaf("age", "le", "18"),
  leaf("age", "ge", Infinity),
  leaf("app", "semver_ge", "2.1.0"),
  leaf("app", "semver_lt", "2 1"),
  leaf("app", "semver_eq", ""),
  leaf("app", "semver_eq", 2),
  leaf("customer", "in_list", "vip"),
  leaf("customer", "in_list", "nope"),
  leaf("customer", "in_list", 5),
  leaf("segment", "qualified", "x"),
  leaf("plan", "glob", "x"),
  leaf("plan", 5, "x"),
  leaf(5, "exact", "x"),
  leaf(undefined, "exact", "x"),
  { name: "x", match: "exact", value: "y" },
  { type: 5, name: "x" },
  { type: "third_party_dimension", name: "x", match: "qualified", value: "y" },
  "40001",
  null,
];

const AUDIENCE_TREES: Json[] = [
  ...AUDIENCE_LEAVES.map((l) => ["and", l]),
  AUDIENCE_LEAVES,
  ["or", ...AUDIENCE_LEAVES],
  [AUDIENCE_LEAVES[0], AUDIENCE_LEAVES[1]],
  ["not", AUDIENCE_LEAVES[0], AUDIENCE_LEAVES[1]],
  ["not"],
  [],
  AUDIENCE_LEAVES[0],
  nested(MAX_CONDITION_DEPTH - 1, AUDIENCE_LEAVES[0]),
  nested(MAX_CONDITION_DEPTH, AUDIENCE_LEAVES[0]),
  nested(MAX_CONDITION_DEPTH + 3, AUDIENCE_LEAVES[16]),
  undefined,
  "a string",
];

describe("condition tree checkers = the stub-datafile check", () => {
  it(`URL trees: ${URL_TREES.length + 1}`, () => {
    for (const tree of [...URL_TREES, undefined])
      expect(checkUrlConditions(tree, { root: "$.body" }), JSON.stringify(tree)).toEqual(
        stubUrlTreeProblems(tree),
      );
  });

  it(`audience trees: ${AUDIENCE_TREES.length}, with list keys`, () => {
    for (const tree of AUDIENCE_TREES)
      expect(
        checkAudienceConditions(tree, { root: "$.body", listKeys: ["vip", "beta"] }),
        JSON.stringify(tree),
      ).toEqual(stubAudienceTreeProblems(tree, ["vip", "beta"]));
  });

  it("audience trees without list keys: in_list values unchecked", () => {
    const tree = ["or", leaf("customer", "in_list", "nope"), leaf("customer", "in_list", 5)];
    expect(checkAudienceConditions(tree, { root: "$.body", listKeys: [] })).toEqual(
      stubAudienceTreeProblems(tree, []),
    );
    expect(checkAudienceConditions(tree, { root: "$.body" })).toEqual([
      {
        path: "$.body[2].value",
        message:
          'match "in_list" needs a string value, got number 5; the condition evaluates to unknown',
        severity: "warning",
      },
    ]);
  });
});

describe("section checkers on their own", () => {
  it("roots every path at options.root", () => {
    const change = { type: "attribute", selector: "a{", attributes: { text: "x" } };
    const value = { type: "ab", pageIds: ["p1"], variations: [{ changes: [change] }] };
    expect(checkWebExperimentChanges(value, { root: "$", pageIds: ["p1"] })).toEqual([
      {
        path: "$.variations[0].changes[0].selector",
        message: 'invalid selector "a{": unexpected "{" at position 1',
        severity: "error",
      },
    ]);
    expect(
      checkWebExperimentChanges(value, { root: "$.body.experiments[3]", pageIds: ["p1"] })[0]!.path,
    ).toBe("$.body.experiments[3].variations[0].changes[0].selector");
    expect(
      checkUrlConditions(["or", { match: "regex", value: "(" }], { root: "$.url" })[0]!.path,
    ).toBe("$.url[1].value");
  });

  it("reports a value that is not an object at the root", () => {
    for (const check of [
      (v: unknown) => checkWebPage(v, { root: "$.body" }),
      (v: unknown) => checkWebEvent(v, { root: "$.body", pageIds: [] }),
      (v: unknown) => checkWebExperimentChanges(v, { root: "$.body", pageIds: [] }),
    ]) {
      expect(check("x")).toEqual([
        { path: "$.body", message: 'expected object, got string "x"', severity: "error" },
      ]);
      expect(check(undefined)).toEqual([
        { path: "$.body", message: "missing required field (expected object)", severity: "error" },
      ]);
    }
    expect(checkUrlConditions(undefined, { root: "$.body.conditions" })).toEqual([
      {
        path: "$.body.conditions",
        message: "missing required field (expected a URL condition tree)",
        severity: "error",
      },
    ]);
  });

  it("ignores the identity of the fragment: ids, metrics, names", () => {
    expect(
      checkWebExperimentChanges(
        {
          id: 5,
          type: "multivariate",
          allocationPolicy: "nope",
          metrics: "nope",
          pageIds: ["p1"],
          sections: [{ id: 1, name: 2, variations: [{ id: 3, name: 4, changes: [] }] }],
          variations: [{ id: 5, sectionVariationIds: ["x"], changes: [] }],
        },
        { root: "$", pageIds: ["p1"] },
      ),
    ).toEqual([]);
    expect(checkWebEvent({ id: 5, type: "custom" }, { root: "$", pageIds: [] })).toEqual([]);
    expect(
      checkWebPage({ id: 5, key: "k", activation: "manual", conditions: [] }, { root: "$" }),
    ).toEqual([]);
  });

  it("returns warnings with their severity", () => {
    expect(
      checkWebExperimentChanges(
        { type: "multivariate", pageIds: [], variations: [] },
        { root: "$.body", pageIds: [] },
      ),
    ).toEqual([
      {
        path: "$.body.pageIds",
        message: "no pages: the experiment never activates",
        severity: "warning",
      },
      {
        path: "$.body.sections",
        message: "a multivariate experiment should describe its sections",
        severity: "warning",
      },
    ]);
  });

  it("never throws, even on a hostile value", () => {
    const hostile = {
      type: "ab",
      pageIds: [],
      get variations(): never {
        throw new Error("boom");
      },
    };
    expect(checkWebExperimentChanges(hostile, { root: "$.body", pageIds: [] })).toContainEqual({
      path: "$.body",
      message: "could not validate: boom",
      severity: "error",
    });
  });
});

describe("AUDIENCE_MATCH_TYPES", () => {
  it("are the match types the parser knows (plus qualified, which it warns about)", () => {
    const unknownMatch = (match: string) =>
      checkAudienceConditions(["or", leaf("a", match, "1")], { root: "$" }).filter((p) =>
        p.message.startsWith("unknown match type"),
      );
    for (const match of AUDIENCE_MATCH_TYPES) expect(unknownMatch(match), match).toEqual([]);
    expect(unknownMatch("qualified")).toEqual([]);
    expect(unknownMatch("regex")).toHaveLength(1);
  });
});
