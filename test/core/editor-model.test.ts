/**
 * The visual editor's pure model (src/editor/state.ts, describe.ts, protocol.ts,
 * selector-names.ts): undo/redo and the stored draft, merging attribute edits, the change list
 * edits, change descriptions and warnings, the checks of messages from the previewed page, and
 * the names selectors may use. The DOM parts are exercised in the browser tests.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AttributeChangeSet, Change } from "../../src/core/datafile-types";
import {
  addAttributeEdit,
  appliesHere,
  commit,
  customIndex,
  history,
  isDirty,
  joinStyles,
  MAX_UNDO,
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
  setCustom,
  setCustomAt,
  undo,
  worthKeeping,
} from "../../src/editor/state";
import {
  changeWarnings,
  clip,
  describeChange,
  matchCountText,
  selectorOf,
  selectorWarning,
} from "../../src/editor/describe";
import { keyCommand, LIMITS, MESSAGE_SOURCE, readFrameMessage } from "../../src/editor/protocol";
import { generatedName, usableAttribute } from "../../src/editor/selector-names";
import { SEED, seedProperties } from "../support/fast-check";

seedProperties(300);

const text = (selector: string, value: string): Change => ({
  type: "attribute",
  selector,
  attributes: { text: value },
});

describe("undo and redo", () => {
  it("commit pushes the old list, undo and redo walk back and forth", () => {
    let h = history([text("h1", "a")]);
    h = commit(h, [text("h1", "b")]);
    h = commit(h, [text("h1", "c")]);
    expect(h.undo).toHaveLength(2);
    const back = undo(h)!;
    expect(back.changes).toEqual([text("h1", "b")]);
    const back2 = undo(back)!;
    expect(back2.changes).toEqual([text("h1", "a")]);
    expect(undo(back2)).toBeNull();
    const forward = redo(back2)!;
    expect(forward.changes).toEqual([text("h1", "b")]);
    expect(redo(redo(forward)!)).toBeNull();
  });

  it("a new edit after an undo drops the redo steps", () => {
    let h = commit(history([]), [text("a", "1")]);
    h = undo(h)!;
    expect(h.redo).toHaveLength(1);
    h = commit(h, [text("b", "2")]);
    expect(h.redo).toHaveLength(0);
  });

  it("an edit that changes nothing is not a step", () => {
    const h = history([text("a", "1")]);
    expect(commit(h, [text("a", "1")])).toBe(h);
  });

  it(`keeps the last ${MAX_UNDO} steps`, () => {
    let h = history([]);
    for (let i = 0; i < MAX_UNDO + 20; i++) h = commit(h, [text("p", String(i))]);
    expect(h.undo).toHaveLength(MAX_UNDO);
    expect(h.undo[0]).toEqual([text("p", "19")]);
  });
});

describe("the stored draft", () => {
  it("round-trips the history and the version", () => {
    let h = commit(history([]), [text("a", "1")]);
    h = commit(h, [text("a", "2")]);
    h = undo(h)!;
    expect(parseDraft(serializeDraft(h, 7))).toEqual({ ...h, version: 7 });
  });

  it("drops the oldest undo steps, never the changes, to fit", () => {
    let h = history([]);
    for (let i = 0; i < 40; i++) h = commit(h, [text("p", "x".repeat(100) + i)]);
    const full = serializeDraft(h, 1);
    const small = serializeDraft(h, 1, 1000);
    expect(small.length).toBeLessThan(full.length);
    const back = parseDraft(small)!;
    expect(back.changes).toEqual(h.changes);
    expect(back.undo.length).toBeLessThan(h.undo.length);
    expect(back.undo.at(-1)).toEqual(h.undo.at(-1));
  });

  it("reads nothing from what is not a draft", () => {
    for (const stored of [
      null,
      "",
      "not json",
      "[]",
      "{}",
      '{"v":2,"version":1,"changes":[],"undo":[],"redo":[]}',
      '{"v":1,"version":"1","changes":[],"undo":[],"redo":[]}',
      '{"v":1,"version":1,"changes":[1],"undo":[],"redo":[]}',
      '{"v":1,"version":1,"changes":[{"selector":"a"}],"undo":[],"redo":[]}',
      '{"v":1,"version":1,"changes":[],"undo":[[null]],"redo":[]}',
      '{"v":1,"version":1,"changes":[],"undo":[]}',
    ])
      expect(parseDraft(stored)).toBeNull();
  });
});

describe("opening the editor with a stored draft", () => {
  const page = { version: 5, saved: false, refused: false, editable: true };
  const server = [text("h1", "saved")];
  const draftOf = (h: ReturnType<typeof history>, version: number) =>
    parseDraft(serializeDraft(h, version));

  it("takes up the draft, and says when the experiment was saved since it began", () => {
    const h = commit(history(server), [text("h1", "draft")]);
    const same = openDraft({ ...page, changes: server }, draftOf(h, 5));
    expect(same).toMatchObject({ history: h, version: 5, saved: server, restored: "same" });
    expect(isDirty(same.history, same.saved)).toBe(true);
    const older = openDraft({ ...page, changes: server }, draftOf(h, 3));
    expect(older).toMatchObject({ version: 3, restored: "older", clear: false });
    // A draft equal to the stored list restores its history without a message.
    const undone = openDraft({ ...page, changes: server }, draftOf(undo(h)!, 3));
    expect(undone.restored).toBeNull();
    expect(undone.history.redo).toHaveLength(1);
    expect(isDirty(undone.history, undone.saved)).toBe(false);
    expect(worthKeeping(undone.history, undone.saved)).toBe(true);
  });

  it("starts from the page without a draft, or when the change set is read-only", () => {
    const fresh = openDraft({ ...page, changes: server }, null);
    expect(fresh).toEqual({
      history: history(server),
      version: 5,
      saved: server,
      restored: null,
      clear: false,
    });
    expect(worthKeeping(fresh.history, fresh.saved)).toBe(false);
    const h = commit(history(server), [text("h1", "draft")]);
    expect(openDraft({ ...page, changes: server, editable: false }, draftOf(h, 5))).toEqual(fresh);
  });

  it("drops the draft after a successful save", () => {
    const h = commit(history(server), [text("h1", "draft")]);
    const opened = openDraft({ ...page, changes: server, saved: true }, draftOf(h, 4));
    expect(opened).toMatchObject({ history: history(server), version: 5, clear: true });
  });

  it("after a refused save, the posted list is unsaved and its history goes on", () => {
    const posted = [text("h1", "draft")];
    const h = commit(history(server), posted);
    const refused = { ...page, changes: posted, refused: true };
    const opened = openDraft(refused, draftOf(h, 4));
    expect(opened).toMatchObject({ history: h, version: 4, saved: null, clear: false });
    expect(isDirty(opened.history, opened.saved)).toBe(true);
    // Even a notice that says saved does not clear a refused draft.
    expect(openDraft({ ...refused, saved: true }, draftOf(h, 4)).clear).toBe(false);
    // A stored draft behind the posted list: the posted list is one more step on top of it.
    const behind = openDraft(refused, draftOf(history(server), 4));
    expect(behind.history.changes).toEqual(posted);
    expect(behind.history.undo).toEqual([server]);
    // No stored draft (another tab, storage refused): unsaved all the same.
    const alone = openDraft(refused, null);
    expect(alone).toMatchObject({ history: history(posted), version: 5, saved: null });
    expect(isDirty(alone.history, alone.saved)).toBe(true);
    expect(worthKeeping(alone.history, alone.saved)).toBe(true);
  });
});

describe("changes of this page", () => {
  const onP1: Change = { ...text("a", "1"), pageId: "p1" };
  const onP2: Change = { ...text("b", "2"), pageId: "p2" };
  const everywhere = text("c", "3");

  it("a change applies without a page id, or on a matching page", () => {
    expect(appliesHere(everywhere, [])).toBe(true);
    expect(appliesHere(onP1, ["p1"])).toBe(true);
    expect(appliesHere(onP2, ["p1"])).toBe(false);
  });

  it("the preview gets the shared changes first, then this page's, custom JS optional", () => {
    const shared: Change[] = [{ type: "custom_css", value: "a{}" }];
    const code: Change = { type: "custom_code", value: "x()" };
    const list = [onP1, onP2, code, everywhere];
    expect(previewChanges(shared, list, ["p1"], true)).toEqual([...shared, onP1, code, everywhere]);
    expect(previewChanges(shared, list, ["p1"], false)).toEqual([...shared, onP1, everywhere]);
  });

  it("new changes get the default page, when there is one", () => {
    expect(onPage(everywhere, "p9")).toEqual({ ...everywhere, pageId: "p9" });
    expect(onPage(everywhere, null)).toBe(everywhere);
  });

  it("replaces and removes by index without touching the others", () => {
    const list = [onP1, onP2, everywhere];
    expect(replaceAt(list, 1, everywhere)).toEqual([onP1, everywhere, everywhere]);
    expect(removeAt(list, 0)).toEqual([onP2, everywhere]);
    expect(list).toEqual([onP1, onP2, everywhere]);
  });
});

// ---- a model of what the edge does with one attribute change set (docs/changes.md "attribute")

interface Model {
  removed: boolean;
  content: string | null;
  attrs: Map<string, string>;
}

const words = (s: string | undefined): string[] => (s ?? "").split(/\s+/).filter(Boolean);

function applySet(m: Model, a: AttributeChangeSet): void {
  if (m.removed) return;
  if (a.remove === true) {
    m.removed = true;
    return;
  }
  if (a.text !== undefined) m.content = `text:${a.text}`;
  if (a.html !== undefined) m.content = `html:${a.html}`;
  let classes = m.attrs.has("class") ? words(m.attrs.get("class")) : null;
  let changed = false;
  if (a.class !== undefined) {
    classes = words(a.class);
    changed = true;
  }
  if (a.removeClass && classes) {
    const gone = words(a.removeClass);
    const next = classes.filter((c) => !gone.includes(c));
    if (next.length !== classes.length) [classes, changed] = [next, true];
  }
  for (const c of words(a.addClass))
    if (!(classes ?? []).includes(c)) [classes, changed] = [[...(classes ?? []), c], true];
  if (changed) m.attrs.set("class", (classes ?? []).join(" "));
  const style = (value: string): void => {
    const old = m.attrs.get("style");
    m.attrs.set("style", old === undefined ? value : `${old};${value}`);
  };
  if (a.style !== undefined) style(a.style);
  if (a.hide === true) style("display:none !important");
  if (a.href !== undefined) m.attrs.set("href", a.href);
  if (a.src !== undefined) m.attrs.set("src", a.src);
  for (const [name, value] of Object.entries(a.set ?? {})) m.attrs.set(name.toLowerCase(), value);
  for (const name of a.unset ?? []) m.attrs.delete(name.toLowerCase());
}

/** A style attribute's effect: each property's winning value (`!important` beats later plain ones). */
function effectiveStyle(style: string | undefined): Record<string, string> {
  const out: Record<string, { value: string; important: boolean }> = {};
  for (const part of (style ?? "").split(";")) {
    const colon = part.indexOf(":");
    if (colon < 0) continue;
    const property = part.slice(0, colon).trim().toLowerCase();
    const raw = part.slice(colon + 1).trim();
    const important = /!important$/.test(raw);
    const value = raw.replace(/\s*!important$/, "");
    if (out[property]?.important && !important) continue;
    out[property] = { value, important };
  }
  return Object.fromEntries(
    Object.entries(out).map(([k, v]) => [k, `${v.value}${v.important ? "!" : ""}`]),
  );
}

function outcome(start: Record<string, string>, sets: AttributeChangeSet[]) {
  const m: Model = { removed: false, content: null, attrs: new Map(Object.entries(start)) };
  for (const set of sets) applySet(m, set);
  if (m.removed) return { removed: true }; // nothing else of it is left to see
  const attrs = Object.fromEntries([...m.attrs].filter(([name]) => name !== "style"));
  return {
    removed: m.removed,
    content: m.content,
    attrs,
    style: effectiveStyle(m.attrs.get("style")),
  };
}

const classWords = fc
  .uniqueArray(fc.constantFrom("a", "b", "c"), { minLength: 1, maxLength: 3 })
  .map((list) => list.join(" "));
/** One to three fields, as the panel's edits make them (a set with every field conflicts always). */
const attributeSet: fc.Arbitrary<AttributeChangeSet> = fc
  .array(
    fc.oneof(
      fc.record({ text: fc.constantFrom("t1", "t2") }),
      fc.record({ html: fc.constantFrom("<b>1</b>", "<i>2</i>") }),
      fc.record({ class: fc.constantFrom("", "a", "b c") }),
      fc.record({ removeClass: classWords }),
      fc.record({ addClass: classWords }),
      fc.record({
        style: fc.constantFrom(
          "color:red",
          "color: blue;",
          "display:block",
          "display:flex !important",
        ),
      }),
      fc.constant({ hide: true }),
      fc.constant({ remove: true }),
      fc.record({ href: fc.constantFrom("/x", "/y") }),
      fc.constant({ src: "/i.png" }),
      fc.record({
        set: fc.dictionary(
          fc.constantFrom("href", "class", "style", "data-x", "Data-X", "title"),
          fc.constantFrom("1", "2"),
          { minKeys: 1, maxKeys: 2 },
        ),
      }),
      fc.record({
        unset: fc.uniqueArray(
          fc.constantFrom("href", "class", "style", "data-x", "DATA-X", "src"),
          {
            minLength: 1,
            maxLength: 2,
          },
        ),
      }),
    ),
    { minLength: 1, maxLength: 3 },
  )
  .map((parts) => Object.assign({}, ...parts) as AttributeChangeSet);
const startingElement = fc.record(
  {
    class: fc.constantFrom("", "a", "a b", "c a"),
    style: fc.constantFrom("color:green", "display:none"),
    href: fc.constant("/orig"),
    "data-x": fc.constant("0"),
  },
  { requiredKeys: [] },
);

describe(`merging attribute edits (seed ${SEED})`, () => {
  it("a merged set does exactly what the two sets do one after the other", () => {
    let merged = 0;
    fc.assert(
      fc.property(startingElement, attributeSet, attributeSet, (start, a, b) => {
        const m = mergeAttributes(a, b);
        if (m === null) return;
        merged++;
        expect(outcome(start, [m])).toEqual(outcome(start, [a, b]));
      }),
    );
    // Most pairs merge: the property is not vacuous.
    expect(merged).toBeGreaterThan(200);
  });

  it("refuses only when a's set/unset of an attribute would override b's field", () => {
    expect(mergeAttributes({ set: { style: "x" } }, { style: "color:red" })).toBeNull();
    expect(mergeAttributes({ unset: ["class"] }, { addClass: "a" })).toBeNull();
    expect(mergeAttributes({ set: { HREF: "/a" } }, { href: "/b" })).toBeNull();
    expect(mergeAttributes({ hide: true }, { style: "display:block !important" })).toBeNull();
    expect(mergeAttributes({ style: "color:red" }, { style: "font-weight:600" })).toEqual({
      style: "color:red; font-weight:600",
    });
    expect(mergeAttributes({ text: "a" }, { html: "<b>b</b>" })).toEqual({ html: "<b>b</b>" });
    expect(mergeAttributes({ addClass: "a b" }, { removeClass: "a" })).toEqual({
      addClass: "b",
      removeClass: "a",
    });
    expect(mergeAttributes({ unset: ["title"] }, { set: { title: "t" } })).toEqual({
      set: { title: "t" },
    });
  });

  it("joins styles as the edge does, without doubled semicolons", () => {
    expect(joinStyles(undefined, "a:1;")).toBe("a:1");
    expect(joinStyles("a:1;", "b:2")).toBe("a:1; b:2");
    expect(joinStyles(" ; ", "b:2")).toBe("b:2");
  });
});

describe("adding an attribute edit to the list", () => {
  it("merges into the last change on the same selector and page", () => {
    const list = addAttributeEdit([], "h1", { text: "a" }, "p1");
    expect(list).toEqual([
      { type: "attribute", selector: "h1", attributes: { text: "a" }, pageId: "p1" },
    ]);
    const next = addAttributeEdit(list, "h1", { addClass: "big" }, "p1");
    expect(next).toEqual([
      {
        type: "attribute",
        selector: "h1",
        attributes: { text: "a", addClass: "big" },
        pageId: "p1",
      },
    ]);
  });

  it("appends when the selector, the page or the last change differ", () => {
    const list = addAttributeEdit([], "h1", { text: "a" }, null);
    expect(addAttributeEdit(list, "h2", { text: "b" }, null)).toHaveLength(2);
    expect(addAttributeEdit(list, "h1", { text: "b" }, "p1")).toHaveLength(2);
    const withInsert: Change[] = [
      ...list,
      { type: "insert_html", selector: "h1", position: "after", html: "<hr>" },
    ];
    expect(addAttributeEdit(withInsert, "h1", { text: "b" }, null)).toHaveLength(3);
    // not mergeable: a second change
    const styled = addAttributeEdit([], "h1", { set: { style: "x" } }, null);
    expect(addAttributeEdit(styled, "h1", { style: "y" }, null)).toHaveLength(2);
  });

  it("patching a loaded change replaces fields and removes blank ones", () => {
    expect(patchAttributes({ style: "a", text: "t" }, { style: "b" })).toEqual({
      style: "b",
      text: "t",
    });
    expect(patchAttributes({ style: "a", text: "t" }, { style: "" })).toEqual({ text: "t" });
    expect(patchAttributes({ hide: true }, { hide: false, set: {} })).toEqual({});
  });

  it("patching the text drops the HTML, and the reverse (html would win at the edge)", () => {
    expect(patchAttributes({ html: "<b>a</b>", style: "s" }, { text: "t" })).toEqual({
      text: "t",
      style: "s",
    });
    expect(patchAttributes({ text: "t", addClass: "c" }, { html: "<i>h</i>" })).toEqual({
      html: "<i>h</i>",
      addClass: "c",
    });
    // Clearing one of them leaves the other alone.
    expect(patchAttributes({ text: "t", html: "h" }, { text: "" })).toEqual({ html: "h" });
  });
});

describe("custom CSS and JS", () => {
  it("creates one on demand, updates it, removes it when blank", () => {
    let list: Change[] = [text("h1", "a")];
    list = setCustom(list, "custom_css", "a{color:red}", ["p1"], "p1");
    expect(list[1]).toEqual({ type: "custom_css", value: "a{color:red}", pageId: "p1" });
    list = setCustom(list, "custom_css", "b{}", ["p1"], "p1");
    expect(list).toHaveLength(2);
    expect(list[1]).toEqual({ type: "custom_css", value: "b{}", pageId: "p1" });
    expect(customIndex(list, "custom_code", ["p1"])).toBe(-1);
    list = setCustom(list, "custom_css", "  ", ["p1"], "p1");
    expect(list).toEqual([text("h1", "a")]);
    expect(setCustom(list, "custom_code", "", ["p1"], null)).toEqual(list);
  });

  it("sets the custom code change the box was loaded from, when there are several", () => {
    const first: Change = { type: "custom_css", value: "a{}" };
    const second: Change = { type: "custom_css", value: "b{}" };
    const list: Change[] = [first, text("h1", "x"), second];
    expect(setCustomAt(list, "custom_css", 2, "c{}", [], null)).toEqual([
      first,
      text("h1", "x"),
      { type: "custom_css", value: "c{}" },
    ]);
    expect(setCustomAt(list, "custom_css", 2, " ", [], null)).toEqual([first, text("h1", "x")]);
    // No index, or one that is no longer such a change: this page's first one.
    expect(setCustomAt(list, "custom_css", null, "c{}", [], null)[0]).toEqual({
      type: "custom_css",
      value: "c{}",
    });
    expect(setCustomAt(list, "custom_css", 1, "c{}", [], null)[0]).toEqual({
      type: "custom_css",
      value: "c{}",
    });
    expect(setCustomAt(list, "custom_code", 0, "run()", [], "p1")).toEqual([
      ...list,
      { type: "custom_code", value: "run()", pageId: "p1" },
    ]);
  });

  it("leaves another page's custom code alone", () => {
    const other: Change = { type: "custom_code", value: "other()", pageId: "p2" };
    const list = setCustom([other], "custom_code", "mine()", ["p1"], "p1");
    expect(list).toEqual([other, { type: "custom_code", value: "mine()", pageId: "p1" }]);
  });
});

describe("describing changes", () => {
  it("says what each type does, in one short line", () => {
    expect(describeChange(text("h1", "Hello"))).toBe("Text “Hello”");
    expect(
      describeChange({
        type: "attribute",
        selector: "a",
        attributes: { addClass: "x", style: "color:red", set: { title: "t" }, unset: ["rel"] },
      }),
    ).toBe("Add class “x”, style “color:red”, title=“t”, remove attribute rel");
    expect(
      describeChange({ type: "attribute", selector: "a", attributes: { remove: true, text: "x" } }),
    ).toBe("Remove the element");
    expect(
      describeChange({ type: "insert_html", selector: "a", position: "append", html: "<b>x</b>" }),
    ).toBe("Insert HTML at the end of the element: “<b>x</b>”");
    expect(
      describeChange({ type: "move", selector: "a", target: "#b", position: "before", html: "" }),
    ).toBe("Move the element before #b");
    expect(describeChange({ type: "custom_css", value: "a{}\nb{}" })).toBe("Custom CSS (2 lines)");
    expect(describeChange({ type: "custom_code", value: "x()" })).toBe(
      "Custom JavaScript (1 line)",
    );
    expect(describeChange({ type: "redirect", destination: "/b" })).toBe("Redirect to /b");
  });

  it("clips long values to one line", () => {
    expect(clip("a\n  b", 10)).toBe("a b");
    expect(clip("x".repeat(100), 10)).toBe(`${"x".repeat(9)}…`);
    expect(describeChange(text("h1", "y".repeat(200))).length).toBeLessThan(60);
  });

  it("warns about selectors that match nothing, several elements, or cannot run at the edge", () => {
    expect(selectorWarning("h1", { count: 1, problem: undefined })).toBeNull();
    expect(selectorWarning("h1", { count: 0, problem: undefined })).toMatch(/matches nothing/);
    expect(selectorWarning("li", { count: 3, problem: undefined })).toMatch(/matches 3 elements/);
    expect(selectorWarning("a + b", { count: 1, problem: 'the "+" combinator' })).toMatch(
      /edge skips this selector: the "\+" combinator/,
    );
    expect(selectorWarning("a[", { count: -1, problem: "invalid" })).toMatch(/not valid CSS/);
    const move: Change = {
      type: "move",
      selector: "#a",
      target: ".b",
      position: "after",
      html: "",
    };
    const warnings = changeWarnings(move, (s) => ({
      count: s === "#a" ? 1 : 0,
      problem: undefined,
    }));
    expect(warnings).toEqual(["The target matches nothing on this page."]);
    expect(selectorOf({ type: "custom_css", value: "" })).toBeUndefined();
    expect(matchCountText(0)).toBe("no element");
    expect(matchCountText(1)).toBe("1 element");
    expect(matchCountText(2)).toBe("2 elements");
  });
});

describe("messages from the previewed page", () => {
  const msg = (fields: Record<string, unknown>) => ({ source: MESSAGE_SOURCE, ...fields });

  it("accepts only ours, of a known type", () => {
    expect(readFrameMessage(null)).toBeNull();
    expect(readFrameMessage("hello")).toBeNull();
    expect(readFrameMessage({ source: "other", type: "hello" })).toBeNull();
    expect(readFrameMessage(msg({ type: "unknown" }))).toBeNull();
    expect(readFrameMessage(msg({ type: "navigate", href: 42 }))).toBeNull();
    expect(readFrameMessage(msg({ type: "key", key: "a" }))).toBeNull();
    expect(readFrameMessage(msg({ type: "hello", url: "u", title: "t", elements: 3 }))).toEqual({
      type: "hello",
      url: "u",
      title: "t",
      elements: 3,
    });
  });

  it("checks and clamps every field of a selection", () => {
    const read = readFrameMessage(
      msg({
        type: "select",
        index: 1.5,
        tag: "DIV",
        id: { toString: () => "x" },
        classes: ["a", 3, "", "b"],
        attributes: [["href", "/x"], ["bad"], "no", ["n", 1]],
        text: "t".repeat(LIMITS.text + 10),
        html: "h",
        outerHtml: "o".repeat(LIMITS.html + 1),
        truncated: "yes",
        ancestors: [3, -1, "4", 2.5, 7],
      }),
    );
    expect(read).toEqual({
      type: "select",
      index: null,
      tag: "div",
      id: "",
      classes: ["a", "b"],
      attributes: [["href", "/x"]],
      text: "t".repeat(LIMITS.text),
      html: "h",
      outerHtml: "o".repeat(LIMITS.html),
      truncated: true,
      ancestors: [3, 7],
    });
    const picked = readFrameMessage(msg({ type: "picked", index: 4 }));
    expect(picked).toMatchObject({ type: "picked", index: 4, classes: [], truncated: false });
    expect(picked).not.toHaveProperty("request");
  });

  it("carries back the number of the editor's request, when it is one", () => {
    expect(readFrameMessage(msg({ type: "select", index: 2, request: 7 }))).toMatchObject({
      index: 2,
      request: 7,
    });
    for (const request of [-1, 1.5, "7", null, 2 ** 60])
      expect(readFrameMessage(msg({ type: "select", index: 2, request }))).not.toHaveProperty(
        "request",
      );
  });

  it("never lets a scroll position be anything but a finite number", () => {
    expect(readFrameMessage(msg({ type: "scroll", x: "1", y: Infinity }))).toEqual({
      type: "scroll",
      x: 0,
      y: 0,
    });
    expect(readFrameMessage(msg({ type: "scroll", x: 1e12, y: -5 }))).toEqual({
      type: "scroll",
      x: 1e7,
      y: -5,
    });
  });

  it("maps keys to undo, redo and escape", () => {
    const key = (
      k: string,
      mods: Partial<{ ctrlKey: boolean; metaKey: boolean; shiftKey: boolean }> = {},
    ) => keyCommand({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, ...mods });
    expect(key("z", { ctrlKey: true })).toBe("undo");
    expect(key("z", { metaKey: true })).toBe("undo");
    expect(key("Z", { ctrlKey: true, shiftKey: true })).toBe("redo");
    expect(key("y", { ctrlKey: true })).toBe("redo");
    expect(key("Escape")).toBe("escape");
    expect(key("z")).toBeNull();
    expect(key("a", { ctrlKey: true })).toBeNull();
  });
});

describe("names selectors may use", () => {
  it("keeps names people write", () => {
    for (const name of [
      "hero",
      "hero-title",
      "btn",
      "btn-primary",
      "col-md-6",
      "step1",
      "h2",
      "mainNav",
      "iPhone",
      "product_card",
      "_private",
      "nav--open",
      "Checkout",
    ])
      expect(generatedName(name), name).toBe(false);
  });

  it("leaves out generated, framework and unusable names", () => {
    for (const name of [
      "css-1hwfws3",
      "sc-bdVaJa",
      "kXGvEn",
      "Button_primary__3kd9S",
      "jsx-2921418155",
      "ember1234",
      "ember12",
      "product-48213",
      ":r1:",
      "md:flex",
      "w-1/2",
      "1col",
      "-1x",
      "ng-star-inserted",
      "svelte-xyz123",
      "a".repeat(41),
      "",
    ])
      expect(generatedName(name), name).toBe(true);
  });

  it("uses naming and data attributes with word-like values, never the editor's", () => {
    expect(usableAttribute("name", "email")).toBe(true);
    expect(usableAttribute("type", "submit")).toBe(true);
    expect(usableAttribute("data-testid", "buy-button")).toBe(true);
    expect(usableAttribute("data-ss-i", "12")).toBe(false);
    expect(usableAttribute("data-ss-editor", "x")).toBe(false);
    expect(usableAttribute("data-v-7ba5bd90", "x")).toBe(false);
    expect(usableAttribute("data-reactid", "x")).toBe(false);
    expect(usableAttribute("href", "about")).toBe(false);
    expect(usableAttribute("name", "user[email]")).toBe(false);
    expect(usableAttribute("aria-label", "Close")).toBe(false);
    expect(usableAttribute("name", "field-12345")).toBe(false);
  });
});
