-- Back to rollups kept by the application (which the older version does), id-ordered
-- lists, and no `paused` status: a paused run becomes running again.
DROP TRIGGER trg_workflow_metrics_rollup;

DROP INDEX idx_handler_registry_time;
CREATE INDEX idx_workflow_executions_workflow_page ON workflow_executions (workflow_id, id DESC);
CREATE INDEX idx_workflow_executions_workflow_status_page
    ON workflow_executions (workflow_id, status, id DESC);
DROP INDEX idx_workflow_executions_workflow_time;
DROP INDEX idx_workflow_executions_workflow_status_time;

UPDATE workflow_executions SET status = 'running' WHERE status = 'paused';
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql,
       'CHECK (status IN (''pending'', ''running'', ''paused'', ''completed'', ''failed'', ''cancelled'', ''timed_out''))',
       'CHECK (status IN (''pending'', ''running'', ''completed'', ''failed'', ''cancelled'', ''timed_out''))')
 WHERE type = 'table' AND name = 'workflow_executions';
PRAGMA writable_schema = RESET;
-- The schema version changes with this, so the other connections read it again.
CREATE INDEX idx_workflow_executions_schema_bump ON workflow_executions (id);
DROP INDEX idx_workflow_executions_schema_bump;
