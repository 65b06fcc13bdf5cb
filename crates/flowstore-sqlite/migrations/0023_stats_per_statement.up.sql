-- On PostgreSQL, runs inserted together count into workflow_stats with one upsert
-- per workflow and status. SQLite has no statement-level triggers; its row trigger
-- stays, and this is an empty step so that both number their schema alike.
SELECT 1;
