// @ts-check
import { builtinModules } from "node:module";
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";
import { defineConfig } from "eslint/config";

/** Globals src/core must not touch: it runs unchanged in Node 22 (CLI, bench, tests) and workerd. */
const workerOnlyOrIoGlobals = [
  ["fetch", "core does no I/O: take data as arguments"],
  ["Request", "core works on plain data, not HTTP objects"],
  ["Response", "core works on plain data, not HTTP objects"],
  ["Headers", "core works on plain data, not HTTP objects"],
  ["caches", "Workers-only API"],
  ["HTMLRewriter", "Workers-only API (src/edge applies changes)"],
  ["WebSocket", "core does no I/O"],
  ["scheduler", "Workers-only API"],
  ["navigator", "core must not read its host environment"],
  ["process", "Node-only: pass configuration in as arguments"],
  ["Buffer", "Node-only: use Uint8Array / TextEncoder"],
  ["require", "ESM only"],
  ["__dirname", "Node-only"],
  ["__filename", "Node-only"],
  ["global", "Node-only: use globalThis"],
].map(([name, why]) => ({ name, message: `src/core must stay pure (${why}).` }));

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
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: builtinModules.map((name) => ({
            name,
            message: "src/core must stay pure: no Node built-ins.",
          })),
          patterns: [
            {
              group: ["node:*", "cloudflare:*", "@cloudflare/*", "hono", "hono/*"],
              message: "src/core must stay pure: no Node, Workers or framework imports.",
            },
            {
              regex: "^(\\.\\./)+(edge|events|api|admin|client|cli|env|index)(/|$)",
              message: "src/core must not depend on the Worker layers around it.",
            },
          ],
        },
      ],
      "no-restricted-globals": ["error", ...workerOnlyOrIoGlobals],
      "no-restricted-properties": [
        "error",
        ...["fetch", "caches", "HTMLRewriter", "process", "Buffer"].map((property) => ({
          object: "globalThis",
          property,
          message: "src/core must stay pure.",
        })),
      ],
    },
  },
);
