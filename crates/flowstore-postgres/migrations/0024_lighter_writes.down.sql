DROP INDEX idx_tasks_project_status;
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id);
DROP INDEX idx_tasks_workflow_status;
CREATE INDEX idx_tasks_workflow_status ON tasks (workflow_id, status);
DROP INDEX idx_tasks_run_status;
CREATE INDEX idx_tasks_run_status ON tasks (run_id, status);
DROP INDEX idx_tasks_requirements;
CREATE INDEX idx_tasks_requirements ON tasks USING GIN (requirements jsonb_path_ops);
DROP INDEX idx_tasks_tags;
CREATE INDEX idx_tasks_tags ON tasks USING GIN (tags);
CREATE INDEX idx_task_executions_agent_status ON task_executions (agent_type, execution_status);
DROP INDEX events_seq_key;
ALTER TABLE events ADD CONSTRAINT events_seq_key UNIQUE (seq);
DROP INDEX idx_events_created_at;
CREATE INDEX idx_events_created_at ON events (created_at);
CREATE FUNCTION flowstore_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowstore_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trg_events_notify AFTER UPDATE OF seq ON events
    FOR EACH ROW WHEN (OLD.seq IS NULL AND NEW.seq IS NOT NULL)
    EXECUTE FUNCTION flowstore_notify_events();
