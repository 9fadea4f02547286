/**
 * `POST /_ss/v1/events` (docs/ingest.md): Optimizely Event API batches exactly as
 * the official SDKs send them to logx (`{account_id, project_id, revision, visitors:[{visitor_id,
 * attributes, snapshots:[{decisions, events}]}]}`, see the SDK's `makeEventBatch`).
 *
 * - The datafile is the route's `sdk_key`; the batch's `account_id`/`project_id` must match it,
 *   else the whole batch is refused (400). Its `revision` may be an older one (SDKs poll for new
 *   datafiles, and every publish makes one): ids are checked against the current datafile and
 *   each message keeps the batch's revision, the one the SDK decided with.
 * - `campaign_activated` events are impressions: the snapshot's decision (the one whose
 *   `campaign_id` is the event's `entity_id`, else the first) gives `experiment_id` and
 *   `variation_id` (the SDK sends null for non-numeric variation ids; then `metadata.variation_key`
 *   names the variation). Decisions of a feature flag's A/B rule (`metadata.rule_type`
 *   `"feature-test"`) keep `metadata.flag_key` as the impression's `flagKey` and `ruleType`; the
 *   flag must have that experiment among its A/B rules. Decisions of a delivery rule
 *   (`rule_type` `"rollout"`, or an `experiment_id` naming a rollout's rule — what an SDK sends
 *   with `sendFlagDecisions`) are releases, not experiments: accepted and ignored, never counted
 *   (docs/ingest.md "Feature flag decisions").
 * - other events are conversions: `entity_id` must be that event's id in the datafile and `key`
 *   its key; `revenue`/`value` from the event, `tags` without the `revenue`/`value` copies.
 * - `uuid` and `timestamp` are required on every event. CORS `*`, no cookies.
 */
import { errorResponse } from "../shared/error-response";
import type { Env } from "../env";
import {
  conversionExtras,
  finish,
  isPlainObject,
  noContent,
  readBoundedText,
  reject,
  timestampProblem,
  tooLarge,
  uuidProblem,
  type IngestEdge,
  type IngestRoute,
  type Rejection,
} from "./ingest-common";
import {
  holdoutArms,
  holdoutArmsAt,
  prepareVisitor,
  type CompiledDatafile,
  type HoldoutArm,
  type HoldoutShares,
} from "../core/index";
import { flagKeyProblem } from "../shared/event-limits";
import { parseRevisionNumber } from "../shared/revision-number";
import type { EventMessage, ImpressionMessage } from "../shared/event-messages";

export { SDK_EVENTS_PATH } from "./ingest-paths";
export const MAX_SDK_BODY_BYTES = 512 * 1024;
export const MAX_SDK_EVENTS = 500;
const ACTIVATE_EVENT_KEY = "campaign_activated";
const MAX_VISITOR_ID_LENGTH = 256;

const CORS: Record<string, string> = { "access-control-allow-origin": "*" };

type Invalid = { path: string; reason: string };

/** "an object", "an array", "a boolean"…: what a JSON value is, without echoing it. */
function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return type === "object" ? "an object" : `a ${type}`;
}

/** Per compiled datafile: the ids of its rollouts' delivery rules (decisions there are ignored). */
const deliveryRuleIds = new WeakMap<CompiledDatafile, ReadonlySet<string>>();

function deliveryRuleIdsOf(compiled: CompiledDatafile): ReadonlySet<string> {
  let ids = deliveryRuleIds.get(compiled);
  if (!ids) {
    ids = new Set(compiled.featureFlags.flatMap((f) => f.deliveryRules.map((r) => r.id)));
    deliveryRuleIds.set(compiled, ids);
  }
  return ids;
}

/**
 * The holdout groups of an SDK visitor, by visitor id alone (the holdouts Splitstream publishes
 * have no audience; docs/holdouts.md "SDK events").
 */
function holdoutArmsOf(
  compiled: CompiledDatafile,
  visitorId: string,
  bucketingId: string | undefined,
  sharesThen: HoldoutShares | null,
): HoldoutArm[] {
  if (compiled.holdouts.length === 0) return [];
  // Bucketed as the SDK did: by the event's `$opt_bucketing_id` when it sent one.
  const attributes = bucketingId === undefined ? undefined : { $opt_bucketing_id: bucketingId };
  const prepared = prepareVisitor(compiled, { visitorId, ...(attributes ? { attributes } : {}) });
  // At the shares of the revision the SDK decided with, when it is not the current one.
  return sharesThen === null
    ? holdoutArms(compiled, prepared)
    : holdoutArmsAt(compiled, prepared, sharesThen);
}

/** Whether `revision` is a published revision number below `current` (both decimal strings). */
function isOlderRevision(revision: string, current: string): boolean {
  const older = parseRevisionNumber(revision);
  const now = parseRevisionNumber(current);
  return older !== null && now !== null && older < now;
}

/** The `$opt_bucketing_id` a visitor's event attributes carry, when a string. */
function bucketingIdOf(attributes: unknown): string | undefined {
  if (!Array.isArray(attributes)) return undefined;
  for (const a of attributes)
    if (isPlainObject(a) && a.key === "$opt_bucketing_id" && typeof a.value === "string")
      return a.value;
  return undefined;
}

/**
 * The decision's flag fields for an impression of `experimentId`: `{flagKey, ruleType}` for an A/B
 * rule of a flag (`rule_type` "feature-test"), `{}` for a plain experiment decision, or the reason
 * the flag named cannot be this experiment's flag.
 */
function flagFields(
  compiled: CompiledDatafile,
  metadata: Record<string, unknown>,
  experimentId: string,
): Pick<ImpressionMessage, "flagKey" | "ruleType"> | string {
  if (metadata.rule_type !== "feature-test") return {};
  const flagKey = metadata.flag_key;
  const flag = typeof flagKey === "string" ? compiled.featureFlagByKey.get(flagKey) : undefined;
  if (!flag || !flag.experimentRules.some((rule) => rule.id === experimentId))
    return `${JSON.stringify(flagKey ?? null).slice(0, 100)} is not a feature flag with this experiment among its A/B rules`;
  // A datafile key the queue would refuse costs the flag fields, never the impression.
  return flagKeyProblem(flag.key) === null ? { flagKey: flag.key, ruleType: "feature-test" } : {};
}

function invalidBatch(message: string, problem: Invalid): Response {
  return errorResponse(400, "invalid_batch", message, problem, CORS);
}

export async function handleSdkEvents(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  route: IngestRoute,
  edge: Pick<IngestEdge, "getDatafile" | "holdoutSharesAt">,
): Promise<Response> {
  if (request.method === "OPTIONS") {
    return new Response(null, {
      status: 204,
      headers: {
        ...CORS,
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "86400",
        "cache-control": "no-store",
      },
    });
  }
  if (request.method !== "POST") {
    return errorResponse(405, "method_not_allowed", "POST event batches here", null, {
      ...CORS,
      allow: "POST, OPTIONS",
    });
  }
  const body = await readBoundedText(request, MAX_SDK_BODY_BYTES);
  if (!body.ok) return tooLarge(MAX_SDK_BODY_BYTES, CORS);
  let batch: unknown;
  try {
    batch = JSON.parse(body.text);
  } catch {
    return errorResponse(400, "invalid_json", "the body is not JSON", null, CORS);
  }
  if (!isPlainObject(batch))
    return invalidBatch("the body must be an Event API batch object", {
      path: "",
      reason: "must be an object",
    });
  if (!Array.isArray(batch.visitors))
    return invalidBatch("the batch has no visitors array", {
      path: "visitors",
      reason: "must be an array",
    });

  // Shape first (cheap, no I/O): every visitor and snapshot, and the event count.
  let eventCount = 0;
  const visitors: unknown[] = batch.visitors;
  /** Whether any snapshot carries decisions (only they need the holdout's groups). */
  let hasDecisions = false;
  for (let v = 0; v < visitors.length; v++) {
    const visitor = visitors[v];
    const vPath = `visitors[${v}]`;
    if (!isPlainObject(visitor))
      return invalidBatch("malformed visitor", { path: vPath, reason: "must be an object" });
    const id = visitor.visitor_id;
    if (typeof id !== "string" || id === "" || id.length > MAX_VISITOR_ID_LENGTH)
      return invalidBatch("malformed visitor", {
        path: `${vPath}.visitor_id`,
        reason: `must be a string of 1-${MAX_VISITOR_ID_LENGTH} characters`,
      });
    if (!Array.isArray(visitor.snapshots))
      return invalidBatch("malformed visitor", {
        path: `${vPath}.snapshots`,
        reason: "must be an array",
      });
    const snapshots: unknown[] = visitor.snapshots;
    for (let s = 0; s < snapshots.length; s++) {
      const snapshot = snapshots[s];
      const sPath = `${vPath}.snapshots[${s}]`;
      if (!isPlainObject(snapshot))
        return invalidBatch("malformed snapshot", { path: sPath, reason: "must be an object" });
      if (!Array.isArray(snapshot.events))
        return invalidBatch("malformed snapshot", {
          path: `${sPath}.events`,
          reason: "must be an array",
        });
      if (
        snapshot.decisions !== undefined &&
        snapshot.decisions !== null &&
        !Array.isArray(snapshot.decisions)
      )
        return invalidBatch("malformed snapshot", {
          path: `${sPath}.decisions`,
          reason: "must be an array",
        });
      eventCount += snapshot.events.length;
      if (Array.isArray(snapshot.decisions) && snapshot.decisions.length > 0) hasDecisions = true;
    }
  }
  if (eventCount > MAX_SDK_EVENTS) {
    return errorResponse(
      413,
      "too_many_events",
      `at most ${MAX_SDK_EVENTS} events per batch (got ${eventCount})`,
      { maxEvents: MAX_SDK_EVENTS },
      CORS,
    );
  }

  const entry = await edge.getDatafile(env, ctx, route.sdkKey);
  if (!entry) {
    return errorResponse(
      503,
      "no_datafile",
      `no datafile is published for ${route.sdkKey}; events cannot be validated`,
      null,
      { ...CORS, "retry-after": "60" },
    );
  }
  const datafile = entry.compiled.datafile;
  for (const [field, expected] of [
    ["account_id", datafile.accountId],
    ["project_id", datafile.projectId],
  ] as const) {
    // Only a string or a number can name an id (String() of an arbitrary JSON value can throw:
    // `{"toString":null}` has no primitive value).
    const got = batch[field];
    const given = typeof got === "string" || typeof got === "number" ? String(got) : null;
    if (given !== expected) {
      const shown =
        given === null
          ? got === undefined
            ? "null"
            : `(${describeJson(got)})`
          : JSON.stringify(got);
      return errorResponse(
        400,
        "project_mismatch",
        `the batch's ${field} ${shown.slice(0, 100)} does not match the datafile of ${route.sdkKey} (${field} ${expected})`,
        { path: field, expected, got: given === null ? null : got },
        CORS,
      );
    }
  }
  const batchRevision =
    typeof batch.revision === "string" && batch.revision !== "" && batch.revision.length <= 64
      ? batch.revision
      : entry.revision;
  if (eventCount === 0) return noContent(CORS);

  const now = Date.now();
  const messages: EventMessage[] = [];
  const rejected: Rejection[] = [];
  const compiled = entry.compiled;
  // The SDK decided with the batch's revision: after a share change, an SDK that has not fetched
  // the new datafile holds visitors at the old share (docs/holdouts.md "Share changes").
  // Only older revisions than the current one are looked up: a newer or made-up number costs no
  // KV read (and cannot leave a "not found" answer behind for a revision still to come).
  const sharesThen =
    hasDecisions && compiled.holdouts.length > 0 && isOlderRevision(batchRevision, entry.revision)
      ? await edge.holdoutSharesAt(env, route.sdkKey, batchRevision)
      : null;
  const armsOf = (visitorId: string, bucketingId: string | undefined) =>
    holdoutArmsOf(compiled, visitorId, bucketingId, sharesThen);
  /** A holdout's place in the current datafile: the derived uuid's suffix (stable per holdout). */
  const holdoutIndex = (holdoutId: string) =>
    compiled.holdouts.findIndex((h) => h.id === holdoutId);
  /** The everyone-else messages of this batch by visitor and holdout: one each (the earliest). */
  const everyoneElseQueued = new Map<string, ImpressionMessage>();
  /**
   * The everyone-else group of a visitor the SDK decided and did not hold out (docs/holdouts.md
   * "SDK events"), with a uuid derived from the event's (a redelivery dedupes alike). Only the
   * earliest per visitor and holdout in a batch is queued: with `sendFlagDecisions` an SDK
   * reports every flag it decides, and the consumer would keep only the earliest anyway.
   */
  const pushEveryoneElse = (
    common: Omit<ImpressionMessage, "type" | "experimentId" | "variationId" | "source">,
    visitorId: string,
    bucketingId: string | undefined,
  ): void => {
    for (const arm of armsOf(visitorId, bucketingId)) {
      if (arm.held) continue;
      const message: ImpressionMessage = {
        ...common,
        uuid: `${common.uuid.slice(0, 48)}:holdout:${holdoutIndex(arm.holdoutId)}`,
        type: "impression",
        experimentId: arm.holdoutId,
        variationId: arm.variationId,
        source: "sdk",
      };
      const key = `${visitorId}\u0000${arm.holdoutId}`;
      const queued = everyoneElseQueued.get(key);
      if (queued === undefined) {
        everyoneElseQueued.set(key, message);
        messages.push(message);
      } else if (
        message.timestamp < queued.timestamp ||
        (message.timestamp === queued.timestamp && message.uuid < queued.uuid)
      )
        // The same message object in `messages`: it becomes the earlier one.
        Object.assign(queued, message);
    }
  };
  let index = -1;
  visitors.forEach((rawVisitor, v) => {
    const visitor = rawVisitor as {
      visitor_id: string;
      attributes?: unknown;
      snapshots: Record<string, unknown>[];
    };
    visitor.snapshots.forEach((snapshot, s) => {
      const decisions = (snapshot.decisions ?? []) as unknown[];
      (snapshot.events as unknown[]).forEach((event, e) => {
        index++;
        const path = `visitors[${v}].snapshots[${s}].events[${e}]`;
        if (!isPlainObject(event))
          return reject(rejected, index, path, "each event must be an object");
        const uuidIssue = uuidProblem(event.uuid);
        if (uuidIssue) return reject(rejected, index, `${path}.uuid`, uuidIssue);
        const timeIssue = timestampProblem(event.timestamp, now);
        if (timeIssue) return reject(rejected, index, `${path}.timestamp`, timeIssue);
        if (typeof event.key !== "string" || event.key === "")
          return reject(rejected, index, `${path}.key`, "key must be a non-empty string");
        const common = {
          v: 1 as const,
          uuid: event.uuid as string,
          sdkKey: route.sdkKey,
          // The revision the SDK decided with (results never mix revisions silently).
          revision: batchRevision,
          visitorId: visitor.visitor_id,
          timestamp: event.timestamp as number,
        };

        if (event.key === ACTIVATE_EVENT_KEY) {
          const dPath = `visitors[${v}].snapshots[${s}].decisions`;
          const decision =
            decisions.find((d) => isPlainObject(d) && d.campaign_id === event.entity_id) ??
            decisions[0];
          if (!isPlainObject(decision))
            return reject(
              rejected,
              index,
              dPath,
              "an impression (campaign_activated) needs its decision",
            );
          const metadata = isPlainObject(decision.metadata) ? decision.metadata : {};
          // A holdout decision (decide() of a held-out visitor, docs/holdouts.md "SDK events"):
          // the visitor's holdout group, once per flag the SDK decided — deduped by exposure.
          if (metadata.rule_type === "holdout") {
            const holdout = compiled.holdouts.find((h) => h.id === decision.experiment_id);
            // Running now, or at the older revision the SDK decided with (a holdout set to 0
            // since stays in the datafile as concluded; docs/holdouts.md "Share changes").
            if (holdout === undefined || !(holdout.running || sharesThen?.has(holdout.id)))
              return reject(
                rejected,
                index,
                `${dPath}.experiment_id`,
                `${JSON.stringify(decision.experiment_id ?? null)} is not a running holdout in datafile revision ${entry.revision}`,
              );
            const variation =
              typeof decision.variation_id === "string"
                ? holdout.variationById.get(decision.variation_id)
                : undefined;
            if (variation === undefined || !holdout.allocation.entities.includes(variation))
              return reject(
                rejected,
                index,
                `${dPath}.variation_id`,
                `not a variation of holdout ${holdout.key}`,
              );
            // Membership is recomputed, never taken from the event: a forged (or backdated)
            // holdout decision cannot move a visitor into the holdout group.
            const held = armsOf(visitor.visitor_id, bucketingIdOf(visitor.attributes)).some(
              (arm) => arm.held && arm.holdoutId === holdout.id,
            );
            if (!held)
              return reject(
                rejected,
                index,
                `${dPath}.experiment_id`,
                `visitor ${JSON.stringify(visitor.visitor_id).slice(0, 100)} is not in holdout ${holdout.key} (by its bucketing id)`,
              );
            messages.push({
              ...common,
              type: "impression",
              experimentId: holdout.id,
              variationId: variation.id,
              source: "sdk",
            });
            return;
          }
          // A delivery rule's decision (sendFlagDecisions): a release, not an experiment.
          // And a decision of no experiment at all (experiment_id ""): a flag-level forced
          // decision (setForcedDecision({flagKey})), QA traffic that names no A/B rule.
          if (
            metadata.rule_type === "rollout" ||
            decision.experiment_id === "" ||
            (typeof decision.experiment_id === "string" &&
              deliveryRuleIdsOf(compiled).has(decision.experiment_id) &&
              !compiled.experimentById.has(decision.experiment_id))
          ) {
            // Still a visitor the SDK decided and did not hold out: its everyone-else group.
            pushEveryoneElse(common, visitor.visitor_id, bucketingIdOf(visitor.attributes));
            return;
          }
          const experiment =
            typeof decision.experiment_id === "string"
              ? compiled.experimentById.get(decision.experiment_id)
              : undefined;
          if (!experiment || experiment.isRollout)
            return reject(
              rejected,
              index,
              `${dPath}.experiment_id`,
              `${JSON.stringify(decision.experiment_id ?? null)} is not an experiment in datafile revision ${entry.revision}`,
            );
          // One rule for both endpoints (docs/ingest.md "Impressions"): an impression counts only
          // for an experiment running in the current datafile, as /_ss/events checks too.
          if (!experiment.running)
            return reject(
              rejected,
              index,
              `${dPath}.experiment_id`,
              `experiment ${experiment.key} is not running (status ${experiment.status}) in datafile revision ${entry.revision}`,
            );
          const variation =
            typeof decision.variation_id === "string" && decision.variation_id !== ""
              ? experiment.variationById.get(decision.variation_id)
              : typeof metadata.variation_key === "string"
                ? experiment.variationByKey.get(metadata.variation_key)
                : undefined;
          // A Feature Rollout rule's added Everyone Else variation (src/core/compile.ts) is the
          // flag's release, not an arm of the test: the SDK reports it as a feature-test
          // decision; it is accepted and not counted, as the edge does not count it either.
          if (
            experiment.raw.type === "fr" &&
            (variation === undefined || experiment.variationById.get(variation.id) !== variation) &&
            [...experiment.variationByKey.values()].some(
              (v) =>
                !experiment.variationById.has(v.id) &&
                (v.id === decision.variation_id || v.key === metadata.variation_key),
            )
          )
            return;
          if (!variation || experiment.variationById.get(variation.id) !== variation)
            return reject(
              rejected,
              index,
              `${dPath}.variation_id`,
              `not a variation of experiment ${experiment.key}`,
            );
          const flag = flagFields(compiled, metadata, experiment.id);
          if (typeof flag === "string")
            return reject(rejected, index, `${dPath}.metadata.flag_key`, flag);
          messages.push({
            ...common,
            type: "impression",
            experimentId: experiment.id,
            variationId: variation.id,
            ...flag,
            source: "sdk",
          });
          // The visitor's holdout group too (docs/holdouts.md "SDK events"): an SDK reports no
          // event for a visitor it does not hold out, so an experiment's impression stands for
          // one. A visitor the holdout would hold (an SDK's activate() ignores holdouts) was
          // treated all the same: in no group.
          pushEveryoneElse(common, visitor.visitor_id, bucketingIdOf(visitor.attributes));
          return;
        }

        const known =
          typeof event.entity_id === "string" ? compiled.eventById.get(event.entity_id) : undefined;
        if (!known)
          return reject(
            rejected,
            index,
            `${path}.entity_id`,
            `${JSON.stringify(event.entity_id ?? null)} is not an event id in datafile revision ${entry.revision}`,
          );
        if (known.key !== event.key)
          return reject(
            rejected,
            index,
            `${path}.key`,
            `event ${known.id} is "${known.key}", not "${event.key}"`,
          );
        // The SDK copies revenue and value into tags too; they are fields of the message.
        let tags = event.tags;
        if (isPlainObject(tags) && ("revenue" in tags || "value" in tags)) {
          const { revenue: _revenue, value: _value, ...rest } = tags;
          tags = rest;
        }
        const extras = conversionExtras(
          { revenue: event.revenue, value: event.value, tags },
          path,
          index,
          rejected,
        );
        if (!extras) return;
        messages.push({
          ...common,
          type: "conversion",
          eventId: known.id,
          eventKey: known.key,
          ...extras,
          source: "sdk",
        });
      });
    });
  });
  return finish(env, messages, rejected, CORS);
}
