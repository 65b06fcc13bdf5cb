-- The runs list's search by workflow name first finds which names match among the
-- distinct names of runs (one probe of this index per name), so that a text no run
-- carries is answered without reading every run; the runs of the matching names are
-- then read newest first from the same index.
CREATE INDEX idx_workflow_executions_name ON workflow_executions (workflow_name, created_at, id);
