/**
 * The API's request validation for callers without an HTTP request — the admin pages
 * (src/admin/app.ts), which pass on what a page was asked for: the routes' own zod schemas, and
 * the 422 `validation_failed` their validators answer (src/api/schemas/validation-error.ts), so a
 * value is refused with the API's message whichever side it came through.
 */
import { ExperimentActionBodySchema } from "../schemas/experiments";
import { ResultsQuerySchema, type ResultsQuery } from "../schemas/results";
import { parseBody, validationError } from "../schemas/validation-error";

/** The body of an experiment action (`POST /experiments/{id}/start` …), validated. */
export type ExperimentActionBody = ReturnType<typeof ExperimentActionBodySchema.parse>;

/**
 * The query of `GET /experiments/{id}/results` (and `.csv`) from its parameters — a name sent
 * twice is an array, as the API's query validator sees it — or a 422 ApiError.
 */
export function parseResultsQuery(
  query: Readonly<Record<string, string | readonly string[]>>,
): ResultsQuery {
  const result = ResultsQuerySchema.safeParse(query);
  if (!result.success) throw validationError(result.error, "query");
  return result.data;
}

/** The body of an experiment action (`{environment?}`), or a 422 ApiError. */
export function parseExperimentActionBody(body: unknown): ExperimentActionBody {
  const result = parseBody(ExperimentActionBodySchema, body);
  return result;
}
