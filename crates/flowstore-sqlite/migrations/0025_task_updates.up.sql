-- SQLite's search has had a table of its own (tasks_fts) from the start, and SQLite
-- rewrites only the index entries whose columns change, so a task's updates never
-- touch its run's step-key index: nothing changes here. The version exists so that
-- both backends number their migrations alike.
SELECT 1;
