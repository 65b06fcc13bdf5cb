DROP INDEX idx_tasks_lease;
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
