/**
 * Which experiments a page view concerns: the datafile's `web.pages` whose URL conditions match,
 * and the experiments running on those pages with their activation. Pure apart from a
 * per-datafile index cached in a WeakMap (compiled datafiles are immutable and per-isolate).
 */
import type { CompiledDatafile, CompiledExperiment, CompiledPage } from "../core/index";
import type { PageActivation } from "../core/datafile-types";

export interface PageCandidate {
  experiment: CompiledExperiment;
  /** The strongest activation among the matched pages of this experiment (immediate wins). */
  activation: PageActivation;
  /** Ids of this experiment's pages that match the URL (multi-page experiments). */
  pageIds: string[];
}

export interface PagePlan {
  matchedPages: CompiledPage[];
  matchedPageIds: ReadonlySet<string>;
  candidates: PageCandidate[];
  /** pageview goals of the matched pages */
  pageviewEvents: PageviewEvent[];
  /** ids of the datafile's running experiments */
  runningIds: ReadonlySet<string>;
}

interface DatafileIndex {
  /** page id → experiments on it, in datafile order */
  experimentsByPage: Map<string, CompiledExperiment[]>;
  /** page id → its pageview goals */
  pageviewEventsByPage: Map<string, PageviewEvent[]>;
  /** ids of running experiments (sticky cookie entries worth keeping) */
  runningIds: ReadonlySet<string>;
}

/** A pageview goal: counted when a page it names is served. */
export interface PageviewEvent {
  id: string;
  key: string;
}

const indexes = new WeakMap<CompiledDatafile, DatafileIndex>();

function indexOf(compiled: CompiledDatafile): DatafileIndex {
  let index = indexes.get(compiled);
  if (!index) {
    const experimentsByPage = new Map<string, CompiledExperiment[]>();
    for (const experiment of compiled.experiments) {
      if (!experiment.web) continue;
      for (const page of experiment.pages) {
        const list = experimentsByPage.get(page.id) ?? [];
        list.push(experiment);
        experimentsByPage.set(page.id, list);
      }
    }
    const pageviewEventsByPage = new Map<string, PageviewEvent[]>();
    for (const event of compiled.eventById.values()) {
      const pageId = event.web?.type === "pageview" ? event.web.pageId : undefined;
      if (pageId === undefined) continue;
      const list = pageviewEventsByPage.get(pageId) ?? [];
      list.push({ id: event.id, key: event.key });
      pageviewEventsByPage.set(pageId, list);
    }
    const runningIds = new Set(compiled.experiments.filter((e) => e.running).map((e) => e.id));
    index = { experimentsByPage, pageviewEventsByPage, runningIds };
    indexes.set(compiled, index);
  }
  return index;
}

const ACTIVATION_RANK: Record<PageActivation, number> = {
  immediate: 3,
  manual: 2,
  url_changed: 1,
  dom_changed: 0,
};

/** Matches the URL against every page and gathers the experiments concerned, in datafile order. */
export function planPage(compiled: CompiledDatafile, url: string): PagePlan {
  const { experimentsByPage, pageviewEventsByPage, runningIds } = indexOf(compiled);
  const matchedPages: CompiledPage[] = [];
  for (const page of compiled.pages) if (page.matches(url)) matchedPages.push(page);
  const matchedPageIds = new Set(matchedPages.map((p) => p.id));
  const byExperiment = new Map<CompiledExperiment, PageCandidate>();
  for (const page of matchedPages) {
    for (const experiment of experimentsByPage.get(page.id) ?? []) {
      const existing = byExperiment.get(experiment);
      const activation = page.page.activation;
      if (!existing) {
        byExperiment.set(experiment, { experiment, activation, pageIds: [page.id] });
      } else {
        existing.pageIds.push(page.id);
        if (ACTIVATION_RANK[activation] > ACTIVATION_RANK[existing.activation])
          existing.activation = activation;
      }
    }
  }
  // Datafile order keeps decisions (and the header) stable whatever the page order.
  const candidates = compiled.experiments.flatMap((e) => byExperiment.get(e) ?? []);
  const pageviewEvents = matchedPages.flatMap((p) => pageviewEventsByPage.get(p.id) ?? []);
  return { matchedPages, matchedPageIds, candidates, pageviewEvents, runningIds };
}
