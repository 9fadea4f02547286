/**
 * Where the admin pages live. Its own module, with nothing else in it, because src/index.ts routes
 * on it at every request and loads the admin itself only for an admin request (docs/architecture.md
 * "Start-up").
 */
export const ADMIN_BASE_PATH = "/_ss/admin";
