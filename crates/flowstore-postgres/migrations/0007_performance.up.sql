-- Indexes for two read paths.

-- execution_id has its unique constraint's index; this second, plain index on the
-- same column was only written on every insert, and let the planner look runs up
-- through an index that does not say the match is unique.
DROP INDEX idx_workflow_executions_execution_id;

-- Deleting a workflow sets workflow_ref to NULL in its runs (ON DELETE SET NULL) and
-- asks whether it has runs; without an index both scan every run. Only runs started
-- from a stored workflow carry a reference, so the others stay out of the index.
CREATE INDEX idx_workflow_executions_workflow_ref ON workflow_executions (workflow_ref)
    WHERE workflow_ref IS NOT NULL;
