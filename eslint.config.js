// @ts-check
import { builtinModules } from "node:module";
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";
import { defineConfig } from "eslint/config";

/**
 * Globals src/core (and src/shared) must not touch: they run unchanged in Node 22 (CLI, bench,
 * tests) and workerd.
 */
const workerOnlyOrIoGlobals = (dir) =>
  [
    ["fetch", "no I/O: take data as arguments"],
    ["Request", "work on plain data, not HTTP objects"],
    ["Response", "work on plain data, not HTTP objects"],
    ["Headers", "work on plain data, not HTTP objects"],
    ["caches", "Workers-only API"],
    ["HTMLRewriter", "Workers-only API (src/edge applies changes)"],
    ["WebSocket", "no I/O"],
    ["scheduler", "Workers-only API"],
    ["navigator", "must not read the host environment"],
    ["process", "Node-only: pass configuration in as arguments"],
    ["Buffer", "Node-only: use Uint8Array / TextEncoder"],
    ["require", "ESM only"],
    ["__dirname", "Node-only"],
    ["__filename", "Node-only"],
    ["global", "Node-only: use globalThis"],
  ].map(([name, why]) => ({ name, message: `${dir} must stay pure (${why}).` }));

/**
 * The purity rules of src/core, for `dir`: no Node built-ins, Workers or framework imports, no
 * imports from the Worker layers around it, no Workers/Node/I-O globals.
 */
const pureModuleRules = (dir, layersMessage) => ({
  "no-restricted-imports": [
    "error",
    {
      paths: builtinModules.map((name) => ({
        name,
        message: `${dir} must stay pure: no Node built-ins.`,
      })),
      patterns: [
        {
          group: ["node:*", "cloudflare:*", "@cloudflare/*", "hono", "hono/*"],
          message: `${dir} must stay pure: no Node, Workers or framework imports.`,
        },
        {
          regex: "^(\\.\\./)+(edge|events|api|admin|client|cli|env|index)(/|$)",
          message: layersMessage,
        },
      ],
    },
  ],
  "no-restricted-globals": ["error", ...workerOnlyOrIoGlobals(dir)],
  "no-restricted-properties": [
    "error",
    ...["fetch", "caches", "HTMLRewriter", "process", "Buffer"].map((property) => ({
      object: "globalThis",
      property,
      message: `${dir} must stay pure.`,
    })),
  ],
});

export default defineConfig(
  {
    ignores: [
      "node_modules/",
      ".wrangler/",
      "dist/",
      "coverage/",
      "worker-configuration.d.ts",
      "bench/results/",
      "test-results/",
    ],
  },
  js.configs.recommended,
  // Untyped on purpose: type-aware linting (recommendedTypeChecked) took 4x as long already on
  // the first few files; `npm run typecheck` does the type checking.
  tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" },
      ],
    },
  },
  {
    // Plain JS (config, launchers, scripts) runs in Node.
    files: ["**/*.{js,mjs,cjs}"],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // The platform-independent core: no Workers, Node or framework APIs.
    files: ["src/core/**/*.ts"],
    rules: pureModuleRules("src/core", "src/core must not depend on the Worker layers around it."),
  },
  {
    // Small one-concept modules used by both edge and events: they sit below those layers, and
    // are pure like src/core (consent.ts, tcf-string.ts and event-limits.ts use nothing but
    // standard JavaScript and URL APIs), so the bench and Node tests can run them as they are.
    files: ["src/shared/**/*.ts"],
    rules: pureModuleRules("src/shared", "src/shared must not depend on the layers that use it."),
  },
);
