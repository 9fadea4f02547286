/**
 * Sizes of the browser scripts, raw and gzipped, against their budgets: the visual editor's two
 * bundles (the agent the edge inlines into every editor preview, and the editor page's script)
 * beside the visitor script /_ss/client.js. These are the committed builds
 * (scripts/build-client.mjs); test/browser/budget.test.ts holds the same budgets as tests.
 */
import { gzipSync } from "node:zlib";
import { EDITOR_JS } from "../src/admin/generated/editor-bundle";
import { CLIENT_JS } from "../src/client/generated/client-bundle";
import { AGENT_JS } from "../src/edge/generated/editor-agent-bundle";
import type { Row } from "./lib/types";

export const name = "editor-size";
export const title =
  "Browser script sizes: the visual editor's agent and editor.js beside client.js";
export const order = 5;

const SCRIPTS: Array<{ subject: string; js: string; gzipBudget: number }> = [
  { subject: "client.js", js: CLIENT_JS, gzipBudget: 5 * 1024 },
  { subject: "editor agent (inlined in previews)", js: AGENT_JS, gzipBudget: 6 * 1024 },
  { subject: "editor.js", js: EDITOR_JS, gzipBudget: 30 * 1024 },
];

export function run(): Promise<Row[]> {
  const rows = SCRIPTS.flatMap(({ subject, js, gzipBudget }): Row[] => {
    const gzipped = gzipSync(js).byteLength;
    return [
      { subject: `${subject}, raw`, value: js.length, unit: "bytes" },
      {
        subject: `${subject}, gzip`,
        value: gzipped,
        unit: "bytes",
        target: `≤ ${gzipBudget / 1024} KB`,
        status: gzipped <= gzipBudget ? "PASS" : "MISS",
      },
    ];
  });
  return Promise.resolve(rows);
}
