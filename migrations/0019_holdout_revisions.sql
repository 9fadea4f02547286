-- Holdout results by share (docs/holdouts.md "Results"): the share of the environment's holdout in
-- each published revision's datafile, in basis points (0..10000; 0 when the datafile holds nobody
-- out). Results count the visitors first exposed under the latest run of revisions with one share,
-- and weigh the sample-ratio check by the share each visitor was decided with. NULL for revisions
-- published before this column existed: their share is unknown.
ALTER TABLE datafile_revisions ADD COLUMN holdout_basis_points INTEGER;
