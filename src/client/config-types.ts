/**
 * The client config: what `/_ss/client.js` needs from the datafile, derived from the compiled
 * datafile by the Worker (`GET /_ss/client-config/{sdkKey}.json`, src/edge/client-config.ts) and
 * read by the browser (src/client). Types only: shared by both sides, so it must stay free of DOM
 * and Workers APIs. docs/client.md describes the format.
 *
 * It holds nothing visitor-specific (the decisions are in the page's bootstrap, `window.__ss`),
 * so one copy per datafile revision is cached by browsers and CDNs.
 */
import type { Change } from "../core/datafile-types";

/** Activation codes, as in the bootstrap: i(mmediate) m(anual) u(rl_changed) d(om_changed). */
export type ActivationCode = "i" | "m" | "u" | "d";

/**
 * A URL condition leaf, canonicalized by the Worker: `s` simple (compare with the simple form of
 * the URL: lowercase host without `www.`/default port + path without one trailing slash), `e`
 * exact (compare with the lowercased URL), `c` substring (contained in the lowercased URL; the
 * value is lowercased), `r` regex (tested against the URL as it is). `null` = a leaf that cannot
 * be evaluated (never matches, not even under `not`).
 */
export type ClientUrlLeaf = { m: "s" | "e" | "c" | "r"; v: string } | null;

/** `["and" | "or" | "not", ...operands]` or a leaf; always explicit (no implicit "or"). */
export type ClientUrlTree = ClientUrlLeaf | ["and" | "or" | "not", ...ClientUrlTree[]];

export interface ClientPage {
  /** page id / key */
  i: string;
  k: string;
  /** activation */
  a: ActivationCode;
  /** dom_changed: the selector whose appearance activates the page */
  s?: string;
  /** URL conditions */
  c: ClientUrlTree;
}

export interface ClientExperiment {
  /** experiment key */
  k: string;
  /** its pages that are not `immediate` (the ones the client activates) */
  p: string[];
  /** variation id → the changes to apply (the experiment's shared changes first) */
  v: Record<string, Change[]>;
}

export interface ClientGoal {
  /** event id / key */
  i: string;
  k: string;
  /** c(lick) or (page)v(iew) */
  t: "c" | "v";
  /** the page the goal is limited to (absent: every page) */
  p?: string;
  /** click: the element selector (a click inside a matching element counts) */
  s?: string;
}

export interface ClientConfig {
  /** format version */
  v: 1;
  /** datafile revision */
  r: string;
  /** pages of non-immediate experiments and of goals */
  p: ClientPage[];
  /** running experiments that have a non-immediate page, by id */
  x: Record<string, ClientExperiment>;
  /** click and pageview goals */
  g: ClientGoal[];
  /** enabled integrations (`web.integrations`): dataLayer, segment */
  n: { dataLayer?: true; segment?: true };
}
