/**
 * Validation the request schemas cannot do alone: `Problems` collects handler-side problems
 * reported like zod's (`$.body…` paths), request attributes, the deep checks through the
 * datafile validator (selectors, redirects, URL trees), and the 409 for deleting what is in use.
 */
import { formatPath, type Problem } from "../../core/problem";
import { checkWebEvent, checkWebExperimentChanges, checkWebPage } from "../../core/section-check";
import { ApiError, conflict, unprocessable, type ValidationDetail } from "../errors";
import {
  REQUEST_ATTRIBUTE_FAMILIES,
  REQUEST_ATTRIBUTE_NAMES,
} from "../../shared/request-attributes";

import type { Seg } from "../schemas/condition-tree";

/** Handler-side validation problems, reported like zod's: `$.body.<path>`. */
export class Problems {
  readonly details: ValidationDetail[] = [];

  add(path: readonly Seg[], message: string): void {
    this.details.push({ path: formatPath(["body", ...path]), message });
  }

  /** A detail whose path is already formatted (`$.body…`). */
  addFormatted(path: string, message: string): void {
    if (!this.details.some((d) => d.path === path && d.message === message))
      this.details.push({ path, message });
  }

  get empty(): boolean {
    return this.details.length === 0;
  }

  /** Throws the 422 `validation_failed` when anything was reported. */
  throwIfAny(): void {
    const [firstDetail] = this.details;
    if (!firstDetail) return;
    const more = this.details.length > 1 ? ` (and ${this.details.length - 1} more)` : "";
    throw unprocessable(
      `invalid request body: ${firstDetail.path}: ${firstDetail.message}${more}`,
      this.details,
    );
  }
}

/** Attributes the edge computes per request (docs/datafile.md, docs/visitors.md). */
const REQUEST_ATTRIBUTES: ReadonlySet<string> = new Set(REQUEST_ATTRIBUTE_NAMES);

/**
 * True for a request attribute: a fixed name, or `query.<name>`, `cookie.<name>`, `header.<name>`
 * with a non-empty name (src/shared/request-attributes.ts).
 */
export function isRequestAttribute(name: string): boolean {
  if (REQUEST_ATTRIBUTES.has(name)) return true;
  return REQUEST_ATTRIBUTE_FAMILIES.some(
    (prefix) => name.length > prefix.length && name.startsWith(prefix),
  );
}

export interface FragmentPage {
  id: string;
  key?: string;
  activation?: string;
  selector?: string | null;
  conditions?: unknown;
}

export interface FragmentEvent {
  id: string;
  type: string;
  pageId?: string | null;
  selector?: string | null;
}

export interface FragmentExperiment {
  type: string;
  pageIds: string[];
  sharedChanges: unknown[];
  variations: Array<{ changes: unknown[] }>;
  sections?: Array<{ name?: string; variations: Array<{ name?: string; changes: unknown[] }> }>;
}

/**
 * The deep checks of a page, web event or web experiment from a request — selectors, redirect
 * destinations, unsafe attribute changes, change page ids, URL trees — run by the datafile
 * validator's own section checkers (src/core/section-check.ts), so the API accepts exactly what
 * the edge will load. Errors only, with paths under `$.body`.
 */
export function datafileProblems(fragment: {
  page?: FragmentPage;
  event?: FragmentEvent;
  experiment?: FragmentExperiment;
  /** The project's page ids, so references to them resolve. */
  pageIds?: readonly string[];
  /** The project's pages with their activation (selectors the edge cannot run, on immediate pages). */
  pages?: ReadonlyArray<{ id: string; key?: string; activation: string }>;
}): ValidationDetail[] {
  const root = "$.body";
  const pageIds = fragment.pageIds ?? [];
  let problems: Problem[];
  if (fragment.page) {
    const p = fragment.page;
    problems = checkWebPage(
      {
        key: p.key ?? p.id,
        activation: p.activation ?? "immediate",
        conditions: p.conditions ?? [],
        // The datafile leaves an absent selector out (null is a type error there).
        ...(typeof p.selector === "string" ? { selector: p.selector } : {}),
      },
      { root },
    );
  } else if (fragment.event) {
    const e = fragment.event;
    problems = checkWebEvent(
      {
        type: e.type,
        ...(typeof e.pageId === "string" ? { pageId: e.pageId } : {}),
        ...(typeof e.selector === "string" ? { selector: e.selector } : {}),
      },
      { root, pageIds },
    );
  } else if (fragment.experiment) {
    problems = checkWebExperimentChanges(fragment.experiment, {
      root,
      pageIds,
      ...(fragment.pages ? { pages: fragment.pages } : {}),
    });
  } else {
    return [];
  }
  return problems
    .filter((p) => p.severity === "error")
    .map(({ path, message }) => ({ path, message }));
}

/** 409 `conflict` for deleting (or re-keying) something still in use. */
export function inUse(
  what: string,
  users: Array<{ type: string; id: string; key?: string; name?: string }>,
): ApiError {
  const list = users
    .slice(0, 5)
    .map((u) => `${u.type} ${u.key ?? u.name ?? u.id}`)
    .join(", ");
  return conflict(
    `${what} is in use by ${list}${users.length > 5 ? ` and ${users.length - 5} more` : ""}`,
    {
      usedBy: users.map((u) => ({ type: u.type, id: u.id })),
    },
  );
}
