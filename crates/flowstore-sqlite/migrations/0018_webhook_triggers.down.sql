DROP TABLE trigger_receipts;
DROP TABLE webhook_triggers;
