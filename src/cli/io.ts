/** Small I/O helpers shared by CLI commands. */
import { readFileSync } from "node:fs";
import { formatProblems, loadDatafile, type CompiledDatafile } from "../core/index";

/** Thrown for anything the user must fix; main() prints the message and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = 1,
  ) {
    super(message);
  }
}

/**
 * Reads a whole file (or stdin for "-") as UTF-8 text. Files are read synchronously: a command
 * has nothing else to do meanwhile, and node:fs/promises alone costs a few milliseconds to load
 * at every start (docs/benchmarks.md, `cli-decide`).
 */
export async function readText(path: string): Promise<string> {
  if (path === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new CliError(
      `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** Loads and compiles a datafile, or throws a CliError listing every problem with its JSON path. */
export async function loadDatafileFile(path: string): Promise<CompiledDatafile> {
  const result = loadDatafile(await readText(path));
  if (!result.ok)
    throw new CliError(`${path}: invalid datafile\n${formatProblems(result.problems)}`);
  if (result.problems.length > 0) process.stderr.write(`${formatProblems(result.problems)}\n`);
  return result.compiled;
}
