-- The lease index serves one question, "whose lease has run out": the reaper asks
-- it by lease_expires_at. Keyed on status = 'running' it also looked like the way to
-- find running tasks by status, and with few running tasks in the statistics the
-- planner chose it for completions (which find their task by id): every completion
-- then read every running task, and every index entry that claims and completions
-- had left dead since the last vacuum. Keyed on the lease itself (set while a task
-- runs, cleared when it stops), it answers the reaper as before and nothing else.
DROP INDEX idx_tasks_lease;
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
