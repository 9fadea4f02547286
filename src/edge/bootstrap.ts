/**
 * The inline bootstrap the edge puts at the top of every rewritten page: which experiments were
 * decided for this visitor, so the client script (`/_ss/client.js`) can activate manual / SPA
 * experiments and send events without deciding again. docs/changes.md describes the format.
 *
 * Safety: the payload is JSON escaped so that no value can end the script element, open an HTML
 * comment, or break the JS string (`<`, `>`, `&`, U+2028, U+2029 become \u escapes); the CSP
 * nonce is only emitted when it is a valid base64 value.
 *
 * The payload's shape (`BootstrapPayload`) and format version are the contract with the client
 * script, so they live in src/shared/bootstrap-types.ts, which both sides import.
 */
import { BOOTSTRAP_FORMAT_VERSION, type BootstrapPayload } from "../shared/bootstrap-types";
import { ROUTE_DEFAULTS } from "./routes";

// Re-exported for the edge modules that write the payload's decisions (decide-endpoint.ts).

export type BootstrapActivation = "immediate" | "manual" | "url_changed" | "dom_changed";

export interface BootstrapDecision {
  experimentId: string;
  experimentKey: string;
  variationId: string;
  variationKey: string;
  activation: BootstrapActivation;
  pageIds: string[];
}

export interface BootstrapData {
  revision: string;
  sdkKey: string;
  visitorId: string;
  /** immediate + manual + url_changed + dom_changed decisions the page needs */
  decisions: BootstrapDecision[];
  /** whether the edge already counted the impression (immediate) */
  tracking: boolean; // false for opted-out / GPC / bots: the client must not send events
  /** The route's `optimizely_shim`: the client installs `window.optimizely`. */
  optimizelyShim?: boolean;
  /** The route's `cookie_domain`, for the cookies the client writes (`ss_attrs`, `ss_optout`). */
  cookieDomain?: string | null;
  /** The route's `cookie_max_age_days` (default 365), for the same cookies. */
  cookieMaxAgeDays?: number;
}

export interface BootstrapOptions {
  /** CSP nonce for both script tags; dropped unless it is a valid base64 value. */
  nonce?: string;
  /** Also emit `<script src="/_ss/client.js" async>` (default true). */
  clientScript?: boolean;
  /** The client script's URL (default `/_ss/client.js`; the edge adds `?v=<content hash>`). */
  clientScriptSrc?: string;
}

/** Path of the client script the bootstrap loads (docs/architecture.md). */
export const CLIENT_SCRIPT_PATH = "/_ss/client.js";

/** One-letter activation codes of the bootstrap and the client config (src/client reads both). */
export const ACTIVATION_CODE = {
  immediate: "i",
  manual: "m",
  url_changed: "u",
  dom_changed: "d",
} as const satisfies Record<BootstrapActivation, "i" | "m" | "u" | "d">;

const ACTIVATION_FROM_CODE: Record<string, BootstrapActivation> = {
  i: "immediate",
  m: "manual",
  u: "url_changed",
  d: "dom_changed",
};

/** CSP nonce grammar (base64-value): 1*( ALPHA / DIGIT / "+" / "/" / "-" / "_" ) *2"=". */
const NONCE_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;
const MAX_NONCE_LENGTH = 256;

/** Whether `nonce` can be written into a `nonce="…"` attribute as it is. */
export function isValidNonce(nonce: unknown): nonce is string {
  return typeof nonce === "string" && nonce.length <= MAX_NONCE_LENGTH && NONCE_RE.test(nonce);
}

/** ` nonce="…"` for a valid nonce, else "" (an invalid nonce is dropped, never escaped). */
export function nonceAttribute(nonce: string | undefined): string {
  return isValidNonce(nonce) ? ` nonce="${nonce}"` : "";
}

const SCRIPT_UNSAFE = /[<>&\u2028\u2029]/g;

/**
 * JSON text made safe for an inline `<script>`: `<`, `>`, `&`, U+2028 and U+2029 become `\uXXXX`
 * escapes, which JSON.parse and JS read back as the same characters. (JSON.stringify already
 * escapes lone surrogates.)
 */
export function escapeJsonForScript(json: string): string {
  return json.replace(SCRIPT_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** One decision as `window.__ss.d[]` (and `GET /_ss/decide`) writes it. */
export function encodeDecision(d: BootstrapDecision): BootstrapPayload["d"][number] {
  return {
    e: String(d.experimentId),
    ek: String(d.experimentKey),
    vi: String(d.variationId),
    vk: String(d.variationKey),
    a: ACTIVATION_CODE[d.activation] ?? "i",
    p: d.pageIds.map(String),
  };
}

/** The compact `window.__ss` object for `data`. */
export function encodeBootstrap(data: BootstrapData): BootstrapPayload {
  const payload: BootstrapPayload = {
    v: BOOTSTRAP_FORMAT_VERSION,
    r: String(data.revision),
    k: String(data.sdkKey),
    u: String(data.visitorId),
    t: data.tracking === true,
    d: data.decisions.map(encodeDecision),
  };
  if (data.optimizelyShim === true) payload.s = 1;
  if (typeof data.cookieDomain === "string" && data.cookieDomain !== "")
    payload.c = data.cookieDomain;
  // The route default (ROUTE_DEFAULTS) is left out: the client assumes it when `m` is absent.
  if (
    typeof data.cookieMaxAgeDays === "number" &&
    data.cookieMaxAgeDays !== ROUTE_DEFAULTS.cookieMaxAgeDays
  )
    payload.m = data.cookieMaxAgeDays;
  return payload;
}

/** Reads a `window.__ss` object back into BootstrapData; null when it is not one. */
export function decodeBootstrap(payload: unknown): BootstrapData | null {
  if (typeof payload !== "object" || payload === null) return null;
  const p = payload as Partial<BootstrapPayload>;
  if (p.v !== BOOTSTRAP_FORMAT_VERSION || !Array.isArray(p.d)) return null;
  if (typeof p.r !== "string" || typeof p.k !== "string" || typeof p.u !== "string") return null;
  const decisions: BootstrapDecision[] = [];
  for (const d of p.d) {
    if (typeof d !== "object" || d === null) return null;
    const activation = ACTIVATION_FROM_CODE[d.a];
    if (activation === undefined || !Array.isArray(d.p)) return null;
    if (![d.e, d.ek, d.vi, d.vk, ...d.p].every((v) => typeof v === "string")) return null;
    decisions.push({
      experimentId: d.e,
      experimentKey: d.ek,
      variationId: d.vi,
      variationKey: d.vk,
      activation,
      pageIds: d.p,
    });
  }
  const data: BootstrapData = {
    revision: p.r,
    sdkKey: p.k,
    visitorId: p.u,
    decisions,
    tracking: p.t === true,
  };
  if (p.s === 1) data.optimizelyShim = true;
  if (typeof p.c === "string") data.cookieDomain = p.c;
  if (typeof p.m === "number") data.cookieMaxAgeDays = p.m;
  return data;
}

/**
 * `<script id="ss-bootstrap">window.__ss={…};</script>` followed (unless `clientScript: false`)
 * by `<script src="/_ss/client.js" async></script>`, both with the nonce when it is valid.
 */
export function renderBootstrap(data: BootstrapData, options: BootstrapOptions = {}): string {
  const nonce = nonceAttribute(options.nonce);
  const json = escapeJsonForScript(JSON.stringify(encodeBootstrap(data)));
  let html = `<script id="ss-bootstrap"${nonce}>window.__ss=${json};</script>`;
  if (options.clientScript !== false) {
    const src = escapeAttribute(options.clientScriptSrc ?? CLIENT_SCRIPT_PATH);
    html += `<script src="${src}" async${nonce}></script>`;
  }
  return html;
}

/** Text for HTML content or a double-quoted attribute: `&`, `"`, `<`, `>` as character references. */
export function escapeAttribute(value: string): string {
  return value.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The nonce the page's Content-Security-Policy allows for scripts: the first `'nonce-…'` source of
 * `script-src-elem`, else `script-src`, else `default-src` (the directives a browser checks for
 * an inline `<script>`, in that order), in the first policy of the header that has one. Null
 * when there is none or it is not a valid nonce.
 */
export function nonceFromCsp(header: string | null): string | null {
  // Most policies name no nonce: skip the parse for them.
  if (!header || !/'nonce-/i.test(header)) return null;
  for (const policy of header.split(",")) {
    const directives = new Map<string, string[]>();
    for (const directive of policy.split(";")) {
      const [name, ...sources] = directive.trim().split(/\s+/);
      if (name && !directives.has(name.toLowerCase())) directives.set(name.toLowerCase(), sources);
    }
    const sources =
      directives.get("script-src-elem") ??
      directives.get("script-src") ??
      directives.get("default-src");
    for (const source of sources ?? []) {
      const match = /^'nonce-([^']+)'$/i.exec(source);
      if (match && isValidNonce(match[1])) return match[1]!;
    }
  }
  return null;
}
