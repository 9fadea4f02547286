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
 * The layers of src/ (docs/architecture.md "Layers"), lowest first: each may import only from
 * the ones below it. The table says which top-level directories (and the `env.ts` / `index.ts`
 * files) of src/ a layer must NOT import; src/index.ts is the wiring and nothing imports it.
 */
const LAYERS = {
  "src/core": ["shared", "edge", "events", "api", "admin", "client", "cli", "env", "index"],
  "src/shared": ["edge", "events", "api", "admin", "client", "cli", "env", "index"],
  "src/edge": ["events", "api", "admin", "cli", "index"],
  "src/events": ["edge", "api", "admin", "client", "cli", "index"],
  "src/api": ["admin", "client", "cli", "index"],
  "src/admin": ["client", "cli", "index"],
  // Its own browser bundle: core and the bootstrap contract types of src/edge/bootstrap.ts.
  "src/client": ["events", "api", "admin", "cli", "env", "index"],
  "src/cli": ["edge", "events", "api", "admin", "client", "env", "index"],
};

/** The `no-restricted-imports` pattern for the layers `dir` must not import (relative paths). */
const layerPattern = (dir) => ({
  regex: `^(\\.\\./)+(${LAYERS[dir].join("|")})(/|$)`,
  message: `${dir} must not import src/{${LAYERS[dir].join(",")}}: see the layers in docs/architecture.md.`,
});

/**
 * The purity rules of src/core, for `dir`: no Node built-ins, Workers or framework imports, no
 * imports from the layers above it (LAYERS), no Workers/Node/I-O globals.
 */
const pureModuleRules = (dir) => ({
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
        layerPattern(dir),
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

/** Only the layer rule, for the layers that may use Workers, Node or framework APIs. */
const layerRules = (dir) => ({
  "no-restricted-imports": ["error", { patterns: [layerPattern(dir)] }],
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
    rules: pureModuleRules("src/core"),
  },
  {
    // Small one-concept modules used by edge, events, api and admin: they sit below those layers,
    // and are pure like src/core (standard JavaScript and URL APIs only), so the bench and Node
    // tests can run them as they are.
    files: ["src/shared/**/*.ts"],
    rules: pureModuleRules("src/shared"),
  },
  {
    // The one exception: the error envelope of every endpoint builds a `Response` (standard in
    // Node 22 as in workerd); every other restricted global stays restricted.
    files: ["src/shared/error-response.ts"],
    rules: {
      "no-restricted-globals": [
        "error",
        ...workerOnlyOrIoGlobals("src/shared").filter(({ name }) => name !== "Response"),
      ],
    },
  },
  // The layers above: imports only (LAYERS).
  ...["src/edge", "src/events", "src/api", "src/admin", "src/client", "src/cli"].map((dir) => ({
    files: [`${dir}/**/*.ts`],
    rules: layerRules(dir),
  })),
);
