DROP TABLE credential_expiry_notices;
DROP TABLE notification_preferences;
