-- Seed 000's own clients write workflow_executions and workflow_metrics with plain
-- SQL. Three things they do must work against this schema:
--
-- 1. Runs may be `paused`: a paused run's ready tasks are not claimed until it is
--    running again (the claim tests the run's status), and the engine does not time
--    it out while it is paused. SQLite cannot alter a CHECK, and rebuilding the
--    table would cascade into every table that references it: the CHECK's text is
--    widened in the schema instead (a change SQLite documents as safe, since no
--    stored row becomes invalid), and `RESET` makes this connection read the schema
--    again. The DDL below changes the schema version, so the other connections do
--    too.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql,
       'CHECK (status IN (''pending'', ''running'', ''completed'', ''failed'', ''cancelled'', ''timed_out''))',
       'CHECK (status IN (''pending'', ''running'', ''paused'', ''completed'', ''failed'', ''cancelled'', ''timed_out''))')
 WHERE type = 'table' AND name = 'workflow_executions';
PRAGMA writable_schema = RESET;

-- 2. Their ids are random (v4): a workflow's runs and the handlers are listed by
--    time, the id breaking ties, instead of by id.
CREATE INDEX idx_workflow_executions_workflow_time
    ON workflow_executions (workflow_id, created_at, id);
CREATE INDEX idx_workflow_executions_workflow_status_time
    ON workflow_executions (workflow_id, status, created_at, id);
DROP INDEX idx_workflow_executions_workflow_page;
DROP INDEX idx_workflow_executions_workflow_status_page;
CREATE INDEX idx_handler_registry_time ON handler_registry (registered_at, id);

-- 3. Their `recordMetric` inserts samples directly: the hourly rollups are kept by
--    this trigger rather than by the application, so every sample, whoever writes
--    it, is counted once (in shard 0, as SQLite's one writer always counted).
CREATE TRIGGER trg_workflow_metrics_rollup AFTER INSERT ON workflow_metrics
FOR EACH ROW WHEN NEW.metric_value IS NOT NULL
BEGIN
    INSERT INTO metric_rollups (bucket_start, metric_name, metric_type, shard, sample_count,
                                value_sum, value_min, value_max)
    VALUES (substr(NEW.recorded_at, 1, 13) || ':00:00.000000Z', NEW.metric_name,
            coalesce(NEW.metric_type, ''), 0, 1, NEW.metric_value, NEW.metric_value,
            NEW.metric_value)
    ON CONFLICT (metric_name, metric_type, bucket_start, shard) DO UPDATE
       SET sample_count = sample_count + 1,
           value_sum = value_sum + excluded.value_sum,
           value_min = CASE WHEN value_min IS NULL OR excluded.value_min < value_min
                            THEN excluded.value_min ELSE value_min END,
           value_max = CASE WHEN value_max IS NULL OR excluded.value_max > value_max
                            THEN excluded.value_max ELSE value_max END;
END;
