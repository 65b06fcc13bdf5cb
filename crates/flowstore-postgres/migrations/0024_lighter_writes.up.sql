-- A task's state changes (claim, completion, retry) move its row, so every index of
-- `tasks` gets an entry for the new version. Tasks without a project, a workflow or a
-- run, and tasks without requirements or tags, need no entry in the indexes that
-- serve lookups by those: each such index is made partial, and every query that
-- reads through one names a value its predicate follows from (`project_id = $1`
-- implies `project_id IS NOT NULL`; the tag and requirements filters say
-- `tags <> '[]'` and `requirements <> '{}'` in so many words).
DROP INDEX idx_tasks_project_status;
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id)
    WHERE project_id IS NOT NULL;
DROP INDEX idx_tasks_workflow_status;
CREATE INDEX idx_tasks_workflow_status ON tasks (workflow_id, status)
    WHERE workflow_id IS NOT NULL;
DROP INDEX idx_tasks_run_status;
CREATE INDEX idx_tasks_run_status ON tasks (run_id, status) WHERE run_id IS NOT NULL;
DROP INDEX idx_tasks_requirements;
CREATE INDEX idx_tasks_requirements ON tasks USING GIN (requirements jsonb_path_ops)
    WHERE requirements <> '{}'::jsonb;
DROP INDEX idx_tasks_tags;
CREATE INDEX idx_tasks_tags ON tasks USING GIN (tags) WHERE tags <> '[]'::jsonb;
-- No query looks attempts up by agent type and status (the per-agent summary reads
-- them all), yet every attempt written or moved on wrote an entry here.
DROP INDEX idx_task_executions_agent_status;
-- Events are inserted unnumbered and numbered after their commit, which writes each
-- row again, with an entry in every index. The unnumbered version needs an entry only
-- in the sequencer's index (idx_events_unsequenced): the unique index of numbers and
-- the index by time now hold numbered events alone. Their readers name a number
-- (`seq > $1`, `max(seq)`) or say `seq IS NOT NULL` (retention deletes only events
-- that readers could have seen). SQLite numbers events as it inserts them.
ALTER TABLE events DROP CONSTRAINT events_seq_key;
CREATE UNIQUE INDEX events_seq_key ON events (seq) WHERE seq IS NOT NULL;
DROP INDEX idx_events_created_at;
CREATE INDEX idx_events_created_at ON events (created_at) WHERE seq IS NOT NULL;
-- The sequencer notifies `flowstore_events` once per numbering statement that
-- numbered anything, instead of this trigger calling a function for every event.
DROP TRIGGER trg_events_notify ON events;
DROP FUNCTION flowstore_notify_events();
