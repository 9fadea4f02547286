/**
 * The visual editor (docs/visual-editor.md), the script of the admin's editor page
 * (src/admin/editor-page.ts renders the markup and the state; every control is found by its
 * `data-editor` hook). It shows the customer's page in a sandboxed frame, rendered by the edge
 * with the draft applied (`?ss_editor=preview`), talks to the agent inside it
 * (src/editor/agent.ts, messages in src/editor/protocol.ts), builds selectors on the page's
 * source (src/editor/selector.ts), and keeps the draft and its undo history in sessionStorage
 * (src/editor/state.ts) until it is saved with a plain form POST.
 *
 * Whatever comes from the frame is untrusted: messages are accepted only from the frame's window,
 * checked field by field, and shown as text, never as markup.
 */
import type { AttributeChangeSet, Change } from "../core/datafile-types";
import {
  changeWarnings,
  clip,
  describeChange,
  matchCountText,
  selectorOf,
  selectorWarning,
  type SelectorCheck,
} from "./describe";
import { STATE_ELEMENT_ID, type EditorState } from "../shared/editor-state";
import {
  INDEX_ATTRIBUTE,
  keyCommand,
  LIMITS,
  MESSAGE_SOURCE,
  readFrameMessage,
  type EditorMessage,
  type ElementInfo,
  type FrameMode,
} from "./protocol";
import { sourceView, stripIndices, type SourceView } from "./selector";
import {
  addAttributeEdit,
  appliesHere,
  commit,
  customIndex,
  isDirty,
  mergeAttributes,
  onPage,
  openDraft,
  parseDraft,
  patchAttributes,
  previewChanges,
  redo,
  removeAt,
  replaceAt,
  serializeDraft,
  setCustomAt,
  undo,
  words,
  worthKeeping,
  type Draft,
  type History,
} from "./state";

/** How long the preview may take to say hello before the editor says the page left. */
const HELLO_TIMEOUT_MS = 8000;
/** How long a preview may take to arrive at all (a slow origin) before the editor says so. */
const LOAD_TIMEOUT_MS = 30_000;
/** Edits are re-rendered by the edge after this pause (typing does not post every key). */
const PREVIEW_DEBOUNCE_MS = 250;
/** An attribute name the edge writes (docs/changes.md "Refused attribute names"). */
const ATTRIBUTE_NAME = /^[a-zA-Z_:][-a-zA-Z0-9_:.]*$/;
/** Elements the browser's parser adds when the origin's HTML leaves them out. */
const PARSER_ELEMENTS = /^(html|head|body|tbody|colgroup)$/;
/** The notice of the page a successful save leads to ("Saved and published."). */
const SAVED_NOTICE = /\bsaved\b/i;
/** Said when sessionStorage refuses the draft (full, or storage disabled). */
const NOT_KEPT =
  "This tab's storage is full, so the draft is not kept when you leave this page: save it first.";

type CustomType = "custom_css" | "custom_code";
const CUSTOM_TYPES: readonly CustomType[] = ["custom_css", "custom_code"];

function hook<T extends HTMLElement = HTMLElement>(name: string): T {
  const el = document.querySelector<T>(`[data-editor="${name}"]`);
  if (!el) throw new Error(`splitstream editor: the page has no [data-editor="${name}"]`);
  return el;
}

/** A new element with text children (never markup: values come from the page or the user). */
function h(
  tag: string,
  attributes: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

/** `text` as an element's innerHTML serializes it once it is the element's only content. */
const escapeText = (text: string): string =>
  text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/\u00a0/g, "&nbsp;");

/** The text of `html` (parsed in an inert template: nothing in it runs or loads). */
function textOf(html: string): string {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content.textContent ?? "";
}

/** The panel's fields for a change whose selector matches nothing here. */
const NO_ELEMENT: ElementInfo = {
  index: null,
  tag: "",
  id: "",
  classes: [],
  attributes: [],
  text: "",
  html: "",
  outerHtml: "",
  truncated: false,
  ancestors: [],
};

function start(): void {
  const stateText = document.getElementById(STATE_ELEMENT_ID)?.textContent ?? "";
  const state = JSON.parse(stateText) as EditorState;
  const matching = state.pages.filter((p) => p.matches).map((p) => p.id);
  const editable = state.canSave && state.variation !== null;
  /** A refused save (409, 422): the page shows the posted draft and the API's messages. */
  const refused = state.errors.length > 0;
  const postedJson = JSON.stringify(state.changes);

  // ---- elements
  let frame = hook<HTMLIFrameElement>("frame");
  const previewForm = hook<HTMLFormElement>("preview-form");
  const status = hook("status");
  const lost = hook("lost");
  const selectorInput = hook<HTMLInputElement>("selector");
  const matchCount = hook("match-count");
  const selectorProblem = hook("selector-problem");
  const selection = hook("selection");
  const selectParent = hook("select-parent");
  const edits = hook("edits");
  const editingBox = hook("editing");
  const list = hook<HTMLOListElement>("changes");
  const sharedList = hook<HTMLOListElement>("shared-changes");
  const field = (name: string): HTMLInputElement => hook<HTMLInputElement>(name);
  const customCss = hook<HTMLTextAreaElement>("custom-css");
  const customJs = hook<HTMLTextAreaElement>("custom-js");
  const runCustomJs = field("run-custom-js");
  const saveForm = document.querySelector<HTMLFormElement>('[data-editor="save-form"]');
  const customBox = (type: CustomType): HTMLTextAreaElement =>
    type === "custom_css" ? customCss : customJs;

  // ---- model
  let history: History = { changes: state.changes, undo: [], redo: [] };
  /** The list as stored on the server; null when unknown (after a refused save). */
  let saved: Change[] | null = refused ? null : state.changes;
  /** The experiment version the draft began on, stored with it. */
  let draftVersion = state.version;
  /** Whether the last write of the draft to sessionStorage worked. */
  let draftKept = true;
  let source: SourceView | null = null;
  let sourceError: string | null = null;
  /** The selected element as the frame (or the source) described it, and its twin in the source. */
  let selected: { info: ElementInfo; element: Element | null } | null = null;
  /** The number of the `selectIndex` whose answer is awaited (older answers are stale). */
  let pendingRequest: number | null = null;
  let requests = 0;
  /** Index of the change loaded into the panel, null when edits make new changes. */
  let editing: number | null = null;
  /** Index of the custom CSS / JS change each box edits (null: this page's first one). */
  const customAt: Record<CustomType, number | null> = { custom_css: null, custom_code: null };
  let mode: Exclude<FrameMode, "pick"> = "select";
  let picking = false;
  let moveTarget: string | null = null;
  let scroll = { x: 0, y: 0 };
  let helloTimer: ReturnType<typeof setTimeout> | undefined;
  let previewTimer: ReturnType<typeof setTimeout> | undefined;
  let loadsSinceSubmit = 0;
  let hellosSinceSubmit = 0;
  let previews = 0;
  let leaving = false;

  const say = (text: string): void => {
    status.textContent = text;
  };

  const send = (message: EditorMessage): void => {
    frame.contentWindow?.postMessage({ source: MESSAGE_SOURCE, ...message }, "*");
  };

  const check = (selector: string): SelectorCheck =>
    source ? source.check(selector) : { count: 0, problem: undefined };

  // ---- fields: what the editor last put in each, to tell the user's typing from it
  const filled = new Map<HTMLInputElement | HTMLTextAreaElement, string>();
  /** Puts `value` in `el`, unless `keepTyped` and the user changed what the editor put there. */
  function fill(
    el: HTMLInputElement | HTMLTextAreaElement,
    value: string,
    keepTyped = false,
  ): void {
    const last = filled.get(el);
    if (keepTyped && last !== undefined && el.value !== last) return;
    if (el.value !== value) el.value = value;
    filled.set(el, value);
  }

  // ---- draft
  /** Stores the draft (or removes it when there is nothing to keep); false when storage refuses. */
  function persist(): boolean {
    if (!editable) return true;
    try {
      if (worthKeeping(history, saved)) {
        sessionStorage.setItem(state.draftStorageKey, serializeDraft(history, draftVersion));
      } else {
        sessionStorage.removeItem(state.draftStorageKey);
        draftVersion = state.version; // the next draft begins on this page's version
      }
      draftKept = true;
    } catch {
      draftKept = false; // full or refused: the draft lives on in this page only
    }
    return draftKept;
  }

  function restore(): void {
    let stored: Draft | null = null;
    try {
      stored = parseDraft(sessionStorage.getItem(state.draftStorageKey));
    } catch {
      // storage refused: start from the page's list
    }
    const opening = openDraft(
      {
        changes: state.changes,
        version: state.version,
        saved: state.notice !== null && SAVED_NOTICE.test(state.notice),
        refused,
        editable,
      },
      stored,
    );
    history = opening.history;
    saved = opening.saved;
    draftVersion = opening.version;
    if (opening.clear) {
      try {
        sessionStorage.removeItem(state.draftStorageKey);
      } catch {
        // nothing stored then
      }
    }
    // The posted list is the draft now: kept, even before another edit.
    if (refused && !persist()) say(NOT_KEPT);
    if (opening.restored === "same") say("Your unsaved draft was restored.");
    else if (opening.restored === "older")
      say(
        "Your unsaved draft was restored. The experiment has been saved since it began: saving replaces this variation's changes with the draft's.",
      );
  }

  const dirty = (): boolean => isDirty(history, saved);

  // ---- preview
  function submitPreview(): void {
    clearTimeout(previewTimer);
    const changes =
      state.variation === null
        ? []
        : previewChanges(state.sharedChanges, history.changes, matching, runCustomJs.checked);
    (previewForm.elements.namedItem("changes") as HTMLInputElement).value = JSON.stringify(changes);
    loadsSinceSubmit = 0;
    hellosSinceSubmit = 0;
    lost.hidden = true;
    expectHello(LOAD_TIMEOUT_MS);
    previews++;
    // A fresh frame each time, named when it is made: a page script that renamed its window
    // (window.name) must not turn the next preview into a new top-level tab, and a browser does
    // not rename a frame's window when the element's name changes.
    const name = `ss-editor-frame-${previews}`;
    const next = frame.cloneNode(false) as HTMLIFrameElement;
    next.name = name;
    frame.replaceWith(next);
    // After the insertion, so the new frame's initial about:blank does not count as a load.
    next.addEventListener("load", onFrameLoad);
    frame = next;
    previewForm.target = name;
    previewForm.submit();
  }

  const schedulePreview = (): void => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(submitPreview, PREVIEW_DEBOUNCE_MS);
  };

  /** "The page left the editor" unless the agent says hello within `ms`. */
  function expectHello(ms: number = HELLO_TIMEOUT_MS): void {
    clearTimeout(helloTimer);
    helloTimer = setTimeout(() => {
      lost.hidden = false;
    }, ms);
  }

  function onFrameLoad(): void {
    // The agent says hello at DOMContentLoaded, before the load event: a load without it is a
    // page that left the preview (a script, custom code or a redirect navigated the frame). A
    // slow page is not "gone" while it is still loading (LOAD_TIMEOUT_MS until its first load).
    // Every document with the agent says hello once, before its load: fewer hellos than loads
    // means the document now in the frame has none.
    loadsSinceSubmit++;
    if (hellosSinceSubmit < loadsSinceSubmit) expectHello(2000);
    else clearTimeout(helloTimer);
  }
  frame.addEventListener("load", onFrameLoad);

  function syncFrame(): void {
    send({ type: "mode", mode: picking ? "pick" : mode });
    highlight();
  }

  function highlight(): void {
    const selector = selectorInput.value.trim();
    const indices = source && selector ? source.indices(selector) : [];
    if (moveTarget && source) indices.push(...source.indices(moveTarget));
    send({ type: "highlight", indices, selected: selected?.info.index ?? null });
  }

  /** Asks the frame to select element `index`; its answer refreshes the panel (see onAnswer). */
  function requestSelect(index: number, scrollTo: boolean): void {
    pendingRequest = ++requests;
    send({ type: "selectIndex", index, request: pendingRequest, scroll: scrollTo });
  }

  // ---- rendering
  function renderChanges(): void {
    const errorsShown = refused && JSON.stringify(history.changes) === postedJson;
    const errorsAt = new Map<number, string[]>();
    for (const e of state.errors) {
      const match = /^changes\[(\d+)\]/.exec(e.path);
      if (!match) continue;
      const at = Number(match[1]);
      errorsAt.set(at, [...(errorsAt.get(at) ?? []), e.message]);
    }
    const pageKey = (id: string | undefined): string =>
      state.pages.find((p) => p.id === id)?.key ?? String(id);
    // The list is drawn anew: a keyboard user's focus goes back to the same button.
    const active = document.activeElement;
    const activeItem =
      active && list.contains(active) ? active.closest("[data-change-index]") : null;
    const refocus = activeItem
      ? `[data-change-index="${activeItem.getAttribute("data-change-index")}"] [data-editor="${active!.getAttribute("data-editor")}"]`
      : null;
    list.replaceChildren(
      ...history.changes.map((change, i) => {
        const here = appliesHere(change, matching);
        const n = String(i + 1);
        const item = h(
          "li",
          { "data-change-index": String(i) },
          h("p", {}, describeChange(change)),
        );
        if (editing === i) item.className = "editing";
        const selector = selectorOf(change);
        if (selector !== undefined) item.append(h("p", {}, h("code", {}, selector)));
        if (change.type === "move") item.append(h("p", {}, "to ", h("code", {}, change.target)));
        if (!here) {
          item.append(
            h("p", { class: "muted" }, `On page ${pageKey(change.pageId)}: not shown here.`),
          );
        } else if (source) {
          for (const warning of changeWarnings(change, check))
            item.append(h("p", { class: "warn" }, warning));
        }
        if (errorsShown)
          for (const message of errorsAt.get(i) ?? [])
            item.append(h("p", { class: "problem" }, `Not saved: ${message}`));
        if (here) {
          const row = h("div", { class: "row" });
          const button = (action: string, label: string): void => {
            row.append(
              h(
                "button",
                {
                  type: "button",
                  "data-editor": `change-${action}`,
                  "aria-label": `${label} change ${n}`,
                },
                label,
              ),
            );
          };
          if (selector !== undefined) button("select", "Select");
          if (editable) {
            button("edit", "Edit");
            button("delete", "Delete");
          }
          item.append(row);
        }
        return item;
      }),
    );
    if (refocus) list.querySelector<HTMLElement>(refocus)?.focus();
    hook("changes-empty").hidden = history.changes.length > 0;
    sharedList.replaceChildren(
      ...state.sharedChanges.map((change) => {
        const selector = selectorOf(change);
        return h(
          "li",
          {},
          h("p", {}, describeChange(change)),
          ...(selector !== undefined ? [h("p", {}, h("code", {}, selector))] : []),
        );
      }),
    );
    hook("shared").hidden = state.sharedChanges.length === 0;
  }

  function renderToolbar(): void {
    hook<HTMLButtonElement>("undo").disabled = !editable || history.undo.length === 0;
    hook<HTMLButtonElement>("redo").disabled = !editable || history.redo.length === 0;
    const dirtyNote = document.querySelector<HTMLElement>('[data-editor="dirty"]');
    if (dirtyNote) dirtyNote.hidden = !dirty();
    hook("mode-select").setAttribute("aria-pressed", String(mode === "select"));
    hook("mode-browse").setAttribute("aria-pressed", String(mode === "browse"));
  }

  /** The custom CSS / JS change the box edits: the one loaded by Edit, else this page's first. */
  function customChangeIndex(type: CustomType): number {
    const at = customAt[type];
    if (at !== null && history.changes[at]?.type === type) return at;
    customAt[type] = null;
    return customIndex(history.changes, type, matching);
  }

  /** The boxes show their changes' code; what the user typed and did not apply yet is kept. */
  function renderCustom(): void {
    for (const type of CUSTOM_TYPES) {
      const change = history.changes[customChangeIndex(type)];
      fill(customBox(type), change && "value" in change ? change.value : "", true);
    }
  }

  function renderEditing(): void {
    const change = editing === null ? undefined : history.changes[editing];
    editingBox.hidden = change === undefined;
    if (change)
      hook("editing-text").textContent =
        `Editing change ${editing! + 1}: ${describeChange(change)}`;
    hook("apply-selector").hidden = change === undefined || selectorOf(change) === undefined;
  }

  function renderSelector(): void {
    const selector = selectorInput.value.trim();
    if (!selector) {
      matchCount.textContent = "Enter a selector.";
      selectorProblem.textContent = "";
      return;
    }
    if (!source) {
      matchCount.textContent = sourceError ?? "Loading the page's source…";
      selectorProblem.textContent = "";
      return;
    }
    const result = source.check(selector);
    matchCount.textContent =
      result.count < 0
        ? "Not a valid selector."
        : `Matches ${matchCountText(result.count)} in the page the origin sends.`;
    selectorProblem.textContent = selectorWarning(selector, result) ?? "";
  }

  function renderAll(): void {
    renderChanges();
    renderToolbar();
    renderEditing();
  }

  /** After every change of the list: store the draft, show it, re-render the preview. */
  function changed(next: History, message?: string): void {
    history = next;
    if (editing !== null && editing >= history.changes.length) editing = null;
    const kept = persist();
    renderAll();
    renderCustom();
    schedulePreview();
    if (message || !kept) say([message, kept ? "" : NOT_KEPT].filter(Boolean).join(" "));
  }

  const edit = (next: Change[], message: string): void => changed(commit(history, next), message);

  // ---- selection
  function showSelection(info: ElementInfo, text: string, usable: boolean): void {
    const label = `<${info.tag}${info.id ? `#${info.id}` : ""}${info.classes.map((c) => `.${c}`).join("")}>`;
    selection.replaceChildren(
      h("code", {}, clip(label, 80)),
      ...(info.text.trim() ? [" ", clip(`“${info.text}”`, 60)] : []),
      ...(text ? [h("br"), text] : []),
    );
    selectParent.hidden = !usable;
    edits.hidden = !(usable && editable);
  }

  /** A selection the editor cannot make changes for: no selector, no edits. */
  function unusable(info: ElementInfo, why: string): void {
    selected = { info, element: null };
    selectorInput.value = "";
    showSelection(info, why, false);
    renderSelector();
  }

  /** A click in the frame (an answer to no request of the editor's). */
  function onSelect(info: ElementInfo): void {
    pendingRequest = null;
    editing = null;
    cancelPick();
    moveTarget = null;
    hook("move-choice").hidden = true;
    if (info.index === null) {
      unusable(
        info,
        PARSER_ELEMENTS.test(info.tag)
          ? `The origin's HTML has no <${info.tag}> tag (the browser added it): select an element inside or around it.`
          : "This element is not in the page the origin sends (a change or the page's scripts added it); edit the change that inserted it.",
      );
      renderAll();
      highlight();
      return;
    }
    if (!source) {
      unusable(info, sourceError ?? "Loading the page's source…");
      return;
    }
    const element = source.byIndex(info.index);
    if (!element || element.localName.toLowerCase() !== info.tag) {
      unusable(
        info,
        "The origin sent different HTML for the preview and for the editor (the page changes on every request): its elements cannot be matched. Reload the editor to try again.",
      );
      return;
    }
    selected = { info, element };
    selectorInput.value = source.selectorFor(element);
    showSelection(
      info,
      info.truncated ? "Its content is too long to show in full here." : "",
      true,
    );
    fillFields(info, false);
    renderSelector();
    renderAll();
    highlight();
  }

  /**
   * The frame's answer to the editor's last `selectIndex`: the element as the preview now shows
   * it (after the changes). The selector, the change being edited and a move in progress stay;
   * fields the user has typed in are kept, the others show the current content.
   */
  function onAnswer(info: ElementInfo, request: number): void {
    if (request !== pendingRequest) return; // a stale answer: the selection moved on since
    pendingRequest = null;
    const element = selected?.element;
    const same = element?.localName.toLowerCase() === info.tag;
    if (!element || !same || selected!.info.index !== info.index) return;
    selected = { info, element };
    showSelection(
      info,
      info.truncated ? "Its content is too long to show in full here." : "",
      true,
    );
    fillFields(info, true);
    highlight();
  }

  /** What the panel shows of a source element before (or without) the frame's answer. */
  function sourceInfo(element: Element, index: number): ElementInfo {
    const text = element.textContent ?? "";
    const inner = stripIndices(element.innerHTML);
    const outer = source ? source.cleanHtml(element) : stripIndices(element.outerHTML);
    const ancestors: number[] = [];
    for (let p = element.parentElement; p; p = p.parentElement) {
      const n = Number(p.getAttribute(INDEX_ATTRIBUTE) ?? "x");
      if (Number.isSafeInteger(n)) ancestors.push(n);
    }
    return {
      index,
      tag: element.localName,
      id: element.id,
      classes: Array.from(element.classList),
      attributes: Array.from(element.attributes)
        .filter((a) => !a.name.startsWith("data-ss-"))
        .map((a): [string, string] => [a.name, a.value]),
      text: text.slice(0, LIMITS.text),
      html: inner.slice(0, LIMITS.html),
      outerHtml: outer.slice(0, LIMITS.html),
      truncated: text.length > LIMITS.text || outer.length > LIMITS.html,
      ancestors,
    };
  }

  /**
   * Selects element `index` of the page's source straight away — the panel never waits for the
   * frame, which may not show the element any more (a change removed, moved or replaced it) —
   * then asks the frame to select it too: it outlines it and answers with its live content.
   * `selector` null: the one the editor makes. `keepTyped`: fields the user typed in stay.
   */
  function selectIndex(
    index: number,
    options: { selector: string | null; editing: number | null; keepTyped: boolean },
  ): boolean {
    const element = source?.byIndex(index);
    if (!source || !element) return false;
    cancelPick();
    moveTarget = null;
    hook("move-choice").hidden = true;
    editing = options.editing;
    const info = sourceInfo(element, index);
    selected = { info, element };
    const selector = options.selector ?? source.selectorFor(element);
    if (selectorInput.value !== selector) selectorInput.value = selector;
    showSelection(info, "", true);
    fillFields(info, options.keepTyped);
    renderSelector();
    renderAll();
    highlight();
    requestSelect(index, true);
    return true;
  }

  /** The panel's fields for `info` (and the change being edited); `keepTyped`: see fill(). */
  function fillFields(info: ElementInfo, keepTyped: boolean): void {
    const change = editing === null ? undefined : history.changes[editing];
    const a: AttributeChangeSet = change?.type === "attribute" ? change.attributes : {};
    const put = (name: string, value: string): void => fill(field(name), value, keepTyped);
    put("text", a.text ?? info.text);
    put("html", a.html ?? stripIndices(info.html));
    put("add-class", a.addClass ?? "");
    put("remove-class", a.removeClass ?? "");
    put("style", a.style ?? "");
    const [firstSet] = Object.entries(a.set ?? {});
    put("attribute-name", firstSet?.[0] ?? "");
    put("attribute-value", firstSet?.[1] ?? "");
    hook("class-list").replaceChildren(...info.classes.map((c) => h("option", { value: c })));
    hook("attribute-list").replaceChildren(
      ...info.attributes.map(([name]) => h("option", { value: name })),
    );
    if (keepTyped) return; // a refresh: the insertion and the move being made stay as they are
    if (change?.type === "insert_html") {
      field("insert-position").value = change.position;
      put("insert-html", change.html);
    } else {
      put("insert-html", "");
    }
    if (change?.type === "move") {
      moveTarget = change.target;
      hook("move-target").textContent = change.target;
      field("move-position").value = change.position;
      hook("move-choice").hidden = false;
    }
  }

  function deselect(): void {
    selected = null;
    pendingRequest = null;
    editing = null;
    moveTarget = null;
    selection.textContent = "Click an element in the page, or enter a selector, to select it.";
    selectParent.hidden = true;
    edits.hidden = true;
    selectorInput.value = "";
    renderSelector();
    renderAll();
    syncFrame();
  }

  /** Moves the focus to the edit section (after Edit), for keyboard and screen reader users. */
  const focusEdits = (): void => hook("edits-title").focus();

  /** Loads change `i` into the panel (its element selected in the frame when it has one). */
  function loadChange(i: number, editIt: boolean): void {
    const change = history.changes[i];
    if (!change) return;
    if (change.type === "custom_css" || change.type === "custom_code") {
      const box = customBox(change.type);
      customAt[change.type] = i;
      fill(box, change.value);
      box.focus();
      say(`Change ${i + 1} is in the ${box.labels?.[0]?.textContent ?? "custom code"} box.`);
      return;
    }
    if (change.type === "redirect") {
      say("Redirects are edited in the experiment's form.");
      return;
    }
    const selector = change.selector;
    const first = source?.indices(selector)[0];
    if (picking) cancelPick();
    if (mode !== "select") setMode("select");
    if (
      first !== undefined &&
      selectIndex(first, { selector, editing: editIt ? i : null, keepTyped: false })
    ) {
      if (!editIt) return;
      say(`Editing change ${i + 1}. The buttons below now change it.`);
      focusEdits();
      return;
    }
    const why = source
      ? `The selector ${clip(selector, 60)} matches nothing in the page the origin sends.`
      : "The page's source is not loaded yet.";
    if (!editIt) {
      say(why);
      return;
    }
    // Still editable, without an element to show.
    editing = i;
    selected = null;
    pendingRequest = null;
    selectorInput.value = selector;
    selection.textContent = why;
    selectParent.hidden = true;
    edits.hidden = false;
    fillFields(NO_ELEMENT, false);
    renderSelector();
    renderAll();
    highlight();
    say(`Editing change ${i + 1}. ${why} The buttons below still change it.`);
    focusEdits();
  }

  // ---- edits
  function currentSelector(): string | null {
    const selector = selectorInput.value.trim();
    if (!selector) {
      say("Select an element (or enter a selector) first.");
      return null;
    }
    const result = check(selector);
    if (result.count < 0) {
      say("The selector is not valid CSS.");
      return null;
    }
    // Refused, not only warned about: the edge would skip the change (docs/changes.md "Selectors").
    if (result.problem !== undefined) {
      say(`Not changed: ${result.problem}. Choose a selector the edge supports.`);
      return null;
    }
    return selector;
  }

  /** The attribute change loaded into the panel, if that is what is being edited. */
  const editedAttribute = (): Extract<Change, { type: "attribute" }> | undefined => {
    const change = editing === null ? undefined : history.changes[editing];
    return change?.type === "attribute" ? change : undefined;
  };

  /**
   * An attribute edit: a new change (merged into the last one when it is on the same element),
   * or, while a change is loaded into the panel, that change — its fields shown whole in the
   * panel (text, HTML, classes, style) replaced, the others (attributes, hide, remove) added.
   */
  function attributeEdit(attributes: AttributeChangeSet, message: string): boolean {
    const change = editedAttribute();
    if (change && editing !== null) {
      const whole = ["text", "html", "addClass", "removeClass", "style"].some(
        (k) => k in attributes,
      );
      const next = whole
        ? patchAttributes(change.attributes, attributes)
        : (mergeAttributes(change.attributes, attributes) ??
          patchAttributes(change.attributes, attributes));
      edit(replaceAt(history.changes, editing, { ...change, attributes: next }), message);
      return true;
    }
    const selector = currentSelector();
    if (selector === null) return false;
    editing = null;
    edit(addAttributeEdit(history.changes, selector, attributes, state.defaultPageId), message);
    return true;
  }

  const on = (name: string, action: () => void): void =>
    hook(name).addEventListener("click", () => {
      try {
        action();
      } catch (error) {
        say(`That did not work: ${error instanceof Error ? error.message : String(error)}`);
      }
    });

  // Text and HTML inside are two views of one content: setting one makes the other's untouched
  // field show the result, so that its button never puts the old content back.
  on("apply-text", () => {
    const text = field("text").value;
    if (!attributeEdit({ text }, "Text set.")) return;
    fill(field("text"), text);
    fill(field("html"), escapeText(text), true);
  });
  on("apply-html", () => {
    const inner = field("html").value;
    if (!attributeEdit({ html: inner }, "HTML set.")) return;
    fill(field("html"), inner);
    fill(field("text"), textOf(inner), true);
  });
  // Blank values: refused for a new change, clear the field of a change being edited.
  on("apply-add-class", () => {
    const classes = words(field("add-class").value).join(" ");
    if (classes || editedAttribute()) attributeEdit({ addClass: classes }, "Classes added.");
    else say("Enter the classes to add.");
  });
  on("apply-remove-class", () => {
    const classes = words(field("remove-class").value).join(" ");
    if (classes || editedAttribute()) attributeEdit({ removeClass: classes }, "Classes removed.");
    else say("Enter the classes to remove.");
  });
  on("apply-style", () => {
    const style = field("style").value.trim();
    if (style || editedAttribute()) attributeEdit({ style }, "Style set.");
    else say("Enter CSS declarations, for example color: #b3261e.");
  });
  const attributeName = (): string | null => {
    const name = field("attribute-name").value.trim();
    if (!ATTRIBUTE_NAME.test(name)) {
      say("Enter an attribute name (letters, digits, - _ : .).");
      return null;
    }
    return name;
  };
  on("apply-attribute", () => {
    const name = attributeName();
    if (name === null) return;
    if (/^on/i.test(name)) {
      say("Event handler attributes (on…) cannot be set; use custom JavaScript.");
      return;
    }
    attributeEdit({ set: { [name]: field("attribute-value").value } }, `Attribute ${name} set.`);
  });
  on("unset-attribute", () => {
    const name = attributeName();
    if (name !== null) attributeEdit({ unset: [name] }, `Attribute ${name} removed.`);
  });
  on("hide", () => attributeEdit({ hide: true }, "The element is hidden."));
  on("remove", () => attributeEdit({ remove: true }, "The element is removed."));

  on("apply-insert", () => {
    const htmlText = field("insert-html").value;
    const position = field("insert-position").value as Extract<
      Change,
      { type: "insert_html" }
    >["position"];
    if (!htmlText.trim()) {
      say("Enter the HTML to insert.");
      return;
    }
    const change = editing === null ? undefined : history.changes[editing];
    if (change?.type === "insert_html" && editing !== null) {
      edit(
        replaceAt(history.changes, editing, { ...change, position, html: htmlText }),
        "Insertion changed.",
      );
      return;
    }
    const selector = currentSelector();
    if (selector === null) return;
    editing = null;
    edit(
      [
        ...history.changes,
        onPage({ type: "insert_html", selector, position, html: htmlText }, state.defaultPageId),
      ],
      "HTML inserted.",
    );
  });

  // ---- move: pick a target in the frame, then a position
  function cancelPick(): void {
    if (!picking) return;
    picking = false;
    hook("cancel").hidden = true;
    syncFrame();
  }

  function setMode(next: Exclude<FrameMode, "pick">): void {
    mode = next;
    picking = false;
    hook("cancel").hidden = true;
    renderToolbar();
    syncFrame();
  }

  on("move", () => {
    if (!selected?.element) {
      say("Select the element to move first.");
      return;
    }
    if (mode !== "select") setMode("select");
    picking = true;
    moveTarget = null;
    hook("move-choice").hidden = true;
    hook("cancel").hidden = false;
    syncFrame();
    say("Click the element to move it next to (Escape cancels).");
  });
  on("cancel", () => {
    cancelPick();
    say("Move cancelled.");
  });

  function onPicked(info: ElementInfo): void {
    if (!picking || !source || !selected?.element) return;
    const target = info.index === null ? null : source.byIndex(info.index);
    if (!target) {
      say("That element is not in the page the origin sends: pick another one.");
      return;
    }
    if (target === selected.element || selected.element.contains(target)) {
      say("An element cannot move next to or into itself: pick another one.");
      return;
    }
    moveTarget = source.selectorFor(target);
    picking = false;
    hook("cancel").hidden = true;
    hook("move-target").textContent = moveTarget;
    hook("move-choice").hidden = false;
    syncFrame();
    field("move-position").focus();
    say(`Target picked: ${moveTarget}. Choose where, then Move.`);
  }

  on("apply-move", () => {
    if (!moveTarget) {
      say("Pick where to move the element first.");
      return;
    }
    const position = field("move-position").value as Extract<Change, { type: "move" }>["position"];
    const change = editing === null ? undefined : history.changes[editing];
    if (change?.type === "move" && editing !== null) {
      edit(
        replaceAt(history.changes, editing, { ...change, target: moveTarget, position }),
        "Move changed.",
      );
      return;
    }
    const selector = currentSelector();
    if (selector === null || !source || !selected?.element) return;
    editing = null;
    const moved: Change = {
      type: "move",
      selector,
      target: moveTarget,
      position,
      html: source.cleanHtml(selected.element),
    };
    edit([...history.changes, onPage(moved, state.defaultPageId)], "Element moved.");
    moveTarget = null;
    hook("move-choice").hidden = true;
  });

  // ---- the selector field: typing one selects its first match (the fields typed in stay)
  selectorInput.addEventListener("input", () => {
    renderSelector();
    const typed = selectorInput.value.trim();
    const first = source && typed ? source.indices(typed)[0] : undefined;
    if (first === undefined || first === selected?.info.index || picking) {
      highlight();
      return;
    }
    selectIndex(first, { selector: selectorInput.value, editing, keepTyped: true });
  });
  on("apply-selector", () => {
    const change = editing === null ? undefined : history.changes[editing];
    const selector = currentSelector();
    if (!change || editing === null || selector === null || !("selector" in change)) return;
    edit(
      replaceAt(history.changes, editing, { ...change, selector } as Change),
      "Selector changed.",
    );
  });
  on("select-parent", () => {
    const parent = selected?.info.ancestors[0];
    const options = { selector: null, editing: null, keepTyped: false };
    if (parent === undefined || !selectIndex(parent, options))
      say("This element has no parent in the page the origin sends.");
  });
  on("cancel-edit", () => {
    editing = null;
    renderAll();
    say("Edits now make new changes.");
  });

  // ---- the change list
  list.addEventListener("click", (event) => {
    const button = (event.target as Element).closest("button[data-editor]");
    const item = button?.closest("[data-change-index]");
    if (!button || !item) return;
    const i = Number(item.getAttribute("data-change-index"));
    const action = button.getAttribute("data-editor");
    if (action === "change-select") loadChange(i, false);
    else if (action === "change-edit" && editable) loadChange(i, true);
    else if (action === "change-delete" && editable) {
      // Indices after i move up by one; the deleted change is no longer edited.
      const shift = (at: number | null): number | null =>
        at === null || at === i ? null : at > i ? at - 1 : at;
      editing = shift(editing);
      for (const type of CUSTOM_TYPES) customAt[type] = shift(customAt[type]);
      edit(removeAt(history.changes, i), `Change ${i + 1} deleted.`);
      const next = list.querySelector<HTMLElement>(
        `[data-change-index="${Math.min(i, history.changes.length - 1)}"] button`,
      );
      (next ?? hook("mode-select")).focus();
    }
  });

  // ---- custom code: each box edits one change (this page's first, or the one loaded by Edit)
  const custom = (type: CustomType, what: string) =>
    on(type === "custom_css" ? "apply-custom-css" : "apply-custom-js", () => {
      const box = customBox(type);
      const value = box.value.replace(/\r\n?/g, "\n");
      const at = customChangeIndex(type);
      // Applied: the box now shows the change, and follows the list again (undo, delete).
      filled.set(box, box.value);
      edit(
        setCustomAt(
          history.changes,
          type,
          at < 0 ? null : at,
          value,
          matching,
          state.defaultPageId,
        ),
        value.trim() ? `${what} applied.` : `${what} removed.`,
      );
    });
  custom("custom_css", "Custom CSS");
  custom("custom_code", "Custom JavaScript");
  runCustomJs.addEventListener("change", submitPreview);

  // ---- undo, redo, modes, keys
  function step(direction: "undo" | "redo"): void {
    if (!editable) return;
    const next = direction === "undo" ? undo(history) : redo(history);
    if (!next) {
      say(direction === "undo" ? "Nothing to undo." : "Nothing to redo.");
      return;
    }
    editing = null;
    for (const type of CUSTOM_TYPES) customAt[type] = null;
    changed(next, direction === "undo" ? "Undone." : "Redone.");
  }
  on("undo", () => step("undo"));
  on("redo", () => step("redo"));
  on("mode-select", () => setMode("select"));
  on("mode-browse", () => {
    setMode("browse");
    say("Browse: the page works as for a visitor; links open in the editor.");
  });
  on("reload", submitPreview);

  function command(which: ReturnType<typeof keyCommand>): boolean {
    if (which === "undo" || which === "redo") {
      step(which);
      return true;
    }
    if (which === "escape") {
      if (picking) {
        cancelPick();
        say("Move cancelled.");
      } else if (selected) deselect();
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", (event) => {
    const which = keyCommand(event);
    const target = event.target as HTMLElement;
    // Text fields keep their own undo; Escape there is the field's too.
    if (which && /^(input|textarea|select)$/i.test(target.localName)) return;
    if (command(which)) event.preventDefault();
  });

  // ---- messages from the frame
  window.addEventListener("message", (event) => {
    if (event.source !== frame.contentWindow || frame.contentWindow === null) return;
    const message = readFrameMessage(event.data);
    if (!message) return;
    switch (message.type) {
      case "hello":
        clearTimeout(helloTimer);
        hellosSinceSubmit++;
        lost.hidden = true;
        if (previews > 1) send({ type: "scrollTo", ...scroll });
        syncFrame();
        // The edit changed what the selected element shows: ask for it again, without scrolling.
        if (selected?.element && selected.info.index !== null)
          requestSelect(selected.info.index, false);
        break;
      case "select":
        if (message.request !== undefined) onAnswer(message, message.request);
        else if (!picking) onSelect(message);
        break;
      case "picked":
        onPicked(message);
        break;
      case "navigate":
        // Only a click the user made in Browse mode navigates; a page script cannot steer the editor.
        if (mode === "browse" && !picking) navigate(message.href);
        break;
      case "scroll":
        scroll = { x: message.x, y: message.y };
        break;
      case "key":
        command(keyCommand(message));
        break;
    }
  });

  function navigate(href: string): void {
    let url: URL;
    try {
      url = new URL(href);
    } catch {
      return;
    }
    if (url.origin !== location.origin) {
      say(
        `That link leaves the site (${url.origin}): the editor opens pages of ${location.host} only.`,
      );
      return;
    }
    if (url.pathname.startsWith("/_ss/")) {
      say("Splitstream's own addresses (/_ss/…) are not pages of the site.");
      return;
    }
    url.searchParams.delete("ss_editor");
    const query = new URLSearchParams();
    // The URL form's own `variation` (the editor page renders the one that reopens this view).
    const variation = hook("url-form").querySelector<HTMLInputElement>('[name="variation"]');
    if (variation) query.set("variation", variation.value);
    query.set("environment", state.environment);
    // A path: the server resolves it on its own origin (behind npm start, not the browser's).
    query.set("url", `${url.pathname}${url.search}`);
    // The draft is in sessionStorage, so nothing is lost; unless storing it failed: then the
    // leave-page warning stays.
    leaving = draftKept;
    if (!draftKept) say(NOT_KEPT);
    const target = new URL(state.urlAction, location.href);
    target.search = query.toString();
    location.assign(target.href);
  }

  // ---- leaving, saving
  saveForm?.addEventListener("submit", () => {
    (saveForm.elements.namedItem("changes") as HTMLInputElement).value = JSON.stringify(
      history.changes,
    );
    leaving = true;
  });
  hook("url-form").addEventListener("submit", () => {
    leaving = draftKept;
  });
  window.addEventListener("beforeunload", (event) => {
    if (leaving || !editable || !dirty()) return;
    event.preventDefault();
    event.returnValue = "";
  });

  // ---- the page's source
  async function loadSource(): Promise<void> {
    try {
      const response = await fetch(state.sourceAction, {
        method: "POST",
        body: new URLSearchParams({ token: state.token }),
        credentials: "same-origin",
        // The editor's address (experiment and variation ids) is not the page's business.
        referrerPolicy: "no-referrer",
      });
      const text = await response.text();
      if (!response.ok) throw new Error(clip(text, 200) || `HTTP ${response.status}`);
      source = sourceView(text);
    } catch (error) {
      sourceError = `The page's source could not be loaded (${error instanceof Error ? error.message : String(error)}): selectors cannot be made or checked.`;
      say(sourceError);
      return;
    }
    renderChanges();
    renderSelector();
    if (selected) onSelect(selected.info);
    else highlight();
  }

  // ---- start
  restore();
  renderCustom();
  renderSelector();
  renderAll();
  if (!editable) {
    customCss.readOnly = true;
    customJs.readOnly = true;
    for (const name of ["apply-custom-css", "apply-custom-js"]) hook(name).hidden = true;
  }
  void loadSource();
  submitPreview();
}

try {
  start();
} catch (error) {
  const status = document.querySelector('[data-editor="status"]');
  if (status)
    status.textContent = `The editor could not start: ${error instanceof Error ? error.message : String(error)}`;
}
