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
import {
  BOOTSTRAP_FORMAT_VERSION,
  type BootstrapFlag,
  type BootstrapPayload,
} from "../shared/bootstrap-types";
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
  /**
   * Every feature flag of the datafile, decided for this visitor (absent when the datafile has
   * none, or deciding them failed). Written as `f`, within FLAGS_BOOTSTRAP_MAX_BYTES.
   */
  flags?: FlagState[];
}

/** A feature flag's state for the client (docs/client.md "Feature flags"). */
export interface FlagState {
  flagKey: string;
  enabled: boolean;
  variationKey: string | null;
  /** Variables by key, typed; null when they were left out of a page's bootstrap (its cap). */
  variables: Readonly<Record<string, unknown>> | null;
}

/**
 * Most bytes the flags (`f`) may take in a page's bootstrap, as UTF-8 of the script-escaped JSON.
 * Over it, every flag keeps its state and variables are kept in datafile order while they fit;
 * a flag whose variables do not fit gets `o: 1` instead (docs/client.md "Feature flags").
 */
export const FLAGS_BOOTSTRAP_MAX_BYTES = 4096;

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

/** One flag as `f[]` writes it. */
export function encodeFlag(flag: FlagState): BootstrapFlag {
  const out: BootstrapFlag = { k: String(flag.flagKey) };
  if (flag.enabled) out.e = 1;
  if (flag.variationKey !== null) out.v = String(flag.variationKey);
  if (flag.variables === null) out.o = 1;
  else if (Object.keys(flag.variables).length > 0)
    out.x = flag.variables as Record<string, unknown>;
  return out;
}

/** UTF-8 length of a string (for size caps; no encoding buffer). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/** Bytes `value` takes in the page: its JSON, script-escaped, as UTF-8. */
function scriptBytes(value: unknown): number {
  return utf8Length(escapeJsonForScript(JSON.stringify(value)));
}

/**
 * The `f` array for `flags`, at most `maxBytes` (FLAGS_BOOTSTRAP_MAX_BYTES on pages; pass
 * Infinity for `GET /_ss/decide`, which has no cap). Over the cap every flag keeps its key,
 * state and variation; variables are put back in datafile order while they fit, the others are
 * marked `o: 1`. Only when even the states alone do not fit (many dozens of flags) are flags left
 * out whole: disabled ones first (the client reports an unknown flag as disabled anyway), from the
 * last, then enabled ones from the last.
 */
export function encodeFlags(
  flags: readonly FlagState[],
  maxBytes: number = FLAGS_BOOTSTRAP_MAX_BYTES,
): BootstrapFlag[] {
  const full = flags.map(encodeFlag);
  if (maxBytes === Infinity) return full;
  const fullSizes = full.map(scriptBytes);
  // "[" + entries joined by "," + "]"
  const arrayBytes = (sum: number, count: number) => 2 + sum + Math.max(0, count - 1);
  if (arrayBytes(sum(fullSizes), full.length) <= maxBytes) return full;

  const out: BootstrapFlag[] = full.map(({ x, ...state }) =>
    x === undefined ? state : { ...state, o: 1 },
  );
  const sizes = out.map(scriptBytes);
  const kept = out.map(() => true);
  let bytes = sum(sizes);
  let count = out.length;
  for (const enabled of [false, true]) {
    for (let i = out.length - 1; i >= 0 && arrayBytes(bytes, count) > maxBytes; i--) {
      if (!kept[i] || (out[i]!.e === 1) !== enabled) continue;
      kept[i] = false;
      bytes -= sizes[i]!;
      count--;
    }
  }
  for (let i = 0; i < out.length; i++) {
    if (!kept[i] || full[i]!.x === undefined) continue;
    const grow = fullSizes[i]! - sizes[i]!;
    if (arrayBytes(bytes + grow, count) > maxBytes) continue;
    out[i] = full[i]!;
    bytes += grow;
  }
  return out.filter((_, i) => kept[i]);
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

/** Reads `f[]` back; null when it is not one. */
export function decodeFlags(value: unknown): FlagState[] | null {
  if (!Array.isArray(value)) return null;
  const flags: FlagState[] = [];
  for (const f of value as unknown[]) {
    if (typeof f !== "object" || f === null) return null;
    const { k, e, v, x, o } = f as Partial<BootstrapFlag>;
    if (typeof k !== "string" || (v !== undefined && typeof v !== "string")) return null;
    if (x !== undefined && (typeof x !== "object" || x === null || Array.isArray(x))) return null;
    flags.push({
      flagKey: k,
      enabled: e === 1,
      variationKey: v ?? null,
      variables: o === 1 ? null : (x ?? {}),
    });
  }
  return flags;
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
  if (data.flags !== undefined) payload.f = encodeFlags(data.flags);
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
  if (p.f !== undefined) {
    const flags = decodeFlags(p.f);
    if (flags === null) return null;
    data.flags = flags;
  }
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
