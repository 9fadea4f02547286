#!/usr/bin/env node
// Builds the `splitstream` CLI: src/cli/main.ts and everything it imports (src/core) bundled by
// esbuild into one plain-JavaScript ES module, so a command starts without compiling TypeScript:
//   dist/cli/splitstream.mjs   the bundle (exports main); bin/splitstream.js imports it
//   dist/cli/manifest.json     every input file: its mtime and size, and a hash of the text built
// dist/ is gitignored: the bundle is built by `npm install` / `npm ci` (the `prepare` script), by
// `pretest`, `prestart` and `npm run build:cli`, and — when it is missing or an input changed
// since — by bin/splitstream.js itself just before it runs, so the command always runs the
// current sources (README.md, "Scripts"; docs/architecture.md, "Layers").
// The target is node20: `splitstream` runs on whatever `node` is first on PATH, which outside npm
// scripts and npx is the system's (Node 20 on the dev machine).
//   node scripts/build-cli.mjs            build (prints the size); exit 1 when it cannot
//   node scripts/build-cli.mjs --lenient  the same, but exit 0 when it cannot (the npm hooks: a
//                                         syntax error in src/cli must not fail `npm install` or
//                                         every test; the CLI reports it when run)
//   node scripts/build-cli.mjs --check    exit 1 when the bundle is missing or stale
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Where the CLI is built; tests build into a directory of their own. */
export const OUT_DIR = join(root, "dist", "cli");
/** The bundle in a build directory. */
export const bundleFile = (outDir = OUT_DIR) => join(outDir, "splitstream.mjs");
const manifestFile = (outDir) => join(outDir, "manifest.json");
/** The bundle as an import() specifier. */
export const BUNDLE_URL = pathToFileURL(bundleFile()).href;

/** Files that shape the bundle without being one of its modules. */
const BUILD_INPUTS = ["scripts/build-cli.mjs", "tsconfig.json"];
const LOADERS = { ".ts": "ts", ".mts": "ts", ".js": "js", ".mjs": "js", ".json": "json" };

// node:crypto is loaded only when a hash is needed: loading it costs more (≈ 7 ms) than the whole
// freshness check of an unchanged tree, which bin/splitstream.js runs before every command. The
// require function too is made on first need (it sets up Node's CommonJS loader).
let require;
const hash = (bytes) =>
  (require ??= createRequire(import.meta.url))("node:crypto")
    .createHash("sha256")
    .update(bytes)
    .digest("base64url")
    .slice(0, 16);

/**
 * Reads an input for the build: [mtimeMs, size, hash] and its bytes. The stat comes first, so a
 * change made while the build runs leaves a newer mtime than the one recorded, and the next
 * freshness check compares hashes, finds the difference and builds again.
 */
function readInput(path) {
  const s = statSync(join(root, path));
  const bytes = readFileSync(join(root, path));
  return { record: [s.mtimeMs, s.size, hash(bytes)], bytes };
}

/**
 * True when the bundle exists and every input is as it was built: same mtime and size (one stat
 * per input, ≈ 20 files: cheap enough for every CLI run), or else the same content (a `touch`, a
 * checkout that rewrote a file unchanged).
 */
export function bundleIsFresh(outDir = OUT_DIR) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestFile(outDir), "utf8"));
    statSync(bundleFile(outDir));
  } catch {
    return false;
  }
  const inputs = Object.entries(manifest.inputs ?? {});
  if (inputs.length === 0) return false;
  for (const [path, [mtimeMs, size, recordedHash]] of inputs) {
    try {
      const s = statSync(join(root, path));
      if (s.mtimeMs === mtimeMs && s.size === size) continue;
      if (hash(readFileSync(join(root, path))) !== recordedHash) return false;
    } catch {
      return false; // gone
    }
  }
  return true;
}

/** Writes a file through a temporary one, so a concurrent reader sees the old or the new text. */
function writeAtomically(file, text) {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, file);
}

/**
 * Bundles src/cli into `outDir`/splitstream.mjs and records its inputs in `outDir`/manifest.json.
 * Returns the bundle's size in bytes. esbuild is imported here, not at the top, so that checking
 * freshness (every CLI run) does not load it.
 */
export async function buildCli(outDir = OUT_DIR) {
  const { build } = await import("esbuild");
  const inputs = {};
  for (const path of BUILD_INPUTS) inputs[path] = readInput(path).record;
  const result = await build({
    absWorkingDir: root,
    entryPoints: ["src/cli/main.ts"],
    bundle: true,
    format: "esm",
    platform: "node",
    target: ["node20"],
    // Not minified: a stack trace from the CLI stays readable, and size does not matter here.
    minify: false,
    charset: "utf8",
    legalComments: "none",
    tsconfig: join(root, "tsconfig.json"),
    banner: {
      js: "// Generated by scripts/build-cli.mjs from src/cli (npm run build:cli): do not edit.",
    },
    // Every module is read here, so the manifest records exactly the text that was compiled.
    plugins: [
      {
        name: "record-inputs",
        setup(b) {
          b.onLoad({ filter: /\.(m?ts|m?js|json)$/ }, (args) => {
            const path = relative(root, args.path).split("\\").join("/");
            const { record, bytes } = readInput(path);
            inputs[path] = record;
            return { contents: bytes, loader: LOADERS[extname(path)] };
          });
        },
      },
    ],
    write: false,
    logLevel: "error",
  });
  const js = result.outputFiles[0].text;
  mkdirSync(outDir, { recursive: true });
  // Bundle first, manifest second: whoever sees the new manifest also finds the new bundle.
  writeAtomically(bundleFile(outDir), js);
  writeAtomically(manifestFile(outDir), `${JSON.stringify({ inputs })}\n`);
  return Buffer.byteLength(js);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const where = relative(root, bundleFile());
  if (process.argv.includes("--check")) {
    if (!bundleIsFresh()) {
      console.error(`build-cli: ${where} is missing or stale; run npm run build:cli`);
      process.exit(1);
    }
    console.log(`build-cli: ${where} is up to date`);
  } else {
    try {
      const bytes = await buildCli();
      console.log(`build-cli: wrote ${where} (${bytes} bytes)`);
    } catch (error) {
      // esbuild has already printed compile errors (logLevel "error"); anything else is said here.
      if (!error?.errors) console.error(`build-cli: ${error?.message ?? error}`);
      if (process.argv.includes("--lenient")) {
        console.error(`build-cli: ${where} not built; bin/splitstream.js will try again when run`);
      } else {
        process.exit(1);
      }
    }
  }
}
