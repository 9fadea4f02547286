/**
 * The `splitstream` CLI (package.json `bin`). Commands: decide, validate (README.md "CLI"), the API
 * commands (src/cli/api-command.ts), the event-data commands (src/cli/events-command.ts) and
 * headline tests (src/cli/headline-command.ts) and webhooks (src/cli/webhooks-command.ts).
 * Exit status: 0 success, 1 invalid input (datafile problems, malformed lines), 2 usage errors.
 */
import { API_USAGE, runApiCommand } from "./api-command";
import { DECIDE_USAGE, runDecide } from "./decide-command";
import { EVENTS_USAGE, runEventsCommand } from "./events-command";
import { HEADLINE_USAGE, runHeadlineCommand } from "./headline-command";
import { CliError } from "./io";
import { runValidate, VALIDATE_USAGE } from "./validate-command";
import { runWebhooksCommand, WEBHOOKS_USAGE } from "./webhooks-command";

const USAGE = `splitstream — Splitstream's command line

Commands:
  decide       explain or batch-decide visitors against a datafile (experiments, and
               feature flags with --flags)
  validate     check a datafile and list every problem with its JSON path
  projects, experiments, publish, revisions, datafile, results, reviews
               daily work against a running Splitstream API (see below)
  conversions, rebuild, events
               offline conversions import, rebuilding the event aggregates from R2, and
               where per-visitor event state lives (visitor shards)
  headline     create a headline test (a bandit experiment over N headlines)
  webhooks     a project's webhooks: create, test-send, the delivery log, redeliver

${DECIDE_USAGE}

${VALIDATE_USAGE}

${API_USAGE}

${EVENTS_USAGE}

${HEADLINE_USAGE}

${WEBHOOKS_USAGE}`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  decide: runDecide,
  validate: runValidate,
  projects: (args) => runApiCommand("projects", args),
  experiments: (args) => runApiCommand("experiments", args),
  flags: (args) => runApiCommand("flags", args),
  schedules: (args) => runApiCommand("schedules", args),
  publish: (args) => runApiCommand("publish", args),
  revisions: (args) => runApiCommand("revisions", args),
  datafile: (args) => runApiCommand("datafile", args),
  results: (args) => runApiCommand("results", args),
  reviews: (args) => runApiCommand("reviews", args),
  holdout: (args) => runApiCommand("holdout", args),
  conversions: (args) => runEventsCommand("conversions", args),
  rebuild: (args) => runEventsCommand("rebuild", args),
  events: (args) => runEventsCommand("events", args),
  headline: runHeadlineCommand,
  webhooks: runWebhooksCommand,
};

/** Runs the CLI with argv (without node and script) and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  // `splitstream decide … | head`: the reader is gone, so is the need for output. Stop quietly
  // (as `cat` does) instead of crashing with an unhandled EPIPE and its stack trace.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`splitstream ${command}: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
}
