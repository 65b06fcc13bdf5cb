-- Hourly rollups of finished runs per workflow and status (see the PostgreSQL
-- migration for why). SQLite has one writer and counts into shard 0, keeping the key
-- PostgreSQL shards over so that archives restore on either backend.
CREATE TABLE run_rollups (
    workflow_id TEXT NOT NULL,
    bucket_start TEXT NOT NULL,
    status TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0,
    duration_count INTEGER NOT NULL DEFAULT 0,
    duration_sum INTEGER NOT NULL DEFAULT 0,
    duration_min INTEGER,
    duration_max INTEGER,
    PRIMARY KEY (workflow_id, bucket_start, status, shard)
);
CREATE INDEX idx_run_rollups_bucket ON run_rollups (bucket_start);

CREATE TRIGGER trg_run_rollups_insert AFTER INSERT ON workflow_executions
    WHEN NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out')
BEGIN
    INSERT INTO run_rollups (workflow_id, bucket_start, status, shard, runs, duration_count,
                             duration_sum, duration_min, duration_max)
    VALUES (NEW.workflow_id,
            strftime('%Y-%m-%dT%H:00:00.000000Z', coalesce(NEW.end_time, NEW.created_at)),
            NEW.status, 0, 1, NEW.actual_duration IS NOT NULL,
            coalesce(NEW.actual_duration, 0), NEW.actual_duration, NEW.actual_duration)
    ON CONFLICT (workflow_id, bucket_start, status, shard) DO UPDATE
       SET runs = runs + 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum,
           duration_min = coalesce(min(duration_min, excluded.duration_min),
                                   duration_min, excluded.duration_min),
           duration_max = coalesce(max(duration_max, excluded.duration_max),
                                   duration_max, excluded.duration_max);
END;

CREATE TRIGGER trg_run_rollups_leave
    AFTER UPDATE OF workflow_id, status, end_time, actual_duration ON workflow_executions
    WHEN OLD.status IN ('completed', 'failed', 'cancelled', 'timed_out')
         AND (OLD.workflow_id IS NOT NEW.workflow_id OR OLD.status IS NOT NEW.status
              OR OLD.end_time IS NOT NEW.end_time
              OR OLD.actual_duration IS NOT NEW.actual_duration)
BEGIN
    INSERT INTO run_rollups (workflow_id, bucket_start, status, shard, runs, duration_count,
                             duration_sum)
    VALUES (OLD.workflow_id,
            strftime('%Y-%m-%dT%H:00:00.000000Z', coalesce(OLD.end_time, OLD.created_at)),
            OLD.status, 0, -1, -(OLD.actual_duration IS NOT NULL),
            -coalesce(OLD.actual_duration, 0))
    ON CONFLICT (workflow_id, bucket_start, status, shard) DO UPDATE
       SET runs = runs - 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
END;

CREATE TRIGGER trg_run_rollups_enter
    AFTER UPDATE OF workflow_id, status, end_time, actual_duration ON workflow_executions
    WHEN NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out')
         AND (OLD.workflow_id IS NOT NEW.workflow_id OR OLD.status IS NOT NEW.status
              OR OLD.end_time IS NOT NEW.end_time
              OR OLD.actual_duration IS NOT NEW.actual_duration)
BEGIN
    INSERT INTO run_rollups (workflow_id, bucket_start, status, shard, runs, duration_count,
                             duration_sum, duration_min, duration_max)
    VALUES (NEW.workflow_id,
            strftime('%Y-%m-%dT%H:00:00.000000Z', coalesce(NEW.end_time, NEW.created_at)),
            NEW.status, 0, 1, NEW.actual_duration IS NOT NULL,
            coalesce(NEW.actual_duration, 0), NEW.actual_duration, NEW.actual_duration)
    ON CONFLICT (workflow_id, bucket_start, status, shard) DO UPDATE
       SET runs = runs + 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum,
           duration_min = coalesce(min(duration_min, excluded.duration_min),
                                   duration_min, excluded.duration_min),
           duration_max = coalesce(max(duration_max, excluded.duration_max),
                                   duration_max, excluded.duration_max);
END;

-- The runs already finished.
INSERT INTO run_rollups (workflow_id, bucket_start, status, shard, runs, duration_count,
                         duration_sum, duration_min, duration_max)
SELECT workflow_id, strftime('%Y-%m-%dT%H:00:00.000000Z', coalesce(end_time, created_at)),
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
