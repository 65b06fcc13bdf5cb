-- The run counters of a workflow were one row per status: every transaction that
-- started, finished or removed a run of the workflow updated the same row and held its
-- lock until commit, so workers finishing runs of one workflow waited for each other's
-- commit (the most common wait in a concurrent run benchmark). Each connection now
-- counts into its own shard (its backend PID modulo 64), and readers add the shards
-- up. A shard's count may be negative (a run started on one connection and finished on
-- another); only the sums per workflow and status mean anything.
CREATE TEMP TABLE flowstore_stats_fold AS
SELECT workflow_id, status, sum(executions)::bigint AS executions,
       sum(duration_count)::bigint AS duration_count, sum(duration_sum)::bigint AS duration_sum
  FROM workflow_stats GROUP BY workflow_id, status;
DELETE FROM workflow_stats;
ALTER TABLE workflow_stats DROP CONSTRAINT workflow_stats_pkey;
ALTER TABLE workflow_stats ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflow_stats ADD CONSTRAINT workflow_stats_pkey
    PRIMARY KEY (workflow_id, status, shard);
INSERT INTO workflow_stats (workflow_id, status, shard, executions, duration_count, duration_sum)
SELECT workflow_id, status, 0, executions, duration_count, duration_sum FROM flowstore_stats_fold;
DROP TABLE flowstore_stats_fold;

CREATE OR REPLACE FUNCTION flowstore_workflow_stats() RETURNS trigger AS $$
DECLARE
    my_shard INTEGER := pg_backend_pid() % 64;
BEGIN
    -- Both directions are upserts: the shard of this connection may not have a row
    -- for the run's old status yet.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO workflow_stats AS s (workflow_id, status, shard, executions,
                                         duration_count, duration_sum)
        VALUES (OLD.workflow_id, OLD.status, my_shard, -1,
                -(OLD.actual_duration IS NOT NULL)::int, -coalesce(OLD.actual_duration, 0))
        ON CONFLICT (workflow_id, status, shard) DO UPDATE
           SET executions = s.executions - 1,
               duration_count = s.duration_count + excluded.duration_count,
               duration_sum = s.duration_sum + excluded.duration_sum;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO workflow_stats AS s (workflow_id, status, shard, executions,
                                         duration_count, duration_sum)
        VALUES (NEW.workflow_id, NEW.status, my_shard, 1,
                (NEW.actual_duration IS NOT NULL)::int, coalesce(NEW.actual_duration, 0))
        ON CONFLICT (workflow_id, status, shard) DO UPDATE
           SET executions = s.executions + 1,
               duration_count = s.duration_count + excluded.duration_count,
               duration_sum = s.duration_sum + excluded.duration_sum;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- The hourly metric rollups had the same hot row: every run that finished in an hour
-- added its duration to one (metric, kind, hour) row. They are sharded the same way;
-- readers already add up (and take the least and greatest of) the rows they group.
ALTER TABLE metric_rollups DROP CONSTRAINT metric_rollups_pkey;
ALTER TABLE metric_rollups ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metric_rollups ADD CONSTRAINT metric_rollups_pkey
    PRIMARY KEY (metric_name, metric_type, bucket_start, shard);
