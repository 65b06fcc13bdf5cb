-- Retention walks the events by number from the oldest and stops at the first one
-- not older than its cutoff, so the index of events by time, which every event's
-- insert wrote, is no longer read. (The key stays: SQLite's is the rowid itself.)
DROP INDEX idx_events_created_at;
