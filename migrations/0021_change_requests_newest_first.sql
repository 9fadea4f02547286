-- Change requests are listed newest first (docs/api.md "Approvals"): by project, optionally one
-- status, in (created_at, id) order. This index serves that order; the one by id it replaces
-- served the order the list had before.
DROP INDEX IF EXISTS change_requests_project;
CREATE INDEX change_requests_project_created ON change_requests (project_id, status, created_at, id);
