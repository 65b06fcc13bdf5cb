-- Operations and integration: logs, configurations, credentials, webhooks and their
-- deliveries, and the hash-chained audit log.

CREATE TABLE logs (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    level TEXT NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
    component_name TEXT CHECK (length(component_name) <= 255),
    execution_id BLOB REFERENCES workflow_executions (id) ON DELETE CASCADE,
    task_id BLOB REFERENCES tasks (id) ON DELETE CASCADE,
    message TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{}' CHECK (context IS NULL OR json_valid(context)),
    timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_logs_execution_timestamp ON logs (execution_id, timestamp) WHERE execution_id IS NOT NULL;
CREATE INDEX idx_logs_task ON logs (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX idx_logs_level_timestamp ON logs (level, timestamp);
CREATE INDEX idx_logs_component_level_timestamp ON logs (component_name, level, timestamp);
CREATE INDEX idx_logs_timestamp ON logs (timestamp);

CREATE TABLE configurations (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    key TEXT NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 255),
    value TEXT,
    value_encrypted BLOB,
    encryption_key_id TEXT,
    type TEXT NOT NULL DEFAULT 'system'
        CHECK (type IN ('system', 'user', 'workflow', 'component', 'integration')),
    description TEXT,
    is_sensitive INTEGER NOT NULL DEFAULT 0 CHECK (is_sensitive IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CHECK ((is_sensitive AND value IS NULL AND value_encrypted IS NOT NULL AND encryption_key_id IS NOT NULL)
        OR (NOT is_sensitive AND value_encrypted IS NULL AND encryption_key_id IS NULL))
);
CREATE TRIGGER trg_configurations_updated_at AFTER UPDATE ON configurations
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE configurations SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE credentials (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    owner_id BLOB REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    type TEXT NOT NULL
        CHECK (type IN ('api_key', 'oauth2', 'basic_auth', 'jwt', 'ssh_key', 'database', 'custom')),
    description TEXT,
    encrypted_data BLOB NOT NULL,
    encryption_key_id TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    rotated_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (owner_id, name)
);
CREATE INDEX idx_credentials_type ON credentials (type);
CREATE INDEX idx_credentials_key_id ON credentials (encryption_key_id);
CREATE TRIGGER trg_credentials_updated_at AFTER UPDATE ON credentials
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE credentials SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE webhooks (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    owner_id BLOB REFERENCES users (id) ON DELETE CASCADE,
    workflow_id BLOB REFERENCES workflows (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) <= 255),
    url TEXT NOT NULL CHECK (length(url) <= 2000 AND (url LIKE 'http://%' OR url LIKE 'https://%')),
    secret_encrypted BLOB NOT NULL,
    encryption_key_id TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(events) AND json_type(events) = 'array'),
    headers TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(headers) AND json_type(headers) = 'object'),
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    failure_count INTEGER NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_triggered_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (owner_id, url)
);
CREATE INDEX idx_webhooks_active ON webhooks (id) WHERE active;
CREATE TRIGGER trg_webhooks_updated_at AFTER UPDATE ON webhooks
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE webhooks SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE webhook_deliveries (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    webhook_id BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq INTEGER,
    event_type TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
    payload TEXT NOT NULL CHECK (payload IS NULL OR json_valid(payload)),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    response_code INTEGER CHECK (response_code BETWEEN 100 AND 599),
    response_body TEXT,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE TRIGGER trg_webhook_deliveries_updated_at AFTER UPDATE ON webhook_deliveries
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE webhook_deliveries SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
    WHERE rowid = NEW.rowid;
END;

-- Append-only: each row carries the hash of the one before it.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY CHECK (seq >= 1),
    id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id TEXT,
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    entity_type TEXT NOT NULL CHECK (length(entity_type) BETWEEN 1 AND 100),
    entity_id TEXT,
    before TEXT CHECK (before IS NULL OR json_valid(before)),
    after TEXT CHECK (after IS NULL OR json_valid(after)),
    ip_address TEXT,
    request_id TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
    hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
);
CREATE INDEX idx_audit_log_entity ON audit_log (entity_type, entity_id, seq);
CREATE INDEX idx_audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX idx_audit_log_created_at ON audit_log (created_at);
CREATE TRIGGER trg_audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'rows of audit_log are immutable');
END;
CREATE TRIGGER trg_audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'rows of audit_log are immutable');
END;
