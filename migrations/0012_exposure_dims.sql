-- The first exposure's dimensions (docs/statistics.md "Breakdowns"): device, browser, country,
-- traffic source and new/returning of the impression that made the visitor's exposure, as
-- canonical JSON; NULL for impressions without any (SDK events, rows counted before this).
ALTER TABLE exposures ADD COLUMN dims TEXT;
