DROP INDEX tasks_run_id_step_key_key;
ALTER TABLE tasks ADD CONSTRAINT tasks_run_id_step_key_key UNIQUE (run_id, step_key);
DROP TRIGGER trg_task_search_truncate ON tasks;
DROP TRIGGER trg_task_search_delete ON tasks;
DROP TRIGGER trg_task_search_update ON tasks;
DROP TRIGGER trg_task_search_insert ON tasks;
DROP FUNCTION flowstore_task_search_emptied();
DROP FUNCTION flowstore_task_search_removed();
DROP FUNCTION flowstore_task_search_edited();
DROP FUNCTION flowstore_task_search_added();
DROP FUNCTION flowstore_task_words(TEXT, TEXT);
ALTER TABLE tasks ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('english', coalesce(title, '') || ' ' || coalesce(description, ''))
) STORED;
CREATE INDEX idx_tasks_search ON tasks USING GIN (search_vector);
DROP TABLE task_search;
