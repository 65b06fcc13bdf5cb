-- Incoming webhook triggers: a secret URL per workflow (`POST /hooks/{token}`) that
-- starts a run as the trigger's owner would. The token is stored as its SHA-256 only,
-- like API keys; the optional signing secret is sealed with the keyring, like webhook
-- secrets (both are present, or neither).
CREATE TABLE webhook_triggers (
    id UUID PRIMARY KEY,
    workflow_id UUID NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    owner_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL CHECK (length(name) > 0),
    token_prefix VARCHAR(32) NOT NULL,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    require_signature BOOLEAN NOT NULL DEFAULT false,
    secret_encrypted BYTEA,
    encryption_key_id VARCHAR(64),
    active BOOLEAN NOT NULL DEFAULT true,
    fire_count BIGINT NOT NULL DEFAULT 0 CHECK (fire_count >= 0),
    last_fired_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, name),
    CHECK (require_signature = (secret_encrypted IS NOT NULL)
        AND (secret_encrypted IS NULL) = (encryption_key_id IS NULL))
);
CREATE INDEX idx_webhook_triggers_owner ON webhook_triggers (owner_id);
CREATE TRIGGER trg_webhook_triggers_updated_at BEFORE UPDATE ON webhook_triggers
    FOR EACH ROW WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION flowstore_touch_updated_at();

-- What a trigger has already accepted, for replay protection: an `Idempotency-Key`
-- (kept 24 hours: the same key answers the same run) or a signature (kept while its
-- timestamp is within the tolerance: the same signature is refused). Keys are stored
-- as their SHA-256; a receipt goes with its run.
CREATE TABLE trigger_receipts (
    id UUID PRIMARY KEY,
    trigger_id UUID NOT NULL REFERENCES webhook_triggers (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('idempotency', 'signature')),
    key_hash VARCHAR(64) NOT NULL,
    run_id UUID NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (trigger_id, kind, key_hash)
);
CREATE INDEX idx_trigger_receipts_expires ON trigger_receipts (expires_at);
CREATE INDEX idx_trigger_receipts_run ON trigger_receipts (run_id);
