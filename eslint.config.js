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
  "src/core": [
    "shared",
    "edge",
    "events",
    "api",
    "admin",
    "client",
    "editor",
    "cli",
    "env",
    "index",
  ],
  "src/shared": ["edge", "events", "api", "admin", "client", "editor", "cli", "env", "index"],
  "src/edge": ["events", "api", "admin", "cli", "index"],
  "src/events": ["edge", "api", "admin", "client", "editor", "cli", "index"],
  "src/api": ["admin", "client", "editor", "cli", "index"],
  "src/admin": ["client", "cli", "index"],
  // Its own browser bundle: core's datafile types and shared's bootstrap contract
  // (src/shared/bootstrap-types.ts). The edge imports the client (the bundle it serves and
  // src/client/config-types.ts), never the other way round.
  "src/client": ["edge", "events", "api", "admin", "editor", "cli", "env", "index"],
  // The visual editor's two browser bundles (the admin page's script and the agent inside the
  // previewed page): pure core (selector checks, change types) and the page state's contract
  // (src/shared/editor-state.ts). The edge serves the agent and the admin the editor, as
  // generated string modules; nothing imports src/editor's code.
  "src/editor": ["edge", "events", "api", "admin", "client", "cli", "env", "index"],
  "src/cli": ["edge", "events", "api", "admin", "client", "editor", "env", "index"],
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

/**
 * The layers inside src/api (docs/architecture.md "Inside src/api"), lowest first: base
 * (context.ts, errors.ts, ids.ts: every file at the root but app.ts), store/, schemas/, services/,
 * http/, routes/, app.ts. Per layer: its files, how deep they sit below src/api (0 for the root
 * files, 1 for a sub-directory), the src/api layers above it, which it must NOT import, and the
 * packages it must not use (so D1 code and domain rules stay callable without a Hono context:
 * from the admin pages, the scheduled handler, the tests).
 */
const API_LAYERS = {
  "src/api (base)": {
    files: ["src/api/*.ts"],
    ignores: ["src/api/app.ts"],
    depth: 0,
    layers: ["store", "schemas", "services", "http", "routes", "app"],
    packages: [],
  },
  "src/api/store": {
    files: ["src/api/store/**/*.ts"],
    depth: 1,
    layers: ["schemas", "services", "http", "routes", "app"],
    packages: ["hono", "hono/*", "@hono/*", "zod", "zod/*"],
  },
  "src/api/schemas": {
    files: ["src/api/schemas/**/*.ts"],
    depth: 1,
    layers: ["store", "services", "http", "routes", "app"],
    // @hono/zod-openapi stays allowed: its `z` carries the `.openapi()` metadata.
    packages: ["hono", "hono/*"],
  },
  "src/api/services": {
    files: ["src/api/services/**/*.ts"],
    depth: 1,
    layers: ["http", "routes", "app"],
    packages: ["hono", "hono/*", "@hono/*"],
  },
  "src/api/http": {
    files: ["src/api/http/**/*.ts"],
    depth: 1,
    layers: ["routes", "app"],
    packages: [],
  },
  "src/api/routes": {
    files: ["src/api/routes/**/*.ts"],
    depth: 1,
    layers: ["app"],
    packages: [],
  },
};

/**
 * The `no-restricted-imports` pattern for the src/api layers `layer` must not import. The same
 * directory is spelled per depth (`./store/…` from src/api/errors.ts, `../store/…` from
 * src/api/services/x.ts), or the long way round (`../../api/store/…`); a relative path that leaves
 * src/api (`../../edge/routes` from services/) never matches.
 */
const apiLayerPattern = (layer) => {
  const { depth, layers } = API_LAYERS[layer];
  const here = depth === 0 ? "\\./" : "\\.\\./".repeat(depth);
  return {
    regex: `^(${here}|(\\.\\./)+api/)(${layers.join("|")})(/|$)`,
    message: `${layer} must not import src/api/{${layers.join(",")}}: see the layers of src/api in docs/architecture.md.`,
  };
};

/** The rule for one src/api layer: the layers of src/ (LAYERS), of src/api, and its packages. */
const apiLayerRules = (layer) => {
  const { packages } = API_LAYERS[layer];
  return {
    "no-restricted-imports": [
      "error",
      {
        patterns: [
          layerPattern("src/api"),
          apiLayerPattern(layer),
          ...(packages.length === 0
            ? []
            : [
                {
                  group: packages,
                  message: `${layer} must not use ${packages.join(", ")}: see the layers of src/api in docs/architecture.md.`,
                },
              ]),
        ],
      },
    ],
  };
};

/**
 * src/admin reaches the API through its services (and the base types), never through the HTTP
 * layer: not routes/ or http/ (docs/architecture.md "Inside src/api").
 */
const adminApiPattern = {
  regex: "^(\\.\\./)+api/(routes|http)(/|$)",
  message:
    "src/admin must not import src/api/{routes,http}: call src/api/services (docs/architecture.md).",
};

/**
 * On: the admin pages call src/api/services for everything (src/admin/app.ts), so src/admin may
 * not import src/api/app.ts either — no in-process requests through the API's Hono app.
 */
const ADMIN_MAY_NOT_IMPORT_API_APP = true;

const adminApiAppPattern = {
  regex: "^(\\.\\./)+api/app(/|$)",
  message:
    "src/admin must not import src/api/app.ts: call src/api/services (docs/architecture.md).",
};

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
  ...["src/edge", "src/events", "src/api", "src/admin", "src/client", "src/editor", "src/cli"].map(
    (dir) => ({
      files: [`${dir}/**/*.ts`],
      rules: layerRules(dir),
    }),
  ),
  // The layers inside src/api (API_LAYERS); each entry replaces the src/api one above for its
  // files, so it repeats LAYERS' pattern.
  ...Object.entries(API_LAYERS).map(([layer, { files, ignores }]) => ({
    files,
    ...(ignores ? { ignores } : {}),
    rules: apiLayerRules(layer),
  })),
  {
    files: ["src/admin/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            layerPattern("src/admin"),
            adminApiPattern,
            ...(ADMIN_MAY_NOT_IMPORT_API_APP ? [adminApiAppPattern] : []),
          ],
        },
      ],
    },
  },
);
