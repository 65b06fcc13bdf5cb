-- Indexes for two read paths.

-- The rollups aggregate reads every column below in this order (grouped by name and
-- kind, filtered by bucket): with all of them in one index it reads the index alone
-- instead of looking each bucket up in the table.
CREATE INDEX idx_metric_rollups_covering
    ON metric_rollups (metric_name, metric_type, bucket_start, sample_count, value_sum,
                       value_min, value_max);

-- Deleting a workflow sets workflow_ref to NULL in its runs (ON DELETE SET NULL) and
-- asks whether it has runs; without an index both scan every run. Only runs started
-- from a stored workflow carry a reference, so the others stay out of the index.
CREATE INDEX idx_workflow_executions_workflow_ref ON workflow_executions (workflow_ref)
    WHERE workflow_ref IS NOT NULL;
