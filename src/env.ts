/**
 * The Worker's bindings and secrets. Their types come from `worker-configuration.d.ts`, which
 * `npm run types` (`wrangler types`) generates from wrangler.toml; rerun it after changing
 * bindings, vars or `secrets.required` there.
 */
export interface Env extends Omit<Cloudflare.Env, "ROUTES"> {
  /**
   * Per-route configuration (docs/config.md): a TOML array of tables in wrangler.toml, or the
   * same as a JSON string (`wrangler dev --var ROUTES:'[…]'`). Untrusted: parse and validate it.
   */
  ROUTES?: unknown;
}
