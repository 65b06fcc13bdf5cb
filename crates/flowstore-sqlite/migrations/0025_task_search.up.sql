-- SQLite's search has had a table of its own (tasks_fts) from the start: nothing
-- changes here. The version exists so that both backends number their migrations alike.
SELECT 1;
