/**
 * The messages between the visual editor (the admin's editor page, src/editor/editor.ts) and its
 * agent inside the previewed page (src/editor/agent.ts), sent with `window.postMessage` and all
 * tagged `{ source: "splitstream-editor" }` (docs/visual-editor.md).
 *
 * The previewed page is the customer's page with its own scripts and the variation's custom code
 * running in it, so whatever comes out of the frame is untrusted: {@link readFrameMessage} checks
 * every field's type and clamps every length before the editor looks at it. Pure (no DOM), so
 * the checks are unit-tested in Node.
 */

/** The `source` of every message, both ways. */
export const MESSAGE_SOURCE = "splitstream-editor";

/** The attribute numbering the origin's elements (src/edge/html-rewrite.ts SOURCE_INDEX_ATTRIBUTE). */
export const INDEX_ATTRIBUTE = "data-ss-i";

/** Most elements a highlight outlines in the frame (the editor sends at most this many). */
export const MAX_HIGHLIGHT = 200;

/** Interaction modes of the frame: select elements, use the page, or pick a move target. */
export type FrameMode = "select" | "browse" | "pick";

/** Upper bounds of what the agent sends about an element (it cuts longer values itself). */
export const LIMITS = {
  text: 2000,
  html: 200_000,
  tag: 64,
  name: 256,
  value: 2000,
  list: 200,
  url: 4096,
  title: 500,
} as const;

/** What the agent tells about an element that was clicked (or selected by index). */
export interface ElementInfo {
  /** Its `data-ss-i` (its place in the origin's HTML), null when a change or a script added it. */
  index: number | null;
  tag: string;
  id: string;
  classes: string[];
  /** Its attributes but the editor's own (`data-ss-*`). */
  attributes: Array<[string, string]>;
  text: string;
  html: string;
  outerHtml: string;
  /** Whether text, html or outerHtml was cut to its limit. */
  truncated: boolean;
  /** `data-ss-i` of the ancestors that have one, nearest first. */
  ancestors: number[];
}

/** Frame → editor. */
export type FrameMessage =
  | { type: "hello"; url: string; title: string; elements: number }
  /** `request`: the `selectIndex` this answers (absent: the user clicked). */
  | ({ type: "select" | "picked"; request?: number } & ElementInfo)
  | { type: "navigate"; href: string }
  | { type: "scroll"; x: number; y: number }
  | { type: "key"; key: string; ctrlKey: boolean; metaKey: boolean; shiftKey: boolean };

/** Editor → frame. */
export type EditorMessage =
  | { type: "mode"; mode: FrameMode }
  | { type: "highlight"; indices: number[]; selected: number | null }
  /**
   * Select element `index` as if clicked; the answer carries `request` back, so that the editor
   * tells it from a click. `scroll: false` leaves the page where it is (a refresh after a
   * re-render), else the element is scrolled into view.
   */
  | { type: "selectIndex"; index: number; request?: number; scroll?: boolean }
  | { type: "scrollTo"; x: number; y: number };

const KEYS = new Set(["z", "Z", "y", "Y", "Escape"]);

const str = (value: unknown, max: number): string =>
  typeof value === "string" ? value.slice(0, max) : "";
const bool = (value: unknown): boolean => value === true;
/** A finite number clamped to ±1e7 (scroll offsets), else 0. */
const coord = (value: unknown): number =>
  typeof value === "number" && Number.isFinite(value) ? Math.max(-1e7, Math.min(1e7, value)) : 0;
/** A `data-ss-i` value: a non-negative safe integer, else null. */
export const elementIndex = (value: unknown): number | null =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : null;

function elementInfo(data: Record<string, unknown>): ElementInfo {
  const list = (value: unknown): unknown[] =>
    Array.isArray(value) ? value.slice(0, LIMITS.list) : [];
  const text = str(data.text, LIMITS.text);
  const html = str(data.html, LIMITS.html);
  const outerHtml = str(data.outerHtml, LIMITS.html);
  const cut =
    (typeof data.html === "string" && data.html.length > LIMITS.html) ||
    (typeof data.outerHtml === "string" && data.outerHtml.length > LIMITS.html) ||
    (typeof data.text === "string" && data.text.length > LIMITS.text);
  return {
    index: elementIndex(data.index),
    tag: str(data.tag, LIMITS.tag).toLowerCase(),
    id: str(data.id, LIMITS.name),
    classes: list(data.classes)
      .filter((c): c is string => typeof c === "string" && c !== "")
      .map((c) => c.slice(0, LIMITS.name)),
    attributes: list(data.attributes)
      .filter(
        (a): a is [string, string] =>
          Array.isArray(a) && typeof a[0] === "string" && typeof a[1] === "string",
      )
      .map(([name, value]): [string, string] => [
        name.slice(0, LIMITS.name),
        value.slice(0, LIMITS.value),
      ]),
    text,
    html,
    outerHtml,
    truncated: bool(data.truncated) || cut,
    ancestors: list(data.ancestors)
      .map(elementIndex)
      .filter((i): i is number => i !== null),
  };
}

/**
 * A message from the frame, checked and clamped; null when it is not one of ours (wrong source,
 * unknown type). The caller has already checked `event.source` is the editor's frame.
 */
export function readFrameMessage(data: unknown): FrameMessage | null {
  if (typeof data !== "object" || data === null) return null;
  const d = data as Record<string, unknown>;
  if (d.source !== MESSAGE_SOURCE) return null;
  switch (d.type) {
    case "hello":
      return {
        type: "hello",
        url: str(d.url, LIMITS.url),
        title: str(d.title, LIMITS.title),
        elements: elementIndex(d.elements) ?? 0,
      };
    case "select":
    case "picked": {
      const request = elementIndex(d.request);
      return { type: d.type, ...elementInfo(d), ...(request === null ? {} : { request }) };
    }
    case "navigate":
      return typeof d.href === "string" && d.href.length <= LIMITS.url
        ? { type: "navigate", href: d.href }
        : null;
    case "scroll":
      return { type: "scroll", x: coord(d.x), y: coord(d.y) };
    case "key":
      return typeof d.key === "string" && KEYS.has(d.key)
        ? {
            type: "key",
            key: d.key,
            ctrlKey: bool(d.ctrlKey),
            metaKey: bool(d.metaKey),
            shiftKey: bool(d.shiftKey),
          }
        : null;
    default:
      return null;
  }
}

/** What a key (pressed in the editor or forwarded from the frame) asks for, if anything. */
export function keyCommand(key: {
  key: string;
  ctrlKey: boolean;
  metaKey: boolean;
  shiftKey: boolean;
}): "undo" | "redo" | "escape" | null {
  if (key.key === "Escape") return "escape";
  if (!(key.ctrlKey || key.metaKey)) return null;
  const k = key.key.toLowerCase();
  if (k === "z") return key.shiftKey ? "redo" : "undo";
  if (k === "y") return "redo";
  return null;
}
