-- Full-text search in a table of its own, kept by triggers on tasks, as SQLite's FTS
-- table is. As a stored generated column of `tasks`, the search vector was computed
-- again at every update of a task (PostgreSQL recomputes generated columns on every
-- update of a table with a BEFORE UPDATE row trigger, and `tasks` keeps `updated_at`
-- with one), copied into the row's new version, and each of its words written again
-- into the GIN index: at every claim, completion and retry. Now only a task's insert
-- and a change of its title or description write it.
CREATE TABLE task_search (
    task_id UUID PRIMARY KEY,
    search_vector tsvector NOT NULL
);
INSERT INTO task_search (task_id, search_vector) SELECT id, search_vector FROM tasks;
CREATE INDEX idx_task_search ON task_search USING GIN (search_vector);
DROP INDEX idx_tasks_search;
ALTER TABLE tasks DROP COLUMN search_vector;

-- What a task is found by: its title and description, as English words.
CREATE FUNCTION flowstore_task_words(title TEXT, description TEXT) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_tsvector('english', coalesce(title, '') || ' ' || coalesce(description, '')) $$;

-- Tasks inserted together get their search rows in one statement.
CREATE FUNCTION flowstore_task_search_added() RETURNS trigger AS $$
BEGIN
    INSERT INTO task_search (task_id, search_vector)
    SELECT id, flowstore_task_words(title, description) FROM added;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trg_task_search_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_task_search_added();

-- A task renamed or described anew (or, were it ever, given another ID).
CREATE FUNCTION flowstore_task_search_edited() RETURNS trigger AS $$
BEGIN
    UPDATE task_search
       SET task_id = NEW.id, search_vector = flowstore_task_words(NEW.title, NEW.description)
     WHERE task_id = OLD.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trg_task_search_update AFTER UPDATE OF id, title, description ON tasks
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.title IS DISTINCT FROM NEW.title
                       OR OLD.description IS DISTINCT FROM NEW.description)
    EXECUTE FUNCTION flowstore_task_search_edited();

-- Deleted tasks (their runs', projects' and workflows' cascades included) leave.
CREATE FUNCTION flowstore_task_search_removed() RETURNS trigger AS $$
BEGIN
    DELETE FROM task_search s USING removed r WHERE s.task_id = r.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trg_task_search_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_task_search_removed();

-- A restore empties tasks with TRUNCATE, which fires no row or delete trigger.
CREATE FUNCTION flowstore_task_search_emptied() RETURNS trigger AS $$
BEGIN
    TRUNCATE task_search;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trg_task_search_truncate AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_task_search_emptied();

-- A task without a run has no step key either, yet every update of it wrote a
-- (NULL, NULL) entry into the unique index of a run's step keys. NULLs never
-- conflict, so leaving those tasks out keeps the same uniqueness.
ALTER TABLE tasks DROP CONSTRAINT tasks_run_id_step_key_key;
CREATE UNIQUE INDEX tasks_run_id_step_key_key ON tasks (run_id, step_key)
    WHERE run_id IS NOT NULL;
