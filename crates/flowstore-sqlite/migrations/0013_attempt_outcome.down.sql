ALTER TABLE task_executions DROP COLUMN outcome;
