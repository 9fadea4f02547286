#!/usr/bin/env bash
# Rewrites test/fixtures/openapi.json from the running code: starts `wrangler dev` on a loopback
# port, fetches /_ss/api/v1/openapi.json and
# stops the server. test/api/openapi-document.test.ts compares the served document with it, so a
# refactor that changes the API's document fails until the change is meant and snapshotted.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
port="${PORT:-8799}"
log="$(mktemp)"
wrangler dev --port "$port" --ip 127.0.0.1 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/_ss/api/v1/openapi.json"; then break; fi
  sleep 1
done
curl -sf -H 'Accept-Encoding: identity' "http://127.0.0.1:$port/_ss/api/v1/openapi.json" |
  node -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const doc = JSON.parse(s);
      require("fs").writeFileSync("test/fixtures/openapi.json", JSON.stringify(doc, null, 1) + "\n");
      console.log(`test/fixtures/openapi.json: ${Object.keys(doc.paths).length} paths`);
    });
  '
