/**
 * Checks one part of a datafile on its own — a web page, a web event, the changes of a web
 * experiment, an audience or URL condition tree — with the rules and messages `parseDatafile`
 * applies to that part inside a datafile, so a caller holding only the part (the management API
 * validating a request body) needs no datafile around it.
 *
 * One implementation: every function here runs the datafile checker of `datafile-parse.ts`
 * (`checkFragment`) on the value, starting at the part instead of at the datafile's root.
 *
 * Common to all of them:
 * - `value` is untrusted (`unknown`); a wrong shape is reported like any other problem.
 * - Problem paths start with `options.root` (e.g. `$.body`) followed by the path inside the value
 *   (`$.body.variations[0].changes[1].selector`); `root` itself is where a problem with the value
 *   as a whole is reported (`expected object, got …`).
 * - The result holds errors AND warnings (severity `"warning"`: what `parseDatafile` reports but
 *   still loads, e.g. "no pages: the experiment never activates"). A caller that rejects input
 *   only on what would make a datafile unusable keeps `severity === "error"`.
 * - What needs the rest of a datafile is not checked: the ids of the part itself, duplicate ids
 *   and keys among its siblings, references to experiments and events. References to pages
 *   (and to lists, for audience trees) are checked against the ids passed in `options`.
 * - At most `MAX_PROBLEMS` problems are returned. The functions never throw.
 */
import { checkFragment } from "./datafile-parse";
import type { Problem } from "./problem";

/** Where the checked value is: every problem path starts with `root` (e.g. `"$.body"`). */
export interface SectionCheckOptions {
  root: string;
}

/** For parts that refer to pages: the ids of the pages of the project. */
export interface PageReferenceOptions extends SectionCheckOptions {
  /** Ids of the project's pages: a `pageId` / `pageIds` entry not among them is an error. */
  pageIds: readonly string[];
}

/** For audience condition trees. */
export interface AudienceConditionsOptions extends SectionCheckOptions {
  /**
   * Keys of the project's lists: an `in_list` leaf naming another key is an error. Absent: `in_list`
   * values are not checked against any list.
   */
  listKeys?: readonly string[];
}

/**
 * A web page, as an entry of `web.pages` (`WebPage` in `datafile-types.ts`): `key` (a string),
 * `activation`, an optional `selector` and the URL condition tree `conditions` (required), as
 * `checkUrlConditions` checks it. Its `id` is not checked (nor is any other page: nothing in a
 * page refers to other pages, and uniqueness of keys is the caller's business).
 */
export function checkWebPage(value: unknown, options: SectionCheckOptions): Problem[] {
  return checkFragment("webPage", value, { root: options.root });
}

/**
 * A web event, as an entry of `web.events` (`WebEvent` in `datafile-types.ts`): `type`, `pageId`
 * (required for pageview and click events; must be one of `options.pageIds`) and `selector`
 * (required for click events). Its `id` is not checked: in a datafile it names an event of
 * `$.events`, and on its own it names the event itself.
 *
 * `pageId` and `selector` must be absent, not `null`, where the event has none: `null` is
 * reported as a wrong type, as in a datafile.
 */
export function checkWebEvent(value: unknown, options: PageReferenceOptions): Problem[] {
  return checkFragment("webEvent", value, { root: options.root, pageIds: options.pageIds });
}

/** For a web experiment's changes: the project's pages, with what decides who applies them. */
export interface ExperimentChangesOptions extends PageReferenceOptions {
  /**
   * The project's pages with their activation (and key, named in messages). With them, a
   * change that can apply on an `immediate` page and whose selector (or move target) the edge
   * cannot run is an error, as in a datafile (docs/changes.md "Selectors"). Absent: activations
   * are unknown and that is not checked.
   */
  pages?: ReadonlyArray<{ id: string; key?: string; activation: string }>;
}

/**
 * The change-bearing parts of a web experiment, as an entry of `web.experiments`
 * (`WebExperiment` in `datafile-types.ts`): `type`, `pageIds` (each one of `options.pageIds`),
 * and every change in `sharedChanges` (optional), `variations[].changes` (`variations` required)
 * and `sections[].variations[].changes` (`sections` optional, each with a `variations` array):
 * change types (`move` included), selectors, redirect destinations, unsafe attribute changes
 * (event handlers, javascript: URLs), change page ids, and, with `options.pages`, selectors the
 * edge cannot run on immediate pages. A `changes` array may be absent.
 *
 * Not checked, even if present: the experiment's `id`, `allocationPolicy` and `metrics`, the ids
 * and names of sections and variations, and `sectionVariationIds` (they refer to the datafile's
 * experiments, events and ids).
 */
export function checkWebExperimentChanges(
  value: unknown,
  options: ExperimentChangesOptions,
): Problem[] {
  return checkFragment("webExperimentChanges", value, {
    root: options.root,
    pageIds: options.pageIds,
    ...(options.pages !== undefined ? { pages: options.pages } : {}),
  });
}

/**
 * An audience condition tree, as the `conditions` of a `typedAudiences` entry: an and/or/not
 * tree (at most `MAX_CONDITION_DEPTH` deep) of leaves `{type, name, match?, value?}`. Most
 * questionable leaves are warnings (they evaluate to "unknown" in the SDKs); errors are
 * malformed leaves, trees too deep and, with `options.listKeys`, unknown `in_list` list keys.
 * `undefined` is reported as a missing tree.
 */
export function checkAudienceConditions(
  value: unknown,
  options: AudienceConditionsOptions,
): Problem[] {
  return checkFragment("audienceConditions", value, {
    root: options.root,
    listKeys: options.listKeys,
  });
}

/**
 * A URL condition tree, as the `conditions` of a web page: an and/or/not tree (at most
 * `MAX_CONDITION_DEPTH` deep) of leaves `{match, value}` (`URL_MATCH_TYPES`; regex values must
 * compile). `undefined` is reported as a missing tree.
 */
export function checkUrlConditions(value: unknown, options: SectionCheckOptions): Problem[] {
  return checkFragment("urlConditions", value, { root: options.root });
}
