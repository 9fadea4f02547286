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
import type { PageState } from "./page-state";
import { STATE_ELEMENT_ID } from "./page-state";
import {
  keyCommand,
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
  history,
  mergeAttributes,
  onPage,
  parseDraft,
  patchAttributes,
  previewChanges,
  redo,
  removeAt,
  replaceAt,
  serializeDraft,
  setCustom,
  undo,
  type History,
} from "./state";

/** How long the preview may take to say hello before the editor says the page left. */
const HELLO_TIMEOUT_MS = 8000;
/** Edits are re-rendered by the edge after this pause (typing does not post every key). */
const PREVIEW_DEBOUNCE_MS = 250;
/** An attribute name the edge writes (docs/changes.md "Refused attribute names"). */
const ATTRIBUTE_NAME = /^[a-zA-Z_:][-a-zA-Z0-9_:.]*$/;
/** Elements the browser's parser adds when the origin's HTML leaves them out. */
const PARSER_ELEMENTS = /^(html|head|body|tbody|colgroup)$/;

type Hook = string;

function hook<T extends HTMLElement = HTMLElement>(name: Hook): T {
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

const words = (s: string): string => s.trim().split(/\s+/).filter(Boolean).join(" ");

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
  const state = JSON.parse(stateText) as PageState;
  const matching = state.pages.filter((p) => p.matches).map((p) => p.id);
  const editable = state.canSave && state.variation !== null;
  const savedJson = JSON.stringify(state.changes);

  // ---- elements
  const frame = hook<HTMLIFrameElement>("frame");
  const previewForm = hook<HTMLFormElement>("preview-form");
  const status = hook("status");
  const lost = hook("lost");
  const selectorInput = hook<HTMLInputElement>("selector");
  const matchCount = hook("match-count");
  const selectorProblem = hook("selector-problem");
  const selection = hook("selection");
  const selectionTools = hook("selection-tools");
  const edits = hook("edits");
  const editingBox = hook("editing");
  const list = hook<HTMLOListElement>("changes");
  const sharedList = hook<HTMLOListElement>("shared-changes");
  const field = (name: Hook): HTMLInputElement => hook<HTMLInputElement>(name);
  const customCss = hook<HTMLTextAreaElement>("custom-css");
  const customJs = hook<HTMLTextAreaElement>("custom-js");
  const runCustomJs = field("run-custom-js");
  const saveForm = document.querySelector<HTMLFormElement>('[data-editor="save-form"]');

  // ---- model
  let h0 = history(state.changes);
  let source: SourceView | null = null;
  let sourceError: string | null = null;
  /** The selected element as the frame described it, and its twin in the source. */
  let selected: { info: ElementInfo; element: Element | null } | null = null;
  /** A select answer we asked for (selectIndex), and the selector to keep for it. */
  let expected: { index: number; selector: string; editing: number | null } | null = null;
  /** Index of the change loaded into the panel, null when edits make new changes. */
  let editing: number | null = null;
  let mode: Exclude<FrameMode, "pick"> = "select";
  let picking = false;
  let moveTarget: string | null = null;
  let scroll = { x: 0, y: 0 };
  let helloTimer: ReturnType<typeof setTimeout> | undefined;
  let previewTimer: ReturnType<typeof setTimeout> | undefined;
  let loadsSinceSubmit = 0;
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

  // ---- draft
  function persist(): void {
    try {
      const clean = JSON.stringify(h0.changes) === savedJson && h0.undo.length === 0;
      if (clean && h0.redo.length === 0) sessionStorage.removeItem(state.draftStorageKey);
      else sessionStorage.setItem(state.draftStorageKey, serializeDraft(h0, state.version));
    } catch {
      // storage full or refused: the draft lives on in this page
    }
  }

  function restore(): void {
    let text: string | null;
    try {
      text = sessionStorage.getItem(state.draftStorageKey);
      if (state.notice !== null && /\bsaved\b/i.test(state.notice) && state.errors.length === 0) {
        sessionStorage.removeItem(state.draftStorageKey);
        return;
      }
    } catch {
      return;
    }
    const draft = parseDraft(text);
    if (!draft || !editable) return;
    h0 = { changes: draft.changes, undo: draft.undo, redo: draft.redo };
    if (JSON.stringify(draft.changes) === savedJson) return;
    say(
      draft.version === state.version
        ? "Your unsaved draft was restored."
        : "Your unsaved draft was restored. The experiment has been saved since it began: saving replaces this variation's changes with the draft's.",
    );
  }

  const dirty = (): boolean => JSON.stringify(h0.changes) !== savedJson;

  // ---- preview
  function submitPreview(): void {
    clearTimeout(previewTimer);
    const changes =
      state.variation === null
        ? []
        : previewChanges(state.sharedChanges, h0.changes, matching, runCustomJs.checked);
    (previewForm.elements.namedItem("changes") as HTMLInputElement).value = JSON.stringify(changes);
    loadsSinceSubmit = 0;
    lost.hidden = true;
    expectHello();
    previews++;
    // A fresh frame name each time: a page script that renamed its window (window.name) must
    // not turn the next preview into a new top-level tab.
    const name = `ss-editor-frame-${previews}`;
    frame.name = name;
    previewForm.target = name;
    previewForm.submit();
  }

  const schedulePreview = (): void => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(submitPreview, PREVIEW_DEBOUNCE_MS);
  };

  function expectHello(): void {
    clearTimeout(helloTimer);
    helloTimer = setTimeout(() => {
      lost.hidden = false;
    }, HELLO_TIMEOUT_MS);
  }

  frame.addEventListener("load", () => {
    // The first load is the preview's own; a later one is another document (the page, a
    // script or custom code navigated), which must say hello too.
    if (++loadsSinceSubmit > 1) expectHello();
  });

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

  // ---- rendering
  function renderChanges(): void {
    const errorsShown = JSON.stringify(h0.changes) === savedJson;
    const errorsAt = new Map<number, string[]>();
    for (const e of state.errors) {
      const match = /^changes\[(\d+)\]/.exec(e.path);
      if (!match) continue;
      const at = Number(match[1]);
      errorsAt.set(at, [...(errorsAt.get(at) ?? []), e.message]);
    }
    const pageKey = (id: string | undefined): string =>
      state.pages.find((p) => p.id === id)?.key ?? String(id);
    list.replaceChildren(
      ...h0.changes.map((change, i) => {
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
    hook("changes-empty").hidden = h0.changes.length > 0;
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
    hook<HTMLButtonElement>("undo").disabled = !editable || h0.undo.length === 0;
    hook<HTMLButtonElement>("redo").disabled = !editable || h0.redo.length === 0;
    const dirtyNote = document.querySelector<HTMLElement>('[data-editor="dirty"]');
    if (dirtyNote) dirtyNote.hidden = !dirty();
    hook("mode-select").setAttribute("aria-pressed", String(mode === "select"));
    hook("mode-browse").setAttribute("aria-pressed", String(mode === "browse"));
  }

  function renderCustom(): void {
    const at = (type: "custom_css" | "custom_code"): string => {
      const i = customIndex(h0.changes, type, matching);
      const change = h0.changes[i];
      return change && "value" in change ? change.value : "";
    };
    customCss.value = at("custom_css");
    customJs.value = at("custom_code");
  }

  function renderEditing(): void {
    const change = editing === null ? undefined : h0.changes[editing];
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
    h0 = next;
    if (editing !== null && editing >= h0.changes.length) editing = null;
    persist();
    renderAll();
    schedulePreview();
    if (message) say(message);
  }

  const edit = (next: Change[], message: string): void => changed(commit(h0, next), message);

  // ---- selection
  function showSelection(info: ElementInfo, text: string, usable: boolean): void {
    const label = `<${info.tag}${info.id ? `#${info.id}` : ""}${info.classes.map((c) => `.${c}`).join("")}>`;
    selection.replaceChildren(
      h("code", {}, clip(label, 80)),
      ...(info.text.trim() ? [" ", clip(`“${info.text}”`, 60)] : []),
      ...(text ? [h("br"), text] : []),
    );
    selectionTools.hidden = !usable;
    edits.hidden = !(usable && editable);
  }

  function onSelect(info: ElementInfo): void {
    const wanted = expected && expected.index === info.index ? expected : null;
    expected = null;
    editing = wanted ? wanted.editing : null;
    cancelPick();
    moveTarget = null;
    hook("move-choice").hidden = true;
    if (info.index === null) {
      selected = { info, element: null };
      showSelection(
        info,
        PARSER_ELEMENTS.test(info.tag)
          ? `The origin's HTML has no <${info.tag}> tag (the browser added it): select an element inside or around it.`
          : "This element is not in the page the origin sends (a change or the page's scripts added it); edit the change that inserted it.",
        false,
      );
      renderAll();
      highlight();
      return;
    }
    if (!source) {
      selected = { info, element: null };
      showSelection(info, sourceError ?? "Loading the page's source…", false);
      return;
    }
    const element = source.byIndex(info.index);
    if (!element || element.localName.toLowerCase() !== info.tag) {
      selected = { info, element: null };
      showSelection(
        info,
        "The origin sent different HTML for the preview and for the editor (the page changes on every request): its elements cannot be matched. Reload the editor to try again.",
        false,
      );
      return;
    }
    selected = { info, element };
    selectorInput.value = wanted ? wanted.selector : source.selectorFor(element);
    showSelection(
      info,
      info.truncated ? "Its content is too long to show in full here." : "",
      true,
    );
    fillFields(info);
    renderSelector();
    renderAll();
    highlight();
  }

  function fillFields(info: ElementInfo): void {
    const change = editing === null ? undefined : h0.changes[editing];
    const a: AttributeChangeSet = change?.type === "attribute" ? change.attributes : {};
    field("text").value = a.text ?? info.text;
    field("html").value = a.html ?? stripIndices(info.html);
    field("add-class").value = a.addClass ?? "";
    field("remove-class").value = a.removeClass ?? "";
    field("style").value = a.style ?? "";
    const [firstSet] = Object.entries(a.set ?? {});
    field("attribute-name").value = firstSet?.[0] ?? "";
    field("attribute-value").value = firstSet?.[1] ?? "";
    hook("class-list").replaceChildren(...info.classes.map((c) => h("option", { value: c })));
    hook("attribute-list").replaceChildren(
      ...info.attributes.map(([name]) => h("option", { value: name })),
    );
    if (change?.type === "insert_html") {
      field("insert-position").value = change.position;
      field("insert-html").value = change.html;
    } else {
      field("insert-html").value = "";
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
    editing = null;
    moveTarget = null;
    selection.textContent = "Click an element in the page to select it.";
    selectionTools.hidden = true;
    edits.hidden = true;
    selectorInput.value = "";
    renderAll();
    syncFrame();
  }

  /** Loads change `i` into the panel (its element selected in the frame when it has one). */
  function loadChange(i: number, editIt: boolean): void {
    const change = h0.changes[i];
    if (!change) return;
    if (change.type === "custom_css" || change.type === "custom_code") {
      (change.type === "custom_css" ? customCss : customJs).focus();
      return;
    }
    if (change.type === "redirect") {
      say("Redirects are edited in the experiment's form.");
      return;
    }
    const selector = change.selector;
    const first = source?.indices(selector)[0];
    if (first === undefined) {
      const why = source
        ? `The selector ${clip(selector, 60)} matches nothing on this page.`
        : "The page's source is not loaded yet.";
      if (!editIt) {
        say(why);
        return;
      }
      // Still editable, without an element to show.
      cancelPick();
      editing = i;
      selected = null;
      selectorInput.value = selector;
      selection.textContent = why;
      selectionTools.hidden = false;
      edits.hidden = false;
      fillFields(NO_ELEMENT);
      renderSelector();
      renderAll();
      highlight();
      say(`Editing change ${i + 1}. The buttons below now change it.`);
      return;
    }
    expected = { index: first, selector, editing: editIt ? i : null };
    if (editIt) say(`Editing change ${i + 1}. The buttons below now change it.`);
    if (picking) cancelPick();
    if (mode !== "select") setMode("select");
    send({ type: "selectIndex", index: first });
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
    const change = editing === null ? undefined : h0.changes[editing];
    return change?.type === "attribute" ? change : undefined;
  };

  /**
   * An attribute edit: a new change (merged into the last one when it is on the same element),
   * or, while a change is loaded into the panel, that change — its fields shown whole in the
   * panel (text, HTML, classes, style) replaced, the others (attributes, hide, remove) added.
   */
  function attributeEdit(attributes: AttributeChangeSet, message: string): void {
    const change = editedAttribute();
    if (change && editing !== null) {
      const whole = ["text", "html", "addClass", "removeClass", "style"].some(
        (k) => k in attributes,
      );
      const next = whole
        ? patchAttributes(change.attributes, attributes)
        : (mergeAttributes(change.attributes, attributes) ??
          patchAttributes(change.attributes, attributes));
      edit(replaceAt(h0.changes, editing, { ...change, attributes: next }), message);
      return;
    }
    const selector = currentSelector();
    if (selector === null) return;
    editing = null;
    edit(addAttributeEdit(h0.changes, selector, attributes, state.defaultPageId), message);
  }

  const on = (name: Hook, action: () => void): void =>
    hook(name).addEventListener("click", () => {
      try {
        action();
      } catch (error) {
        say(`That did not work: ${error instanceof Error ? error.message : String(error)}`);
      }
    });

  on("apply-text", () => attributeEdit({ text: field("text").value }, "Text set."));
  on("apply-html", () => attributeEdit({ html: field("html").value }, "HTML set."));
  // Blank values: refused for a new change, clear the field of a change being edited.
  on("apply-add-class", () => {
    const classes = words(field("add-class").value);
    if (classes || editedAttribute()) attributeEdit({ addClass: classes }, "Classes to add set.");
    else say("Enter the classes to add.");
  });
  on("apply-remove-class", () => {
    const classes = words(field("remove-class").value);
    if (classes || editedAttribute())
      attributeEdit({ removeClass: classes }, "Classes to remove set.");
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
    const change = editing === null ? undefined : h0.changes[editing];
    if (change?.type === "insert_html" && editing !== null) {
      edit(
        replaceAt(h0.changes, editing, { ...change, position, html: htmlText }),
        "Insertion changed.",
      );
      return;
    }
    const selector = currentSelector();
    if (selector === null) return;
    editing = null;
    edit(
      [
        ...h0.changes,
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
    const change = editing === null ? undefined : h0.changes[editing];
    if (change?.type === "move" && editing !== null) {
      edit(
        replaceAt(h0.changes, editing, { ...change, target: moveTarget, position }),
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
    edit([...h0.changes, onPage(moved, state.defaultPageId)], "Element moved.");
    moveTarget = null;
    hook("move-choice").hidden = true;
  });

  // ---- the selector field
  selectorInput.addEventListener("input", () => {
    renderSelector();
    highlight();
  });
  on("apply-selector", () => {
    const change = editing === null ? undefined : h0.changes[editing];
    const selector = currentSelector();
    if (!change || editing === null || selector === null || !("selector" in change)) return;
    edit(replaceAt(h0.changes, editing, { ...change, selector } as Change), "Selector changed.");
  });
  on("select-parent", () => {
    const parent = selected?.info.ancestors[0];
    if (parent === undefined) say("This element has no parent in the page the origin sends.");
    else send({ type: "selectIndex", index: parent });
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
      if (editing === i) editing = null;
      else if (editing !== null && editing > i) editing--;
      edit(removeAt(h0.changes, i), `Change ${i + 1} deleted.`);
      const next = list.querySelector<HTMLElement>(
        `[data-change-index="${Math.min(i, h0.changes.length - 1)}"] button`,
      );
      (next ?? hook("mode-select")).focus();
    }
  });

  // ---- custom code
  const custom = (
    type: "custom_css" | "custom_code",
    textarea: HTMLTextAreaElement,
    what: string,
  ) =>
    on(type === "custom_css" ? "apply-custom-css" : "apply-custom-js", () =>
      edit(
        setCustom(
          h0.changes,
          type,
          textarea.value.replace(/\r\n?/g, "\n"),
          matching,
          state.defaultPageId,
        ),
        textarea.value.trim() ? `${what} applied.` : `${what} removed.`,
      ),
    );
  custom("custom_css", customCss, "Custom CSS");
  custom("custom_code", customJs, "Custom JavaScript");
  runCustomJs.addEventListener("change", submitPreview);

  // ---- undo, redo, modes, keys
  function step(direction: "undo" | "redo"): void {
    if (!editable) return;
    const next = direction === "undo" ? undo(h0) : redo(h0);
    if (!next) {
      say(direction === "undo" ? "Nothing to undo." : "Nothing to redo.");
      return;
    }
    editing = null;
    changed(next, direction === "undo" ? "Undone." : "Redone.");
    renderCustom();
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
        lost.hidden = true;
        if (previews > 1) send({ type: "scrollTo", ...scroll });
        syncFrame();
        break;
      case "select":
        if (!picking) onSelect(message);
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
    query.set("url", url.href);
    leaving = true; // the draft is in sessionStorage: nothing is lost
    const target = new URL(state.urlAction, location.href);
    target.search = query.toString();
    location.assign(target.href);
  }

  // ---- leaving, saving
  saveForm?.addEventListener("submit", () => {
    (saveForm.elements.namedItem("changes") as HTMLInputElement).value = JSON.stringify(h0.changes);
    leaving = true;
  });
  hook("url-form").addEventListener("submit", () => {
    leaving = true;
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
    if (selected) onSelect(selected.info);
  }

  // ---- start
  restore();
  renderCustom();
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
