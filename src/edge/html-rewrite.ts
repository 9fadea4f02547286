/**
 * Applies the changes of the visitor's `immediate` decisions to the origin's HTML while it streams
 * through HTMLRewriter, and injects the bootstrap, the custom CSS and the custom code.
 * docs/changes.md is the user-facing description of exactly what each change does here.
 *
 * Rules:
 * - never buffer the body: every handler is synchronous and local to one element;
 * - never break the page: an unsupported selector or an unsafe value skips that change (one
 *   console.warn when the change is first compiled), and a handler that throws is contained;
 * - cheap per request: changes are compiled once per Change object (WeakMap; the arrays and
 *   objects come from the compiled datafile, so their identity is stable across requests), and
 *   the per-request work is registering the handlers.
 */
import { URL_ATTRIBUTES } from "../core/datafile-parse";
import type { AttributeChangeSet, Change } from "../core/datafile-types";
import { nonceAttribute } from "./bootstrap";

export interface RewritePlan {
  /** every change of every immediate decision, in order (shared changes first, then variation changes) */
  changes: Change[];
  /** the rendered bootstrap HTML, injected as the first thing inside <head> (or before the first element if there is no head) */
  bootstrap: string | null;
  /** CSP nonce for injected <style>/<script> */
  nonce?: string;
  /**
   * Called once when the rewriter has seen the end of the document (so the last bytes are on
   * their way), or at once when the response is not rewritten. Work that must not compete with
   * streaming the page — queueing its events — waits for it.
   */
  onEnd?: () => void;
  /**
   * The visual editor's preview only (src/edge/editor-preview.ts): number every element the
   * origin sent, in document order, with {@link SOURCE_INDEX_ATTRIBUTE}, before any change runs.
   * Content a change inserts is not parsed by the rewriter, so it carries no number: that is how
   * the editor tells the origin's elements from inserted ones.
   */
  numberElements?: boolean;
}

/** The attribute {@link RewritePlan.numberElements} writes: the element's index in the origin's HTML. */
export const SOURCE_INDEX_ATTRIBUTE = "data-ss-i";

const LOG_PREFIX = "[splitstream]";
const HTML: ContentOptions = { html: true };

// ---------------------------------------------------------------------------------------------
// Selectors

const SELECTOR_CACHE_LIMIT = 1000;
const selectorCache = new Map<string, boolean>();

/**
 * Whether HTMLRewriter accepts `selector` (it throws at `.on()` time on anything it does not
 * support: `+`, `~`, `:last-child`, `:hover`, `:has()`, namespaces, empty selectors …).
 * Cached per selector string.
 */
export function validateSelector(selector: string): boolean {
  if (typeof selector !== "string") return false;
  const cached = selectorCache.get(selector);
  if (cached !== undefined) return cached;
  let ok: boolean;
  try {
    new HTMLRewriter().on(selector, {});
    ok = true;
  } catch {
    ok = false;
  }
  if (selectorCache.size >= SELECTOR_CACHE_LIMIT) selectorCache.clear();
  selectorCache.set(selector, ok);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Values

/** Valid attribute names; `on*` (event handlers) are refused separately. */
const ATTRIBUTE_NAME_RE = /^[a-zA-Z_:][-a-zA-Z0-9_:.]*$/;

/** Whether a `set` change may write attribute `name`: a valid name that is not an `on*` handler. */
export function isAllowedAttributeName(name: string): boolean {
  return ATTRIBUTE_NAME_RE.test(name) && !/^on/i.test(name);
}

/**
 * Refuses `javascript:`, `vbscript:` and `data:` URLs other than `data:image/…`, after the
 * clean-up a browser's URL parser does first (leading/trailing C0 controls and spaces dropped,
 * tabs and newlines removed anywhere). Relative URLs and other schemes pass.
 */
export function isSafeUrl(value: string): boolean {
  let start = 0;
  while (start < value.length && value.charCodeAt(start) <= 0x20) start++;
  const cleaned = value.slice(start).replace(/[\t\n\r]/g, "");
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(cleaned)?.[1]?.toLowerCase();
  if (scheme === undefined) return true;
  if (scheme === "javascript" || scheme === "vbscript") return false;
  if (scheme === "data") return /^data:image\//i.test(cleaned);
  return true;
}

/**
 * An attribute value as HTMLRewriter's setAttribute wants it: it writes the value raw inside
 * double quotes, escaping only `"`, so `&` must be escaped here or `&quot;`/`&#106;` in a value
 * would be decoded by the browser into something else.
 */
function attributeValue(value: string): string {
  return value.replace(/&/g, "&amp;");
}

/** CSS inside `<style>`: `</style` would end the element; `<\/style` means the same to CSS. */
export function escapeCss(css: string): string {
  return css.replace(/<\/(style)/gi, "<\\/$1");
}

/**
 * JS inside `<script>`: `</script` would end the element and `<!--` (followed by `<script`) can
 * keep it from ending; `<\/script` and `\x3C!--` mean the same inside strings, templates and
 * regular expressions, which is where such text occurs in real code.
 */
export function escapeScript(js: string): string {
  return js.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "\\x3C!--");
}

/** One custom_code snippet: its own scope, and an exception in it stops only itself. */
function wrapSnippet(js: string): string {
  return `try{(function(){\n${escapeScript(js)}\n})()}catch(e){console.error("splitstream custom code",e)}`;
}

const CLASS_SPLIT_RE = /[\t\n\f\r ]+/;
function splitClasses(value: string): string[] {
  return value.split(CLASS_SPLIT_RE).filter((c) => c !== "");
}

// ---------------------------------------------------------------------------------------------
// Compiling changes

type ElementOp = (element: Element) => void;

interface CompiledElementChange {
  kind: "element";
  selector: string;
  /** runs the change on one matched element (skips a removed one, contains exceptions) */
  run: ElementOp;
  handler: HTMLRewriterElementContentHandlers;
}
type CompiledChange =
  | CompiledElementChange
  /** several element changes, registered in this order (a `move`: remove, then insert) */
  | { kind: "elements"; parts: CompiledElementChange[] }
  | { kind: "css"; css: string }
  | { kind: "js"; js: string }
  | { kind: "skip" };

interface CompiledPlan {
  elements: CompiledElementChange[];
  /** all custom CSS, escaped, joined; "" for none */
  css: string;
  /** all custom code snippets, wrapped and escaped, joined; "" for none */
  js: string;
}

const SKIP: CompiledChange = { kind: "skip" };
const changeCache = new WeakMap<object, CompiledChange>();
const planCache = new WeakMap<object, CompiledPlan>();

function describeChange(change: Change): string {
  return "selector" in change
    ? `${change.type} change on ${JSON.stringify(change.selector)}`
    : `${change.type} change`;
}

function appendStyle(element: Element, declaration: string): void {
  const current = element.getAttribute("style");
  const base = current === null ? "" : current.replace(/[\s;]+$/, "").trim();
  element.setAttribute("style", base === "" ? declaration : `${base}; ${declaration}`);
}

function editClasses(element: Element, remove: string[], add: string[]): void {
  const current = element.getAttribute("class");
  const before = current === null ? [] : splitClasses(current);
  const next = before.filter((c) => !remove.includes(c));
  for (const c of add) if (!next.includes(c)) next.push(c);
  const changed = next.length !== before.length || next.some((c, i) => c !== before[i]);
  if (changed) element.setAttribute("class", next.join(" "));
}

/** The element operations of one attribute change, in a fixed order (docs/changes.md). */
function compileAttributes(set: AttributeChangeSet, problems: string[]): ElementOp[] {
  if (set.remove === true) return [(el) => el.remove()];
  const ops: ElementOp[] = [];
  if (typeof set.text === "string") {
    const text = set.text;
    ops.push((el) => el.setInnerContent(text));
  }
  if (typeof set.html === "string") {
    const html = set.html;
    ops.push((el) => el.setInnerContent(html, HTML));
  }
  if (typeof set.class === "string") {
    const value = attributeValue(set.class);
    ops.push((el) => el.setAttribute("class", value));
  }
  const remove =
    typeof set.removeClass === "string" ? splitClasses(attributeValue(set.removeClass)) : [];
  const add = typeof set.addClass === "string" ? splitClasses(attributeValue(set.addClass)) : [];
  if (remove.length > 0 || add.length > 0) ops.push((el) => editClasses(el, remove, add));
  if (typeof set.style === "string") {
    const style = attributeValue(set.style.trim().replace(/;+$/, "").trim());
    if (style !== "") ops.push((el) => appendStyle(el, style));
  }
  if (set.hide === true) ops.push((el) => appendStyle(el, "display:none !important"));
  for (const name of ["href", "src"] as const) {
    const value = set[name];
    if (typeof value !== "string") continue;
    if (!isSafeUrl(value)) {
      problems.push(`refused ${name} ${JSON.stringify(value.slice(0, 40))} (unsafe URL scheme)`);
      continue;
    }
    const escaped = attributeValue(value);
    ops.push((el) => el.setAttribute(name, escaped));
  }
  if (typeof set.set === "object" && set.set !== null) {
    for (const [name, value] of Object.entries(set.set)) {
      if (typeof value !== "string") continue;
      if (!isAllowedAttributeName(name)) {
        problems.push(`refused set of attribute ${JSON.stringify(name)}`);
        continue;
      }
      if (URL_ATTRIBUTES.has(name.toLowerCase()) && !isSafeUrl(value)) {
        problems.push(`refused ${name} ${JSON.stringify(value.slice(0, 40))} (unsafe URL scheme)`);
        continue;
      }
      const escaped = attributeValue(value);
      ops.push((el) => el.setAttribute(name, escaped));
    }
  }
  if (Array.isArray(set.unset)) {
    for (const name of set.unset) {
      if (typeof name !== "string" || !ATTRIBUTE_NAME_RE.test(name)) {
        problems.push(`refused unset of attribute ${JSON.stringify(name)}`);
        continue;
      }
      ops.push((el) => el.removeAttribute(name));
    }
  }
  return ops;
}

function insertOp(position: string, html: string): ElementOp | null {
  switch (position) {
    case "before":
      return (el) => el.before(html, HTML);
    case "after":
      return (el) => el.after(html, HTML);
    case "prepend":
      return (el) => el.prepend(html, HTML);
    case "append":
      return (el) => el.append(html, HTML);
    case "replace":
      return (el) => el.replace(html, HTML);
    default:
      return null;
  }
}

/** Runs `ops` on every matching element that is still in the document; contains exceptions. */
function elementRunner(ops: ElementOp[], what: string): ElementOp {
  let warned = false;
  return (el) => {
    if (el.removed) return;
    try {
      for (const op of ops) op(el);
    } catch (error) {
      if (!warned) {
        warned = true;
        console.warn(`${LOG_PREFIX} ${what} failed on an element: ${String(error)}`);
      }
    }
  };
}

function elementChange(selector: string, run: ElementOp): CompiledElementChange {
  return { kind: "element", selector, run, handler: { element: run } };
}

const UNSUPPORTED_SELECTOR =
  "unsupported selector (skipped; HTMLRewriter supports type, #id, .class, [attr] forms, :nth-child, :first-child, :nth-of-type, :first-of-type, :not(), descendant and > combinators)";

/**
 * A `move` (docs/changes.md "move") as two element changes, in this order: every element
 * matching `selector` is removed, and `html` — the element's HTML, captured when the move was
 * made — is inserted at `position` of every element matching `target`. A streaming rewriter
 * cannot look ahead to an element that comes later, nor re-emit one it has already streamed, so
 * the moved HTML travels in the change; the two halves are independent, which makes the move
 * work whichever comes first in the document. Both selectors must be supported (else nothing
 * of the move applies: removing without inserting would lose the element), and the position
 * must be one of before/after/prepend/append.
 */
function compileMove(
  change: Extract<Change, { type: "move" }>,
  problems: string[],
): CompiledChange {
  if (!validateSelector(change.selector) || !validateSelector(change.target)) {
    const which = validateSelector(change.selector)
      ? `target ${JSON.stringify(change.target)}`
      : "selector";
    problems.push(UNSUPPORTED_SELECTOR.replace("selector", which));
    return SKIP;
  }
  // `replace` is an insert_html position, not a move's (the validator refuses it too).
  const position: string = change.position;
  const insert =
    typeof change.html === "string" && position !== "replace"
      ? insertOp(position, change.html)
      : null;
  if (insert === null) {
    problems.push(`bad position ${JSON.stringify(change.position)} or html`);
    return SKIP;
  }
  const what = describeChange(change);
  return {
    kind: "elements",
    parts: [
      elementChange(change.selector, elementRunner([(el) => el.remove()], what)),
      elementChange(change.target, elementRunner([insert], what)),
    ],
  };
}

function compileUncached(change: Change): CompiledChange {
  const problems: string[] = [];
  let compiled: CompiledChange = SKIP;
  switch (change.type) {
    case "attribute":
    case "insert_html": {
      if (!validateSelector(change.selector)) {
        problems.push(UNSUPPORTED_SELECTOR);
        break;
      }
      let ops: ElementOp[];
      if (change.type === "attribute") {
        ops =
          typeof change.attributes === "object" && change.attributes !== null
            ? compileAttributes(change.attributes, problems)
            : [];
      } else {
        const op = typeof change.html === "string" ? insertOp(change.position, change.html) : null;
        if (op === null) problems.push(`bad position ${JSON.stringify(change.position)} or html`);
        ops = op === null ? [] : [op];
      }
      if (ops.length > 0)
        compiled = elementChange(change.selector, elementRunner(ops, describeChange(change)));
      break;
    }
    case "move":
      compiled = compileMove(change, problems);
      break;
    case "custom_css":
      if (typeof change.value === "string" && change.value.trim() !== "")
        compiled = { kind: "css", css: escapeCss(change.value) };
      break;
    case "custom_code":
      if (typeof change.value === "string" && change.value.trim() !== "")
        compiled = { kind: "js", js: wrapSnippet(change.value) };
      break;
    default:
      // redirect: decided and done before the origin fetch (handle-request.ts); unknown: ignored.
      break;
  }
  if (problems.length > 0)
    console.warn(`${LOG_PREFIX} ${describeChange(change)}: ${problems.join("; ")}`);
  return compiled;
}

function compileChange(change: Change): CompiledChange {
  if (typeof change !== "object" || change === null) return SKIP;
  let compiled = changeCache.get(change);
  if (compiled === undefined) {
    compiled = compileUncached(change);
    changeCache.set(change, compiled);
  }
  return compiled;
}

/** One handler running `a`'s then `b`'s work (each still skips an element already removed). */
function mergeHandlers(a: CompiledElementChange, b: CompiledElementChange): CompiledElementChange {
  const first = a.run;
  const second = b.run;
  return elementChange(a.selector, (el) => {
    first(el);
    second(el);
  });
}

function compilePlan(changes: Change[]): CompiledPlan {
  if (!Array.isArray(changes)) return { elements: [], css: "", js: "" };
  const cached = planCache.get(changes);
  if (cached !== undefined) return cached;
  const elements: CompiledElementChange[] = [];
  const css: string[] = [];
  const js: string[] = [];
  // Consecutive changes on the same selector share one handler (one call per element, not one
  // per change); only consecutive ones, so the order of changes is kept exactly.
  const addElement = (compiled: CompiledElementChange) => {
    const last = elements[elements.length - 1];
    if (last !== undefined && last.selector === compiled.selector)
      elements[elements.length - 1] = mergeHandlers(last, compiled);
    else elements.push(compiled);
  };
  for (const change of changes) {
    const compiled = compileChange(change);
    if (compiled.kind === "element") addElement(compiled);
    else if (compiled.kind === "elements") compiled.parts.forEach(addElement);
    else if (compiled.kind === "css") css.push(compiled.css);
    else if (compiled.kind === "js") js.push(compiled.js);
  }
  const plan: CompiledPlan = { elements, css: css.join("\n"), js: js.join("\n") };
  planCache.set(changes, plan);
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Injection points (per request)

function isCharsetMeta(el: Element): boolean {
  if (el.tagName.toLowerCase() !== "meta") return false;
  return (
    el.hasAttribute("charset") || el.getAttribute("http-equiv")?.toLowerCase() === "content-type"
  );
}

/**
 * Whether the response's Content-Type declares a charset. Browsers then take the encoding from
 * the header with certainty and ignore `<meta charset>`, so the bootstrap may go before it.
 */
function headerDeclaresCharset(response: Response): boolean {
  return /;\s*charset\s*=/i.test(response.headers.get("content-type") ?? "");
}

/**
 * The anchor selector lists, built once, indexed by `(bootstrap waits for the head's first child ?
 * 1 : 0) + (custom CSS or code ? 2 : 0)`. `body:first-child` is a document that starts at <body>
 * (no <html>, no <head> tag); the head's first child is only needed without a charset in the
 * header; <body> only for the CSS and code.
 */
const ANCHOR_LISTS = [0, 1, 2, 3].map((i) =>
  [
    "head",
    "html > :first-child",
    "body:first-child",
    ...(i & 1 ? ["head > :first-child"] : []),
    ...(i & 2 ? ["body"] : []),
  ].join(", "),
);

/**
 * Registers the handlers that put the bootstrap, the CSS and the JS in place, and `onEnd`:
 * - bootstrap: first thing inside the first <head>; when the Content-Type header declares no
 *   charset, after a leading `<meta charset>` instead (which must then stay in the first 1024
 *   bytes), or before `</head>` when the head has no child element. Without a <head> tag: before
 *   the first child of <html>, or before a leading <body>; else at the end of the document;
 * - CSS: before the first `</head>`; when the head is not closed or absent, before <body>;
 *   else at the end of the document;
 * - JS: before the first <body>'s `</body>`, else at the end of the document;
 * - `onEnd`: at the end of the document, after the end-of-document injections.
 *
 * Every anchor is in ONE selector list, and only the anchors this page needs: HTMLRewriter runs
 * each handler call as its own turn of workerd's event loop (about 50 µs each in workerd, more
 * once the extra output chunk crosses the network), and an element matching several parts of a
 * list is one call. A normal page with just the bootstrap costs 2 calls (`<head>`, the end of
 * the document) where one handler per anchor took 10.
 */
function registerInjections(
  rewriter: HTMLRewriter,
  boot: string | null,
  css: string | null,
  js: string | null,
  onEnd: (() => void) | undefined,
  charsetInHeader: boolean,
): void {
  const pending = { boot, css, js };
  let headSeen = false;
  let bodySeen = false;
  const contained = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (error) {
      console.warn(`${LOG_PREFIX} injecting ${what} failed: ${String(error)}`);
    }
  };
  const beforeHeadEnd = (el: Element) =>
    el.onEndTag((end) => {
      contained("into </head>", () => {
        const html = (pending.boot ?? "") + (pending.css ?? "");
        pending.boot = pending.css = null;
        if (html !== "") end.before(html, HTML);
      });
    });

  if (boot !== null || css !== null || js !== null) {
    const anchors =
      ANCHOR_LISTS[
        (boot !== null && !charsetInHeader ? 1 : 0) + (css !== null || js !== null ? 2 : 0)
      ]!;
    rewriter.on(anchors, {
      element(el) {
        const tag = el.tagName.toLowerCase();
        if (tag === "head") {
          if (headSeen || bodySeen) return;
          headSeen = true;
          const html = pending.boot;
          if (html !== null && charsetInHeader) {
            pending.boot = null;
            contained("the bootstrap", () => el.prepend(html, HTML));
          }
          // The end of the head: for the CSS, and for a bootstrap still waiting for a first
          // child that may never come (an empty head).
          if (pending.css !== null || pending.boot !== null)
            contained("into </head>", () => beforeHeadEnd(el));
          return;
        }
        if (tag === "body") {
          if (bodySeen) return;
          bodySeen = true;
          contained("before <body>", () => {
            const html = (pending.boot ?? "") + (pending.css ?? "");
            pending.boot = pending.css = null;
            if (html !== "") el.before(html, HTML);
          });
          if (pending.js !== null) {
            contained("into </body>", () =>
              el.onEndTag((end) => {
                const script = pending.js;
                pending.js = null;
                if (script !== null) contained("into </body>", () => end.before(script, HTML));
              }),
            );
          }
          return;
        }
        // The head's first child, or (no <head> tag) the first child of <html>: both come
        // before anything else the bootstrap could anchor on.
        const html = pending.boot;
        if (html === null || bodySeen) return;
        pending.boot = null;
        contained("the bootstrap", () => {
          if (isCharsetMeta(el)) el.after(html, HTML);
          else el.before(html, HTML);
        });
      },
    });
  }
  // One end-of-document handler for both (each handler call is an event-loop turn).
  if (boot === null && css === null && js === null && onEnd === undefined) return;
  rewriter.onDocument({
    end(end) {
      const html = (pending.boot ?? "") + (pending.css ?? "") + (pending.js ?? "");
      pending.boot = pending.css = pending.js = null;
      if (html !== "") contained("at the end of the document", () => end.append(html, HTML));
      onEnd?.();
    },
  });
}

// ---------------------------------------------------------------------------------------------

/**
 * The origin's HTML response with `plan` applied, streaming (nothing is buffered). Status and
 * headers are kept, except `content-length`, which no longer holds. A response without a body,
 * or a plan with nothing to do, comes back as it is.
 */
export function rewriteHtml(response: Response, plan: RewritePlan): Response {
  const onEnd = plan.onEnd;
  if (response.body === null) {
    onEnd?.();
    return response;
  }
  const compiled = compilePlan(plan.changes);
  const nonce = nonceAttribute(plan.nonce);
  const boot = typeof plan.bootstrap === "string" && plan.bootstrap !== "" ? plan.bootstrap : null;
  const css = compiled.css === "" ? null : `<style data-ss${nonce}>${compiled.css}</style>`;
  const js = compiled.js === "" ? null : `<script data-ss${nonce}>${compiled.js}</script>`;
  const numbered = plan.numberElements === true;
  if (boot === null && css === null && js === null && compiled.elements.length === 0 && !numbered) {
    onEnd?.();
    return response;
  }

  const rewriter = new HTMLRewriter();
  if (numbered) {
    // Registered first, so the number is on the element before any change handler sees it.
    let index = 0;
    rewriter.on("*", {
      element(el) {
        el.setAttribute(SOURCE_INDEX_ATTRIBUTE, String(index++));
      },
    });
  }
  registerInjections(rewriter, boot, css, js, onEnd, headerDeclaresCharset(response));
  for (const change of compiled.elements) {
    try {
      rewriter.on(change.selector, change.handler);
    } catch (error) {
      // validateSelector accepted it, so this should not happen; never let it break the page.
      console.warn(
        `${LOG_PREFIX} skipped selector ${JSON.stringify(change.selector)}: ${String(error)}`,
      );
    }
  }
  let transformed: Response;
  try {
    transformed = rewriter.transform(response);
  } catch (error) {
    // e.g. a charset HTMLRewriter cannot parse (UTF-16, ISO-2022-JP, unknown labels): the body
    // is still untouched, so the page goes out as the origin sent it.
    console.warn(`${LOG_PREFIX} page left unchanged: ${String(error)}`);
    onEnd?.();
    return response;
  }
  const headers = new Headers(transformed.headers);
  headers.delete("content-length");
  return new Response(transformed.body, {
    status: transformed.status,
    statusText: transformed.statusText,
    headers,
  });
}
