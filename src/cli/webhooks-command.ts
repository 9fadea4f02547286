/**
 * `splitstream webhooks …` (docs/webhooks.md "CLI"): a project's webhooks, creating one (its
 * secret printed once), a test delivery, the delivery log, one delivery's attempts and redelivering
 * a finished delivery (docs/webhooks.md "Redelivering"), against a
 * running Worker like the other API commands (--api-url/--token or SPLITSTREAM_API_URL /
 * SPLITSTREAM_TOKEN; the API wants an admin token).
 */
import { parseArgs } from "node:util";
import { apiOptions, callApi, print } from "./api-command";
import { CliError } from "./io";

export const WEBHOOKS_USAGE = `Usage (webhooks, admin token; same --api-url / --token as above):
  splitstream webhooks list --project ID
  splitstream webhooks create --project ID --name NAME --url URL --events TYPE[,TYPE…]|*
      [--format json|slack] [--environments KEY[,KEY…]] [--disabled]
      prints the signing secret: it is shown this once
  splitstream webhooks test WEBHOOK_ID          queue a signed webhook.test delivery
  splitstream webhooks deliveries WEBHOOK_ID    the delivery log, newest first
  splitstream webhooks delivery DELIVERY_ID     one delivery's attempts and response codes
  splitstream webhooks redeliver DELIVERY_ID    a new delivery of a finished delivery's event
      (same body, to the webhook's URL, signed with its current secret)
  splitstream webhooks delete WEBHOOK_ID
  Add --json for raw JSON output.`;

const OPTIONS = {
  "api-url": { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
  project: { type: "string" },
  name: { type: "string" },
  url: { type: "string" },
  events: { type: "string" },
  format: { type: "string" },
  environments: { type: "string" },
  disabled: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function table(rows: string[][]): string {
  if (rows.length <= 1) return "(none)";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

const list = (text: string | undefined): string[] | undefined =>
  text === undefined
    ? undefined
    : text
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");

type Row = Record<string, unknown>;

/** Runs `splitstream webhooks …`. */
export async function runWebhooksCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${WEBHOOKS_USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${WEBHOOKS_USAGE}\n`);
    return 0;
  }
  const [sub, target] = positionals;
  const needTarget = (what: string): string => {
    if (!target) throw new CliError(`webhooks ${sub} needs a ${what}\n\n${WEBHOOKS_USAGE}`, 2);
    return encodeURIComponent(target);
  };
  const needProject = (): string => {
    if (!values.project) throw new CliError("--project is required", 2);
    return encodeURIComponent(values.project);
  };
  if (sub === "create") {
    // Usage errors before any request (and before asking for a URL and token).
    const project = needProject();
    if (!values.name || !values.url || !values.events)
      throw new CliError(
        `webhooks create needs --name, --url and --events\n\n${WEBHOOKS_USAGE}`,
        2,
      );
    const o = apiOptions(values);
    const body = {
      name: values.name,
      url: values.url,
      events: list(values.events),
      ...(values.format ? { format: values.format } : {}),
      ...(values.environments !== undefined ? { environments: list(values.environments) } : {}),
      enabled: !values.disabled,
    };
    const data = await callApi(o, "POST", `/projects/${project}/webhooks`, body);
    print(
      o,
      data,
      (d: Row) =>
        `webhook ${String(d.id)} created\nsigning secret (shown only now): ${String(d.secret)}`,
    );
    return 0;
  }
  const o = (): ReturnType<typeof apiOptions> => apiOptions(values);
  if (sub === "list") {
    const project = needProject();
    const options = o();
    const data = await callApi(options, "GET", `/projects/${project}/webhooks?limit=200`);
    print(options, data, (d: { items: Row[] }) =>
      table([
        ["id", "name", "format", "enabled", "events", "url"],
        ...d.items.map((w) => [
          String(w.id),
          String(w.name),
          String(w.format),
          w.enabled ? "yes" : "no",
          (w.events as string[]).join(","),
          String(w.url),
        ]),
      ]),
    );
    return 0;
  }
  if (sub === "test") {
    const id = needTarget("WEBHOOK_ID");
    const options = o();
    const data = await callApi(options, "POST", `/webhooks/${id}/test`);
    print(options, data, (d: Row) => `test delivery ${String(d.id)} queued`);
    return 0;
  }
  if (sub === "deliveries") {
    const id = needTarget("WEBHOOK_ID");
    const options = o();
    const data = await callApi(options, "GET", `/webhooks/${id}/deliveries?limit=200`);
    print(options, data, (d: { items: Row[] }) =>
      table([
        [
          "id",
          "created",
          "event",
          "status",
          "attempts",
          "last code",
          "redelivery of",
          "last error",
        ],
        ...d.items.map((x) => [
          String(x.id),
          String(x.createdAt),
          String(x.eventType),
          String(x.status),
          String(x.attempts),
          x.lastStatusCode === null ? "-" : String(x.lastStatusCode),
          typeof x.redeliveryOf === "string" ? x.redeliveryOf : "-",
          x.lastError === null ? "" : String(x.lastError),
        ]),
      ]),
    );
    return 0;
  }
  if (sub === "delivery") {
    const id = needTarget("DELIVERY_ID");
    const options = o();
    const data = await callApi(options, "GET", `/webhook-deliveries/${id}`);
    print(
      options,
      data,
      (d: Row & { attemptLog: Row[] }) =>
        `${String(d.eventType)} ${String(d.status)} after ${String(d.attempts)} attempt(s)\n${
          typeof d.redeliveryOf === "string" ? `redelivery of ${d.redeliveryOf}\n` : ""
        }${table([
          ["attempt", "at", "code", "ms", "error"],
          ...d.attemptLog.map((a) => [
            String(a.attempt),
            String(a.at),
            a.statusCode === null ? "-" : String(a.statusCode),
            String(a.durationMs),
            a.error === null ? "" : String(a.error),
          ]),
        ])}`,
    );
    return 0;
  }
  if (sub === "redeliver") {
    const id = needTarget("DELIVERY_ID");
    const options = o();
    const data = await callApi(options, "POST", `/webhook-deliveries/${id}/redeliver`);
    print(
      options,
      data,
      (d: Row) =>
        `redelivery ${String(d.id)} of ${String(d.redeliveryOf)} queued (follow it: splitstream webhooks delivery ${String(d.id)})`,
    );
    return 0;
  }
  if (sub === "delete") {
    const id = needTarget("WEBHOOK_ID");
    const options = o();
    await callApi(options, "DELETE", `/webhooks/${id}`);
    print(options, { id: target, deleted: true }, () => `webhook ${target} deleted`);
    return 0;
  }
  throw new CliError(`unknown command: webhooks ${positionals.join(" ")}\n\n${WEBHOOKS_USAGE}`, 2);
}
