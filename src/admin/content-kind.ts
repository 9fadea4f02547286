/**
 * What one kind of project content (pages, audiences, events, lists, attributes, groups) brings to
 * the admin's list / create / edit / archive / delete pages (src/admin/content-pages.ts; docs/admin.md
 * "Project content"): its service calls with the API's own request schemas, its form state, how
 * a posted form becomes the API's request body, and how the API's 422 paths find the form's fields
 * again when the form's names are not the body's paths (rows left out, `["not", leaf]` wrappers).
 */
import type { z } from "@hono/zod-openapi";
import type { Actor } from "../api/context";
import { ApiError, conflict, type ValidationDetail } from "../api/errors";
import { parseBody } from "../api/schemas/validation-error";
import { requireActorRole } from "../api/services/auth";
import { isPendingReview } from "../api/services/review";
import {
  createResource,
  deleteResource,
  getResource,
  listResources,
  updateResource,
  type IfMatch,
  type Page,
  type PageRequest,
  type ResourceSpec,
} from "../api/services/resources";
import type { BaseRow } from "../api/store/rows";
import type { Env } from "../env";
import type { PostedForm } from "./forms";
import type { Html } from "./ui";

/** Who asks, for which project, from where. */
export interface KindContext {
  env: Env;
  actor: Actor;
  projectId: string;
  /** The request URL as the Worker received it (the URL tester compares hosts with it). */
  url: URL;
  /** Editor or admin: forms and buttons are shown (the services check the role again). */
  editable: boolean;
}

/** The fields of every resource's JSON the pages rely on. */
export interface ContentJson {
  id: string;
  projectId: string;
  version: number;
  archived?: boolean;
}

/**
 * A resource's service calls with erased body types: a posted body is parsed with the API's own
 * zod schema first, so a refused field reads exactly as the API would answer it (422
 * `validation_failed` with `$.body…` paths).
 */
export interface ResourceCalls<Json, Item> {
  /** Singular noun of the API (`page`), for 404 messages. */
  type: string;
  list(env: Env, actor: Actor, projectId: string, page: PageRequest): Promise<Page<Json | Item>>;
  get(env: Env, actor: Actor, id: string): Promise<Json>;
  create(env: Env, actor: Actor, projectId: string, body: unknown): Promise<Json>;
  update(env: Env, actor: Actor, id: string, body: unknown, ifMatch: IfMatch): Promise<Json>;
  remove(env: Env, actor: Actor, id: string, ifMatch: IfMatch): Promise<void>;
}

/**
 * The calls of a resource spec (src/api/services/resources.ts) with its create and update
 * schemas (src/api/schemas/<resource>.ts). Writes check the role before the body, in the API's
 * order (its `requireRole` middleware runs before the validator).
 */
export function resourceCalls<
  Row extends BaseRow,
  Json,
  Create,
  Update extends object,
  ItemRow extends { id: string },
  Item,
>(
  spec: ResourceSpec<Row, Json, Create, Update, ItemRow, Item>,
  schemas: { create: z.ZodType<Create>; update: z.ZodType<Update> },
): ResourceCalls<Json, Item> {
  return {
    type: spec.type,
    list: (env, actor, projectId, page) => listResources(env, actor, spec, projectId, page),
    get: async (env, actor, id) => (await getResource(env, actor, spec, id)).json,
    async create(env, actor, projectId, body) {
      requireActorRole(actor, "editor");
      const parsed = parseBody(schemas.create, body);
      return (await createResource(env, actor, spec, projectId, parsed)).json;
    },
    async update(env, actor, id, body, ifMatch) {
      requireActorRole(actor, "editor");
      const parsed = parseBody(schemas.update, body);
      const result = await updateResource(env, actor, spec, id, parsed, ifMatch);
      // Only experiments make change requests (docs/approvals.md), and they have their own pages;
      // content a live reviewed experiment uses refuses an editor with 403 (shown as any error).
      // Should a spec here ever answer a request, its editor is told the change went to review.
      if (isPendingReview(result)) throw conflict(result.message, result);
      return result.json;
    },
    async remove(env, actor, id, ifMatch) {
      await deleteResource(env, actor, spec, id, ifMatch);
    },
  };
}

/**
 * Every item of a project's resource, page by page (the API's pages hold at most 100); capped at
 * `max` so a select of options stays a select.
 */
export async function listAll<Json, Item>(
  calls: Pick<ResourceCalls<Json, Item>, "list">,
  env: Env,
  actor: Actor,
  projectId: string,
  max = 1000,
): Promise<Array<Json | Item>> {
  const out: Array<Json | Item> = [];
  let cursor: string | null = null;
  do {
    const page: Page<Json | Item> = await calls.list(env, actor, projectId, { limit: 100, cursor });
    out.push(...page.items);
    cursor = page.after;
  } while (cursor !== null && out.length < max);
  return out;
}

/** What a form's state sends: the API body, and how the API's problem paths map to field names. */
export interface BodyPlan {
  body: unknown;
  /** The error with its detail paths renamed to the form's field names; absent: they already are. */
  remap?: (error: ApiError) => ApiError;
}

/** The detail of a validation problem (`{path, message}`), as src/admin/forms.ts reads it. */
function isDetail(value: unknown): value is ValidationDetail {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as ValidationDetail).path === "string" &&
    typeof (value as ValidationDetail).message === "string"
  );
}

/** The same error with every `{path, message}` detail passed through `map` (status, code, message kept). */
export function mapDetails(
  error: ApiError,
  map: (detail: ValidationDetail) => ValidationDetail,
): ApiError {
  if (!Array.isArray(error.details)) return error;
  const details: unknown[] = error.details.map((d: unknown) => (isDetail(d) ? map(d) : d));
  return new ApiError(error.status, error.code, error.message, details, error.headers);
}

/**
 * Maps `$.body.<prefix>[k]…` to `$.body.<prefix>[rows[k]]…`: the body's array left out the blank
 * (or removed) rows of the form, so its index k is the form's row `rows[k]`.
 */
export function remapRowIndexes(
  error: ApiError,
  prefix: string,
  rows: readonly number[],
): ApiError {
  const pattern = new RegExp(`^\\$\\.body\\.${prefix}\\[(\\d+)\\](.*)$`);
  return mapDetails(error, (detail) => {
    const match = pattern.exec(detail.path);
    const row = match ? rows[Number(match[1])] : undefined;
    return match && row !== undefined
      ? { path: `$.body.${prefix}[${row}]${match[2]}`, message: detail.message }
      : detail;
  });
}

/** A posted number field: "" → null, a decimal number → that number, anything else as typed (the schema names the problem). */
export function numberOrText(text: string): number | string | null {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed) ? Number(trimmed) : trimmed;
}

/** One column of a list page. */
export interface Column<Item, Extra> {
  header: string;
  /** Right-aligned numbers. */
  numeric?: boolean;
  cell(item: Item, extra: Extra, ctx: KindContext): Html | string;
}

/**
 * One kind of project content in the admin. `State` is what its form holds (strings as typed, so
 * a refused form comes back as it was sent); `Extra` what its form needs from the rest of the
 * project (pages for an event's page, lists and attributes for an audience…).
 */
export interface ContentKind<Json extends ContentJson, Item extends { id: string }, State, Extra> {
  /** Path segment under /_ss/admin/projects/{id}/ (the API's plural). */
  plural: string;
  /** Singular noun for headings and buttons ("page"). */
  singular: string;
  /** Heading of the list ("Pages"). */
  title: string;
  /** A sentence under the list's heading: what it is, which API it matches. */
  about: Html;
  calls: ResourceCalls<Json, Item>;
  /** Whether the resource has `archived` (archive/unarchive buttons). */
  archivable: boolean;
  /** The form posts files (`multipart/form-data`). */
  multipart?: boolean;
  /** Largest form body accepted (Content-Length), when the kind bounds it. */
  maxBodyBytes?: number;
  load(ctx: KindContext): Promise<Extra>;
  /** How a row names the resource (its key, else its name), and that column's heading. */
  label(item: Json | Item): string;
  labelHeader: "Key" | "Name";
  columns: ReadonlyArray<Column<Json | Item, Extra>>;
  blank(extra: Extra): State;
  fromJson(json: Json, extra: Extra): State;
  /** The state of a posted form; applies its "add a row" / "switch mode" buttons (`_refresh`). */
  read(form: PostedForm, extra: Extra, current: Json | null): State;
  /** The API body of a create or update; may throw the 422 of a field the API never sees (JSON text). */
  body(state: State, op: "create" | "update", current: Json | null): BodyPlan;
  /** The form's fields (inside the form, before its buttons); `current` is null on a create. */
  fields(
    state: State,
    errors: Map<string, string>,
    extra: Extra,
    ctx: KindContext,
    current: Json | null,
  ): Html;
  /** Buttons after "Save" (add a row, switch modes); `current` is null on a create. */
  buttons?(state: State, current: Json | null): Html;
  /** The read-only view (viewers). */
  summary(json: Json, extra: Extra, ctx: KindContext): Html;
  /** Sections after the form or summary, for every role (the URL tester). */
  sections?(json: Json, extra: Extra, ctx: KindContext, query: URLSearchParams): Html;
  /** Warnings about the stored resource, at the top of its page. */
  notices?(json: Json, extra: Extra, ctx: KindContext): Html;
}
