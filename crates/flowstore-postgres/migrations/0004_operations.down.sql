DROP TABLE audit_log;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE credentials;
DROP TABLE configurations;
DROP TABLE logs;
