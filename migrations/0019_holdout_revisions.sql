-- Holdout results by share (docs/holdouts.md "Share changes"): the share of the environment's
-- holdout in each published revision's datafile, in basis points (0..10000; 0 when the datafile
-- holds nobody out). Results count the visitors first exposed under the latest run of revisions
-- with one share, and weigh the sample-ratio check by the share each visitor was decided with.
ALTER TABLE datafile_revisions ADD COLUMN holdout_basis_points INTEGER;

-- Revisions published before this migration are taken to have the share set when it runs (0
-- without a holdout): holdouts came with the release that brings this column, so only a build
-- from between the two could have published another share. (The revisions before the holdout
-- was set then join its first period; they have no holdout exposures, so no count changes.)
UPDATE datafile_revisions
SET holdout_basis_points = COALESCE(
  (SELECT CAST(json_extract(e.holdout, '$.basisPoints') AS INTEGER)
   FROM environments e
   WHERE e.id = datafile_revisions.environment_id AND json_valid(e.holdout)),
  0);
