-- Incoming webhook triggers and their receipts (see the PostgreSQL migration).
CREATE TABLE webhook_triggers (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    workflow_id BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    owner_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    token_prefix TEXT NOT NULL CHECK (length(token_prefix) <= 32),
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) <= 64),
    require_signature INTEGER NOT NULL DEFAULT 0 CHECK (require_signature IN (0, 1)),
    secret_encrypted BLOB,
    encryption_key_id TEXT CHECK (length(encryption_key_id) <= 64),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    fire_count INTEGER NOT NULL DEFAULT 0 CHECK (fire_count >= 0),
    last_fired_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (workflow_id, name),
    CHECK (require_signature = (secret_encrypted IS NOT NULL)
        AND (secret_encrypted IS NULL) = (encryption_key_id IS NULL))
);
CREATE INDEX idx_webhook_triggers_owner ON webhook_triggers (owner_id);
CREATE TRIGGER trg_webhook_triggers_updated_at AFTER UPDATE ON webhook_triggers
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE webhook_triggers SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE trigger_receipts (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    trigger_id BLOB NOT NULL REFERENCES webhook_triggers (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('idempotency', 'signature')),
    key_hash TEXT NOT NULL CHECK (length(key_hash) <= 64),
    run_id BLOB NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (trigger_id, kind, key_hash)
);
CREATE INDEX idx_trigger_receipts_expires ON trigger_receipts (expires_at);
CREATE INDEX idx_trigger_receipts_run ON trigger_receipts (run_id);
