-- The webhook dispatcher's bookkeeping: the seq of the last outbox event it fanned
-- out (one row, written the first time it runs), and one delivery per webhook and
-- event at most, so that an event is never queued twice for the same webhook.
CREATE TABLE webhook_dispatch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE UNIQUE INDEX idx_webhook_deliveries_event ON webhook_deliveries (webhook_id, event_seq);
