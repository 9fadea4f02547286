/**
 * The visual editor's page (docs/visual-editor.md): a toolbar, the customer's page in a
 * sandboxed frame (rendered by the edge through `?ss_editor=preview`, src/edge/editor-preview.ts)
 * and a side panel. This module is only the markup and the state the browser side reads; the
 * behaviour is src/editor/editor.ts, served as /_ss/admin/assets/editor.js
 * (src/admin/generated/editor-bundle.ts), and the route that fills {@link EditorState} is
 * src/admin/editor-routes.ts.
 *
 * Without JavaScript the page still reads well: the experiment, the variations, the URL form and
 * any message of a refused save are plain HTML; the controls that need the script are hidden and
 * a note says the editor needs JavaScript. Every control is labelled and marked with a stable
 * `data-editor` hook (the browser tests drive them by it).
 */
import { html, raw } from "hono/html";
import { STATE_ELEMENT_ID, type EditorState } from "../shared/editor-state";
import { EDITOR_JS_HASH } from "./generated/editor-bundle";
import { ADMIN_BASE_PATH, type Html } from "./ui";

export type { EditorState };

/** The editor script's URL (content-hashed, served immutable). */
export const EDITOR_SCRIPT_PATH = `${ADMIN_BASE_PATH}/assets/editor.js`;

/**
 * `value` as JSON that is safe inside a `<script>` element: `<`, `>`, `&`, U+2028 and U+2029 as
 * `\uXXXX` escapes, so no string in it can close the element, open a comment or break a line;
 * `JSON.parse` reads it back unchanged.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// Full-width: the page preview takes ~65 % of the width, the panel the rest (at least 320 px, so
// a 1024 px window still has a usable panel). Colours keep a contrast of 4.5:1 or more, buttons
// and fields are at least 28 px high.
const STYLE = `
*{box-sizing:border-box}
html,body{height:100%}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa;display:flex;flex-direction:column;overflow:hidden}
.bar{flex:none;background:#111;color:#fff;padding:4px 16px}
.bar>div{display:flex;flex-wrap:wrap;gap:4px 18px;align-items:center;min-height:38px}
.bar .muted{color:#e0e0e0}.bar p{margin:0}
.bar a{color:#fff}.bar .home{font-weight:600;text-decoration:none}
.bar h1{font-size:15px;margin:0;font-weight:600}
.bar ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px 12px}
.bar nav a,.bar .home{display:inline-block;padding:4px 2px;min-height:28px}
.bar nav a[aria-current]{font-weight:700;text-decoration-thickness:3px}
.bar form{display:flex;gap:6px;align-items:center;margin:0}
.bar label{color:#fff}
.bar input[type=url]{width:min(40vw,480px)}
.group{display:flex;gap:6px;align-items:center}
.bar .save{margin-left:auto}
button,input,select,textarea{font:inherit;min-height:28px}
button{padding:3px 12px;cursor:pointer;border:1px solid #555;border-radius:4px;background:#f3f3f3;color:#1d1d1f}
button[aria-pressed=true]{background:#0b57d0;border-color:#0b57d0;color:#fff}
button.primary{background:#0b57d0;border-color:#0b57d0;color:#fff;font-weight:600}
button:disabled{color:#595959;background:#e8e8e8;cursor:default}
input,select,textarea{padding:3px 7px;border:1px solid #767676;border-radius:4px;background:#fff;color:#1d1d1f}
textarea{width:100%;resize:vertical;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}
.bar :focus-visible{outline-color:#8ab4f8}
.messages{flex:none;max-height:30vh;overflow:auto}
.messages>*,.messages noscript>p{margin:8px 16px}.messages>noscript{margin:0}
.warning{border:1px solid #e69f00;background:#fff6e0;padding:8px 12px}
.error{border:1px solid #d55e00;background:#fde2dc;padding:8px 12px}
.error ul{margin:4px 0;padding-left:20px}
.notice{border:1px solid #2e7d32;background:#e6f4ea;padding:8px 12px}
.status:empty{display:none}
.status{padding:6px 12px;background:#e3ecf7;border:1px solid #0b57d0}
.work{flex:1;min-height:0;display:grid;grid-template-columns:minmax(0,65fr) minmax(320px,35fr)}
.stage{position:relative;min-width:0;border-right:1px solid #ccc;background:#fff}
.stage iframe{display:block;width:100%;height:100%;border:0;background:#fff}
.lost{position:absolute;inset:16px 16px auto 16px;background:#fff;border:2px solid #d55e00;padding:12px 16px;box-shadow:0 2px 10px rgba(0,0,0,.2)}
.panel{overflow:auto;padding:8px 16px 32px;background:#fff}
.panel h2{font-size:15px;margin:16px 0 6px}.panel h3{font-size:14px;margin:12px 0 4px}
.panel section{border-bottom:1px solid #e5e5e5;padding-bottom:8px}
.field{display:flex;flex-direction:column;gap:3px;margin:8px 0}
.field input,.field select{width:100%}
.inline{display:flex;gap:6px;align-items:flex-end;flex-wrap:wrap}
.inline .field{flex:1 1 140px;margin:4px 0}
.row{display:flex;gap:6px;flex-wrap:wrap;align-items:center;margin:6px 0}
.check{display:flex;gap:8px;align-items:center;margin:8px 0}
.check input{width:24px;height:24px;min-height:24px;margin:0}
fieldset{border:1px solid #ccc;border-radius:6px;margin:10px 0;padding:4px 10px 8px}
legend{font-weight:600;padding:0 4px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;background:#f3f3f3;padding:0 3px;border-radius:3px;word-break:break-all}
.hint,.muted{color:#555;font-size:13px}
.problem{color:#b3261e;font-weight:600}
.changes{padding-left:22px;margin:6px 0}
.changes li{margin:0 0 10px}
.changes p{margin:2px 0}
.changes .warn{color:#8a4b00}
.changes li.editing{outline:2px solid #0b57d0;outline-offset:3px}
[hidden]{display:none!important}
`;

/** Hidden without JavaScript (the page's <noscript> style). */
const NO_SCRIPT_STYLE = ".js-only,.work{display:none!important}";

const POSITIONS = [
  ["before", "Before the element"],
  ["after", "After the element"],
  ["prepend", "At the start, inside"],
  ["append", "At the end, inside"],
] as const;

function positionOptions(withReplace: boolean): Html {
  return html`${POSITIONS.map(([value, label]) => html`<option value="${value}">${label}</option>`)}
  ${withReplace ? html`<option value="replace">Instead of the element</option>` : ""}`;
}

/** A labelled single-line field with its button (`data-editor="X"` and `"apply-X"`). */
function applyField(hook: string, label: string, button: string, hint?: string): Html {
  return html`<div class="inline">
    <div class="field">
      <label for="ss-${hook}">${label}</label>
      <input
        id="ss-${hook}"
        data-editor="${hook}"
        autocomplete="off"
        spellcheck="false"
        ${hint ? html`aria-describedby="ss-${hook}-hint"` : ""}
      />
      ${hint ? html`<span class="hint" id="ss-${hook}-hint">${hint}</span>` : ""}
    </div>
    <button type="button" data-editor="apply-${hook}">${button}</button>
  </div>`;
}

/**
 * The `variation` parameter that opens this same change set again: the one in the switcher's
 * link to the current entry (the original has its own value there), else the variation's id.
 */
export function switcherVariation(state: EditorState): string | null {
  const current = state.variations.find((v) => v.current);
  if (current) {
    try {
      const value = new URL(current.href, "https://editor.invalid").searchParams.get("variation");
      if (value !== null) return value;
    } catch {
      // not a URL: fall back to the id
    }
  }
  return state.variation?.id ?? null;
}

function toolbar(state: EditorState): Html {
  const variation = state.variation;
  const reopen = switcherVariation(state);
  return html`<header class="bar">
    <div>
      <a class="home" href="${ADMIN_BASE_PATH}">Splitstream</a>
      <h1>
        <a href="${state.backHref}">${state.experiment.name}</a>:
        ${variation ? variation.name || variation.key : "original page"}
      </h1>
      <nav aria-label="Variations">
        <ul>
          ${state.variations.map(
            (v) =>
              html`<li>
                <a
                  href="${v.href}"
                  ${v.current ? raw('aria-current="page"') : ""}
                  data-variation="${v.id ?? ""}"
                  >${v.label}</a
                >
              </li>`,
          )}
        </ul>
      </nav>
      ${
        state.canSave
          ? html`<form
              class="save js-only"
              method="post"
              action="${state.saveAction}"
              data-editor="save-form"
            >
              <input type="hidden" name="changes" value="${JSON.stringify(state.changes)}" />
              <input type="hidden" name="version" value="${String(state.version)}" />
              <input type="hidden" name="variation" value="${variation?.id ?? ""}" />
              <input type="hidden" name="url" value="${state.pageUrl}" />
              <input type="hidden" name="environment" value="${state.environment}" />
              <span class="muted" data-editor="dirty" hidden>Unsaved changes</span>
              <button type="submit" class="primary" data-editor="save">Save</button>
            </form>`
          : html`<p class="save" data-editor="read-only">Read-only</p>`
      }
    </div>
    <div>
      <form method="get" action="${state.urlAction}" data-editor="url-form">
        <label for="ss-url">Page</label>
        <input id="ss-url" name="url" type="text" required value="${state.pageUrl}" />
        ${reopen === null ? "" : html`<input type="hidden" name="variation" value="${reopen}" />`}
        <input type="hidden" name="environment" value="${state.environment}" />
        <button type="submit">Open</button>
      </form>
      <div class="group js-only" role="group" aria-label="Mode">
        <button type="button" data-editor="mode-select" aria-pressed="true">Select</button>
        <button type="button" data-editor="mode-browse" aria-pressed="false">Browse</button>
      </div>
      <div class="group js-only" role="group" aria-label="History">
        <button type="button" data-editor="undo" aria-keyshortcuts="Control+Z Meta+Z" disabled>
          Undo
        </button>
        <button
          type="button"
          data-editor="redo"
          aria-keyshortcuts="Control+Shift+Z Meta+Shift+Z Control+Y"
          disabled
        >
          Redo
        </button>
      </div>
    </div>
  </header>`;
}

function messages(state: EditorState): Html {
  return html`<div class="messages">
    ${
      state.errors.length > 0
        ? html`<div class="error" role="alert" data-editor="errors">
            <strong>Not saved:</strong>
            <ul>
              ${state.errors.map(
                (e) => html`<li>${e.path ? html`<code>${e.path}</code>: ` : ""}${e.message}</li>`,
              )}
            </ul>
          </div>`
        : ""
    }
    ${state.notice ? html`<p class="notice" role="status" data-editor="notice">${state.notice}</p>` : ""}
    ${
      state.running && state.canSave
        ? html`<p class="warning" data-editor="running">
            This experiment is running: once published, what you save here is what its visitors in
            this variation see.
          </p>`
        : ""
    }
    ${
      state.variation === null
        ? html`<p class="warning">
            This is the page as the origin sends it, without changes: pick a variation above to edit
            it.
          </p>`
        : !state.canSave
          ? html`<p class="warning">You can look at this variation but not change it.</p>`
          : ""
    }
    <noscript>
      <p class="warning">
        The visual editor needs JavaScript. You can still edit this variation's changes in the
        <a href="${state.backHref}">experiment's form</a>.
      </p>
    </noscript>
    <p class="status js-only" data-editor="status" role="status" aria-live="polite"></p>
  </div>`;
}

function selectionSection(): Html {
  return html`<section aria-labelledby="ss-selection-title">
    <h2 id="ss-selection-title">Selected element</h2>
    <p data-editor="selection">Click an element in the page, or enter a selector, to select it.</p>
    <div data-editor="selection-tools">
      <div class="field">
        <label for="ss-selector">Selector</label>
        <input
          id="ss-selector"
          data-editor="selector"
          autocomplete="off"
          spellcheck="false"
          aria-describedby="ss-match-count ss-selector-problem"
        />
      </div>
      <p class="row">
        <span id="ss-match-count" data-editor="match-count"></span>
      </p>
      <p id="ss-selector-problem" class="problem" data-editor="selector-problem"></p>
      <div class="row">
        <button type="button" data-editor="select-parent" hidden>Select the parent</button>
        <button type="button" data-editor="apply-selector" hidden>Use this selector</button>
      </div>
    </div>
  </section>`;
}

function editSection(): Html {
  return html`<section aria-labelledby="ss-edit-title" data-editor="edits" hidden>
    <h2 id="ss-edit-title" tabindex="-1" data-editor="edits-title">Change the element</h2>
    <p class="row" data-editor="editing" hidden>
      <span data-editor="editing-text"></span>
      <button type="button" data-editor="cancel-edit">Stop editing</button>
    </p>
    <div class="field">
      <label for="ss-text">Text</label>
      <textarea id="ss-text" data-editor="text" rows="2"></textarea>
    </div>
    <div class="row"><button type="button" data-editor="apply-text">Set the text</button></div>
    <div class="field">
      <label for="ss-html">HTML inside</label>
      <textarea id="ss-html" data-editor="html" rows="3" spellcheck="false"></textarea>
    </div>
    <div class="row"><button type="button" data-editor="apply-html">Set the HTML</button></div>
    ${applyField("add-class", "Add classes", "Add", "Space-separated")}
    ${applyField("remove-class", "Remove classes", "Remove", "Space-separated")}
    <datalist id="ss-classes" data-editor="class-list"></datalist>
    ${applyField("style", "Style", "Add style", "CSS declarations, e.g. color: #b3261e; font-weight: 600")}
    <div class="inline">
      <div class="field">
        <label for="ss-attribute-name">Attribute</label>
        <input
          id="ss-attribute-name"
          data-editor="attribute-name"
          autocomplete="off"
          spellcheck="false"
          list="ss-attributes"
        />
        <datalist id="ss-attributes" data-editor="attribute-list"></datalist>
      </div>
      <div class="field">
        <label for="ss-attribute-value">Value</label>
        <input
          id="ss-attribute-value"
          data-editor="attribute-value"
          autocomplete="off"
          spellcheck="false"
        />
      </div>
    </div>
    <div class="row">
      <button type="button" data-editor="apply-attribute">Set the attribute</button>
      <button type="button" data-editor="unset-attribute">Remove the attribute</button>
    </div>
    <div class="row">
      <button type="button" data-editor="hide">Hide the element</button>
      <button type="button" data-editor="remove">Remove the element</button>
    </div>
    <fieldset data-editor="insert">
      <legend>Insert HTML</legend>
      <div class="field">
        <label for="ss-insert-position">Where</label>
        <select id="ss-insert-position" data-editor="insert-position">
          ${positionOptions(true)}
        </select>
      </div>
      <div class="field">
        <label for="ss-insert-html">HTML to insert</label>
        <textarea
          id="ss-insert-html"
          data-editor="insert-html"
          rows="3"
          spellcheck="false"
        ></textarea>
      </div>
      <div class="row"><button type="button" data-editor="apply-insert">Insert</button></div>
    </fieldset>
    <fieldset data-editor="move-box">
      <legend>Move the element</legend>
      <div class="row">
        <button type="button" data-editor="move">Pick where to move it</button>
        <button type="button" data-editor="cancel" hidden>Cancel</button>
      </div>
      <div data-editor="move-choice" hidden>
        <p>Next to: <code data-editor="move-target"></code></p>
        <div class="field">
          <label for="ss-move-position">Where</label>
          <select id="ss-move-position" data-editor="move-position">
            ${positionOptions(false)}
          </select>
        </div>
        <div class="row"><button type="button" data-editor="apply-move">Move</button></div>
      </div>
    </fieldset>
  </section>`;
}

function changesSection(): Html {
  return html`<section aria-labelledby="ss-changes-title">
    <h2 id="ss-changes-title">Changes of this variation</h2>
    <p class="muted" data-editor="changes-empty">No changes yet.</p>
    <ol class="changes" data-editor="changes"></ol>
    <div data-editor="shared" hidden>
      <h3>Shared changes (every variation; edit them in the experiment's form)</h3>
      <ol class="changes" data-editor="shared-changes"></ol>
    </div>
  </section>`;
}

function codeSection(): Html {
  return html`<section aria-labelledby="ss-code-title">
    <h2 id="ss-code-title">Custom code on this page</h2>
    <div class="field">
      <label for="ss-custom-css">Custom CSS</label>
      <textarea id="ss-custom-css" data-editor="custom-css" rows="4" spellcheck="false"></textarea>
    </div>
    <div class="row">
      <button type="button" data-editor="apply-custom-css">Apply the CSS</button>
    </div>
    <div class="field">
      <label for="ss-custom-js">Custom JavaScript</label>
      <textarea
        id="ss-custom-js"
        data-editor="custom-js"
        rows="4"
        spellcheck="false"
        aria-describedby="ss-custom-js-hint"
      ></textarea>
      <span class="hint" id="ss-custom-js-hint"
        >Runs at the end of the page's body, in its own function.</span
      >
    </div>
    <div class="row">
      <button type="button" data-editor="apply-custom-js">Apply the JavaScript</button>
    </div>
    <label class="check">
      <input type="checkbox" data-editor="run-custom-js" checked />
      Run custom JavaScript in the preview
    </label>
  </section>`;
}

/** The editor page for `state`; `nonce` is the page CSP's script nonce. */
export function renderEditorPage(state: EditorState, nonce: string): Html {
  const what = state.variation ? state.variation.name || state.variation.key : "original page";
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Edit ${what} · ${state.experiment.name} · Splitstream</title>
        <style>
          ${raw(STYLE)}
        </style>
        <noscript
          ><style>
            ${raw(NO_SCRIPT_STYLE)}
          </style></noscript
        >
      </head>
      <body data-editor="page">
        ${toolbar(state)} ${messages(state)}
        <main class="work">
          <div class="stage">
            <iframe
              name="ss-editor-frame"
              sandbox="allow-scripts"
              title="Page preview: ${state.pageUrl}"
              data-editor="frame"
            ></iframe>
            <div class="lost" data-editor="lost" role="alert" hidden>
              <p>
                The page left the editor (a script or your custom JS navigated away, or the origin
                redirected).
              </p>
              <p class="hint">
                Turn off "Run custom JavaScript in the preview" if your custom JavaScript navigates.
              </p>
              <button type="button" data-editor="reload">Reload the preview</button>
            </div>
          </div>
          <aside class="panel js-only" aria-label="Editor">
            ${selectionSection()} ${editSection()} ${changesSection()} ${codeSection()}
          </aside>
        </main>
        <form
          method="post"
          target="ss-editor-frame"
          rel="noreferrer"
          action="${state.previewAction}"
          data-editor="preview-form"
          hidden
        >
          <input type="hidden" name="token" value="${state.token}" />
          <input type="hidden" name="changes" value="[]" />
        </form>
        <script type="application/json" id="${STATE_ELEMENT_ID}">
          ${raw(scriptJson(state))}
        </script>
        <script nonce="${nonce}" src="${EDITOR_SCRIPT_PATH}?v=${EDITOR_JS_HASH}" defer></script>
      </body>
    </html>`;
}
