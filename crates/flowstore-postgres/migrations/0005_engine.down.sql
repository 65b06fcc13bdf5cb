DROP TRIGGER trg_workflow_stats_update ON workflow_executions;
DROP TRIGGER trg_workflow_stats_delete ON workflow_executions;
DROP TRIGGER trg_workflow_stats_insert ON workflow_executions;
DROP FUNCTION flowstore_workflow_stats();
DROP INDEX idx_workflow_executions_duration;
DROP TABLE workflow_stats;
DROP TABLE events;
