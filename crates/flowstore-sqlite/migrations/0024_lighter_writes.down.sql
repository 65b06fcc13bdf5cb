DROP INDEX idx_tasks_project_status;
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id);
DROP INDEX idx_tasks_workflow_status;
CREATE INDEX idx_tasks_workflow_status ON tasks (workflow_id, status);
DROP INDEX idx_tasks_run_status;
CREATE INDEX idx_tasks_run_status ON tasks (run_id, status);
CREATE INDEX idx_task_executions_agent_status ON task_executions (agent_type, execution_status);
