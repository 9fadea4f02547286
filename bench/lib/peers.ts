/**
 * Loads the peer SDKs the way a production server bundle would run them.
 *
 * GrowthBook's package entry (dist/esm) reads `process.env.NODE_ENV` on every decision step
 * (for debug logging), and in Node every `process.env` read is a slow native lookup. Any
 * bundled deployment (a Worker built by wrangler/esbuild, a Next.js server build…) replaces
 * those reads with "production" at build time, so by default we load GrowthBook's own
 * production bundle (dist/bundles/esm.min.js, where they are already stripped): the fairest
 * build for the peer. `BENCH_GROWTHBOOK_BUILD=package` uses the plain package entry instead.
 *
 * The Optimizely SDK ships pre-minified bundles without such reads; its package entry is used.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

export type GrowthBookModule = typeof import("@growthbook/growthbook");
export type OptimizelyModule = typeof import("@optimizely/optimizely-sdk");

export interface LoadedGrowthBook {
  mod: GrowthBookModule;
  build: string;
  version: string;
}

export async function loadGrowthBook(): Promise<LoadedGrowthBook> {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve("@growthbook/growthbook/package.json");
  const version = (require(pkgPath) as { version: string }).version;
  if (process.env.BENCH_GROWTHBOOK_BUILD === "package") {
    return {
      mod: await import("@growthbook/growthbook"),
      build: "package entry (dist/esm)",
      version,
    };
  }
  const bundle = pathToFileURL(join(dirname(pkgPath), "dist/bundles/esm.min.js")).href;
  return {
    mod: (await import(bundle)) as GrowthBookModule,
    build: "production bundle (dist/bundles/esm.min.js)",
    version,
  };
}

export async function loadOptimizely(): Promise<{ mod: OptimizelyModule; version: string }> {
  const require = createRequire(import.meta.url);
  // The package's exports map hides package.json; find it next to the resolved entry.
  const entry = require.resolve("@optimizely/optimizely-sdk");
  const pkg = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as {
    version: string;
  };
  const version = pkg.version;
  return { mod: await import("@optimizely/optimizely-sdk"), version };
}
