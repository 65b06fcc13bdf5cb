-- What the engine answered when a worker's report ended an attempt (the task's status
-- afterwards, the retry time, the tasks made ready, the run's end), so that a worker
-- that lost the answer and reports again gets the same answer, not "not current".
ALTER TABLE task_executions ADD COLUMN outcome TEXT CHECK (outcome IS NULL OR json_valid(outcome));
