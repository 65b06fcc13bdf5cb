-- Back to one counter row per workflow and status: the shards are added up first.
DROP TRIGGER trg_workflow_stats_insert;
DROP TRIGGER trg_workflow_stats_delete;
DROP TRIGGER trg_workflow_stats_update;

CREATE TABLE workflow_stats_folded (
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    executions INTEGER NOT NULL DEFAULT 0,
    duration_count INTEGER NOT NULL DEFAULT 0,
    duration_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, status)
);
INSERT INTO workflow_stats_folded (workflow_id, status, executions, duration_count, duration_sum)
SELECT workflow_id, status, sum(executions), sum(duration_count), sum(duration_sum)
  FROM workflow_stats GROUP BY workflow_id, status;
DROP TABLE workflow_stats;
ALTER TABLE workflow_stats_folded RENAME TO workflow_stats;

CREATE TRIGGER trg_workflow_stats_insert AFTER INSERT ON workflow_executions
BEGIN
    INSERT INTO workflow_stats (workflow_id, status, executions, duration_count, duration_sum)
    VALUES (NEW.workflow_id, NEW.status, 1, NEW.actual_duration IS NOT NULL,
            coalesce(NEW.actual_duration, 0))
    ON CONFLICT (workflow_id, status) DO UPDATE
       SET executions = executions + 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
END;
CREATE TRIGGER trg_workflow_stats_delete AFTER DELETE ON workflow_executions
BEGIN
    UPDATE workflow_stats
       SET executions = executions - 1,
           duration_count = duration_count - (OLD.actual_duration IS NOT NULL),
           duration_sum = duration_sum - coalesce(OLD.actual_duration, 0)
     WHERE workflow_id = OLD.workflow_id AND status = OLD.status;
END;
CREATE TRIGGER trg_workflow_stats_update AFTER UPDATE OF workflow_id, status, actual_duration
    ON workflow_executions
    WHEN OLD.workflow_id IS NOT NEW.workflow_id OR OLD.status IS NOT NEW.status
         OR OLD.actual_duration IS NOT NEW.actual_duration
BEGIN
    UPDATE workflow_stats
       SET executions = executions - 1,
           duration_count = duration_count - (OLD.actual_duration IS NOT NULL),
           duration_sum = duration_sum - coalesce(OLD.actual_duration, 0)
     WHERE workflow_id = OLD.workflow_id AND status = OLD.status;
    INSERT INTO workflow_stats (workflow_id, status, executions, duration_count, duration_sum)
    VALUES (NEW.workflow_id, NEW.status, 1, NEW.actual_duration IS NOT NULL,
            coalesce(NEW.actual_duration, 0))
    ON CONFLICT (workflow_id, status) DO UPDATE
       SET executions = executions + 1,
           duration_count = duration_count + excluded.duration_count,
           duration_sum = duration_sum + excluded.duration_sum;
END;

CREATE TABLE metric_rollups_folded (
    bucket_start TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    metric_type TEXT NOT NULL DEFAULT '',
    sample_count INTEGER NOT NULL CHECK (sample_count >= 0),
    value_sum REAL NOT NULL,
    value_min REAL,
    value_max REAL,
    PRIMARY KEY (metric_name, metric_type, bucket_start)
);
INSERT INTO metric_rollups_folded (bucket_start, metric_name, metric_type, sample_count,
                                   value_sum, value_min, value_max)
SELECT bucket_start, metric_name, metric_type, sum(sample_count), sum(value_sum),
       min(value_min), max(value_max)
  FROM metric_rollups GROUP BY bucket_start, metric_name, metric_type;
DROP TABLE metric_rollups;
ALTER TABLE metric_rollups_folded RENAME TO metric_rollups;
CREATE INDEX idx_metric_rollups_bucket ON metric_rollups (bucket_start);
CREATE INDEX idx_metric_rollups_covering
    ON metric_rollups (metric_name, metric_type, bucket_start, sample_count, value_sum,
                       value_min, value_max);
