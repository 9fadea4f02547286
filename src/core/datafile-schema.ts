/**
 * Structural zod schemas for a Splitstream datafile: Optimizely datafile v4 field for field, plus
 * the top-level `web` extension (docs/datafile.md).
 *
 * These schemas are the declarative spec of the datafile's structure (shapes, primitive types,
 * required fields, enums, defaults). `parseDatafile` (datafile-parse.ts) implements the same rules
 * as plain code, because it runs on the edge's hot path and must not pay for zod there (see its
 * header); test/core/datafile-parse.test.ts checks, field by field, that it reports every issue
 * these schemas report, at the same path, and fills the same defaults. Everything that needs the
 * whole document (references between entities, duplicate ids, traffic ranges, condition trees,
 * regexes, selectors, URLs) is only in the parser. Other code (the management API's request
 * validation, OpenAPI via `z.toJSONSchema`) may use these schemas directly.
 *
 * Conventions:
 * - Every object is a `looseObject`: unknown fields pass through untouched, because Optimizely
 *   keeps adding fields (integrations, holdouts, region, cmab, …) and official SDKs must still get
 *   them when the datafile is served back.
 * - Required vs optional follows the official SDK's JSON schema (project_config_schema) for the
 *   parts it covers; fields the SDK treats as optional but `Datafile` types as always present get
 *   a default (`featureFlags`, `rollouts`, `events[].experimentIds`, the `web` collections).
 * - Condition trees are `z.custom` (typed, any value but `undefined`): their rules (operators
 *   first, leaves, nesting) need precise paths and are walked by hand in the parser.
 */
import { z } from "zod";
import {
  ALLOCATION_POLICIES,
  DATAFILE_VERSIONS,
  INSERT_POSITIONS,
  METRIC_AGGREGATORS,
  METRIC_CAPPING_TYPES,
  GUARDRAIL_ACTIONS,
  METRIC_FIELDS,
  MOVE_POSITIONS,
  PAGE_ACTIVATIONS,
  REDIRECT_MODES,
  REVISION_PATTERN,
  VARIABLE_TYPES,
  WEB_EVENT_TYPES,
  WEB_EXPERIMENT_TYPES,
  WINNING_DIRECTIONS,
} from "./datafile-parse";
import type {
  AudienceConditionTree,
  ConditionTree,
  Datafile,
  LeafCondition,
  UrlCondition,
} from "./datafile-types";

/** A required value of any shape whose rules the parser checks itself. */
function checkedLater<T>(description: string) {
  return z
    .custom<T>((value) => value !== undefined, { error: "missing required field" })
    .meta({ description });
}

/** An array that may be absent; absent reads as empty. */
function arrayOrEmpty<T extends z.ZodType>(item: T) {
  return z.array(item).default(() => []);
}

// ---- Optimizely datafile v4 ----

export const trafficAllocationEntrySchema = z.looseObject({
  entityId: z.string(),
  endOfRange: z.number(),
});

export const variableUsageSchema = z.looseObject({
  id: z.string(),
  value: z.string(),
});

export const variationSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  featureEnabled: z.boolean().optional(),
  variables: z.array(variableUsageSchema).optional(),
});

const experimentShape = {
  id: z.string(),
  key: z.string(),
  status: z.string(),
  layerId: z.string(),
  variations: z.array(variationSchema),
  trafficAllocation: z.array(trafficAllocationEntrySchema),
  audienceIds: z.array(z.string()),
  audienceConditions: z.custom<AudienceConditionTree>().optional(),
  forcedVariations: z.record(z.string(), z.string()),
};

/** An A/B test (top level or in a group): every field the SDK's schema requires. */
export const experimentSchema = z.looseObject(experimentShape);

/** A rollout rule: the SDK's schema does not cover rollouts, so the two lists may be absent. */
export const rolloutExperimentSchema = z.looseObject({
  ...experimentShape,
  audienceIds: arrayOrEmpty(z.string()),
  forcedVariations: z.record(z.string(), z.string()).default(() => ({})),
});

/**
 * A global holdout (the SDK's `holdouts` section, docs/holdouts.md): an experiment's bucketing
 * fields without layer or whitelist. `includedFlags`/`excludedFlags` are accepted and ignored, as
 * the SDK ignores them.
 */
export const holdoutSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  status: z.string(),
  variations: z.array(variationSchema),
  trafficAllocation: z.array(trafficAllocationEntrySchema),
  audienceIds: z.array(z.string()),
  audienceConditions: z.custom<AudienceConditionTree>().optional(),
  includedFlags: z.array(z.string()).optional(),
  excludedFlags: z.array(z.string()).optional(),
});

export const groupSchema = z.looseObject({
  id: z.string(),
  policy: z.string(),
  experiments: z.array(experimentSchema),
  trafficAllocation: z.array(trafficAllocationEntrySchema),
});

export const audienceSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  /** A JSON string (the SDK JSON.parses it); its content is checked by the parser. */
  conditions: z.string(),
});

export const typedAudienceSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  conditions: checkedLater<ConditionTree<LeafCondition>>("an audience condition tree"),
});

export const eventSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  experimentIds: arrayOrEmpty(z.string()),
});

export const attributeSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
});

export const variableDefSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  type: z.enum(VARIABLE_TYPES),
  subType: z.string().optional(),
  defaultValue: z.string(),
});

export const featureFlagSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  rolloutId: z.string(),
  experimentIds: z.array(z.string()),
  variables: z.array(variableDefSchema),
});

export const rolloutSchema = z.looseObject({
  id: z.string(),
  experiments: z.array(rolloutExperimentSchema),
});

/** Optimizely's own `integrations` (ODP and friends): the SDK throws on an entry without `key`. */
export const integrationSchema = z.looseObject({
  key: z.string(),
});

// ---- web extension ----

export const webPageSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  activation: z.enum(PAGE_ACTIVATIONS),
  selector: z.string().optional(),
  conditions: checkedLater<ConditionTree<UrlCondition>>("a URL condition tree"),
});

export const attributeChangeSetSchema = z.looseObject({
  text: z.string().optional(),
  html: z.string().optional(),
  class: z.string().optional(),
  addClass: z.string().optional(),
  removeClass: z.string().optional(),
  style: z.string().optional(),
  href: z.string().optional(),
  src: z.string().optional(),
  hide: z.boolean().optional(),
  remove: z.boolean().optional(),
  set: z.record(z.string(), z.string()).optional(),
  unset: z.array(z.string()).optional(),
});

const pageIdField = z.string().optional();

export const changeSchema = z.discriminatedUnion("type", [
  z.looseObject({
    type: z.literal("attribute"),
    selector: z.string(),
    attributes: attributeChangeSetSchema,
    pageId: pageIdField,
  }),
  z.looseObject({
    type: z.literal("insert_html"),
    selector: z.string(),
    position: z.enum(INSERT_POSITIONS),
    html: z.string(),
    pageId: pageIdField,
  }),
  z.looseObject({
    type: z.literal("move"),
    selector: z.string(),
    target: z.string(),
    position: z.enum(MOVE_POSITIONS),
    html: z.string(),
    pageId: pageIdField,
  }),
  z.looseObject({ type: z.literal("custom_css"), value: z.string(), pageId: pageIdField }),
  z.looseObject({ type: z.literal("custom_code"), value: z.string(), pageId: pageIdField }),
  z.looseObject({
    type: z.literal("redirect"),
    destination: z.string(),
    preserveParameters: z.boolean().optional(),
    mode: z.enum(REDIRECT_MODES).optional(),
    pageId: pageIdField,
  }),
]);

export const webMetricSchema = z.looseObject({
  eventId: z.string(),
  aggregator: z.enum(METRIC_AGGREGATORS),
  field: z.enum(METRIC_FIELDS).optional(),
  winningDirection: z.enum(WINNING_DIRECTIONS).optional(),
  capping: z
    .strictObject({
      type: z.enum(METRIC_CAPPING_TYPES),
      value: z.number().positive(),
    })
    .refine((c) => c.type !== "percentile" || c.value < 1, {
      message: "a percentile is a fraction below 1 (0.99 = the 99th percentile)",
      path: ["value"],
    })
    .optional(),
  guardrail: z.strictObject({ action: z.enum(GUARDRAIL_ACTIONS) }).optional(),
});

export const webVariationSchema = z.looseObject({
  id: z.string(),
  changes: arrayOrEmpty(changeSchema),
  sectionVariationIds: z.array(z.string()).optional(),
});

export const webSectionSchema = z.looseObject({
  id: z.string(),
  name: z.string().optional(),
  variations: z.array(
    z.looseObject({
      id: z.string(),
      name: z.string().optional(),
      changes: arrayOrEmpty(changeSchema),
    }),
  ),
});

export const webExperimentSchema = z.looseObject({
  id: z.string(),
  type: z.enum(WEB_EXPERIMENT_TYPES),
  pageIds: z.array(z.string()),
  metrics: arrayOrEmpty(webMetricSchema),
  sharedChanges: z.array(changeSchema).optional(),
  variations: z.array(webVariationSchema),
  sections: z.array(webSectionSchema).optional(),
  allocationPolicy: z.enum(ALLOCATION_POLICIES).optional(),
});

export const webEventSchema = z.looseObject({
  id: z.string(),
  type: z.enum(WEB_EVENT_TYPES),
  pageId: z.string().optional(),
  selector: z.string().optional(),
});

export const webListSchema = z.looseObject({
  id: z.string(),
  key: z.string(),
  /** The members, private: absent from published datafiles (docs/datafile.md "Lists"). */
  values: z.array(z.string()).optional(),
});

export const webExtensionSchema = z.looseObject({
  pages: arrayOrEmpty(webPageSchema),
  experiments: arrayOrEmpty(webExperimentSchema),
  events: arrayOrEmpty(webEventSchema),
  lists: arrayOrEmpty(webListSchema),
  integrations: z.record(z.string(), z.boolean()).default(() => ({})),
});

// ---- the whole datafile ----

export const datafileSchema = z.looseObject({
  version: z.enum(DATAFILE_VERSIONS),
  accountId: z.string(),
  projectId: z.string(),
  revision: z.string().regex(REVISION_PATTERN),
  sdkKey: z.string().optional(),
  environmentKey: z.string().optional(),
  anonymizeIP: z.boolean().optional(),
  botFiltering: z.boolean().optional(),
  sendFlagDecisions: z.boolean().optional(),
  attributes: z.array(attributeSchema),
  audiences: z.array(audienceSchema),
  typedAudiences: z.array(typedAudienceSchema).optional(),
  events: z.array(eventSchema),
  experiments: z.array(experimentSchema),
  groups: z.array(groupSchema),
  featureFlags: arrayOrEmpty(featureFlagSchema),
  rollouts: arrayOrEmpty(rolloutSchema),
  integrations: z.array(integrationSchema).optional(),
  holdouts: z.array(holdoutSchema).optional(),
  web: webExtensionSchema.optional(),
});

export type DatafileSchemaOutput = z.output<typeof datafileSchema>;

/** Compile-time proof that whatever the schema accepts is a `Datafile`. */
type AssertAssignable<_T extends Datafile> = true;
export type _SchemaMatchesDatafile = AssertAssignable<DatafileSchemaOutput>;
