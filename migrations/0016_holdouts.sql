-- Holdouts (docs/holdouts.md): per environment, a share of visitors kept out of every experiment.
-- JSON: {} (never set) or {"basisPoints": 0..5000, "metrics": [eventId, …], "id": holdout id,
-- "holdoutVariationId": id, "everyoneElseVariationId": id}. The three ids are drawn once, the first
-- time the share is set, and never change: the holdout id is the bucketing key, so a visitor stays
-- in (or out of) the holdout across publishes and share changes that keep them.
ALTER TABLE environments ADD COLUMN holdout TEXT NOT NULL DEFAULT '{}';
