/**
 * What an unchanged save of an admin form must keep (docs/admin.md "Editing"): conditions and
 * allocation rows past the form's row limit, line breaks in text values, forced visitor ids with
 * `=` or named `__proto__`, chosen options past the first 1,000 listed, a `move` change's fields;
 * and the URL tester's host scan staying linear in the value's length (src/admin/url-tester.ts).
 */
import { exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "../../src/api/errors";
import {
  changeBody,
  changeDraftFromTree,
  changeDraftOf,
  changeList,
  changeSummary,
  formTree,
  itemsAt,
  setOf,
} from "../../src/admin/change-fields";
import {
  conditionsBody,
  conditionsStateOf,
  MAX_ROWS,
  readConditions,
} from "../../src/admin/condition-rows";
import { forcedVariationsOf } from "../../src/admin/experiment-draft";
import { chosenFirst } from "../../src/admin/experiment-pages";
import { field, fieldId, select, type PostedForm } from "../../src/admin/forms";
import { urlLeafCodec } from "../../src/admin/page-kind";
import { groupKind, MAX_ALLOCATION_ROWS } from "../../src/admin/resource-kinds";
import { literalHosts } from "../../src/admin/url-tester";
import {
  adminSession,
  API_ORIGIN,
  apiJson,
  createProject,
  type ProjectWithEnvironments,
} from "../helpers/api";

const ADMIN = `${API_ORIGIN}/_ss/admin`;

function postedForm(pairs: Array<[string, string]>): PostedForm {
  const form: PostedForm = new Map();
  for (const [name, value] of pairs) {
    const list = form.get(name);
    if (list) list.push(value);
    else form.set(name, [value]);
  }
  return form;
}

const leaves = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ match: "substring", value: `/p${i}` }));

describe("conditions past the form's row limit are never cut", () => {
  let project: ProjectWithEnvironments;
  let editor: string;
  beforeEach(async () => {
    project = await createProject();
    editor = await adminSession();
  });

  it("a stored flat tree with more rows than the form shows is edited as JSON, whole", () => {
    const tree = ["or", ...leaves(MAX_ROWS + 5)];
    const state = conditionsStateOf(tree, urlLeafCodec);
    expect(state.mode).toBe("json");
    expect(conditionsBody(state, urlLeafCodec).tree).toEqual(tree);
    // Switching such JSON to rows keeps it JSON.
    const back = readConditions(
      postedForm([
        ["_mode", "json"],
        ["_refresh", "rows"],
        ["conditions", JSON.stringify(tree)],
      ]),
      urlLeafCodec,
      "or",
    );
    expect(back.mode).toBe("json");
    expect(conditionsBody(back, urlLeafCodec).tree).toEqual(tree);
  });

  it("a posted form with more rows than the limit saves every one of them", async () => {
    const n = MAX_ROWS + 3;
    const pairs: Array<[string, string]> = [
      ["key", "many"],
      ["_mode", "rows"],
      ["conditions", "or"],
    ];
    for (let i = 0; i < n; i++)
      pairs.push([`conditions[${i}].match`, "substring"], [`conditions[${i}].value`, `/p${i}`]);
    const state = readConditions(postedForm(pairs), urlLeafCodec, "or");
    expect(conditionsBody(state, urlLeafCodec).tree).toEqual(["or", ...leaves(n)]);

    const response = await exports.default.fetch(`${ADMIN}/projects/${project.id}/pages`, {
      method: "POST",
      redirect: "manual",
      headers: {
        cookie: editor,
        "sec-fetch-site": "same-origin",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams(pairs).toString(),
    });
    expect(response.status).toBe(303);
    const listed = await apiJson("GET", `/projects/${project.id}/pages`, 200);
    const page = await apiJson("GET", `/pages/${listed.items[0].id}`, 200);
    expect(page.conditions).toEqual(["or", ...leaves(n)]);
  });

  it("a group form with more allocation rows than it saves is 422 beside allocation", () => {
    const pairs: Array<[string, string]> = [
      ["name", "g"],
      ["policy", "random"],
    ];
    for (let i = 0; i <= MAX_ALLOCATION_ROWS; i++)
      pairs.push([`allocation[${i}].experimentId`, `x${i}`], [`allocation[${i}].weight`, "1"]);
    const state = groupKind.read(postedForm(pairs), { experiments: [] }, null);
    expect(state.allocation).toHaveLength(MAX_ALLOCATION_ROWS + 1);
    let thrown: unknown;
    try {
      groupKind.body(state, "update", null);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ApiError);
    expect((thrown as ApiError).status).toBe(422);
    expect((thrown as ApiError).details).toEqual([
      { path: "$.body.allocation", message: expect.stringContaining("at most 200") },
    ]);
  });
});

describe("line breaks survive an unchanged save", () => {
  it("a text value with a line break is shown in a textarea, not an input", () => {
    for (const value of ["Line one\nLine two", "a\r\nb", "a\rb"]) {
      const markup = String(
        field({ name: "variations[0].changes[0].attributes.text", label: "Text", value }),
      );
      expect(markup).toContain("<textarea");
      expect(markup).not.toContain("<input");
      expect(markup).toContain(`>\n${value}</textarea>`);
    }
    const single = String(field({ name: "name", label: "Name", value: "one line" }));
    expect(single).toContain("<input");
    expect(String(field({ name: "s", label: "Style", value: "", multiline: true }))).toContain(
      "<textarea",
    );
  });
});

describe("forced variations and set attributes", () => {
  it("splits visitorId=variationKey at the last =, so base64 ids keep their padding", () => {
    const forced = forcedVariationsOf("dXNlcjE==b\nYWJj==a\nplain=a\n");
    expect({ ...forced }).toEqual({ "dXNlcjE=": "b", "YWJj=": "a", plain: "a" });
  });

  it("keeps a visitor id or an attribute name __proto__ as an entry", () => {
    const forced = forcedVariationsOf("__proto__=b\nv=a");
    expect(Object.keys(forced)).toEqual(["__proto__", "v"]);
    expect(JSON.parse(JSON.stringify(forced))).toEqual(JSON.parse('{"__proto__":"b","v":"a"}'));
    const set = setOf("__proto__=x\ndata-a=1");
    expect(Object.keys(set)).toEqual(["__proto__", "data-a"]);
    expect(JSON.stringify(set)).toBe('{"__proto__":"x","data-a":"1"}');
  });
});

describe("a move change in the change fields", () => {
  const move = {
    type: "move",
    selector: "#buy",
    target: ".product-info h1",
    position: "before",
    html: '<button id="buy" class="btn">Add to cart</button>',
    pageId: "p1",
    id: "imported-7",
  };
  const ctx = (errors: Array<[string, string]>) => ({
    errors: new Map(errors),
    pages: [{ value: "p1", label: "home" }],
  });

  it("is offered as a type, with its fields, labels and the hint about the captured HTML", () => {
    const markup = String(changeList("variations[0].changes", [changeDraftOf(move)], ctx([])));
    expect(markup).toMatch(/<option value="move"[^>]*>\s*move: Move an element/);
    expect(markup).toMatch(/<option value="move" selected>/);
    for (const [name, label] of [
      ["selector", "Selector (the element to move)"],
      ["target", "Move next to"],
      ["position", "Position"],
      ["html", "Moved HTML (captured when the move was made)"],
    ]) {
      const id = fieldId(`variations[0].changes[0].${name}`);
      expect(markup).toContain(`<label for="${id}">${label}</label>`);
      expect(markup).toContain(`id="${id}"`);
    }
    expect(markup).toContain("The visual editor captures the element&#39;s HTML");
    // Its four positions; replace is insert_html's only.
    const position = markup.slice(markup.indexOf(`name="variations[0].changes[0].position"`));
    const options = [
      ...position.slice(0, position.indexOf("</select>")).matchAll(/value="(\w+)"/g),
    ];
    expect(options.map((m) => m[1])).toEqual(["before", "after", "prepend", "append"]);
    // The imported key rides along.
    expect(markup).toContain(`name="variations[0].changes[0]._extra"`);
    // The "New change" select offers it too.
    expect(markup).toContain(`<option value="move">move</option>`);
  });

  it("goes from the API to the fields and back exactly, and from posted fields to the API", () => {
    expect(changeBody(changeDraftOf(move))).toEqual(move);
    const posted = postedForm([
      ["variations[0].changes[2].type", "move"],
      ["variations[0].changes[2]._rendered", "move"],
      ["variations[0].changes[2].selector", move.selector],
      ["variations[0].changes[2].target", move.target],
      ["variations[0].changes[2].position", "append"],
      ["variations[0].changes[2].html", "<div>\r\n  <b>x</b>\r\n</div>"],
      ["variations[0].changes[2].pageId", ""],
    ]);
    const [variation] = itemsAt(formTree(posted), "variations");
    const [draft] = itemsAt(variation!, "changes").map(changeDraftFromTree);
    expect(changeBody(draft!)).toEqual({
      type: "move",
      selector: "#buy",
      target: ".product-info h1",
      position: "append",
      html: "<div>\n  <b>x</b>\n</div>",
    });
    expect(changeSummary(move)).toBe("move #buy before .product-info h1 (page p1)");
  });

  it("a type switched to move starts from move's defaults, keeping the selector", () => {
    const posted = postedForm([
      ["changes[0].type", "move"],
      ["changes[0]._rendered", "insert_html"],
      ["changes[0].selector", "h1"],
      ["changes[0].position", "replace"],
      ["changes[0].html", "<p>old</p>"],
    ]);
    const [draft] = itemsAt(formTree(posted), "changes").map(changeDraftFromTree);
    expect(changeBody(draft!)).toEqual({
      type: "move",
      selector: "h1",
      target: "",
      position: "after",
      html: "",
    });
  });

  it("shows each problem beside its own field", () => {
    const drafts = [
      changeDraftOf({ type: "custom_css", value: "a{}" }),
      changeDraftOf({ type: "custom_css", value: "b{}" }),
      changeDraftOf(move),
    ];
    const errors: Array<[string, string]> = [
      ["variations[0].changes[2].target", "selector must not be empty"],
      ["variations[0].changes[2].position", "expected one of before, after, prepend, append"],
      ["variations[0].changes[2].html", "html is required"],
    ];
    const markup = String(changeList("variations[0].changes", drafts, ctx(errors)));
    for (const [path, message] of errors) {
      const id = fieldId(path);
      expect(markup).toContain(`<span class="field-error" id="${id}-error">${message}</span>`);
      expect(markup).toMatch(
        new RegExp(`id="${id}"[^>]*aria-invalid="true"[^>]*aria-describedby="[^"]*${id}-error`),
      );
    }
    expect(markup).not.toContain(`${fieldId("variations[0].changes[2].selector")}-error`);
  });
});

describe("a chosen value past the listed options is kept", () => {
  const options = Array.from({ length: 1000 }, (_, i) => ({ value: `id${i}`, label: `k${i}` }));

  it("select() offers the current value by its id, selected", () => {
    const one = String(select({ name: "groupId", label: "Group", value: "id5000", options }));
    expect(one).toMatch(/<option value="id5000" selected>\s*id5000 \(not listed\)/);
    const many = String(
      select({
        name: "pageIds",
        label: "Pages",
        value: ["id1", "id7000"],
        multiple: true,
        options,
      }),
    );
    expect(many).toMatch(/<option value="id7000" selected>/);
    expect(many).toMatch(/<option value="id1" selected>/);
    // A blank value keeps the browser's default (the first option).
    expect(String(select({ name: "t", label: "T", value: "", options }))).not.toContain(
      "not listed",
    );
  });

  it("chosenFirst keeps unlisted chosen values in their order", () => {
    expect(chosenFirst(options.slice(0, 2), ["id9000", "id1"]).map((o) => o.value)).toEqual([
      "id9000",
      "id1",
      "id0",
    ]);
  });
});

describe("the URL tester's host scan", () => {
  /** The scan this replaced: a host pattern tried at every position (quadratic). */
  const HOST_TOKEN =
    /(:\/\/)?((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?::(\d{1,5}))?(?=$|[/?#$])/gi;
  function reference(text: string): Array<[string, boolean]> {
    const out: Array<[string, boolean]> = [];
    for (const match of text.matchAll(HOST_TOKEN)) {
      const anchored = match[1] !== undefined;
      if (!anchored && match[3] === undefined) continue;
      out.push([`${match[2]!}${match[3] === undefined ? "" : `:${match[3]}`}`, anchored]);
    }
    return out;
  }
  const raw = (text: string) =>
    literalHosts(text).map((h): [string, boolean] => [
      `${h.hostname}${h.port === "" ? "" : `:${h.port}`}`,
      !h.portOnly,
    ]);

  it("finds the hosts the every-position scan found", () => {
    const alphabet = "ab1-.:/?#$x9:/0";
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 3000; n++) {
      const length = 1 + Math.floor(random() * 24);
      let text = "";
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      // As literalHosts reads a match: through the URL parser, dropped when it refuses it.
      const expected = reference(text).flatMap(([host, anchored]): Array<[string, boolean]> => {
        if (!URL.canParse(`http://${host}/`)) return [];
        const url = new URL(`http://${host}/`);
        return [[`${url.hostname}${url.port === "" ? "" : `:${url.port}`}`, anchored]];
      });
      expect(raw(text), text).toEqual(expected);
    }
    expect(raw("https://shop.example.com:8443/x and api.example.com:8080/")).toEqual([
      ["shop.example.com:8443", true],
      ["api.example.com:8080", false],
    ]);
  });
});
