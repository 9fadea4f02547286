/**
 * Vitest setup file (workers project): applies migrations/*.sql to the test D1 database before
 * each test file. `TEST_MIGRATIONS` is read in vitest.config.ts with readD1Migrations; applying
 * is idempotent (the d1_migrations table records what is done).
 */
import { applyD1Migrations, type D1Migration } from "cloudflare:test";
import { env } from "cloudflare:workers";

const { TEST_MIGRATIONS } = env as unknown as { TEST_MIGRATIONS: D1Migration[] };
await applyD1Migrations(env.DB, TEST_MIGRATIONS);
