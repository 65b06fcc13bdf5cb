DROP TRIGGER trg_workflow_stats_update;
DROP TRIGGER trg_workflow_stats_delete;
DROP TRIGGER trg_workflow_stats_insert;
DROP INDEX idx_workflow_executions_duration;
DROP TABLE workflow_stats;
DROP TABLE events;
