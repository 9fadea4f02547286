/**
 * The bootstrap contract: `window.__ss`, the object the edge writes at the top of every page it
 * decided (src/edge/bootstrap.ts) and the client script `/_ss/client.js` reads (src/client). Both
 * sides import it from here, so the browser bundle depends on no edge module. docs/changes.md
 * describes the format.
 *
 * Types and one constant only: the client's own type-check (src/client/tsconfig.json: DOM types,
 * no Workers or Node types) includes this file, so it must stay free of imports and runtime APIs.
 */

/** Version of the `window.__ss` payload format, so a cached client.js can detect a newer page. */
export const BOOTSTRAP_FORMAT_VERSION = 1;

/** `window.__ss` as it is on the page: short keys, because the page pays for every byte. */
export interface BootstrapPayload {
  /** format version */
  v: number;
  /** datafile revision */
  r: string;
  /** sdk key */
  k: string;
  /** visitor id */
  u: string;
  /** tracking allowed */
  t: boolean;
  d: Array<{
    /** experiment id / key */
    e: string;
    ek: string;
    /** variation id / key */
    vi: string;
    vk: string;
    /** activation: i(mmediate) m(anual) u(rl_changed) d(om_changed) */
    a: "i" | "m" | "u" | "d";
    /** page ids */
    p: string[];
  }>;
  /** 1 when the route enables the `window.optimizely` shim (absent otherwise) */
  s?: 1;
  /** cookie domain for client-written cookies (absent: host-only) */
  c?: string;
  /** cookie max-age in days (absent: 365) */
  m?: number;
  /**
   * feature flags, every flag of the datafile in its order (absent: the datafile has none);
   * capped in size on pages (docs/client.md "Feature flags")
   */
  f?: BootstrapFlag[];
}

/** One feature flag as the bootstrap and `GET /_ss/decide` write it. */
export interface BootstrapFlag {
  /** flag key */
  k: string;
  /** 1 when enabled (absent: off) */
  e?: 1;
  /** variation key (absent: no rule decided) */
  v?: string;
  /** variables by key, typed (absent: the flag has none, or they were left out: see `o`) */
  x?: Record<string, unknown>;
  /** 1 when the variables were left out to keep the page's bootstrap under its cap */
  o?: 1;
}
