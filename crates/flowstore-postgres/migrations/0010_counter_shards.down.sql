-- Back to one counter row per workflow and status: the shards are added up first.
CREATE TEMP TABLE flowstore_stats_fold AS
SELECT workflow_id, status, sum(executions)::bigint AS executions,
       sum(duration_count)::bigint AS duration_count, sum(duration_sum)::bigint AS duration_sum
  FROM workflow_stats GROUP BY workflow_id, status;
DELETE FROM workflow_stats;
ALTER TABLE workflow_stats DROP CONSTRAINT workflow_stats_pkey;
ALTER TABLE workflow_stats DROP COLUMN shard;
ALTER TABLE workflow_stats ADD CONSTRAINT workflow_stats_pkey PRIMARY KEY (workflow_id, status);
INSERT INTO workflow_stats (workflow_id, status, executions, duration_count, duration_sum)
SELECT workflow_id, status, executions, duration_count, duration_sum FROM flowstore_stats_fold;
DROP TABLE flowstore_stats_fold;

CREATE OR REPLACE FUNCTION flowstore_workflow_stats() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE workflow_stats
           SET executions = executions - 1,
               duration_count = duration_count - (OLD.actual_duration IS NOT NULL)::int,
               duration_sum = duration_sum - coalesce(OLD.actual_duration, 0)
         WHERE workflow_id = OLD.workflow_id AND status = OLD.status;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO workflow_stats AS s (workflow_id, status, executions, duration_count, duration_sum)
        VALUES (NEW.workflow_id, NEW.status, 1, (NEW.actual_duration IS NOT NULL)::int,
                coalesce(NEW.actual_duration, 0))
        ON CONFLICT (workflow_id, status) DO UPDATE
           SET executions = s.executions + 1,
               duration_count = s.duration_count + excluded.duration_count,
               duration_sum = s.duration_sum + excluded.duration_sum;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TEMP TABLE flowstore_rollups_fold AS
SELECT bucket_start, metric_name, metric_type, sum(sample_count)::bigint AS sample_count,
       sum(value_sum) AS value_sum, min(value_min) AS value_min, max(value_max) AS value_max
  FROM metric_rollups GROUP BY bucket_start, metric_name, metric_type;
DELETE FROM metric_rollups;
ALTER TABLE metric_rollups DROP CONSTRAINT metric_rollups_pkey;
ALTER TABLE metric_rollups DROP COLUMN shard;
ALTER TABLE metric_rollups ADD CONSTRAINT metric_rollups_pkey
    PRIMARY KEY (metric_name, metric_type, bucket_start);
INSERT INTO metric_rollups (bucket_start, metric_name, metric_type, sample_count, value_sum,
                            value_min, value_max)
SELECT bucket_start, metric_name, metric_type, sample_count, value_sum, value_min, value_max
  FROM flowstore_rollups_fold;
DROP TABLE flowstore_rollups_fold;
