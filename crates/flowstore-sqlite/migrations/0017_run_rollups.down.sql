DROP INDEX idx_workflow_executions_status;
CREATE INDEX idx_workflow_executions_status ON workflow_executions (status);
DROP INDEX idx_workflow_executions_created;
DROP TRIGGER trg_run_rollups_enter;
DROP TRIGGER trg_run_rollups_leave;
DROP TRIGGER trg_run_rollups_insert;
DROP TABLE run_rollups;
