-- Audit entries queued by the change they describe, in its transaction, and linked
-- into the hash chain (`audit_log`) after it commits, many at a time, so that a
-- change does not read and write the chain's end itself. `id` is the order entries
-- are linked in. Rows are never updated: linking deletes them in the transaction
-- that appends them to the chain.
CREATE TABLE audit_queue (
    id INTEGER PRIMARY KEY,
    entry_id BLOB NOT NULL UNIQUE CHECK (length(entry_id) = 16),
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id TEXT,
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    entity_type TEXT NOT NULL CHECK (length(entity_type) BETWEEN 1 AND 100),
    entity_id TEXT,
    before TEXT CHECK (before IS NULL OR json_valid(before)),
    after TEXT CHECK (after IS NULL OR json_valid(after)),
    ip_address TEXT,
    request_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TRIGGER trg_audit_queue_no_update BEFORE UPDATE ON audit_queue
BEGIN
    SELECT RAISE(ABORT, 'rows of audit_queue are immutable');
END;
