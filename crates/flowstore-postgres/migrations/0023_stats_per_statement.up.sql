-- Runs inserted together count into workflow_stats together: one upsert per
-- workflow and status for the whole statement (over its inserted rows), instead of
-- one per run. A batch or a group of starts writes one row of counts, not one per
-- run. The counts are the same; updates and deletes still count row by row.
CREATE FUNCTION flowstore_workflow_stats_added() RETURNS trigger AS $$
BEGIN
    INSERT INTO workflow_stats AS s (workflow_id, status, shard, executions,
                                     duration_count, duration_sum)
    SELECT workflow_id, status, pg_backend_pid() % 64, count(*),
           count(actual_duration), coalesce(sum(actual_duration), 0)
      FROM added
     GROUP BY workflow_id, status
    ON CONFLICT (workflow_id, status, shard) DO UPDATE
       SET executions = s.executions + excluded.executions,
           duration_count = s.duration_count + excluded.duration_count,
           duration_sum = s.duration_sum + excluded.duration_sum;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER trg_workflow_stats_insert ON workflow_executions;
CREATE TRIGGER trg_workflow_stats_insert AFTER INSERT ON workflow_executions
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_workflow_stats_added();
