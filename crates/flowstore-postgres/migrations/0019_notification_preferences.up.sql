-- What each user wants to be told: one row per user and notification type they
-- chose for (no row: the type is wanted). Security alerts cannot be switched off;
-- the application refuses that choice.
CREATE TABLE notification_preferences (
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('execution_completed', 'execution_failed', 'workflow_shared',
        'team_invite', 'system_alert', 'security_alert', 'info')),
    enabled BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, type)
);

-- The credentials whose owner was told that they expire soon, one row per
-- credential and expiry: the maintenance pass tells each owner once per expiry (a
-- new `expires_at` is told again), whichever server runs it.
CREATE TABLE credential_expiry_notices (
    credential_id UUID NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (credential_id, expires_at)
);
