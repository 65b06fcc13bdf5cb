ALTER TABLE events REPLICA IDENTITY DEFAULT;
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id);
CREATE INDEX idx_events_created_at ON events (created_at) WHERE seq IS NOT NULL;
