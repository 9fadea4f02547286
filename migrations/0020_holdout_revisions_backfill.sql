-- Revisions published before migrations/0019_holdout_revisions.sql are given the share set now (0
-- without a holdout, and 0 for a stored setting the API would not read: not an integer in
-- 0..5000), so results (docs/holdouts.md "Share changes") count them in the current share's
-- period: holdouts came with the release that brings that column, so only a build from between
-- the two could have published another share. The revisions before the holdout was first set
-- join its first period; they have no holdout exposures, so no count changes.
UPDATE datafile_revisions
SET holdout_basis_points = COALESCE(
  (SELECT CASE
            WHEN json_type(e.holdout, '$.basisPoints') = 'integer'
             AND json_extract(e.holdout, '$.basisPoints') BETWEEN 0 AND 5000
            THEN json_extract(e.holdout, '$.basisPoints')
            ELSE 0
          END
   FROM environments e
   WHERE e.id = datafile_revisions.environment_id AND json_valid(e.holdout)),
  0)
WHERE holdout_basis_points IS NULL;
