/**
 * The names of the request attributes (docs/visitors.md#request-attributes): what the edge
 * computes per request for audience conditions. One list for the three places that need it: the
 * edge builds them (src/edge/request-attributes.ts), the edge refuses stored custom attributes
 * with these names or in these namespaces, so a visitor cannot pretend to be elsewhere
 * (src/edge/visitor.ts), and the management API accepts them in audience conditions without a
 * project attribute of that key (src/api/services/validation.ts).
 */

/** The request attributes with a fixed name. */
export const REQUEST_ATTRIBUTE_NAMES = [
  "geo.country",
  "geo.region",
  "geo.city",
  "geo.continent",
  "geo.asn",
  "device.type",
  "browser.name",
  "browser.version",
  "os.name",
  "language",
  "referrer",
  "url",
  "path",
  "utm.source",
  "utm.medium",
  "utm.campaign",
  "utm.term",
  "utm.content",
  "visitor.new",
  "time.hour",
  "time.weekday",
] as const;

export type RequestAttributeName = (typeof REQUEST_ATTRIBUTE_NAMES)[number];

/** The request attribute families named per request: `query.<name>`, `cookie.<name>`, `header.<name>`. */
export const REQUEST_ATTRIBUTE_FAMILIES = ["query.", "cookie.", "header."] as const;

export type RequestAttributeFamily = (typeof REQUEST_ATTRIBUTE_FAMILIES)[number];

/**
 * The namespaces of the request attributes (`geo.`, `device.`, …, `query.`, `cookie.`,
 * `header.`): every prefix up to the first dot of a fixed name, and the families.
 */
export const REQUEST_ATTRIBUTE_NAMESPACES: readonly string[] = [
  ...new Set([
    ...REQUEST_ATTRIBUTE_NAMES.filter((name) => name.includes(".")).map((name) =>
      name.slice(0, name.indexOf(".") + 1),
    ),
    ...REQUEST_ATTRIBUTE_FAMILIES,
  ]),
];

/** The fixed request attribute names outside any namespace (`language`, `referrer`, `url`, `path`). */
export const UNQUALIFIED_REQUEST_ATTRIBUTE_NAMES: readonly string[] =
  REQUEST_ATTRIBUTE_NAMES.filter((name) => !name.includes("."));
