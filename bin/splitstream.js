#!/usr/bin/env node
// The `splitstream` command (package.json `bin`): runs dist/cli/splitstream.mjs, the JavaScript
// bundle of src/cli built by scripts/build-cli.mjs. It is built on `npm install` / `npm ci`
// (`prepare`); when it is missing or one of its sources changed since (an edit, a pull) it is
// rebuilt here first (≈ 0.3 s with esbuild), so the command always runs the current code without
// compiling TypeScript on every call. Works as `npx splitstream`, `npm run cli --`, and from a
// global `npm link` (paths resolve from this file's real location). Runs on Node 20 and later.
import { BUNDLE_URL, buildCli, bundleIsFresh } from "../scripts/build-cli.mjs";

if (!bundleIsFresh()) {
  try {
    await buildCli();
  } catch (error) {
    // esbuild prints the compile errors itself; a missing esbuild means no devDependencies.
    const missing = error?.code === "ERR_MODULE_NOT_FOUND";
    process.stderr.write(
      missing
        ? "splitstream: dist/cli/splitstream.mjs is missing or stale and esbuild is not installed to build it; run npm install\n"
        : `splitstream: cannot build dist/cli/splitstream.mjs from src/cli (${error?.message ?? error})\n`,
    );
    process.exit(1);
  }
}
const { main } = await import(BUNDLE_URL);
process.exitCode = await main(process.argv.slice(2));
