/**
 * The visual editor's model (docs/visual-editor.md): the variation's change list, the undo and
 * redo stacks over it, the draft kept in sessionStorage, and the edits the panel makes to the
 * list. Pure data in, data out (no DOM, no storage): src/editor/editor.ts wires it to the page,
 * test/core/editor-model.test.ts checks it in Node.
 *
 * Changes are the datafile's `Change` objects (src/core/datafile-types.ts) and mean what
 * docs/changes.md says; nothing here changes their meaning, so the list saved is the list the
 * edge applies.
 */
import type { AttributeChangeSet, Change } from "../core/datafile-types";

/** The change list and its history: every edit pushes the list as it was onto `undo`. */
export interface History {
  changes: Change[];
  undo: Change[][];
  redo: Change[][];
}

/** Undo steps kept (the oldest are dropped). */
export const MAX_UNDO = 100;

export function history(changes: Change[]): History {
  return { changes, undo: [], redo: [] };
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** `next` as the new list, the current one pushed for undo; nothing changes when they are equal. */
export function commit(h: History, next: Change[]): History {
  if (same(h.changes, next)) return h;
  return { changes: next, undo: [...h.undo, h.changes].slice(-MAX_UNDO), redo: [] };
}

/** One step back (null: nothing to undo). */
export function undo(h: History): History | null {
  const previous = h.undo[h.undo.length - 1];
  if (previous === undefined) return null;
  return { changes: previous, undo: h.undo.slice(0, -1), redo: [...h.redo, h.changes] };
}

/** One step forward again (null: nothing to redo). */
export function redo(h: History): History | null {
  const next = h.redo[h.redo.length - 1];
  if (next === undefined) return null;
  return { changes: next, undo: [...h.undo, h.changes], redo: h.redo.slice(0, -1) };
}

// ---------------------------------------------------------------------------------------------
// The draft in sessionStorage

/** A draft: the history, and the experiment version it was started from. */
export interface Draft extends History {
  version: number;
}

/** The most characters a stored draft takes (sessionStorage holds about 5 MB per origin). */
export const MAX_DRAFT_CHARS = 2_000_000;

/**
 * The draft as stored. When it is longer than `maxChars`, the oldest undo steps (then the redo
 * steps) are left out until it fits: the changes themselves are always kept.
 */
export function serializeDraft(h: History, version: number, maxChars = MAX_DRAFT_CHARS): string {
  let undoSteps = h.undo;
  let redoSteps = h.redo;
  for (;;) {
    const text = JSON.stringify({
      v: 1,
      version,
      changes: h.changes,
      undo: undoSteps,
      redo: redoSteps,
    });
    if (text.length <= maxChars || (undoSteps.length === 0 && redoSteps.length === 0)) return text;
    if (undoSteps.length > 0) undoSteps = undoSteps.slice(Math.ceil(undoSteps.length / 2));
    else redoSteps = redoSteps.slice(Math.ceil(redoSteps.length / 2));
  }
}

/** What the page says about the list it shows. */
export interface PageDraftState {
  /** The list the page shows: the stored one, or the one a refused save posted. */
  changes: Change[];
  /** The experiment's version the page was made from. */
  version: number;
  /** The page follows a successful save: a stored draft is done with. */
  saved: boolean;
  /** The page follows a refused save (409, 422): `changes` is the posted draft, not stored. */
  refused: boolean;
  /** Whether this change set can be edited here at all. */
  editable: boolean;
}

/** How the editor starts, from the page and the draft found in sessionStorage. */
export interface Opening {
  history: History;
  /** The experiment version the draft began on (stored with it, for "saved since it began"). */
  version: number;
  /**
   * The list as stored on the server, to tell unsaved edits from it; null when the editor cannot
   * know it (a refused save: the page shows the posted draft, which is unsaved until saved).
   */
  saved: Change[] | null;
  /** A stored draft was taken up: "older" when the experiment was saved since it began. */
  restored: "same" | "older" | null;
  /** The stored draft is done with (the page follows a successful save): remove it. */
  clear: boolean;
}

/**
 * Where the editor starts. After a successful save the draft is dropped. After a refused save the
 * page shows the posted list: the stored draft's history continues with it (undo reaches back
 * past the refused save) and the list counts as unsaved. Otherwise a stored draft is taken up
 * (its own version tells whether the experiment was saved since it began; the storage key has no
 * version, so that a draft refused as stale is still found).
 */
export function openDraft(page: PageDraftState, stored: Draft | null): Opening {
  const fresh: Opening = {
    history: history(page.changes),
    version: page.version,
    saved: page.refused ? null : page.changes,
    restored: null,
    clear: false,
  };
  if (page.saved && !page.refused) return { ...fresh, clear: true };
  if (stored === null || !page.editable) return fresh;
  const kept: History = { changes: stored.changes, undo: stored.undo, redo: stored.redo };
  if (page.refused)
    return { ...fresh, history: commit(kept, page.changes), version: stored.version };
  return {
    ...fresh,
    history: kept,
    version: stored.version,
    restored: same(stored.changes, page.changes)
      ? null
      : stored.version === page.version
        ? "same"
        : "older",
  };
}

/** Whether `h` has edits not saved on the server (`saved` null: unknown, so always). */
export function isDirty(h: History, saved: Change[] | null): boolean {
  return saved === null || !same(h.changes, saved);
}

/** Whether there is anything to keep in storage: unsaved edits, or steps to undo or redo. */
export function worthKeeping(h: History, saved: Change[] | null): boolean {
  return isDirty(h, saved) || h.undo.length > 0 || h.redo.length > 0;
}

const isChangeList = (value: unknown): value is Change[] =>
  Array.isArray(value) &&
  value.every(
    (c) =>
      typeof c === "object" &&
      c !== null &&
      !Array.isArray(c) &&
      typeof (c as { type?: unknown }).type === "string",
  );

/** A stored draft read back; null when absent or not one (another version of the editor, edited by hand). */
export function parseDraft(text: string | null): Draft | null {
  if (text === null) return null;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null) return null;
  const d = data as Record<string, unknown>;
  if (d.v !== 1 || typeof d.version !== "number" || !isChangeList(d.changes)) return null;
  if (!Array.isArray(d.undo) || !d.undo.every(isChangeList)) return null;
  if (!Array.isArray(d.redo) || !d.redo.every(isChangeList)) return null;
  return {
    version: d.version,
    changes: d.changes,
    undo: d.undo as Change[][],
    redo: d.redo as Change[][],
  };
}

// ---------------------------------------------------------------------------------------------
// Which changes are this page's

/**
 * Whether `change` applies on the page shown: it names no page, or one of the experiment's pages
 * that match this URL — as the client script decides (src/client/index.ts).
 */
export function appliesHere(change: Change, matchingPageIds: readonly string[]): boolean {
  return change.pageId === undefined || matchingPageIds.includes(change.pageId);
}

/** What the preview renders: shared changes, then the variation's that apply here (custom JS optional). */
export function previewChanges(
  shared: readonly Change[],
  changes: readonly Change[],
  matchingPageIds: readonly string[],
  runCustomJs: boolean,
): Change[] {
  return [...shared, ...changes.filter((c) => appliesHere(c, matchingPageIds))].filter(
    (c) => runCustomJs || c.type !== "custom_code",
  );
}

/** `change` with `pageId` when it is not null (new changes get the editor's default page). */
export function onPage<T extends Change>(change: T, pageId: string | null): T {
  return pageId === null ? change : { ...change, pageId };
}

export function replaceAt(changes: readonly Change[], index: number, change: Change): Change[] {
  return changes.map((c, i) => (i === index ? change : c));
}

export function removeAt(changes: readonly Change[], index: number): Change[] {
  return changes.filter((_, i) => i !== index);
}

// ---------------------------------------------------------------------------------------------
// Attribute edits

/** The space-separated words of `s` (class lists). */
export const words = (s: string | undefined): string[] => (s ?? "").split(/\s+/).filter(Boolean);
const joinWords = (list: string[]): string | undefined =>
  list.length === 0 ? undefined : [...new Set(list)].join(" ");
const trimSemicolons = (s: string): string => s.trim().replace(/;+\s*$/, "");

/** `a`, then `b` appended the way the edge appends styles (`a; b`, no doubled `;`). */
export function joinStyles(a: string | undefined, b: string): string {
  if (a === undefined || trimSemicolons(a) === "") return trimSemicolons(b);
  return `${trimSemicolons(a)}; ${trimSemicolons(b)}`;
}

/** Drops undefined fields and empty `set`/`unset`, so stored changes stay minimal. */
function tidy(a: AttributeChangeSet): AttributeChangeSet {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(a)) {
    if (value === undefined) continue;
    if (key === "set" && Object.keys(value as object).length === 0) continue;
    if (key === "unset" && (value as string[]).length === 0) continue;
    out[key] = value;
  }
  return out as AttributeChangeSet;
}

const lower = (list: string[] | undefined): string[] => (list ?? []).map((n) => n.toLowerCase());
const setNames = (a: AttributeChangeSet): string[] => lower(Object.keys(a.set ?? {}));

/**
 * One attribute change set doing what `a` then `b` do on the same element (docs/changes.md
 * "attribute": the fields apply in a fixed order, whatever order the edits came in), or null
 * when no single set does exactly that — then `b` becomes a change of its own.
 */
export function mergeAttributes(
  a: AttributeChangeSet,
  b: AttributeChangeSet,
): AttributeChangeSet | null {
  const aSet = setNames(a);
  const aUnset = lower(a.unset);
  const touchedByA = (name: string): boolean => aSet.includes(name) || aUnset.includes(name);
  // a's set/unset of these attributes come after b's field in the fixed order: not mergeable.
  if ((b.style !== undefined || b.hide === true) && touchedByA("style")) return null;
  // b's style would land before a's `display:none !important` instead of after it.
  if (b.style !== undefined && a.hide === true) return null;
  if ((b.class !== undefined || b.addClass || b.removeClass) && touchedByA("class")) return null;
  if (b.href !== undefined && touchedByA("href")) return null;
  if (b.src !== undefined && touchedByA("src")) return null;

  const m: AttributeChangeSet = { ...a };
  if (b.remove === true) m.remove = true;
  if (b.text !== undefined) {
    m.text = b.text;
    delete m.html; // html would win over the newer text
  }
  if (b.html !== undefined) {
    m.html = b.html;
    delete m.text;
  }
  if (b.class !== undefined) {
    // A new class attribute replaces whatever a did to the classes.
    m.class = b.class;
    delete m.addClass;
    delete m.removeClass;
  }
  if (b.removeClass) {
    const removed = words(b.removeClass);
    m.addClass = joinWords(words(m.addClass).filter((c) => !removed.includes(c)));
    m.removeClass = joinWords([...words(m.removeClass), ...removed]);
  }
  if (b.addClass) m.addClass = joinWords([...words(m.addClass), ...words(b.addClass)]);
  if (b.style !== undefined) m.style = joinStyles(m.style, b.style);
  if (b.hide === true) m.hide = true;
  if (b.href !== undefined) m.href = b.href;
  if (b.src !== undefined) m.src = b.src;
  if (b.set) {
    const setting = lower(Object.keys(b.set));
    m.set = { ...m.set, ...b.set };
    m.unset = m.unset?.filter((n) => !setting.includes(n.toLowerCase()));
  }
  if (b.unset) {
    const unsetting = lower(b.unset);
    const kept = Object.entries(m.set ?? {}).filter(([n]) => !unsetting.includes(n.toLowerCase()));
    m.set = Object.fromEntries(kept);
    m.unset = [...new Set([...(m.unset ?? []), ...b.unset])];
  }
  return tidy(m);
}

/**
 * The list after an attribute edit on `selector`: merged into the last change when that is an
 * attribute change on the same selector and page (consecutive edits of one element become one
 * change), else appended as a new change.
 */
export function addAttributeEdit(
  changes: readonly Change[],
  selector: string,
  attributes: AttributeChangeSet,
  pageId: string | null,
): Change[] {
  const last = changes[changes.length - 1];
  if (
    last?.type === "attribute" &&
    last.selector === selector &&
    last.pageId === (pageId ?? undefined)
  ) {
    const merged = mergeAttributes(last.attributes, attributes);
    if (merged !== null)
      return replaceAt(changes, changes.length - 1, { ...last, attributes: merged });
  }
  return [
    ...changes,
    onPage({ type: "attribute", selector, attributes: tidy(attributes) }, pageId),
  ];
}

/**
 * An existing attribute change's set with `patch` applied field by field (editing a change
 * loaded into the panel): a field in the patch replaces the change's; undefined or "" removes it.
 * Setting the text drops the HTML and the reverse, as {@link mergeAttributes} does: the edge
 * applies html after text, so a kept older html would silently win over the newer text.
 */
export function patchAttributes(
  a: AttributeChangeSet,
  patch: Partial<Record<keyof AttributeChangeSet, unknown>>,
): AttributeChangeSet {
  const out: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined || value === "" || value === false) {
      delete out[key];
      continue;
    }
    out[key] = value;
    if (key === "text") delete out.html;
    if (key === "html") delete out.text;
  }
  return tidy(out as AttributeChangeSet);
}

// ---------------------------------------------------------------------------------------------
// Custom CSS and JS

/** Index of the variation's first `type` change that applies here (-1: none). */
export function customIndex(
  changes: readonly Change[],
  type: "custom_css" | "custom_code",
  matchingPageIds: readonly string[],
): number {
  return changes.findIndex((c) => c.type === type && appliesHere(c, matchingPageIds));
}

/**
 * The list with this page's custom CSS (or JS) set to `value`: the first such change gets it, one
 * is created (on `pageId`) when there is none, and a blank value removes it.
 */
export function setCustom(
  changes: readonly Change[],
  type: "custom_css" | "custom_code",
  value: string,
  matchingPageIds: readonly string[],
  pageId: string | null,
): Change[] {
  const index = customIndex(changes, type, matchingPageIds);
  const blank = value.trim() === "";
  if (index < 0) return blank ? [...changes] : [...changes, onPage({ type, value }, pageId)];
  if (blank) return removeAt(changes, index);
  const current = changes[index] as Extract<Change, { type: "custom_css" | "custom_code" }>;
  return replaceAt(changes, index, { ...current, value });
}

/**
 * The list with the custom CSS (or JS) change at `index` set to `value` (a blank value removes
 * it): the change the panel's box was loaded from, when the variation has several. When `index`
 * is null or no longer such a change, {@link setCustom} picks (or creates) this page's first one.
 */
export function setCustomAt(
  changes: readonly Change[],
  type: "custom_css" | "custom_code",
  index: number | null,
  value: string,
  matchingPageIds: readonly string[],
  pageId: string | null,
): Change[] {
  const current = index === null ? undefined : changes[index];
  if (index === null || current?.type !== type)
    return setCustom(changes, type, value, matchingPageIds, pageId);
  if (value.trim() === "") return removeAt(changes, index);
  return replaceAt(changes, index, { ...current, value });
}
