-- Hourly rollups of finished runs per workflow and status: the time series the
-- analytics endpoint and the dashboard read, so that a month of a busy workflow is a
-- few hundred rows rather than every run. They are kept by trigger, so rows written by
-- any client (seed 000's own code included) are counted, and sharded by connection
-- like `workflow_stats`, so that workers finishing runs of one workflow in the same
-- hour do not queue on one row. A run counts in the hour it ended (`end_time`, else
-- `created_at` for a row written without one).
--
-- The rollups are history: deleting runs (retention) leaves them, so analytics reach
-- further back than the runs kept. A run changed after it finished (seed 000's
-- `update` may rewrite a status) moves from its old bucket to its new one; the least
-- and greatest durations are not taken back then, so they bound what is counted.
CREATE TABLE run_rollups (
    workflow_id VARCHAR(255) NOT NULL,
    bucket_start TIMESTAMPTZ NOT NULL,
    status VARCHAR(50) NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    runs BIGINT NOT NULL DEFAULT 0,
    duration_count BIGINT NOT NULL DEFAULT 0,
    duration_sum BIGINT NOT NULL DEFAULT 0,
    duration_min INTEGER,
    duration_max INTEGER,
    PRIMARY KEY (workflow_id, bucket_start, status, shard)
);
CREATE INDEX idx_run_rollups_bucket ON run_rollups (bucket_start);

CREATE FUNCTION flowstore_run_rollups() RETURNS trigger AS $$
DECLARE
    my_shard INTEGER := pg_backend_pid() % 64;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IN ('completed', 'failed', 'cancelled', 'timed_out') THEN
        INSERT INTO run_rollups AS r (workflow_id, bucket_start, status, shard, runs,
                                      duration_count, duration_sum)
        VALUES (OLD.workflow_id,
                date_trunc('hour', coalesce(OLD.end_time, OLD.created_at) AT TIME ZONE 'UTC')
                    AT TIME ZONE 'UTC',
                OLD.status, my_shard, -1, -(OLD.actual_duration IS NOT NULL)::int,
                -coalesce(OLD.actual_duration, 0))
        ON CONFLICT (workflow_id, bucket_start, status, shard) DO UPDATE
           SET runs = r.runs - 1,
               duration_count = r.duration_count + excluded.duration_count,
               duration_sum = r.duration_sum + excluded.duration_sum;
    END IF;
    IF NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out') THEN
        INSERT INTO run_rollups AS r (workflow_id, bucket_start, status, shard, runs,
                                      duration_count, duration_sum, duration_min, duration_max)
        VALUES (NEW.workflow_id,
                date_trunc('hour', coalesce(NEW.end_time, NEW.created_at) AT TIME ZONE 'UTC')
                    AT TIME ZONE 'UTC',
                NEW.status, my_shard, 1, (NEW.actual_duration IS NOT NULL)::int,
                coalesce(NEW.actual_duration, 0), NEW.actual_duration, NEW.actual_duration)
        ON CONFLICT (workflow_id, bucket_start, status, shard) DO UPDATE
           SET runs = r.runs + 1,
               duration_count = r.duration_count + excluded.duration_count,
               duration_sum = r.duration_sum + excluded.duration_sum,
               duration_min = least(r.duration_min, excluded.duration_min),
               duration_max = greatest(r.duration_max, excluded.duration_max);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_run_rollups_insert AFTER INSERT ON workflow_executions
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out'))
    EXECUTE FUNCTION flowstore_run_rollups();
CREATE TRIGGER trg_run_rollups_update
    AFTER UPDATE OF workflow_id, status, end_time, actual_duration ON workflow_executions
    FOR EACH ROW WHEN ((OLD.status IN ('completed', 'failed', 'cancelled', 'timed_out')
                        OR NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out'))
                       AND (OLD.workflow_id IS DISTINCT FROM NEW.workflow_id
                            OR OLD.status IS DISTINCT FROM NEW.status
                            OR OLD.end_time IS DISTINCT FROM NEW.end_time
                            OR OLD.actual_duration IS DISTINCT FROM NEW.actual_duration))
    EXECUTE FUNCTION flowstore_run_rollups();

-- The runs already finished.
INSERT INTO run_rollups (workflow_id, bucket_start, status, shard, runs, duration_count,
                         duration_sum, duration_min, duration_max)
SELECT workflow_id,
       date_trunc('hour', coalesce(end_time, created_at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       status, 0, count(*), count(actual_duration), coalesce(sum(actual_duration), 0),
       min(actual_duration), max(actual_duration)
  FROM workflow_executions
 WHERE status IN ('completed', 'failed', 'cancelled', 'timed_out')
 GROUP BY 1, 2, 3;

-- The list of runs across workflows, newest first, with or without a status: the
-- status index gains the order, so it serves both the filter and the page.
CREATE INDEX idx_workflow_executions_created ON workflow_executions (created_at DESC, id DESC);
DROP INDEX idx_workflow_executions_status;
CREATE INDEX idx_workflow_executions_status
    ON workflow_executions (status, created_at DESC, id DESC);
