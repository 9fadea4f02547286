/**
 * The request schema of headline tests (docs/bandits.md "Headline tests", docs/api.md "Headline
 * tests"): the page (`url` or `pageId`), the headline element (`selector` or the CMS marker
 * `headlineId`), 2..10 headlines, the metric and whether to start. The rules between the fields
 * are checked by src/api/services/headline-test.ts.
 */
import { z } from "@hono/zod-openapi";
import { urlConditionSchema } from "./conditions";
import { DEFAULT_ACTION_ENVIRONMENT } from "./experiments";
import { keySchema, nameSchema } from "./fields";

const MIN_HEADLINES = 2;
const MAX_HEADLINES = 10;
/** CMS marker ids: safe inside a quoted attribute selector. */
const HEADLINE_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;

const selectorSchema = z.string().min(1).max(1000);

const HeadlineInputSchema = z
  .strictObject({
    text: z.string().trim().min(1).max(1000).openapi({ description: "The headline text." }),
    imageUrl: z.string().min(1).max(2048).optional().openapi({
      description:
        "An image shown with this headline (sets `src` on imageSelector). Not on the first headline (the original page).",
    }),
    imageSelector: selectorSchema.optional().openapi({
      description:
        'The image element; default `[data-ss-headline-image="<headlineId>"]` (required with `selector`).',
    }),
  })
  .openapi("HeadlineInput");

/** `POST /projects/{projectId}/headline-tests`. */
export const HeadlineTestCreateSchema = z
  .strictObject({
    key: keySchema.openapi({
      description:
        "The experiment's key (unique in the project); also the key of a page created from `url`.",
    }),
    name: nameSchema.optional(),
    url: urlConditionSchema.optional().openapi({
      description:
        "Creates a page with this one URL condition, e.g. {match: substring, value: /article/123}. Either url or pageId.",
    }),
    pageId: z
      .string()
      .min(1)
      .optional()
      .openapi({ description: "An existing page of the project." }),
    selector: selectorSchema.optional().openapi({
      description: "The headline element. Either selector or headlineId.",
      example: "article h1",
    }),
    headlineId: z
      .string()
      .regex(HEADLINE_ID_PATTERN, "1–100 characters: letters, digits, _ . : -")
      .optional()
      .openapi({
        description:
          'The CMS marker: the headline element is `[data-ss-headline="<headlineId>"]`. Either selector or headlineId.',
        example: "hero",
      }),
    headlines: z
      .array(HeadlineInputSchema)
      .min(MIN_HEADLINES)
      .max(MAX_HEADLINES)
      .openapi({
        description: `${MIN_HEADLINES}..${MAX_HEADLINES} headlines; the first is the original (control: the page as served).`,
      }),
    metricEventId: z.string().min(1).optional().openapi({
      description:
        "A click or custom event of the project (the primary metric, unique converters). Default: a click event on the headline, created (key `<key>_click`) unless one exists on that page and selector.",
    }),
    start: z
      .boolean()
      .optional()
      .openapi({ description: `Start it in "${DEFAULT_ACTION_ENVIRONMENT}" right away.` }),
  })
  .openapi("HeadlineTestCreate");

export type HeadlineTestCreate = z.infer<typeof HeadlineTestCreateSchema>;
