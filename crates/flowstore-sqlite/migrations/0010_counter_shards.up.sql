-- The run counters gain the shard column PostgreSQL spreads them over (there, each
-- connection counts into its own row so that concurrent writers do not queue on one).
-- SQLite has one writer at a time and counts into shard 0, but keeps the same key so
-- that an archive made on either backend restores on the other; readers add the
-- shards up, and the decrements are upserts because a restored shard 0 may lack a row.
DROP TRIGGER trg_workflow_stats_insert;
DROP TRIGGER trg_workflow_stats_delete;
DROP TRIGGER trg_workflow_stats_update;

CREATE TABLE workflow_stats_sharded (
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    executions INTEGER NOT NULL DEFAULT 0,
    duration_count INTEGER NOT NULL DEFAULT 0,
    duration_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, status, shard)
);
INSERT INTO workflow_stats_sharded (workflow_id, status, shard, executions, duration_count,
                                    duration_sum)
SELECT workflow_id, status, 0, executions, duration_count, duration_sum FROM workflow_stats;
DROP TABLE workflow_stats;
ALTER TABLE workflow_stats_sharded RENAME TO workflow_stats;

CREATE TRIGGER trg_workflow_stats_insert AFTER INSERT ON workflow_executions
BEGIN
    INSERT INTO workflow_stats (workflow_id, status, shard, executions, duration_count,
                                duration_sum)
    VALUES (NEW.workflow_id, NEW.status, 0, 1, NEW.actual_duration IS NOT NULL,
            coalesce(NEW.actual_duration, 0))
    ON CONFLICT (workflow_id, status, shard) DO UPDATE
       SET executions = executions + 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
END;
CREATE TRIGGER trg_workflow_stats_delete AFTER DELETE ON workflow_executions
BEGIN
    INSERT INTO workflow_stats (workflow_id, status, shard, executions, duration_count,
                                duration_sum)
    VALUES (OLD.workflow_id, OLD.status, 0, -1, -(OLD.actual_duration IS NOT NULL),
            -coalesce(OLD.actual_duration, 0))
    ON CONFLICT (workflow_id, status, shard) DO UPDATE
       SET executions = executions - 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
END;
CREATE TRIGGER trg_workflow_stats_update AFTER UPDATE OF workflow_id, status, actual_duration
    ON workflow_executions
    WHEN OLD.workflow_id IS NOT NEW.workflow_id OR OLD.status IS NOT NEW.status
         OR OLD.actual_duration IS NOT NEW.actual_duration
BEGIN
    INSERT INTO workflow_stats (workflow_id, status, shard, executions, duration_count,
                                duration_sum)
    VALUES (OLD.workflow_id, OLD.status, 0, -1, -(OLD.actual_duration IS NOT NULL),
            -coalesce(OLD.actual_duration, 0))
    ON CONFLICT (workflow_id, status, shard) DO UPDATE
       SET executions = executions - 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
    INSERT INTO workflow_stats (workflow_id, status, shard, executions, duration_count,
                                duration_sum)
    VALUES (NEW.workflow_id, NEW.status, 0, 1, NEW.actual_duration IS NOT NULL,
            coalesce(NEW.actual_duration, 0))
    ON CONFLICT (workflow_id, status, shard) DO UPDATE
       SET executions = executions + 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
END;

-- The metric rollups gain the same shard column (PostgreSQL spreads each hour's row
-- over connections); SQLite writes shard 0.
CREATE TABLE metric_rollups_sharded (
    bucket_start TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    metric_type TEXT NOT NULL DEFAULT '',
    shard INTEGER NOT NULL DEFAULT 0,
    sample_count INTEGER NOT NULL CHECK (sample_count >= 0),
    value_sum REAL NOT NULL,
    value_min REAL,
    value_max REAL,
    PRIMARY KEY (metric_name, metric_type, bucket_start, shard)
);
INSERT INTO metric_rollups_sharded (bucket_start, metric_name, metric_type, shard,
                                    sample_count, value_sum, value_min, value_max)
SELECT bucket_start, metric_name, metric_type, 0, sample_count, value_sum, value_min,
       value_max
  FROM metric_rollups;
DROP TABLE metric_rollups;
ALTER TABLE metric_rollups_sharded RENAME TO metric_rollups;
CREATE INDEX idx_metric_rollups_bucket ON metric_rollups (bucket_start);
CREATE INDEX idx_metric_rollups_covering
    ON metric_rollups (metric_name, metric_type, bucket_start, sample_count, value_sum,
                       value_min, value_max);
