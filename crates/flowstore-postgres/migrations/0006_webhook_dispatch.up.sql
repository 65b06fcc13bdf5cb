-- The webhook dispatcher's bookkeeping: the seq of the last outbox event it fanned
-- out (one row, written the first time it runs and locked by each fan-out, so that
-- several servers fan out one at a time), and one delivery per webhook and event at
-- most, so that an event is never queued twice for the same webhook.
CREATE TABLE webhook_dispatch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idx_webhook_deliveries_event ON webhook_deliveries (webhook_id, event_seq);
