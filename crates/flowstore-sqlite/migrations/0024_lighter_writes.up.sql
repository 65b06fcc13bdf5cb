-- A task's state changes (claim, completion, retry) rewrite the entries of every
-- index holding `status`. Tasks without a project, a workflow or a run need no entry
-- in the indexes that serve lookups by those: each is made partial, and every query
-- that reads through one names a value its predicate follows from (`project_id = ?`
-- implies `project_id IS NOT NULL`). SQLite has no index on tags or requirements.
DROP INDEX idx_tasks_project_status;
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id)
    WHERE project_id IS NOT NULL;
DROP INDEX idx_tasks_workflow_status;
CREATE INDEX idx_tasks_workflow_status ON tasks (workflow_id, status)
    WHERE workflow_id IS NOT NULL;
DROP INDEX idx_tasks_run_status;
CREATE INDEX idx_tasks_run_status ON tasks (run_id, status) WHERE run_id IS NOT NULL;
-- No query looks attempts up by agent type and status (the per-agent summary reads
-- them all), yet every attempt written or moved on wrote an entry here.
DROP INDEX idx_task_executions_agent_status;
