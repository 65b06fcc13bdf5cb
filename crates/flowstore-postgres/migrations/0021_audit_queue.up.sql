-- Audit entries queued by the change they describe, in its transaction, and linked
-- into the hash chain (`audit_log`) after it commits, many at a time. Appending to
-- the chain needs the newest entry, so appenders take turns and each holds the turn
-- through its commit; a change that queues its entry instead waits for no one.
-- `id` is the order entries are linked in. Rows are never updated: linking deletes
-- them in the transaction that appends them to the chain.
CREATE TABLE audit_queue (
    id BIGSERIAL PRIMARY KEY,
    entry_id UUID NOT NULL UNIQUE,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id VARCHAR(255),
    action VARCHAR(100) NOT NULL CHECK (length(action) > 0),
    entity_type VARCHAR(100) NOT NULL CHECK (length(entity_type) > 0),
    entity_id VARCHAR(255),
    before JSONB,
    after JSONB,
    ip_address VARCHAR(64),
    request_id VARCHAR(128),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TRIGGER trg_audit_queue_no_update BEFORE UPDATE ON audit_queue
    FOR EACH ROW EXECUTE FUNCTION flowstore_refuse_change();
