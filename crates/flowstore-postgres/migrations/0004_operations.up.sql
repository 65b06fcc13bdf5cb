-- Operations and integration: logs, configurations, credentials, webhooks and their
-- deliveries, and the hash-chained audit log.

CREATE TABLE logs (
    id UUID PRIMARY KEY,
    level TEXT NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
    component_name VARCHAR(255),
    execution_id UUID REFERENCES workflow_executions (id) ON DELETE CASCADE,
    task_id UUID REFERENCES tasks (id) ON DELETE CASCADE,
    message TEXT NOT NULL,
    context JSONB NOT NULL DEFAULT '{}',
    timestamp TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_logs_execution_timestamp ON logs (execution_id, timestamp) WHERE execution_id IS NOT NULL;
CREATE INDEX idx_logs_task ON logs (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX idx_logs_level_timestamp ON logs (level, timestamp);
CREATE INDEX idx_logs_component_level_timestamp ON logs (component_name, level, timestamp);
CREATE INDEX idx_logs_timestamp ON logs (timestamp);

CREATE TABLE configurations (
    id UUID PRIMARY KEY,
    key VARCHAR(255) NOT NULL UNIQUE CHECK (length(key) > 0),
    value TEXT,
    value_encrypted BYTEA,
    encryption_key_id VARCHAR(64),
    type TEXT NOT NULL DEFAULT 'system'
        CHECK (type IN ('system', 'user', 'workflow', 'component', 'integration')),
    description TEXT,
    is_sensitive BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A sensitive value lives only in encrypted form; a plain one never does.
    CHECK ((is_sensitive AND value IS NULL AND value_encrypted IS NOT NULL AND encryption_key_id IS NOT NULL)
        OR (NOT is_sensitive AND value_encrypted IS NULL AND encryption_key_id IS NULL))
);
CREATE TRIGGER trg_configurations_updated_at BEFORE UPDATE ON configurations
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE credentials (
    id UUID PRIMARY KEY,
    owner_id UUID REFERENCES users (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL CHECK (length(name) > 0),
    type TEXT NOT NULL
        CHECK (type IN ('api_key', 'oauth2', 'basic_auth', 'jwt', 'ssh_key', 'database', 'custom')),
    description TEXT,
    encrypted_data BYTEA NOT NULL,
    encryption_key_id VARCHAR(64) NOT NULL,
    expires_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    rotated_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (owner_id, name)
);
CREATE INDEX idx_credentials_type ON credentials (type);
CREATE INDEX idx_credentials_key_id ON credentials (encryption_key_id);
CREATE TRIGGER trg_credentials_updated_at BEFORE UPDATE ON credentials
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE webhooks (
    id UUID PRIMARY KEY,
    owner_id UUID REFERENCES users (id) ON DELETE CASCADE,
    workflow_id UUID REFERENCES workflows (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    url VARCHAR(2000) NOT NULL CHECK (url LIKE 'http://%' OR url LIKE 'https://%'),
    secret_encrypted BYTEA NOT NULL,
    encryption_key_id VARCHAR(64) NOT NULL,
    events JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(events) = 'array'),
    headers JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    active BOOLEAN NOT NULL DEFAULT true,
    failure_count INTEGER NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_triggered_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (owner_id, url)
);
CREATE INDEX idx_webhooks_active ON webhooks (id) WHERE active;
CREATE INDEX idx_webhooks_events ON webhooks USING GIN (events);
CREATE TRIGGER trg_webhooks_updated_at BEFORE UPDATE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY,
    webhook_id UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq BIGINT,
    event_type VARCHAR(100) NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ,
    last_attempt_at TIMESTAMPTZ,
    response_code INTEGER CHECK (response_code BETWEEN 100 AND 599),
    response_body TEXT,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE TRIGGER trg_webhook_deliveries_updated_at BEFORE UPDATE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

-- Append-only: each row carries the hash of the one before it, so that an edited or
-- removed row breaks the chain where it stood.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY CHECK (seq >= 1),
    id UUID NOT NULL UNIQUE,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id VARCHAR(255),
    action VARCHAR(100) NOT NULL CHECK (length(action) > 0),
    entity_type VARCHAR(100) NOT NULL CHECK (length(entity_type) > 0),
    entity_id VARCHAR(255),
    before JSONB,
    after JSONB,
    ip_address VARCHAR(64),
    request_id VARCHAR(128),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    prev_hash CHAR(64) NOT NULL,
    hash CHAR(64) NOT NULL UNIQUE
);
CREATE INDEX idx_audit_log_entity ON audit_log (entity_type, entity_id, seq);
CREATE INDEX idx_audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX idx_audit_log_created_at ON audit_log (created_at);
CREATE TRIGGER trg_audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION flowstore_refuse_change();
