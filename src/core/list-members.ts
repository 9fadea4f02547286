/**
 * List members are private (docs/datafile.md "Lists", docs/security.md "List members stay
 * private"): the members of a `web.lists` entry (customer ids, up to 100,000) must never reach a
 * public response, yet `in_list` needs them. So a datafile has two forms:
 *
 * - public: each list is `{id, key}` — what KV `datafiles/{sdkKey}` holds when the API published
 *   it, and all that `/_ss/datafiles/{sdkKey}.json` ever serves;
 * - with members: lists carry `values` inline — what the management data builds, what a
 *   hand-written datafile or the CLI's local file may hold.
 *
 * The members of a published revision live in a private document (this module's
 * {@link ListMembersDocument}, stored by the Worker under a KV key only it reads) and are handed
 * to `compileDatafile` as {@link ListMembers}. Pure: the KV side is src/edge/list-members.ts.
 */
import type { Datafile, WebList } from "./datafile-types";
import { describeJsonSyntaxError } from "./json-error";
import { formatPath } from "./problem";

/** List id → its members (what `compileDatafile` needs for lists without inline `values`). */
export type ListMembers = ReadonlyMap<string, readonly string[]>;

/** The private document of one revision's list members: `{"lists": {"<list id>": [member, …]}}`. */
export interface ListMembersDocument {
  lists: Record<string, string[]>;
}

/** Whether a list entry shows more than `{id, key}` (inline members, or anything else). */
function carriesMoreThanIdAndKey(list: object): boolean {
  for (const name of Object.keys(list)) if (name !== "id" && name !== "key") return true;
  return false;
}

/** The public form of one list entry: its id and key, nothing else (unknown fields may be members too). */
function publicList(list: WebList): WebList {
  return { id: list.id, key: list.key };
}

/** The lists of a validated datafile whose members are not inline (they must come from elsewhere). */
export function listsWithoutValues(datafile: Datafile): WebList[] {
  return (datafile.web?.lists ?? []).filter((list) => list.values === undefined);
}

/** Whether serving this validated datafile as is would show anything of a list but its id and key. */
export function exposesListMembers(datafile: Datafile): boolean {
  return (datafile.web?.lists ?? []).some(carriesMoreThanIdAndKey);
}

/**
 * Splits a datafile into its public form (every list reduced to `{id, key}`; everything else the
 * same objects) and the private members document (only the lists that had inline `values`), or
 * `null` for members when the datafile has no lists at all.
 */
export function splitListMembers(datafile: Datafile): {
  datafile: Datafile;
  members: ListMembersDocument | null;
} {
  const lists = datafile.web?.lists;
  if (!datafile.web || !lists || lists.length === 0) return { datafile, members: null };
  const members: ListMembersDocument = { lists: {} };
  for (const list of lists) if (list.values !== undefined) members.lists[list.id] = list.values;
  return {
    datafile: { ...datafile, web: { ...datafile.web, lists: lists.map(publicList) } },
    members,
  };
}

/**
 * A datafile with `members` put back inline: each list without `values` whose id `members` names
 * gets them. Takes unvalidated input too (a stored revision, a pushed body): anything that is not
 * a list of objects is left as it is, for the validator to report.
 */
export function mergeListMembers(datafile: Datafile, members: ListMembers): Datafile {
  const web = datafile.web as unknown;
  if (members.size === 0 || typeof web !== "object" || web === null) return datafile;
  const lists = (web as { lists?: unknown }).lists;
  if (!Array.isArray(lists)) return datafile;
  return {
    ...datafile,
    web: {
      ...(web as NonNullable<Datafile["web"]>),
      lists: lists.map((list: unknown) => {
        if (typeof list !== "object" || list === null) return list as WebList;
        const { id, values } = list as Partial<WebList>;
        const found = values === undefined && typeof id === "string" ? members.get(id) : undefined;
        return (found === undefined ? list : { ...list, values: [...found] }) as WebList;
      }),
    },
  };
}

/**
 * The public text of a stored datafile text that `parseDatafile` accepted: the text itself when
 * no list shows more than `{id, key}` (byte for byte, as published through the API), else the
 * same JSON with every list reduced to `{id, key}` (a hand-written datafile with inline members).
 */
export function publicDatafileText(text: string, datafile: Datafile): string {
  if (!exposesListMembers(datafile)) return text;
  // Re-parsed rather than serialising `datafile`: that one has the parser's defaults filled in,
  // and everything but the lists must be served as written.
  const raw = JSON.parse(text) as { web: { lists: WebList[] } };
  raw.web.lists = raw.web.lists.map(publicList);
  return JSON.stringify(raw);
}

export type ListMembersResult =
  { ok: true; members: Map<string, readonly string[]> } | { ok: false; message: string };

/** Validates a private members document (JSON text or a parsed value); errors name the JSON path. */
export function parseListMembers(input: unknown): ListMembersResult {
  let value = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch {
      // Only where, never V8's message: it quotes the text around the error, i.e. members, and
      // this message reaches /_ss/health and the logs (docs/security.md "List members stay
      // private").
      return { ok: false, message: `$: not JSON: ${describeJsonSyntaxError(input)}` };
    }
  }
  const lists = (value as { lists?: unknown } | null)?.lists;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, message: "$: expected an object {lists: {<list id>: [string, …]}}" };
  if (typeof lists !== "object" || lists === null || Array.isArray(lists))
    return { ok: false, message: "$.lists: expected an object of list id → array of strings" };
  const members = new Map<string, readonly string[]>();
  for (const [id, values] of Object.entries(lists)) {
    if (!Array.isArray(values))
      return { ok: false, message: `${formatPath(["lists", id])}: expected an array of strings` };
    const bad = values.findIndex((v) => typeof v !== "string");
    if (bad !== -1)
      return { ok: false, message: `${formatPath(["lists", id, bad])}: expected a string` };
    members.set(id, values as string[]);
  }
  return { ok: true, members };
}
