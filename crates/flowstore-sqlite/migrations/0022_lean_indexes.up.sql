-- Indexes no query needs. Every insert writes every index of its table, and a run's
-- start inserts a run row and a metric sample, so each index here cost each start a
-- write (and, on PostgreSQL, a WAL record) for no read.
-- A prefix of idx_workflow_executions_workflow_time (workflow_id, created_at, id),
-- which serves the same lookups, the workflow's foreign key included.
DROP INDEX idx_workflow_executions_workflow_id;
-- No query filters or orders runs by start_time (lists go by created_at).
DROP INDEX idx_workflow_executions_start_time;
-- A prefix of idx_workflow_metrics_name_type_time (metric_name, metric_type, recorded_at).
DROP INDEX idx_workflow_metrics_metric_name;
