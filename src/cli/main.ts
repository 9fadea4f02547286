/**
 * The `splitstream` CLI (package.json `bin`). Commands: decide, validate (CONTRACT §7).
 * Exit status: 0 success, 1 invalid input (datafile problems, malformed lines), 2 usage errors.
 */
import { DECIDE_USAGE, runDecide } from "./decide-command";
import { CliError } from "./io";
import { runValidate, VALIDATE_USAGE } from "./validate-command";

const USAGE = `splitstream — Splitstream's command line

Commands:
  decide     explain or batch-decide visitors against a datafile
  validate   check a datafile and list every problem with its JSON path

${DECIDE_USAGE}

${VALIDATE_USAGE}`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  decide: runDecide,
  validate: runValidate,
};

/** Runs the CLI with argv (without node and script) and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
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
