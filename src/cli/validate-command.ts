/** `splitstream validate FILE`: exit 0 when the datafile is valid, else 1 listing each problem. */
import { formatProblems, parseDatafile } from "../core/index";
import { CliError, readText } from "./io";

export const VALIDATE_USAGE = `Usage: splitstream validate FILE

Checks a datafile (Optimizely v4 + Splitstream's web extension). Prints each problem as
"<severity> <JSON path>: <message>". Exit status: 0 valid (warnings allowed), 1 invalid.`;

export async function runValidate(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${VALIDATE_USAGE}\n`);
    return 0;
  }
  if (args.length !== 1) throw new CliError(VALIDATE_USAGE, 2);
  const file = args[0]!;
  const result = parseDatafile(await readText(file));
  if (result.problems.length > 0) process.stdout.write(`${formatProblems(result.problems)}\n`);
  if (!result.ok) {
    const errors = result.problems.filter((p) => p.severity === "error").length;
    process.stdout.write(`${file}: invalid (${errors} error${errors === 1 ? "" : "s"})\n`);
    return 1;
  }
  const d = result.datafile;
  const grouped = d.groups.reduce((n, g) => n + g.experiments.length, 0);
  process.stdout.write(
    `${file}: valid — revision ${d.revision}, ${d.experiments.length + grouped} experiments, ` +
      `${d.featureFlags.length} flags, ${d.web?.pages.length ?? 0} pages\n`,
  );
  return 0;
}
