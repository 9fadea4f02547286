-- Change requests are listed newest first (docs/api.md "Approvals"): by project, all or one
-- status, in (created_at, id) order; one experiment's (its page's pending notice) by experiment.
-- These indexes serve those orders; the one by id they replace served the order the list had
-- before.
DROP INDEX IF EXISTS change_requests_project;
CREATE INDEX change_requests_project_created ON change_requests (project_id, created_at, id);
CREATE INDEX change_requests_project_status_created ON change_requests (project_id, status, created_at, id);
DROP INDEX IF EXISTS change_requests_experiment;
CREATE INDEX change_requests_experiment_created ON change_requests (experiment_id, status, created_at, id);
