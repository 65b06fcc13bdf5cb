-- An event is inserted unnumbered and numbered after its commit by an update that
-- cannot be HOT (the number is indexed), so the update writes a new row version with
-- an entry in every index of events. Two of those indexes go, which leaves an event
-- written with two index entries (the sequencer's and, once numbered, the number's;
-- three for an event of a run) instead of five (six).
--
-- The index by time: retention walks the events by number from the oldest and
-- stops at the first one not older than its cutoff. Numbers follow commits, so this
-- takes every older event but the few a slow commit numbered after a newer one,
-- which a later pass takes.
DROP INDEX idx_events_created_at;
-- The primary key: no reader looks an event up by its insertion ID (readers name a
-- number); the ID only orders the sequencer's work, which idx_events_unsequenced
-- serves, and the sequencer updates the rows it has just read by their place
-- (ctid). The ID stays unique through its sequence, as SQLite's rowid does. A table
-- without a key has no replica identity for logical replication, so the whole row
-- serves as one (this costs WAL only where wal_level is logical).
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events REPLICA IDENTITY FULL;
