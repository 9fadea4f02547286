import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { startWebhookReceiver } from "./test/support/webhook-receiver";

/**
 * Three projects:
 * - `core`: plain Node. src/core must not need any Workers API, and this proves it.
 * - `workers`: the real Worker (wrangler.toml) inside workerd via Miniflare, with local
 *   KV/D1/Queue/R2. Nothing may leave the machine: any outbound `fetch` that a test has not
 *   mocked (see test/helpers/origin.ts) is answered here with a 599 naming the URL, except those
 *   to the webhook receiver on loopback (test/support/webhook-receiver.ts).
 * - `browser`: plain Node driving headless Chromium (playwright-core) against the demo shop
 *   behind `wrangler dev` on loopback ports (test/browser/harness.ts), plus the size budgets of
 *   the client script and the bootstrap.
 */

// Fixed secrets for tests, so a developer's .dev.vars never changes a test's outcome.
const testSecrets = { ADMIN_TOKEN: "test-admin-token", SIGNING_KEY: "test-signing-key" };
// wrangler.toml lists them in `secrets.required`; wrangler looks for them in .dev.vars or else
// process.env (this Node process only) and warns when they are missing.
Object.assign(process.env, testSecrets);

// The webhook receiver on loopback (test/support/webhook-receiver.ts): the only host the
// workers tests' outbound requests may reach; tests find it in the TEST_WEBHOOK_RECEIVER binding.
const webhookReceiver = await startWebhookReceiver();

// D1 schema for the workers tests: test/helpers/apply-migrations.ts applies these (idempotent).
const migrations = await readD1Migrations(fileURLToPath(new URL("./migrations", import.meta.url)));

/**
 * Test files run side by side, all three projects in one pool (docs/testing.md "Files side
 * by side"). Vitest's default is one fewer worker than cores — on CI's 2 cores, one file at a time —
 * but most of a file's wall time is not CPU: workerd starting for each workers file, `wrangler dev`
 * and Chromium starting for each browser file, waits for the queue. Overridable with
 * VITEST_MAX_WORKERS or `--maxWorkers`.
 */
const maxWorkers = 3;
/**
 * Running files side by side on 2 cores makes a CPU-bound test slower than alone; a limit that
 * only measures how busy the machine is would make it fail for nothing. Tests assert outcomes,
 * never durations, so this is only the point at which a hung test is called hung.
 */
const testTimeout = 30_000;
const hookTimeout = 60_000;

export default defineConfig({
  test: {
    maxWorkers,
    projects: [
      {
        test: {
          name: "core",
          environment: "node",
          maxWorkers,
          testTimeout,
          hookTimeout,
          include: ["test/core/**/*.test.ts"],
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...testSecrets,
                TEST_MIGRATIONS: migrations,
                TEST_WEBHOOK_RECEIVER: webhookReceiver.origin,
              },
              outboundService: async (request: Request) =>
                new URL(request.url).origin === webhookReceiver.origin
                  ? fetch(request.url, {
                      method: request.method,
                      headers: request.headers,
                      body: request.body === null ? null : await request.arrayBuffer(),
                      redirect: "manual",
                    })
                  : new Response(`splitstream tests: outbound request refused: ${request.url}`, {
                      status: 599,
                      headers: { "x-splitstream-test": "outbound-refused" },
                    }),
            },
          }),
        ],
        test: {
          name: "workers",
          maxWorkers,
          testTimeout,
          hookTimeout,
          include: ["test/**/*.test.ts"],
          exclude: ["test/core/**", "test/fixtures/**", "test/browser/**"],
          setupFiles: ["./test/helpers/apply-migrations.ts"],
        },
      },
      {
        test: {
          name: "browser",
          environment: "node",
          maxWorkers,
          include: ["test/browser/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
