/**
 * The editor page's state as the browser side reads it from
 * `<script type="application/json" id="ss-editor-state">`: the `EditorState` that
 * src/admin/editor-page.ts renders (browser code may not import src/admin, so the shape is
 * repeated here; test/core/editor-model.test.ts fails to type-check when the two drift apart).
 */
import type { Change } from "../core/datafile-types";

export interface PageState {
  experiment: {
    id: string;
    key: string;
    name: string;
    status: string;
    type: "ab" | "multivariate";
  };
  variation: { id: string; key: string; name: string } | null;
  variations: Array<{ id: string | null; label: string; href: string; current: boolean }>;
  pageUrl: string;
  previewAction: string;
  sourceAction: string;
  token: string;
  urlAction: string;
  environment: string;
  pages: Array<{ id: string; key: string; matches: boolean }>;
  defaultPageId: string | null;
  sharedChanges: Change[];
  changes: Change[];
  version: number;
  saveAction: string;
  canSave: boolean;
  running: boolean;
  backHref: string;
  notice: string | null;
  errors: Array<{ path: string; message: string }>;
  draftStorageKey: string;
}

/** The id of the state's script element. */
export const STATE_ELEMENT_ID = "ss-editor-state";
