/**
 * Where the Worker keeps the private members of published lists (docs/datafile.md "Lists"):
 * KV `lists/{sdkKey}/{revision}`, one JSON document per published revision
 * (`{"lists": {"<list id>": [member, …]}}`, src/core/list-members.ts), written by the publisher
 * before the revision's datafile and never changed afterwards. No endpoint serves it.
 *
 * Why per revision: the edge reads the datafile and its members separately, and KV is eventually
 * consistent; keyed by revision, a datafile always meets the members it was published with (never
 * the next revision's), a rollback copies the old revision's document, and an isolate reads it once
 * per revision (the datafile store keeps the compiled Sets with the datafile).
 *
 * Why one document: it is one extra KV read per revision per isolate, whatever the number of
 * lists.
 *
 * How large (docs/datafile.md "Lists"): every isolate holds one environment's members as a Set of
 * strings, built from the document's text, and keeps the previous revision's Sets until the new
 * ones are built — in a 128 MB isolate. A KV value could be 25 MiB, but that much JSON is ~2
 * million strings plus the text plus the Sets, twice during a swap: it does not fit. So the
 * members of one environment are bounded by {@link MAX_LIST_MEMBERS} and
 * {@link MAX_LIST_MEMBERS_BYTES} (the publisher refuses more, at `$.web.lists`, and the lists API
 * refuses a change that would exceed them); each list is at most 100,000 values anyway.
 */
import { parseListMembers, type ListMembersResult } from "../core/list-members";

/** At most this many members in all the lists of one environment (docs/datafile.md "Lists"). */
export const MAX_LIST_MEMBERS = 1_000_000;

/**
 * At most this many bytes of the members document of one environment as JSON (8 MiB;
 * docs/datafile.md "Lists") — well under KV's 25 MiB per value, for the isolate's memory.
 */
export const MAX_LIST_MEMBERS_BYTES = 8 * 1024 * 1024;

/** The private KV key of the list members of one published revision. */
export function listMembersKey(sdkKey: string, revision: string | number): string {
  return `lists/${sdkKey}/${revision}`;
}

/**
 * The members of `revision`'s lists from KV: `null` when the key is absent, an error result when
 * it does not hold a members document. A KV failure rejects (the caller keeps what it had).
 */
export async function readListMembers(
  kv: KVNamespace,
  sdkKey: string,
  revision: string,
  cacheTtl?: number,
): Promise<ListMembersResult | null> {
  const text = await kv.get(
    listMembersKey(sdkKey, revision),
    cacheTtl === undefined ? { type: "text" } : { type: "text", cacheTtl },
  );
  return text === null ? null : parseListMembers(text);
}
