/**
 * Selectors for the visual editor, built and checked on the page's SOURCE: the origin's HTML with
 * every element numbered (`data-ss-i`, answered by `?ss_editor=source`), parsed with DOMParser
 * (inert: nothing in it runs or loads). Selectors must match what the edge sees while streaming
 * the origin's HTML, not the live page, where scripts and changes have moved things around.
 *
 * The browser's parser adds elements the origin never sent — `<tbody>` in a table written
 * without one, `<html>`/`<head>`/`<body>` when omitted — and HTMLRewriter, which only sees the
 * tags, never has them: `table > tr` matches at the edge, `table > tbody > tr` does not. Those
 * elements are the ones without a number, so the editor's "edge view" of the source unwraps them
 * (their children take their place). Selectors are generated on that view by @medv/finder,
 * counted there, and checked with `edgeSelectorProblem` (src/core/edge-selector.ts). A selector
 * that works at the edge but not in the browser's own tree (it relies on a missing `<tbody>`)
 * is loosened to descendant combinators when that stays unique, so that the client script
 * (manual activations) finds the element too.
 */
import { finder } from "@medv/finder";
import { edgeSelectorProblem } from "../core/edge-selector";
import type { SelectorCheck } from "./describe";
import { INDEX_ATTRIBUTE, MAX_HIGHLIGHT } from "./protocol";
import { generatedName, usableAttribute } from "./selector-names";

/** The page's source as the editor works with it. */
export interface SourceView {
  /** The origin's elements as the edge sees them (parser-added elements unwrapped). */
  edge: Document;
  /** The same HTML as a browser builds it (what the client script's selectors run against). */
  browser: Document;
  /** The element numbered `index` in the edge view. */
  byIndex(index: number): Element | null;
  /** A unique selector for `element` of the edge view. */
  selectorFor(element: Element): string;
  /** How many elements `selector` matches at the edge, and whether the edge can run it (cached). */
  check(selector: string): SelectorCheck;
  /** Numbers of the elements `selector` matches (at most MAX_HIGHLIGHT), for the frame's highlight. */
  indices(selector: string): number[];
  /** `element`'s outer HTML without the numbering (what a `move` change carries). */
  cleanHtml(element: Element): string;
}

/** Replaces every unnumbered element but the root by its children (see the module comment). */
function unwrapParserElements(doc: Document): void {
  // A source without any number is not the edge's numbered answer: leave it as it is.
  if (!doc.querySelector(`[${INDEX_ATTRIBUTE}]`)) return;
  const added = Array.from(doc.querySelectorAll(`:not([${INDEX_ATTRIBUTE}])`)).filter(
    (el) => el !== doc.documentElement,
  );
  // Innermost first, so that an unwrapped element's parent is still in place.
  for (const el of added.reverse()) el.replaceWith(...Array.from(el.childNodes));
}

function count(doc: Document, selector: string): number {
  try {
    return doc.querySelectorAll(selector).length;
  } catch {
    return -1;
  }
}

function matchesOnly(doc: Document, selector: string, element: Element | null): boolean {
  try {
    const found = doc.querySelectorAll(selector);
    return found.length === 1 && found[0] === element;
  } catch {
    return false;
  }
}

const indexOf = (el: Element): string | null => el.getAttribute(INDEX_ATTRIBUTE);

/**
 * A structural selector (`html > body:nth-of-type(1) > …`) with the element's real local names
 * (SVG's `linearGradient` keeps its case): for when finder gives up.
 */
function pathSelector(element: Element): string {
  const parts: string[] = [];
  for (let el: Element | null = element; el; el = el.parentElement) {
    const name = CSS.escape(el.localName);
    if (!el.parentElement) {
      parts.unshift(name);
      break;
    }
    let n = 1;
    for (let s = el.previousElementSibling; s; s = s.previousElementSibling)
      if (s.localName === el.localName) n++;
    parts.unshift(`${name}:nth-of-type(${n})`);
  }
  return parts.join(" > ");
}

/** Parses the numbered source (`?ss_editor=source`) into a {@link SourceView}. */
export function sourceView(text: string): SourceView {
  const parser = new DOMParser();
  const browser = parser.parseFromString(text, "text/html");
  const edge = parser.parseFromString(text, "text/html");
  unwrapParserElements(edge);
  const checks = new Map<string, SelectorCheck>();
  const byIndex = (index: number): Element | null =>
    edge.querySelector(`[${INDEX_ATTRIBUTE}="${index}"]`);

  function selectorFor(element: Element): string {
    let selector: string;
    try {
      selector = finder(element, {
        // The document itself: uniqueness is checked over the whole page, as at the edge.
        root: edge as unknown as Element,
        idName: (name) => !generatedName(name),
        className: (name) => !generatedName(name),
        attr: usableAttribute,
        timeoutMs: 400,
        maxNumberOfPathChecks: 20_000,
      });
    } catch {
      // No unique candidate (or an SVG name the browser's selector engine lower-cases).
      selector = pathSelector(element);
    }
    if (!matchesOnly(edge, selector, element)) selector = pathSelector(element);
    const index = indexOf(element);
    const twin = index === null ? null : browser.querySelector(`[${INDEX_ATTRIBUTE}="${index}"]`);
    if (twin && !matchesOnly(browser, selector, twin)) {
      const loose = selector.replace(/ > /g, " ");
      if (matchesOnly(edge, loose, element) && matchesOnly(browser, loose, twin)) selector = loose;
    }
    return selector;
  }

  function check(selector: string): SelectorCheck {
    let known = checks.get(selector);
    if (!known) {
      let problem: string | undefined;
      try {
        problem = edgeSelectorProblem(selector);
      } catch {
        problem = "it could not be parsed";
      }
      known = { count: count(edge, selector), problem };
      checks.set(selector, known);
    }
    return known;
  }

  function indices(selector: string): number[] {
    const out: number[] = [];
    try {
      for (const el of Array.from(edge.querySelectorAll(selector))) {
        const n = Number(indexOf(el));
        if (Number.isSafeInteger(n)) out.push(n);
        if (out.length >= MAX_HIGHLIGHT) break;
      }
    } catch {
      // not a valid selector: nothing to outline
    }
    return out;
  }

  function cleanHtml(element: Element): string {
    const copy = element.cloneNode(true) as Element;
    copy.removeAttribute(INDEX_ATTRIBUTE);
    for (const el of Array.from(copy.querySelectorAll(`[${INDEX_ATTRIBUTE}]`)))
      el.removeAttribute(INDEX_ATTRIBUTE);
    return copy.outerHTML;
  }

  return { edge, browser, byIndex, selectorFor, check, indices, cleanHtml };
}

/** `html` (from the frame) without the numbering attributes the preview carries. */
export function stripIndices(html: string): string {
  return html.replace(/ data-ss-i="\d*"/g, "");
}
