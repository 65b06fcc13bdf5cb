-- Back to rollups kept by the application (which the older version does), id-ordered
-- lists, and no `paused` status: a paused run becomes running again.
DROP TRIGGER trg_workflow_metrics_rollup ON workflow_metrics;
DROP FUNCTION flowstore_metric_rollups();

DROP INDEX idx_handler_registry_time;
CREATE INDEX idx_workflow_executions_workflow_page ON workflow_executions (workflow_id, id DESC);
CREATE INDEX idx_workflow_executions_workflow_status_page
    ON workflow_executions (workflow_id, status, id DESC);
DROP INDEX idx_workflow_executions_workflow_time;
DROP INDEX idx_workflow_executions_workflow_status_time;

UPDATE workflow_executions SET status = 'running' WHERE status = 'paused';
ALTER TABLE workflow_executions DROP CONSTRAINT workflow_executions_status_check;
ALTER TABLE workflow_executions ADD CONSTRAINT workflow_executions_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'timed_out'));
