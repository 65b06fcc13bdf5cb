CREATE INDEX idx_events_created_at ON events (created_at);
