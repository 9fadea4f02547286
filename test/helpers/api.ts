/**
 * A tiny client for the management API in tests: requests go through the Worker's own fetch
 * handler (wrangler.toml's ROUTES covers localhost/*), authenticated with the test ADMIN_TOKEN
 * unless told otherwise.
 */
import { exports } from "cloudflare:workers";

/** vitest.config.ts sets ADMIN_TOKEN to this. */
export const ADMIN_TOKEN = "test-admin-token";
export const API_ORIGIN = "http://localhost";
export const API_BASE = `${API_ORIGIN}/_ss/api/v1`;

export interface ApiOptions {
  /** Bearer token; default ADMIN_TOKEN; null = no Authorization header. */
  token?: string | null;
  /** JSON-encoded unless it is already a string (sent as is, for malformed-JSON tests). */
  body?: unknown;
  headers?: Record<string, string>;
}

/** `api("POST", "/projects", { body: { name: "Shop" } })` → the Response. */
export async function api(
  method: string,
  path: string,
  options: ApiOptions = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null && headers.authorization === undefined)
    headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    if (headers["content-type"] === undefined) headers["content-type"] = "application/json";
  }
  return exports.default.fetch(`${API_BASE}${path}`, { method, headers, body });
}

/** Like api(), but expects `status` and returns the parsed JSON body. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into bodies freely
export async function apiJson<T = any>(
  method: string,
  path: string,
  status: number,
  options: ApiOptions = {},
): Promise<T> {
  const response = await api(method, path, options);
  const text = await response.text();
  if (response.status !== status)
    throw new Error(`${method} ${path}: expected ${status}, got ${response.status}: ${text}`);
  return (text === "" ? null : JSON.parse(text)) as T;
}

/** The error envelope of a response. */
export interface ApiErrorBody {
  error: { code: string; message: string; details: unknown };
}

/** Creates a project as admin and returns it (with its environments). */
export async function createProject(
  name = `project ${crypto.randomUUID().slice(0, 8)}`,
  options: ApiOptions = {},
): Promise<ProjectWithEnvironments> {
  return apiJson<ProjectWithEnvironments>("POST", "/projects", 201, { ...options, body: { name } });
}

/**
 * Signs in to the admin pages through the form (as a browser does) and returns the session
 * cookie pair `ss_admin=<session id>` for a `Cookie` header. The cookie never holds the token
 * (docs/admin.md "Sessions"), so tests cannot make one up.
 */
export async function adminSession(
  token = ADMIN_TOKEN,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await exports.default.fetch(`${API_ORIGIN}/_ss/admin/login`, {
    method: "POST",
    redirect: "manual",
    headers: {
      "sec-fetch-site": "same-origin",
      "content-type": "application/x-www-form-urlencoded",
      ...headers,
    },
    body: new URLSearchParams({ token }).toString(),
  });
  const setCookie = response.headers.get("set-cookie");
  if (response.status !== 303 || !setCookie?.startsWith("ss_admin="))
    throw new Error(`admin sign-in: expected 303 with a session, got ${response.status}`);
  return setCookie.split(";")[0]!;
}

/** Creates a token as admin and returns it with its secret (`token`). */
export async function createToken(
  role: "admin" | "editor" | "viewer",
  extra: { name?: string; expiresAt?: string } = {},
): Promise<{ id: string; token: string; role: string; prefix: string }> {
  return apiJson("POST", "/tokens", 201, {
    body: { name: extra.name ?? `${role} token`, role, ...extra },
  });
}

export interface EnvironmentJson {
  id: string;
  projectId: string;
  key: string;
  name: string;
  sdkKey: string;
  revision: number;
  requireReview: boolean;
  datafileUrl: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface ProjectWithEnvironments {
  id: string;
  name: string;
  description: string;
  accountId: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  environments: EnvironmentJson[];
}
