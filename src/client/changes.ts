/**
 * Applies a variation's changes in the page (manual, url_changed and dom_changed activations;
 * `immediate` ones were applied by the edge). Same semantics as the edge (docs/changes.md), with
 * the same defence in depth: `javascript:`/`vbscript:`/non-image `data:` URLs and `on*`
 * attributes are refused.
 *
 * Each change becomes an "applier": a function that applies the change to every matching element
 * it has not changed yet. Appliers run on activation and again whenever the DOM changes while
 * their page is active (single-page apps render late), so an element is changed once, including
 * elements that appear later. Content that a change inserted (`insert_html`, `html`, `move`) is
 * never matched by any change, as at the edge, where HTMLRewriter does not parse inserted content
 * — which also means changes can never feed each other in a loop.
 */
import type { Change } from "../core/datafile-types";

export type Applier = () => void;

/** Elements inserted (or moved) by changes: not matched by changes. */
const inserted = new WeakSet<Node>();
const mark = (root: ParentNode): void => root.querySelectorAll("*").forEach((n) => inserted.add(n));
/** The page's elements matching `selector` that no change inserted; throws on a bad selector. */
const live = (selector: string): Element[] =>
  Array.from(document.querySelectorAll(selector)).filter((n) => !inserted.has(n));

const NAME = /^[a-zA-Z_:][-a-zA-Z0-9_:.]*$/;
const URL_ATTRIBUTE = /^(href|src|action|formaction|xlink:href|poster|data|cite|background|ping)$/i;
const INSERT = {
  before: "before",
  after: "after",
  prepend: "prepend",
  append: "append",
  replace: "replaceWith",
} as const;

/** Not `javascript:`, `vbscript:` or a non-image `data:` URL, after the browser's clean-up. */
function safeUrl(value: string): boolean {
  return !/^(javascript|vbscript|data(?!:image\/)):/i.test(value.replace(/[\0- ]/g, ""));
}

const words = (s: string): string[] => s.split(/\s+/).filter(Boolean);

/** Runs `fn` once the document is parsed (custom code expects the DOM above it, as at the edge). */
function whenParsed(fn: () => void): void {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
  else fn();
}

function withNonce<T extends HTMLElement & { nonce?: string }>(el: T, nonce?: string): T {
  if (nonce) el.nonce = nonce;
  el.setAttribute("data-ss", "");
  return el;
}

/**
 * `html` parsed in the context it lands in at `position` of `el` (the parent for
 * before/after/replace, the element for prepend/append), as the browser parses the edge's
 * insertions: a `<tr>` stays a row. Marked as inserted.
 */
function fragment(el: Element, position: string, html: string): DocumentFragment {
  const range = document.createRange();
  if (position === "prepend" || position === "append") range.selectNodeContents(el);
  else range.selectNode(el);
  const f = range.createContextualFragment(html);
  mark(f);
  return f;
}

/**
 * A `move` applier. The edge removes every element matching `selector` and inserts `html` (its
 * outer HTML captured when the change was made) at every `target`; here the first live element
 * is moved instead, keeping its listeners and state, to the first target, the other elements
 * matching `selector` are removed, and copies of `html` go to the other targets — or to every
 * target when no element matches `selector`. An element is never moved into itself (a target
 * inside a source is skipped). Once the first target has been served, an element matching
 * `selector` that appears later is removed and a target that appears later gets a copy, as at
 * the edge. Moved elements count as inserted, so no change (this one included) matches them
 * again; each target is served once.
 */
function mover(c: Extract<Change, { type: "move" }>): Applier {
  const served = new WeakSet<Node>();
  let home: Element | undefined;
  const ok = /^(before|after|prepend|append)$/.test(c.position);
  return () => {
    let sources: Element[];
    let targets: Element[];
    try {
      sources = live(c.selector);
      targets = live(c.target).filter((t) => !served.has(t) && !sources.some((s) => s.contains(t)));
    } catch {
      return; // not a selector this browser knows
    }
    if (!ok || (!home && !targets.length)) return;
    // Only the first serving moves a live element; later, sources go as at the edge.
    const moved = home ? undefined : sources[0];
    home ??= targets[0]!;
    targets.forEach((t, i) => {
      served.add(t);
      if (i || !moved) return t[c.position](fragment(t, c.position, c.html));
      inserted.add(moved);
      mark(moved);
      t[c.position](moved);
    });
    for (const s of sources)
      if (s !== moved && !moved?.contains(s) && !s.contains(home)) s.remove();
  };
}

/** An applier for `change`; `nonce` is the page's CSP nonce for inserted <style>/<script>. */
export function applier(change: Change, nonce?: string): Applier {
  const c = change;
  if (c.type === "move") return mover(c);
  if (c.type === "custom_css" || c.type === "custom_code" || c.type === "redirect") {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (c.type === "custom_css") {
        const style = withNonce(document.createElement("style"), nonce);
        style.textContent = c.value;
        document.head.append(style);
      } else if (c.type === "custom_code") {
        whenParsed(() => {
          const script = withNonce(document.createElement("script"), nonce);
          script.text = `try{(function(){\n${c.value}\n})()}catch(e){console.error("splitstream custom code",e)}`;
          document.head.append(script);
        });
      } else {
        const to = new URL(c.destination, location.href);
        if (c.preserveParameters !== false)
          new URL(location.href).searchParams.forEach(
            (v, k) => to.searchParams.has(k) || to.searchParams.append(k, v),
          );
        if (/^https?:$/.test(to.protocol) && to.href !== location.href) location.replace(to.href);
      }
    };
  }
  const seen = new WeakSet<Node>();
  return () => {
    let found: NodeListOf<Element>;
    try {
      found = document.querySelectorAll(c.selector);
    } catch {
      return; // not a selector this browser knows
    }
    found.forEach((el) => {
      if (seen.has(el) || inserted.has(el)) return;
      seen.add(el);
      if (c.type === "insert_html") {
        const method = INSERT[c.position];
        if (method) el[method](fragment(el, c.position, c.html));
        return;
      }
      const a = c.attributes;
      if (a.remove) return el.remove();
      const style = (el as HTMLElement).style;
      if (a.text != null) el.textContent = a.text;
      if (a.html != null) {
        el.innerHTML = a.html;
        mark(el);
      }
      if (a.class != null) el.setAttribute("class", a.class);
      if (a.removeClass) el.classList.remove(...words(a.removeClass));
      if (a.addClass) el.classList.add(...words(a.addClass));
      if (style && a.style) style.cssText += ";" + a.style;
      if (style && a.hide) style.setProperty("display", "none", "important");
      const set: Array<[string, string]> = [];
      if (a.href != null) set.push(["href", a.href]);
      if (a.src != null) set.push(["src", a.src]);
      for (const name in a.set) set.push([name, a.set[name]!]);
      for (const [name, value] of set)
        if (NAME.test(name) && !/^on/i.test(name) && (!URL_ATTRIBUTE.test(name) || safeUrl(value)))
          el.setAttribute(name, value);
      for (const name of a.unset ?? [])
        try {
          el.removeAttribute(name);
        } catch {
          // an invalid name: nothing to remove
        }
    });
  };
}
