import { describe, expect, it } from "vitest";
import { formatPath, formatProblems } from "../../src/core/problem";

describe("formatPath", () => {
  it("renders keys and indexes from the root", () => {
    expect(formatPath([])).toBe("$");
    expect(formatPath(["experiments", 3, "trafficAllocation", 0, "endOfRange"])).toBe(
      "$.experiments[3].trafficAllocation[0].endOfRange",
    );
  });

  it("quotes keys that are not identifiers", () => {
    expect(formatPath(["forcedVariations", "user 1"])).toBe('$.forcedVariations["user 1"]');
    expect(formatPath(["a-b", 'x"y'])).toBe('$["a-b"]["x\\"y"]');
  });
});

describe("formatProblems", () => {
  it("writes one line per problem", () => {
    expect(
      formatProblems([
        { path: "$.revision", message: "must be a string", severity: "error" },
        { path: "$.groups[0]", message: "empty group", severity: "warning" },
      ]),
    ).toBe("error $.revision: must be a string\nwarning $.groups[0]: empty group");
  });

  it("writes nothing for no problems", () => {
    expect(formatProblems([])).toBe("");
  });
});
