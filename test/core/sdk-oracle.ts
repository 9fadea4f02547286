/**
 * The official Optimizely JS SDK as a test oracle for audience evaluation, through its public API:
 * a datafile with audiences and one Running experiment ("exp") at 100% traffic, so that
 * `getVariation` returns a variation iff the experiment's audiences evaluate to true.
 *
 * Two things the public API cannot do, and how they are done here:
 * - The SDK always JSON-parses its datafile, so a condition holding NaN, ±Infinity, -0 or
 *   undefined cannot be loaded. {@link withPatchableClient} loads a placeholder audience and then
 *   puts the real tree in the parsed config through the SDK's own (internal) `getProjectConfig()`.
 * - The SDK's input validation (utils/attributes_validator) rejects an attribute whose value is
 *   `undefined` before evaluating anything. {@link sdkPasses} adds such attributes with
 *   `userContext.setAttribute`, which is not validated, and decides with `decide` on a flag whose
 *   only rule is the experiment.
 */
import { createInstance, createStaticProjectConfigManager } from "@optimizely/optimizely-sdk";
import type { Tri } from "../../src/core/conditions";

export type SdkClient = ReturnType<typeof createInstance>;

export interface OracleDatafileOptions {
  /** One typed audience "a1" with these conditions. */
  typed?: unknown;
  /** One legacy audience "a1" with these conditions, JSON-encoded as a string. */
  legacy?: unknown;
  /** Typed audiences (instead of `typed`). */
  audiences?: Array<{ id: string; conditions: unknown }>;
  /** The experiment's audienceIds; default ["a1"]. */
  audienceIds?: unknown;
  /** The experiment's audienceConditions; omitted when undefined. */
  audienceConditions?: unknown;
}

/** A minimal v4 datafile text around the given audiences. */
export function oracleDatafile(options: OracleDatafileOptions): string {
  const typedAudiences = options.audiences
    ? options.audiences.map((a) => ({ id: a.id, name: a.id, conditions: a.conditions }))
    : options.typed !== undefined
      ? [{ id: "a1", name: "a1", conditions: options.typed }]
      : [];
  const audiences =
    options.legacy !== undefined
      ? [{ id: "a1", name: "a1", conditions: JSON.stringify(options.legacy) }]
      : [];
  return JSON.stringify({
    version: "4",
    accountId: "1",
    projectId: "1",
    revision: "1",
    attributes: [],
    events: [],
    groups: [],
    rollouts: [],
    featureFlags: [{ id: "f1", key: "flag", rolloutId: "", experimentIds: ["e1"], variables: [] }],
    audiences,
    typedAudiences,
    experiments: [
      {
        id: "e1",
        key: "exp",
        status: "Running",
        layerId: "l1",
        audienceIds: options.audienceIds ?? ["a1"],
        audienceConditions: options.audienceConditions,
        variations: [{ id: "v1", key: "v1" }],
        trafficAllocation: [{ entityId: "v1", endOfRange: 10000 }],
        forcedVariations: {},
      },
    ],
  });
}

/** Loads a client on `datafileText`, runs `use`, closes the client. */
export async function withClient<T>(
  datafileText: string,
  use: (client: SdkClient) => T,
): Promise<T> {
  const client = createInstance({
    projectConfigManager: createStaticProjectConfigManager({ datafile: datafileText }),
  });
  await client.onReady();
  try {
    return use(client);
  } finally {
    await client.close();
  }
}

/** Whether the user with these attributes gets a variation of "exp" from a loaded client. */
export function sdkPasses(client: SdkClient, attributes: Record<string, unknown>): boolean {
  const undefinedKeys = Object.keys(attributes).filter((k) => attributes[k] === undefined);
  if (undefinedKeys.length === 0) {
    return client.getVariation("exp", "user", attributes as never) !== null;
  }
  const defined = Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== undefined));
  const user = client.createUserContext("user", defined as never);
  if (user === null) throw new Error("createUserContext failed");
  for (const key of undefinedKeys) user.setAttribute(key, undefined as never);
  return user.decide("flag").variationKey !== null;
}

/** Evaluates any audience tree (JSON-safe or not) with the SDK: true iff the user gets in. */
export type PatchedEvaluate = (tree: unknown, attributes: Record<string, unknown>) => boolean;

/**
 * One client whose audience "a1" is replaced before each evaluation, so any tree, including
 * values JSON cannot carry, can be evaluated quickly.
 */
export function withPatchableClient<T>(use: (evaluate: PatchedEvaluate) => T): Promise<T> {
  return withClient(oracleDatafile({ typed: ["or"] }), (client) => {
    const config = (
      client as unknown as {
        getProjectConfig(): { audiencesById: Record<string, { conditions: unknown }> };
      }
    ).getProjectConfig();
    return use((tree, attributes) => {
      config.audiencesById.a1!.conditions = tree;
      return sdkPasses(client, attributes);
    });
  });
}

/** Three-valued result from two pass/fail evaluations: X passes -> true; ["not", X] -> false. */
export function triFrom(
  evaluate: PatchedEvaluate,
  tree: unknown,
  attributes: Record<string, unknown>,
): Tri {
  const yes = evaluate(tree, attributes);
  const no = evaluate(["not", tree], attributes);
  if (yes && no) throw new Error("the SDK accepted both X and not X");
  return yes ? true : no ? false : null;
}
