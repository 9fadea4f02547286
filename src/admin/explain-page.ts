/**
 * "Why did I (not) get this?" (docs/admin.md): for a URL and a visitor, what the edge decides with
 * the environment's published datafile — which pages match the URL, which experiments run on
 * them, and each one's decision with the core's reason and bucket, in the words of `splitstream
 * decide` (src/core/explain.ts). It reads the datafile the edge reads (KV `datafiles/{sdkKey}`,
 * with its list members, as src/edge/datafile-store.ts loads it) and decides with the same code
 * (src/edge/page-plan.ts, src/core/decide.ts); it changes nothing, so it is a GET form any role
 * may use.
 *
 * The admin is not the visitor's request: the request attributes (`geo.country`,
 * `device.type`, …) come from the form's JSON, and only the URL's own attributes (`url`, `path`,
 * `query.*`, `utm.*`) are computed, as the edge computes them. The visitor `me` is this browser's
 * own `ss_vid` cookie (Path=/, so it reaches /_ss/admin on the site's host), with its recorded
 * decisions (`ss_dec`) and stored attributes (`ss_attrs`), as the edge would read them.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import { unprocessable, type ApiError } from "../api/errors";
import { getProject, type ProjectWithEnvironments } from "../api/services/projects";
import {
  compileParsed,
  decideAll,
  decidePrepared,
  formatProblems,
  prepareVisitor,
  type CompiledDatafile,
  type Decision,
  type Problem,
} from "../core/index";
import { parseDatafile } from "../core/datafile-parse";
import { DECISION_REASON_TEXT, renderExplanation } from "../core/explain";
import { listsWithoutValues, type ListMembers } from "../core/list-members";
import { parseCookies } from "../edge/cookies";
import { datafileKey } from "../edge/datafile-store";
import { readListMembers } from "../edge/list-members";
import { planPage, type PagePlan } from "../edge/page-plan";
import { PREVIEW_QUERY_PARAM } from "../edge/preview";
import { buildRequestAttributes } from "../edge/request-attributes";
import { readVisitor, type VisitorState } from "../edge/visitor";
import { field, fieldErrors, formErrors, select, textarea } from "./forms";
import { projectNav } from "./settings-pages";
import { sendPage } from "./ui";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  type AdminContext,
  type AdminEnv,
  type Html,
} from "./ui";

/** The visitor id that means "this browser's own visitor id". */
const ME = "me";
/** Longest visitor id and attributes JSON the form takes (the page is a GET: its URL stays short). */
const MAX_VISITOR_LENGTH = 256;
const MAX_ATTRIBUTES_LENGTH = 4096;

/** What the form asks. */
interface ExplainQuery {
  environment: string;
  url: string;
  visitor: string;
  attributes: string;
}

/** The question, checked: what to decide for whom. */
interface Question {
  sdkKey: string;
  environmentKey: string;
  url: URL;
  visitorId: string;
  /** "cookie": `me`, read from this browser's cookies; "typed": as typed in the form. */
  visitorSource: "cookie" | "typed";
  attributes: Record<string, unknown>;
  sticky: Record<string, string> | undefined;
}

/** The published datafile of an environment, compiled as the edge compiles it. */
type Published =
  | { ok: true; compiled: CompiledDatafile; warnings: Problem[]; missingLists: string[] }
  | { ok: false; message: string; problems: Problem[] };

/** A visitor without cookies, for the URL's attributes only (see {@link urlAttributes}). */
const NO_VISITOR: VisitorState = {
  id: "",
  isNew: false,
  idSource: "ss_vid",
  sticky: {},
  attributes: {},
  optedOut: false,
  gpc: false,
  bot: false,
  previewToken: null,
};

/**
 * The attributes the edge derives from the URL alone (`url`, `path`, `query.*`, `utm.*`), by the
 * edge's own builder (src/edge/request-attributes.ts): the rest of its output describes the
 * request (headers, user agent, time), which is the form's to say here.
 */
function urlAttributes(url: URL): Record<string, unknown> {
  const all = buildRequestAttributes(
    new Request(url.href),
    url,
    new Map(),
    NO_VISITOR,
    new Date(0),
    { headers: false, cookies: false },
  );
  return Object.fromEntries(
    Object.entries(all).filter(
      ([name]) =>
        name === "url" || name === "path" || name.startsWith("query.") || name.startsWith("utm."),
    ),
  );
}

/** `text` as an absolute http(s) URL, else null. */
function httpUrl(text: string): URL | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url : null;
}

/**
 * The question from the form, or the problems of its fields (422 `validation_failed` with one
 * detail per field, named by the field so each lands beside it).
 */
function checkQuestion(
  c: AdminContext,
  query: ExplainQuery,
  project: ProjectWithEnvironments,
): { ok: true; question: Question } | { ok: false; error: ApiError } {
  const problems: Array<{ path: string; message: string }> = [];
  const environment = project.environments.find((e) => e.key === query.environment);
  if (!environment)
    problems.push({
      path: "environment",
      message: `the project has no environment ${JSON.stringify(query.environment)}`,
    });

  const url = httpUrl(query.url.trim());
  if (url === null)
    problems.push({
      path: "url",
      message: "enter an absolute http(s) URL, e.g. https://shop.example.com/products/1",
    });
  // The edge keeps a preview link's token out of the URL it matches (src/edge/handle-request.ts).
  url?.searchParams.delete(PREVIEW_QUERY_PARAM);

  const typed = query.visitor.trim();
  let visitorId = typed;
  let sticky: Record<string, string> | undefined;
  let stored: Record<string, unknown> = {};
  if (typed === ME) {
    // The edge's own reading of the cookies: ss_vid, else optimizelyEndUserId; ss_dec; ss_attrs.
    const visitor = readVisitor(c.req.raw, parseCookies(c.req.header("cookie") ?? null));
    if (visitor.idSource === "new")
      problems.push({
        path: "visitor",
        message:
          "this browser has no ss_vid cookie for this site yet: open one of its pages first, or enter a visitor id",
      });
    visitorId = visitor.id;
    sticky = visitor.sticky;
    stored = visitor.attributes;
  } else if (typed === "" || typed.length > MAX_VISITOR_LENGTH) {
    problems.push({
      path: "visitor",
      message: `enter a visitor id (1 to ${MAX_VISITOR_LENGTH} characters), or ${ME}`,
    });
  }

  let attributes: Record<string, unknown> = {};
  const attributesText = query.attributes.trim();
  if (attributesText.length > MAX_ATTRIBUTES_LENGTH) {
    problems.push({
      path: "attributes",
      message: `at most ${MAX_ATTRIBUTES_LENGTH} characters of JSON`,
    });
  } else if (attributesText !== "") {
    let value: unknown;
    try {
      value = JSON.parse(attributesText);
    } catch (error) {
      problems.push({
        path: "attributes",
        message: `not valid JSON: ${(error as Error).message}`,
      });
    }
    if (value !== undefined) {
      if (value === null || typeof value !== "object" || Array.isArray(value))
        problems.push({
          path: "attributes",
          message: 'must be a JSON object, e.g. {"geo.country": "DE"}',
        });
      else attributes = value as Record<string, unknown>;
    }
  }

  if (problems.length > 0 || !environment || !url) {
    const [first] = problems;
    return {
      ok: false,
      error: unprocessable(
        first ? `${first.path}: ${first.message}` : "the question is incomplete",
        problems,
      ),
    };
  }
  return {
    ok: true,
    question: {
      sdkKey: environment.sdk_key,
      environmentKey: environment.key,
      url,
      visitorId,
      visitorSource: typed === ME ? "cookie" : "typed",
      // As at the edge, the request's attributes win over the stored ones; the form's JSON,
      // standing for the rest of the request, comes last.
      attributes: { ...stored, ...urlAttributes(url), ...attributes },
      sticky,
    },
  };
}

/**
 * The environment's published datafile as the edge compiles it: KV `datafiles/{sdkKey}`, and the
 * private members of its lists from `lists/{sdkKey}/{revision}` (src/edge/datafile-store.ts).
 * Read afresh (no isolate cache), so the page explains the latest publish.
 */
async function loadPublished(kv: KVNamespace, sdkKey: string): Promise<Published> {
  const text = await kv.get(datafileKey(sdkKey), "text");
  if (text === null)
    return {
      ok: false,
      message: `Nothing is published for this environment yet (no ${datafileKey(sdkKey)}): the edge serves every page as the origin sends it.`,
      problems: [],
    };
  // As the edge loads it: a selector the edge cannot run does not stop the datafile loading
  // (the rewriter skips that change), so it is reported as a warning.
  const parsed = parseDatafile(text, { edgeSelectors: "warning" });
  let listMembers: ListMembers | undefined;
  let missingLists: string[] = [];
  if (parsed.ok) {
    const needed = listsWithoutValues(parsed.datafile);
    if (needed.length > 0) {
      const members = await readListMembers(kv, sdkKey, parsed.datafile.revision);
      listMembers = members?.ok ? members.members : undefined;
      missingLists = needed.filter((l) => !listMembers?.has(l.id)).map((l) => l.key);
    }
  }
  const loaded = compileParsed(parsed, { listMembers });
  if (!loaded.ok)
    return {
      ok: false,
      message:
        "The published datafile does not load, so the edge keeps serving the last one that did (or passes pages through):",
      problems: loaded.problems,
    };
  return { ok: true, compiled: loaded.compiled, warnings: loaded.problems, missingLists };
}

/** `'…'` for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function reasonCell(decision: Decision): Html {
  return html`<code>${decision.reason}</code><br /><span class="muted"
      >${DECISION_REASON_TEXT[decision.reason]}</span
    >`;
}

function pagesSection(compiled: CompiledDatafile, plan: PagePlan, url: URL): Html {
  return html`<h2>Pages matching the URL</h2>
    ${
      plan.matchedPages.length === 0
        ? html`<p class="warning" role="status" data-no-page>
            No page of the datafile matches <code>${url.href}</code>: the edge decides no experiment
            there and serves the page as the origin sends it.
          </p>`
        : html`<p>
            ${plan.matchedPages.length} of ${compiled.pages.length} page(s) match
            <code>${url.href}</code>.
          </p>`
    }
    ${
      compiled.pages.length === 0
        ? html`<p class="muted">The datafile has no pages.</p>`
        : html`<table data-list="pages">
            <thead>
              <tr>
                <th scope="col">Page</th>
                <th scope="col">Activation</th>
                <th scope="col">Matches the URL</th>
              </tr>
            </thead>
            <tbody>
              ${compiled.pages.map((p) => {
                const matches = plan.matchedPageIds.has(p.id);
                return html`<tr data-page="${p.key}" data-matches="${matches ? "true" : "false"}">
                  <th scope="row">${p.key} <span class="muted">${p.id}</span></th>
                  <td>${p.page.activation}</td>
                  <td>${matches ? html`<strong>yes</strong>` : "no"}</td>
                </tr>`;
              })}
            </tbody>
          </table>`
    }`;
}

function experimentsSection(
  compiled: CompiledDatafile,
  plan: PagePlan,
  decisions: Decision[],
): Html {
  const pageKey = (id: string) => compiled.pageById.get(id)?.key ?? id;
  return html`<h2>Experiments considered</h2>
    ${
      plan.candidates.length === 0
        ? html`<p data-no-experiment>
            ${
              plan.matchedPages.length === 0
                ? "None: no page matches."
                : "None: no experiment runs on the matching pages."
            }
          </p>`
        : html`<table data-list="decisions">
            <thead>
              <tr>
                <th scope="col">Experiment</th>
                <th scope="col">Status</th>
                <th scope="col">Variation</th>
                <th scope="col">Reason</th>
                <th scope="col" class="num">Bucket</th>
                <th scope="col">Activation</th>
                <th scope="col">Pages</th>
              </tr>
            </thead>
            <tbody>
              ${plan.candidates.map((candidate, i) => {
                const d = decisions[i]!;
                return html`<tr
                  data-experiment="${d.experimentKey}"
                  data-reason="${d.reason}"
                  data-variation="${d.variationKey ?? ""}"
                >
                  <th scope="row">${d.experimentKey}</th>
                  <td>${candidate.experiment.status}</td>
                  <td>${d.variationKey ?? html`<span class="muted">none (original)</span>`}</td>
                  <td>${reasonCell(d)}</td>
                  <td class="num">${d.bucket ?? "–"}</td>
                  <td>${candidate.activation}</td>
                  <td>${candidate.pageIds.map(pageKey).join(", ")}</td>
                </tr>`;
              })}
            </tbody>
          </table>`
    }`;
}

/** The answer: the datafile, the visitor, the pages, the decisions, the CLI's words. */
function explanation(question: Question, published: Published): Html {
  if (!published.ok)
    return html`<section data-section="explanation">
      <p class="warning" role="status" data-datafile="missing">${published.message}</p>
      ${published.problems.length > 0 ? html`<pre>${formatProblems(published.problems)}</pre>` : ""}
    </section>`;
  const { compiled } = published;
  const plan = planPage(compiled, question.url.href);
  const prepared = prepareVisitor(compiled, {
    visitorId: question.visitorId,
    attributes: question.attributes,
    sticky: question.sticky,
  });
  const decisions = plan.candidates.map((candidate) =>
    decidePrepared(candidate.experiment, prepared),
  );
  const attributesJson = JSON.stringify(question.attributes);
  const everything = decideAll(compiled, {
    visitorId: question.visitorId,
    attributes: question.attributes,
  });
  const stickyCount = Object.keys(question.sticky ?? {}).length;
  return html`<section data-section="explanation">
    <h2>Datafile</h2>
    <p>
      Environment <strong>${question.environmentKey}</strong> · SDK key
      <code>${question.sdkKey}</code> · revision <strong data-revision>${compiled.revision}</strong>
    </p>
    ${
      published.missingLists.length > 0
        ? html`<p class="warning">
            The members of list(s) ${published.missingLists.join(", ")} are not published:
            <code>in_list</code> conditions on them match nobody, here as at the edge.
          </p>`
        : ""
    }
    <h2>Visitor</h2>
    <p>
      Visitor id <code data-visitor>${question.visitorId}</code>
      ${
        question.visitorSource === "cookie"
          ? html`(this browser's visitor cookie;
            ${
              stickyCount === 0
                ? "no recorded decisions"
                : `${stickyCount} recorded decision(s) from ss_dec, kept as at the edge`
            })`
          : html`(as typed: recorded decisions live in that visitor's browser, so none are applied)`
      }.
    </p>
    <p>Attributes used (the URL's, then the form's):</p>
    <pre data-attributes>${JSON.stringify(question.attributes, null, 2)}</pre>
    ${pagesSection(compiled, plan, question.url)} ${experimentsSection(compiled, plan, decisions)}
    <h2>As <code>splitstream decide</code> explains it</h2>
    <pre data-cli>${renderExplanation(compiled.revision, question.visitorId, decisions)}</pre>
    <details>
      <summary>Every experiment of the datafile, on any page</summary>
      <p class="muted">
        What <code>splitstream decide</code> prints for this visitor and these attributes (without
        recorded decisions), with the datafile saved from
        <code>/_ss/datafiles/${question.sdkKey}.json</code>:
        <code
          >splitstream decide --datafile datafile.json --visitor ${shellQuote(question.visitorId)}
          --attributes ${shellQuote(attributesJson)}</code
        >
      </p>
      <pre data-cli-all>
${renderExplanation(compiled.revision, question.visitorId, everything)}</pre>
    </details>
  </section>`;
}

function questionForm(
  projectId: string,
  project: ProjectWithEnvironments,
  query: ExplainQuery,
  error: ApiError | null,
): Html {
  const problems = fieldErrors(error);
  return html`${formErrors(error)}
    <form
      method="get"
      action="${ADMIN_BASE_PATH}/projects/${encodeURIComponent(projectId)}/explain"
      data-form="explain"
    >
      ${select({
        name: "environment",
        label: "Environment",
        value: query.environment,
        error: problems.get("environment"),
        options: project.environments.map((e) => ({ value: e.key, label: e.key })),
      })}
      ${field({
        name: "url",
        label: "Page URL",
        type: "url",
        value: query.url,
        error: problems.get("url"),
        hint: "The address of the page as the visitor opened it.",
        required: true,
      })}
      ${field({
        name: "visitor",
        label: "Visitor id",
        value: query.visitor,
        error: problems.get("visitor"),
        hint: `A visitor id (the ss_vid cookie), or ${ME}: this browser's own.`,
        required: true,
      })}
      ${textarea({
        name: "attributes",
        label: "Attributes (JSON, optional)",
        value: query.attributes,
        error: problems.get("attributes"),
        rows: 3,
        hint: 'What the request would tell the edge, e.g. {"geo.country": "DE", "device.type": "mobile"}.',
      })}
      <button type="submit">Explain</button>
    </form>`;
}

/** Registers `GET /projects/:id/explain` (docs/admin.md "Why did I (not) get this?"). */
export function registerExplainPages(app: Hono<AdminEnv>): void {
  app.get("/projects/:id/explain", async (c) => {
    const actor: Actor = c.get("actor");
    const id = c.req.param("id");
    const found = await attempt(() => getProject(c.env, actor, id));
    if (!found.ok)
      return sendPage(c, "Why did I (not) get this?", errorBlock(found.error), found.error.status);
    const project = found.value;
    const asked = c.req.query("url") !== undefined;
    const query: ExplainQuery = {
      environment: c.req.query("environment") ?? "production",
      url: c.req.query("url") ?? "",
      visitor: c.req.query("visitor") ?? ME,
      attributes: c.req.query("attributes") ?? "",
    };
    const checked = asked ? checkQuestion(c, query, project) : null;
    const answer =
      checked?.ok === true
        ? explanation(
            checked.question,
            await loadPublished(c.env.DATAFILES, checked.question.sdkKey),
          )
        : html``;
    return sendPage(
      c,
      `Why did I (not) get this? · ${project.project.name}`,
      html`${projectNav(id, actor)}
        <h1>Why did I (not) get this?</h1>
        <p class="muted">
          What the edge decides for a visitor on a page, with the environment's published datafile:
          the pages that match the URL, the experiments on them, and each decision with its reason
          (docs/decisions.md).
        </p>
        ${questionForm(id, project, query, checked?.ok === false ? checked.error : null)} ${answer}`,
      checked?.ok === false ? checked.error.status : 200,
    );
  });
}
