-- Seed 000's own clients write workflow_executions and workflow_metrics with plain
-- SQL. Three things they do must work against this schema:
--
-- 1. Runs may be `paused`: a paused run's ready tasks are not claimed until it is
--    running again (the claim tests the run's status), and the engine does not time
--    it out while it is paused.
ALTER TABLE workflow_executions DROP CONSTRAINT workflow_executions_status_check;
ALTER TABLE workflow_executions ADD CONSTRAINT workflow_executions_status_check
    CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled',
                      'timed_out'));

-- 2. Their ids are random (v4): a workflow's runs and the handlers are listed by
--    time, the id breaking ties, instead of by id. The id-ordered indexes served
--    only those lists.
CREATE INDEX idx_workflow_executions_workflow_time
    ON workflow_executions (workflow_id, created_at, id);
CREATE INDEX idx_workflow_executions_workflow_status_time
    ON workflow_executions (workflow_id, status, created_at, id);
DROP INDEX idx_workflow_executions_workflow_page;
DROP INDEX idx_workflow_executions_workflow_status_page;
CREATE INDEX idx_handler_registry_time ON handler_registry (registered_at, id);

-- 3. Their `recordMetric` inserts samples directly: the hourly rollups are kept by
--    this trigger rather than by the application, so every sample, whoever writes
--    it, is counted once. One statement's rows are folded per hour and metric
--    (bulk loads make one upsert per group), into this connection's shard as
--    before (migration 0010).
CREATE FUNCTION flowstore_metric_rollups() RETURNS trigger AS $$
BEGIN
    INSERT INTO metric_rollups AS r (bucket_start, metric_name, metric_type, shard,
                                     sample_count, value_sum, value_min, value_max)
    SELECT date_trunc('hour', recorded_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           metric_name, coalesce(metric_type, ''), pg_backend_pid() % 64, count(*),
           sum(metric_value)::float8, min(metric_value)::float8, max(metric_value)::float8
      FROM added WHERE metric_value IS NOT NULL
     GROUP BY 1, 2, 3
    ON CONFLICT (metric_name, metric_type, bucket_start, shard) DO UPDATE
       SET sample_count = r.sample_count + excluded.sample_count,
           value_sum = r.value_sum + excluded.value_sum,
           value_min = least(r.value_min, excluded.value_min),
           value_max = greatest(r.value_max, excluded.value_max);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_workflow_metrics_rollup AFTER INSERT ON workflow_metrics
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_metric_rollups();
