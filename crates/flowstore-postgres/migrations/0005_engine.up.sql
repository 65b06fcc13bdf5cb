-- The execution engine's bookkeeping: the event outbox and the per-workflow counters
-- behind cheap statistics.

-- Every lifecycle transition appends one event in its own transaction. `id` orders
-- inserts but may have gaps (a rolled-back transaction consumes ids); `seq` is the
-- gap-free, increasing number consumers resume from. A single sequencer (under an
-- advisory lock) gives committed events their seq, so that a reader who has seen
-- seq N has seen every event up to N.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    seq BIGINT UNIQUE CHECK (seq >= 1),
    event_type VARCHAR(100) NOT NULL CHECK (length(event_type) > 0),
    run_id UUID,
    task_id UUID,
    workflow_id VARCHAR(255),
    payload JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX idx_events_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX idx_events_created_at ON events (created_at);

-- Counts and duration sums of runs per workflow and status, kept by triggers on
-- workflow_executions (so raw SQL keeps them too). Statistics read these few rows
-- instead of scanning every run; MIN and MAX come from the index below.
CREATE TABLE workflow_stats (
    workflow_id VARCHAR(255) NOT NULL,
    status VARCHAR(50) NOT NULL,
    executions BIGINT NOT NULL DEFAULT 0,
    duration_count BIGINT NOT NULL DEFAULT 0,
    duration_sum BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, status)
);
CREATE INDEX idx_workflow_executions_duration
    ON workflow_executions (workflow_id, status, actual_duration);

CREATE FUNCTION flowstore_workflow_stats() RETURNS trigger AS $$
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

CREATE TRIGGER trg_workflow_stats_insert AFTER INSERT ON workflow_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_workflow_stats();
CREATE TRIGGER trg_workflow_stats_delete AFTER DELETE ON workflow_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_workflow_stats();
CREATE TRIGGER trg_workflow_stats_update AFTER UPDATE OF workflow_id, status, actual_duration
    ON workflow_executions
    FOR EACH ROW
    WHEN (OLD.workflow_id IS DISTINCT FROM NEW.workflow_id OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.actual_duration IS DISTINCT FROM NEW.actual_duration)
    EXECUTE FUNCTION flowstore_workflow_stats();

-- Runs that existed before this migration are counted once.
INSERT INTO workflow_stats (workflow_id, status, executions, duration_count, duration_sum)
SELECT workflow_id, status, count(*), count(actual_duration), coalesce(sum(actual_duration), 0)
  FROM workflow_executions GROUP BY workflow_id, status;
