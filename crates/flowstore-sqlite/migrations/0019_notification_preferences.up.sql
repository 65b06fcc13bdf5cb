-- Notification preferences and credential expiry notices (see the PostgreSQL
-- migration).
CREATE TABLE notification_preferences (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('execution_completed', 'execution_failed', 'workflow_shared',
        'team_invite', 'system_alert', 'security_alert', 'info')),
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    PRIMARY KEY (user_id, type)
);

CREATE TABLE credential_expiry_notices (
    credential_id BLOB NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    PRIMARY KEY (credential_id, expires_at)
);
