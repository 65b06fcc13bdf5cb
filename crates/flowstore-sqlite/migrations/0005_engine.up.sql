-- The execution engine's bookkeeping: the event outbox and the per-workflow counters
-- behind cheap statistics.

-- Every lifecycle transition appends one event in its own transaction. SQLite has one
-- writer at a time, so the transaction that inserts an event also gives it its
-- gap-free `seq` (the next number after the highest committed one).
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER UNIQUE CHECK (seq >= 1),
    event_type TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
    run_id BLOB,
    task_id BLOB,
    workflow_id TEXT,
    payload TEXT NOT NULL DEFAULT '{}' CHECK (payload IS NULL OR json_valid(payload)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX idx_events_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX idx_events_created_at ON events (created_at);

-- Counts and duration sums of runs per workflow and status, kept by triggers on
-- workflow_executions (so raw SQL keeps them too).
CREATE TABLE workflow_stats (
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    executions INTEGER NOT NULL DEFAULT 0,
    duration_count INTEGER NOT NULL DEFAULT 0,
    duration_sum INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, status)
);
CREATE INDEX idx_workflow_executions_duration
    ON workflow_executions (workflow_id, status, actual_duration);

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

INSERT INTO workflow_stats (workflow_id, status, executions, duration_count, duration_sum)
SELECT workflow_id, status, count(*), count(actual_duration), coalesce(sum(actual_duration), 0)
  FROM workflow_executions GROUP BY workflow_id, status;
