DROP INDEX idx_workflow_executions_status;
CREATE INDEX idx_workflow_executions_status ON workflow_executions (status);
DROP INDEX idx_workflow_executions_created;
DROP TRIGGER trg_run_rollups_update ON workflow_executions;
DROP TRIGGER trg_run_rollups_insert ON workflow_executions;
DROP FUNCTION flowstore_run_rollups();
DROP TABLE run_rollups;
