DROP INDEX idx_webhook_deliveries_event;
DROP TABLE webhook_dispatch;
