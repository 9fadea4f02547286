/**
 * `/_ss/client.js` — the client JS API (docs/client.md). Loaded `async` right after the inline
 * bootstrap (`window.__ss`, src/edge/bootstrap.ts) that the edge puts at the top of every page it
 * decided. It never decides anything itself: the decisions come from the edge (the bootstrap, or
 * `GET /_ss/decide` for pages a single-page app reaches without a page load), the changes, pages
 * and goals from the cacheable client config (`GET /_ss/client-config/{sdkKey}.json`).
 *
 * - `window.splitstream`: a command queue that works before this script loads
 *   (`(window.splitstream = window.splitstream || []).push({type: "event", …})`), replaced here by
 *   `{push, get, activate, isEnabled, getVariable}`.
 * - feature flags as the edge decided them (bootstrap `f`, refreshed by `GET /_ss/decide`):
 *   `get("flags")`, `isEnabled(flagKey)`, `getVariable(flagKey, variableKey)`; read-only.
 * - manual / url_changed / dom_changed activation: changes applied in the page, one impression.
 * - click goals (one delegated listener), pageview goals on SPA navigation.
 * - web.integrations: GA4/GTM dataLayer and Segment on every activation.
 * - `window.optimizely` compatibility shim when the route enables it (bootstrap `s`).
 */
import type { BootstrapFlag, BootstrapPayload } from "../shared/bootstrap-types";
import { applier, type Applier } from "./changes";
import type { ClientConfig, ClientPage } from "./config-types";
import { clearQueue, send, startTransport, type EventBody } from "./transport";
import { evalUrl } from "./url";

type Decision = BootstrapPayload["d"][number] & {
  /** activated on this page (immediate ones from the start) */
  on?: 1;
};
type Command = { type?: string; [key: string]: unknown } | null | undefined;
interface Api {
  push(command: Command): void;
  get(name: string): unknown;
}
/** What `get("flags")` gives per flag key (docs/client.md "Feature flags"). */
interface FlagView {
  enabled: boolean;
  variationKey: string | null;
  /** null: left out of the page's bootstrap (its size cap) */
  variables: Record<string, unknown> | null;
}

declare global {
  interface Window {
    __ss?: BootstrapPayload & { x?: 1 };
    splitstream?: Command[] | Api;
    optimizely?: Command[] | Api;
    dataLayer?: unknown[];
    analytics?: { track?: (event: string, properties: object) => void };
  }
}

const ACTIVATIONS = { i: "immediate", m: "manual", u: "url_changed", d: "dom_changed" };

const w = window;
const doc = document;
const boot = w.__ss;
const nonce =
  (doc.currentScript as HTMLScriptElement | null)?.nonce ||
  (doc.getElementById("ss-bootstrap") as HTMLScriptElement | null)?.nonce ||
  undefined;

// Nothing decided (no bootstrap, or a newer format), or loaded twice: do nothing.
if (boot && boot.v === 1 && !boot.x) {
  boot.x = 1;
  main(boot);
}

function main(b: BootstrapPayload): void {
  let tracking = b.t;
  let config: ClientConfig = { v: 1, r: b.r, p: [], x: {}, g: [], n: {} };
  let ready = false;
  const decisions: Decision[] = b.d.map((d) => ({ ...d, on: d.a == "i" ? 1 : undefined }));
  const pending: Command[] = [];
  /** SPA pages active now */
  const activePages = new Set<string>();
  /** appliers per "experimentId pageId", and whether they run now */
  const appliers = new Map<string, { fns: Applier[]; live: boolean }>();
  /** the visitor's feature flags by key (a Map: any key is data, "__proto__" too) */
  let flags = new Map<string, BootstrapFlag>();
  const setFlags = (f: unknown): void => {
    if (Array.isArray(f)) flags = new Map(f.map((x: BootstrapFlag) => [x.k, x]));
  };
  setFlags(b.f);
  /** A copy of a JSON value: the page cannot change the flags through what it was given. */
  const copy = <T>(v: T): T => (v && typeof v == "object" ? JSON.parse(JSON.stringify(v)) : v);
  /** URLs /_ss/decide was asked about */
  const asked = new Set<string>();
  let href = location.href;

  const page = (id: string): ClientPage | undefined => config.p.find((p) => p.i == id);
  const pageOn = (id: string): boolean => {
    const p = page(id);
    return !!p && evalUrl(p.c, location.href) === true;
  };

  const cookie = (name: string, value: string, maxAge = (b.m || 365) * 86400): void => {
    doc.cookie = `${name}=${value}; Path=/; Max-Age=${maxAge}; SameSite=Lax${b.c ? "; Domain=" + b.c : ""}${location.protocol == "https:" ? "; Secure" : ""}`;
  };

  function track(event: EventBody): void {
    if (tracking) send(event);
  }

  function integrations(d: Decision): void {
    if (!tracking) return;
    if (config.n.dataLayer)
      (w.dataLayer = w.dataLayer || []).push({
        event: "experiment_impression",
        experiment_id: d.e,
        experiment_key: d.ek,
        variation_id: d.vi,
        variation_key: d.vk,
      });
    if (config.n.segment)
      w.analytics?.track?.("Experiment Viewed", {
        experiment_id: d.e,
        experiment_name: d.ek,
        variation_id: d.vi,
        variation_name: d.vk,
      });
  }

  /** Applies `d`'s changes for `pageIds` (changes of other pages are left out). */
  function activate(d: Decision, pageIds: string[]): void {
    const key = d.e + " " + pageIds[0];
    let set = appliers.get(key);
    if (!set) {
      const changes = config.x[d.e]?.v[d.vi] ?? [];
      set = {
        fns: changes
          .filter((c) => !c.pageId || pageIds.includes(c.pageId))
          .map((c) => applier(c, nonce)),
        live: true,
      };
      appliers.set(key, set);
    }
    set.live = true;
    set.fns.forEach((f) => f());
    if (!d.on) {
      d.on = 1;
      track({ type: "impression", experimentId: d.e, variationId: d.vi });
      integrations(d);
    }
  }

  function activateManual(key?: unknown): void {
    for (const d of decisions)
      if (
        d.a == "m" &&
        !d.on &&
        (key == null || key == d.ek || key == d.e || d.p.some((p) => page(p)?.k == key))
      )
        activate(d, d.p);
  }

  /** Activates an SPA page: its experiments' decisions, asking the edge for missing ones. */
  function activatePage(p: ClientPage, url: string): void {
    const ids = Object.keys(config.x).filter((id) => config.x[id]!.p.includes(p.i));
    const run = (): void => {
      if (activePages.has(p.i))
        for (const d of decisions) if (ids.includes(d.e)) activate(d, [p.i]);
    };
    if (ids.some((id) => !decisions.some((d) => d.e == id)) && !asked.has(url)) {
      asked.add(url);
      fetch("/_ss/decide?url=" + encodeURIComponent(url), { credentials: "same-origin" })
        .then((r) => r.json())
        .then((r: { d?: Decision[]; f?: BootstrapFlag[] }) => {
          for (const d of r.d || []) if (!decisions.some((x) => x.e == d.e)) decisions.push(d);
          setFlags(r.f);
        })
        .catch(() => 0)
        .finally(run);
    } else run();
  }

  /** SPA pages whose URL conditions match `href` (evaluated again only when the URL changes). */
  let matching: ClientPage[] | undefined;

  /**
   * Activates and deactivates SPA pages for the current URL and DOM (and, after a navigation,
   * counts pageview goals). Runs after history changes and on every DOM mutation.
   */
  function check(): void {
    const url = location.href;
    const navigated = url != href;
    if (navigated || !matching) {
      href = url;
      matching = config.p.filter((p) => (p.a == "u" || p.a == "d") && evalUrl(p.c, url) === true);
      for (const id of activePages)
        if (!matching.some((p) => p.i == id)) {
          activePages.delete(id);
          appliers.forEach((set, key) => key.endsWith(" " + id) && (set.live = false));
        }
    }
    for (const p of matching)
      if (!activePages.has(p.i) && (p.a == "u" || exists(p.s))) {
        activePages.add(p.i);
        activatePage(p, url);
      }
    if (navigated)
      for (const g of config.g) if (g.t == "v" && g.p && pageOn(g.p)) track({ key: g.k });
  }

  function exists(selector?: string): boolean {
    try {
      return !!selector && !!doc.querySelector(selector);
    } catch {
      return false;
    }
  }

  function setAttributes(attributes: unknown): void {
    if (!attributes || typeof attributes != "object") return;
    let current: Record<string, unknown> = {};
    try {
      const raw = /(?:^|; )ss_attrs=([^;]+)/.exec(doc.cookie)?.[1];
      if (raw)
        current = JSON.parse(
          new TextDecoder().decode(
            Uint8Array.from(atob(raw.replace(/-/g, "+").replace(/_/g, "/")), (c) =>
              c.charCodeAt(0),
            ),
          ),
        );
    } catch {
      // unreadable: start again
    }
    for (const [k, v] of Object.entries(attributes)) {
      delete current[k]; // a set attribute becomes the newest (the oldest are dropped first)
      if (v != null) current[k] = v;
    }
    const keys = Object.keys(current);
    for (;;) {
      const json = JSON.stringify(Object.fromEntries(keys.map((k) => [k, current[k]])));
      const value = btoa(String.fromCharCode(...new TextEncoder().encode(json)))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "");
      if (value.length <= 2048 || !keys.length) {
        cookie("ss_attrs", keys.length ? value : "", keys.length ? undefined : 0);
        return;
      }
      keys.shift();
    }
  }

  function run(c: Command): void {
    if (!c || typeof c != "object") return;
    const type = c.type;
    // Activation needs the client config; everything else is done at once (an event pushed
    // right before the page unloads must not wait for it).
    if (!ready && (type == "activate" || type == "page")) {
      pending.push(c);
      return;
    }
    if (type == "event" && typeof c.eventName == "string") {
      const tags: Record<string, unknown> = { ...(c.tags as object) };
      const event: EventBody = { key: c.eventName };
      for (const field of ["revenue", "value"]) {
        const v = c[field] ?? tags[field];
        delete tags[field];
        if (v != null) event[field] = v;
      }
      if (Object.keys(tags).length) event.tags = tags;
      track(event);
    } else if (type == "activate") activateManual(c.experimentKey);
    else if (type == "page") activateManual(c.pageName);
    else if (type == "user") setAttributes(c.attributes);
    else if (type == "optOut") {
      if (c.isOptOut === false) cookie("ss_optout", "", 0);
      else {
        cookie("ss_optout", "1");
        tracking = false;
        clearQueue();
      }
    }
  }

  const state = {
    visitorId: b.u,
    revision: b.r,
    getActiveExperimentIds: (): string[] => decisions.filter((d) => d.on).map((d) => d.e),
    getVariationMap: (): Record<string, { id: string; key: string; name: string }> =>
      Object.fromEntries(decisions.map((d) => [d.e, { id: d.vi, key: d.vk, name: d.vk }])),
    getDecisions: () =>
      decisions.map((d) => ({
        experimentId: d.e,
        experimentKey: d.ek,
        variationId: d.vi,
        variationKey: d.vk,
        activation: ACTIVATIONS[d.a],
        active: !!d.on,
      })),
  };
  const flagsView = (): Record<string, FlagView> =>
    Object.fromEntries(
      [...flags].map(([k, x]) => [
        k,
        { enabled: !!x.e, variationKey: x.v ?? null, variables: x.o ? null : copy(x.x || {}) },
      ]),
    );
  const get = (name: string): unknown =>
    name == "state" ? state : name == "visitorId" ? b.u : name == "flags" ? flagsView() : undefined;
  /** true only for a flag the edge enabled for this visitor (unknown keys: false) */
  const isEnabled = (key: unknown): boolean => flags.get(key as string)?.e == 1;
  /** the typed value; undefined for an unknown flag or variable (or variables left out) */
  const getVariable = (key: unknown, name: unknown): unknown => {
    const x = flags.get(key as string)?.x;
    return x && Object.prototype.hasOwnProperty.call(x, name as string)
      ? copy(x[name as string])
      : undefined;
  };

  /** Takes over a command queue: its commands run now, and pushes to the old array still work. */
  const adopt = (queue: unknown): void => {
    if (!Array.isArray(queue)) return;
    queue.forEach(run);
    queue.push = (c: Command) => (run(c), 0);
  };
  if (tracking) startTransport();
  const queued = w.splitstream;
  w.splitstream = {
    push: run,
    get,
    activate: (experimentKey?: string) => run({ type: "activate", experimentKey }),
    isEnabled,
    getVariable,
  } as Api;
  adopt(queued);
  if (b.s) {
    const legacy = w.optimizely;
    w.optimizely = { push: run, get };
    adopt(legacy);
  }

  fetch(`/_ss/client-config/${encodeURIComponent(b.k)}.json?r=${encodeURIComponent(b.r)}`)
    .then((r) => (r.ok ? r.json() : Promise.reject(r)))
    .then((c: ClientConfig) => {
      if (c.v == 1) config = c;
    })
    .catch(() => 0)
    .finally(() => {
      ready = true;
      for (const d of decisions) if (d.on) integrations(d);
      // Click goals: one delegated listener for the whole document.
      doc.addEventListener(
        "click",
        (e) => {
          const target = e.target as Element | null;
          for (const g of config.g)
            try {
              if (g.t == "c" && g.s && (!g.p || pageOn(g.p)) && target?.closest?.(g.s))
                track({ key: g.k });
            } catch {
              // a selector this browser does not know
            }
        },
        true,
      );
      // SPA navigation: history API calls, back/forward, hash changes.
      for (const m of ["pushState", "replaceState"] as const) {
        const original = history[m];
        history[m] = function (this: History, ...args: Parameters<History["pushState"]>) {
          original.apply(this, args);
          check();
        };
      }
      addEventListener("popstate", check);
      addEventListener("hashchange", check);
      // Late content: dom_changed pages and changes whose elements appear later.
      new MutationObserver(() => {
        check();
        appliers.forEach((set) => set.live && set.fns.forEach((f) => f()));
      }).observe(doc.documentElement, { childList: true, subtree: true });
      check();
      pending.splice(0).forEach(run);
    });
}
