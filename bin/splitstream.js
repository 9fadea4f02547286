#!/usr/bin/env node
// The `splitstream` command (package.json `bin`): runs src/cli/main.ts from source through tsx's
// loader, scoped to that import. Works as `npx splitstream`, `npm run cli --`, and from a global
// `npm link` (imports resolve from this file's real location, so the repo's tsx is used).
import { tsImport } from "tsx/esm/api";

const { main } = await tsImport("../src/cli/main.ts", import.meta.url);
process.exitCode = await main(process.argv.slice(2));
