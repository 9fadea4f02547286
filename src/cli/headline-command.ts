/**
 * `splitstream headline create` (docs/bandits.md "Headline tests"): one call to
 * `POST /projects/{projectId}/headline-tests`, against a running Worker like the other API
 * commands (--api-url/--token or SPLITSTREAM_API_URL/SPLITSTREAM_TOKEN). Images are not offered
 * here: send `headlines[].imageUrl` to the API directly.
 */
import { parseArgs } from "node:util";
import { apiOptions, callApi, print } from "./api-command";
import { CliError } from "./io";

export const HEADLINE_USAGE = `Usage (headline tests, a bandit over headlines; same --api-url / --token as above):
  splitstream headline create --project ID --key KEY
      (--url-substring S | --url-simple URL | --url-exact URL | --url-regex RE | --page PAGE_ID)
      (--headline-id ID | --selector CSS)
      --headline TEXT --headline TEXT [--headline TEXT …]   (2 to 10; the first is the original)
      [--event EVENT_ID] [--name NAME] [--start]
      --headline-id ID targets the CMS marker data-ss-headline="ID"; without --event the metric
      is a click on the headline; --start starts it in production
  Add --json for raw JSON output.`;

const OPTIONS = {
  "api-url": { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
  project: { type: "string" },
  key: { type: "string" },
  name: { type: "string" },
  "url-substring": { type: "string" },
  "url-simple": { type: "string" },
  "url-exact": { type: "string" },
  "url-regex": { type: "string" },
  page: { type: "string" },
  "headline-id": { type: "string" },
  selector: { type: "string" },
  headline: { type: "string", multiple: true },
  event: { type: "string" },
  start: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

const URL_FLAGS = ["url-substring", "url-simple", "url-exact", "url-regex"] as const;

interface HeadlineTestJson {
  experiment: {
    id: string;
    key: string;
    variations: Array<{ key: string; name?: string; weight: number }>;
    status: Record<string, string>;
  };
  page: { id: string; key: string };
  event: { id: string; key: string; type: string };
  created: { page: boolean; event: boolean };
  published: Array<{ environmentKey: string; revision: number; changed: boolean }>;
}

/** The request body from the parsed flags (exported for tests). */
export function headlineTestBody(values: {
  key?: string;
  name?: string;
  "url-substring"?: string;
  "url-simple"?: string;
  "url-exact"?: string;
  "url-regex"?: string;
  page?: string;
  "headline-id"?: string;
  selector?: string;
  headline?: string[];
  event?: string;
  start?: boolean;
}): Record<string, unknown> {
  if (!values.key) throw new CliError("--key is required", 2);
  const urls = URL_FLAGS.filter((flag) => values[flag] !== undefined);
  if (urls.length + (values.page === undefined ? 0 : 1) !== 1)
    throw new CliError(
      "exactly one of --url-substring, --url-simple, --url-exact, --url-regex or --page is required",
      2,
    );
  if ((values["headline-id"] === undefined) === (values.selector === undefined))
    throw new CliError("exactly one of --headline-id or --selector is required", 2);
  const headlines = values.headline ?? [];
  if (headlines.length < 2)
    throw new CliError("at least 2 --headline (the first is the original) are required", 2);
  const body: Record<string, unknown> = {
    key: values.key,
    headlines: headlines.map((text) => ({ text })),
  };
  if (values.name !== undefined) body.name = values.name;
  const flag = urls[0];
  if (flag !== undefined) body.url = { match: flag.slice("url-".length), value: values[flag] };
  else body.pageId = values.page;
  if (values["headline-id"] !== undefined) body.headlineId = values["headline-id"];
  else body.selector = values.selector;
  if (values.event !== undefined) body.metricEventId = values.event;
  if (values.start) body.start = true;
  return body;
}

function render(d: HeadlineTestJson): string {
  const lines = [
    `headline test ${d.experiment.key} (experiment ${d.experiment.id})`,
    `  page   ${d.page.key} (${d.page.id})${d.created.page ? " — created" : ""}`,
    `  metric ${d.event.key} (${d.event.type}, ${d.event.id})${d.created.event ? " — created" : ""}`,
    ...d.experiment.variations.map(
      (v) => `  ${v.key.padEnd(12)} ${String(v.weight).padStart(5)} bp  ${v.name ?? ""}`,
    ),
    `  status ${Object.entries(d.experiment.status)
      .map(([env, status]) => `${env}: ${status}`)
      .join(", ")}`,
    `  published ${d.published.map((p) => `${p.environmentKey} r${p.revision}${p.changed ? "" : " (unchanged)"}`).join(", ")}`,
  ];
  return lines.join("\n");
}

/** Runs `splitstream headline …`. */
export async function runHeadlineCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${HEADLINE_USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${HEADLINE_USAGE}\n`);
    return 0;
  }
  if (positionals[0] !== "create" || positionals.length !== 1)
    throw new CliError(`unknown headline command\n\n${HEADLINE_USAGE}`, 2);
  if (!values.project) throw new CliError("--project is required", 2);
  const body = headlineTestBody(values);
  const o = apiOptions(values);
  const data = (await callApi(
    o,
    "POST",
    `/projects/${encodeURIComponent(values.project)}/headline-tests`,
    body,
  )) as HeadlineTestJson;
  print(o, data, render);
  return 0;
}
