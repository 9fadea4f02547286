/**
 * An Optimizely-style datafile with feature flags (docs/flags.md): typed variables (json as
 * string + subType json), a rollout with a targeted rule, a 50 % rule and Everyone Else, an A/B
 * rule with a whitelist, and a flag without rules. Ids are short and fixed: import it into one
 * project per test database (ids are global).
 */
/** An Optimizely-style datafile with flags: typed variables, a rollout, an A/B rule, an empty flag. */
export function flagDatafile(projectId = "1"): Record<string, unknown> {
  const variables = [
    { id: "901", key: "banner", type: "boolean", defaultValue: "false" },
    { id: "902", key: "max_items", type: "integer", defaultValue: "3" },
    { id: "903", key: "discount", type: "double", defaultValue: "0.5" },
    { id: "904", key: "title", type: "string", defaultValue: "Checkout" },
    { id: "905", key: "config", type: "string", subType: "json", defaultValue: '{"a":1}' },
  ];
  const onBeta = {
    id: "811",
    key: "on_beta",
    featureEnabled: true,
    variables: [
      { id: "901", value: "true" },
      { id: "902", value: "9007199254740991" },
      { id: "905", value: '{"a":2}' },
    ],
  };
  const off = { id: "810", key: "off", featureEnabled: false, variables: [] };
  const on = {
    id: "812",
    key: "on",
    featureEnabled: true,
    variables: [{ id: "904", value: "Fast" }],
  };
  const rule = (
    id: string,
    key: string,
    variation: object,
    end: number,
    audienceIds: string[],
  ) => ({
    id,
    key,
    status: "Running",
    layerId: id,
    variations: [variation],
    trafficAllocation: [{ entityId: (variation as { id: string }).id, endOfRange: end }],
    audienceIds,
    forcedVariations: {},
  });
  return {
    version: "4",
    accountId: "1",
    projectId,
    revision: "5",
    attributes: [{ id: "700", key: "country" }],
    audiences: [],
    typedAudiences: [
      {
        id: "601",
        name: "Germany",
        conditions: [
          "or",
          { type: "custom_attribute", name: "country", match: "exact", value: "DE" },
        ],
      },
    ],
    events: [],
    experiments: [
      {
        id: "501",
        key: "checkout_ab",
        status: "Running",
        layerId: "5011",
        variations: [
          { ...off, id: "821" },
          { ...onBeta, id: "822" },
        ],
        trafficAllocation: [
          { entityId: "821", endOfRange: 2500 },
          { entityId: "822", endOfRange: 5000 },
        ],
        audienceIds: ["601"],
        forcedVariations: { "qa-1": "on_beta" },
      },
    ],
    groups: [],
    featureFlags: [
      { id: "401", key: "checkout", rolloutId: "301", experimentIds: ["501"], variables },
      { id: "402", key: "nav", rolloutId: "", experimentIds: [], variables: [] },
    ],
    rollouts: [
      {
        id: "301",
        experiments: [
          rule("311", "beta", onBeta, 3000, ["601"]),
          rule("312", "half", on, 5000, []),
          rule("313", "default-rollout-301-401", off, 10000, []),
        ],
      },
    ],
  };
}
