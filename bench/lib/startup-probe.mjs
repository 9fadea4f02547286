/**
 * One start-up of a Worker bundle in a fresh V8 context, for bench/edge-startup.bench.ts:
 *
 *   node --experimental-vm-modules bench/lib/startup-probe.mjs <bundle.js>
 *
 * Prints one JSON line: `compileMs` (V8 parses and compiles the module: the whole script is
 * scanned, function bodies pre-parsed), `linkMs` and `evaluateMs` (the module's top-level code and
 * everything it runs at load). The bundle's `cloudflare:workers` import is a synthetic module with
 * empty `DurableObject` / `WorkerEntrypoint` classes; nothing else is provided, so a bundle whose
 * top-level code used Workers-only globals would fail here (ours must not). Run once per process:
 * V8 keeps no code cache between processes, so each run is a cold parse, as in a fresh isolate.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import vm from "node:vm";

const file = process.argv[2];
if (!file) throw new Error("usage: startup-probe.mjs <bundle.js>");
const source = readFileSync(file, "utf8");
const context = vm.createContext({
  console,
  URL,
  URLSearchParams,
  Request,
  Response,
  Headers,
  TextEncoder,
  TextDecoder,
  crypto,
  fetch,
  setTimeout,
  clearTimeout,
  queueMicrotask,
  structuredClone,
  atob,
  btoa,
  ReadableStream,
  WritableStream,
  TransformStream,
  AbortController,
});

const t0 = performance.now();
const module = new vm.SourceTextModule(source, { identifier: "worker.js", context });
const t1 = performance.now();
await module.link((specifier) => {
  if (specifier !== "cloudflare:workers") throw new Error(`unexpected import ${specifier}`);
  return new vm.SyntheticModule(
    ["DurableObject", "WorkerEntrypoint"],
    function () {
      this.setExport("DurableObject", class DurableObject {});
      this.setExport("WorkerEntrypoint", class WorkerEntrypoint {});
    },
    { identifier: specifier, context },
  );
});
const t2 = performance.now();
await module.evaluate();
const t3 = performance.now();
const exports = Object.keys(module.namespace);
console.log(JSON.stringify({ compileMs: t1 - t0, linkMs: t2 - t1, evaluateMs: t3 - t2, exports }));
