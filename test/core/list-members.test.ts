/**
 * The two forms of a datafile's lists (src/core/list-members.ts, docs/datafile.md "Lists"): the
 * public one never shows members; the private members document feeds `in_list` all the same.
 */
import { describe, expect, it } from "vitest";
import { compileDatafile, decideExperiment, parseDatafile } from "../../src/core/index";
import type { Datafile } from "../../src/core/datafile-types";
import {
  mergeListMembers,
  parseListMembers,
  publicDatafileText,
  splitListMembers,
} from "../../src/core/list-members";
import fixture from "../fixtures/datafiles/valid-web.json";

function parsed(value: unknown): Datafile {
  const result = parseDatafile(value);
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.datafile;
}

const withMembers = parsed(fixture);

describe("splitListMembers / mergeListMembers", () => {
  it("the public form keeps only id and key; the document holds the members by list id", () => {
    const { datafile, members } = splitListMembers(withMembers);
    expect(datafile.web!.lists).toEqual([
      { id: "l_vip", key: "vip" },
      { id: "l_beta", key: "beta_testers" },
    ]);
    expect(JSON.stringify(datafile)).not.toContain("cust_1001");
    expect(members).toEqual({
      lists: {
        l_vip: ["cust_1001", "cust_1002", "cust_2040"],
        l_beta: ["qa-tester-1", "qa-tester-2"],
      },
    });
    // Everything but the lists is the same.
    expect({ ...datafile, web: { ...datafile.web, lists: [] } }).toEqual({
      ...withMembers,
      web: { ...withMembers.web, lists: [] },
    });
    const merged = mergeListMembers(datafile, new Map(Object.entries(members!.lists)));
    expect(merged).toEqual(withMembers);
  });

  it("no lists → no members document; a list without values is left out of it", () => {
    const none = { ...withMembers, web: { ...withMembers.web!, lists: [] } };
    expect(splitListMembers(none).members).toBeNull();
    const half = parsed({
      ...fixture,
      web: { ...fixture.web, lists: [{ id: "l_vip", key: "vip" }, fixture.web.lists[1]] },
    });
    expect(splitListMembers(half).members).toEqual({
      lists: { l_beta: ["qa-tester-1", "qa-tester-2"] },
    });
  });

  it("merge leaves inline values and malformed input alone", () => {
    const members = new Map([["l_vip", ["other"]]]);
    expect(mergeListMembers(withMembers, members).web!.lists[0]!.values).toEqual([
      "cust_1001",
      "cust_1002",
      "cust_2040",
    ]);
    const broken = { ...withMembers, web: { ...withMembers.web, lists: "nope" } } as never;
    expect(mergeListMembers(broken, members)).toBe(broken);
  });
});

describe("publicDatafileText", () => {
  it("is the text itself, byte for byte, when no list shows more than id and key", () => {
    const { datafile } = splitListMembers(withMembers);
    const text = `{ "note": "spacing kept",${JSON.stringify(datafile).slice(1)}`;
    expect(publicDatafileText(text, parsed(text))).toBe(text);
  });

  it("strips inline members and any other list field, keeping the rest as written", () => {
    const text = JSON.stringify({
      ...fixture,
      web: {
        ...fixture.web,
        lists: [{ ...fixture.web.lists[0], name: "VIPs", extra: ["cust_9"] }, fixture.web.lists[1]],
      },
    });
    const out = publicDatafileText(text, parsed(text));
    expect(out).not.toMatch(/cust_|qa-tester-\d"\]|VIPs/);
    expect(JSON.parse(out)).toEqual({
      ...fixture,
      web: {
        ...fixture.web,
        lists: [
          { id: "l_vip", key: "vip" },
          { id: "l_beta", key: "beta_testers" },
        ],
      },
    });
  });
});

describe("parseListMembers", () => {
  it.each([
    ["not json", /^\$: not JSON/],
    ["[]", /^\$: expected an object/],
    ['{"lists": []}', /^\$\.lists: expected an object/],
    ['{"lists": {"l1": "a"}}', /^\$\.lists\.l1: expected an array/],
    ['{"lists": {"l-1": ["a", 2]}}', /^\$\.lists\["l-1"\]\[1\]: expected a string/],
  ])("%s → an error naming the JSON path", (input, message) => {
    const result = parseListMembers(input);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(message);
  });

  it("a malformed document → where it breaks, quoting none of its members", () => {
    // V8's own message would quote the text around the error: `..."ple.com", bob]}}"`.
    const text = '{"lists": {"l1": ["alice@example.com",\n bob@example.com]}}';
    const result = parseListMembers(text);
    expect(result.ok).toBe(false);
    const message = result.ok ? "" : result.message;
    expect(message).toMatch(/^\$: not JSON: .* at position 40 \(line 2 column 2\)$/);
    expect(message).not.toMatch(/alice|bob|example/);
  });

  it("accepts a document", () => {
    const result = parseListMembers('{"lists": {"l1": ["a", "b"]}}');
    expect(result.ok && [...result.members]).toEqual([["l1", ["a", "b"]]]);
  });
});

describe("in_list with private members", () => {
  // An experiment whose only audience is `customer in_list vip`.
  const datafile = parsed({
    version: "4",
    accountId: "1",
    projectId: "1",
    revision: "3",
    attributes: [{ id: "a1", key: "customer" }],
    audiences: [],
    typedAudiences: [
      {
        id: "aud",
        name: "vip",
        conditions: [
          "or",
          { type: "custom_attribute", name: "customer", match: "in_list", value: "vip" },
        ],
      },
    ],
    events: [],
    experiments: [
      {
        id: "e1",
        key: "exp",
        status: "Running",
        layerId: "l",
        variations: [{ id: "v1", key: "on" }],
        trafficAllocation: [{ entityId: "v1", endOfRange: 10000 }],
        audienceIds: ["aud"],
        forcedVariations: {},
      },
    ],
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: { pages: [], experiments: [], events: [], lists: [{ id: "l1", key: "vip" }] },
  });
  const decide = (compiled: ReturnType<typeof compileDatafile>, customer: string) =>
    decideExperiment(compiled, "exp", { visitorId: "v", attributes: { customer } }).variationKey;

  it("a member matches, anyone else does not", () => {
    const compiled = compileDatafile(datafile, { listMembers: new Map([["l1", ["c-1", "c-2"]]]) });
    expect(decide(compiled, "c-2")).toBe("on");
    expect(decide(compiled, "c-3")).toBeNull();
  });

  it("without the members the list is unknown: nobody matches", () => {
    expect(decide(compileDatafile(datafile), "c-2")).toBeNull();
    const other = compileDatafile(datafile, { listMembers: new Map([["l2", ["c-2"]]]) });
    expect(decide(other, "c-2")).toBeNull();
  });
});
