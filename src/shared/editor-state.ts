/**
 * The visual editor page's state (docs/visual-editor.md): what src/admin/editor-routes.ts fills,
 * src/admin/editor-page.ts embeds as JSON in `<script type="application/json" id="ss-editor-state">`
 * and the editor script (src/editor/editor.ts) reads. One definition for both sides, like the
 * bootstrap contract (src/shared/bootstrap-types.ts).
 */
import type { Change } from "../core/datafile-types";

/** What the editor page shows and edits. */
export interface EditorState {
  experiment: {
    id: string;
    key: string;
    name: string;
    status: string;
    type: "ab" | "multivariate";
  };
  /** the change set being edited; null = "page as the origin sends it" (read-only) */
  variation: { id: string; key: string; name: string } | null;
  /** switcher: every editable change set, plus the original (variation null), each with its editor URL */
  variations: Array<{ id: string | null; label: string; href: string; current: boolean }>;
  /** the page shown: its path and query on this site (the browser's own origin) */
  pageUrl: string;
  /** pageUrl with ?ss_editor=preview, a path (form target = the iframe) */
  previewAction: string;
  /** pageUrl with ?ss_editor=source, a path (fetch POST, body: token) */
  sourceAction: string;
  /** for both */
  token: string;
  /** GET form action to open another URL (fields: variation, environment, url) */
  urlAction: string;
  environment: string;
  /** the experiment's pages, matches = this URL */
  pages: Array<{ id: string; key: string; matches: boolean }>;
  /** pageId to put on NEW changes (null = no pageId) */
  defaultPageId: string | null;
  /** applied before the variation's, already filtered to this page (read-only here) */
  sharedChanges: Change[];
  /** ALL the variation's changes (those for other pages kept as they are, shown as such) */
  changes: Change[];
  /** experiment version, posted back on save (409 when stale) */
  version: number;
  /** POST form (fields: changes = JSON array, version, variation, url, environment) */
  saveAction: string;
  /** editor role and variation !== null and experiment not archived */
  canSave: boolean;
  /** warn: saving changes what running visitors see (after publish) */
  running: boolean;
  /** the experiment page */
  backHref: string;
  /** e.g. "Saved." after a successful save */
  notice: string | null;
  /** a refused save (paths like changes[3].selector) */
  errors: Array<{ path: string; message: string }>;
  /** sessionStorage key for the unsaved draft + undo history */
  draftStorageKey: string;
}

/** The id of the element holding the state. */
export const STATE_ELEMENT_ID = "ss-editor-state";
