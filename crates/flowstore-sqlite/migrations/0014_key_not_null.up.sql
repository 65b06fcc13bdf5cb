-- SQLite lets a PRIMARY KEY that is not an INTEGER hold NULL, and another client
-- writing to the file could leave a row flowstore cannot address (the API answered
-- 500 for it). Rebuilding every table to add NOT NULL would copy all of it; these
-- triggers refuse a NULL id on insert and update instead, with the message SQLite
-- gives for a NOT NULL column. `flowstore check` reports rows left from before.

CREATE TRIGGER trg_users_id_not_null_insert BEFORE INSERT ON users FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: users.id');
END;

CREATE TRIGGER trg_users_id_not_null_update BEFORE UPDATE OF id ON users FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: users.id');
END;

CREATE TRIGGER trg_teams_id_not_null_insert BEFORE INSERT ON teams FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: teams.id');
END;

CREATE TRIGGER trg_teams_id_not_null_update BEFORE UPDATE OF id ON teams FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: teams.id');
END;

CREATE TRIGGER trg_user_sessions_id_not_null_insert BEFORE INSERT ON user_sessions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: user_sessions.id');
END;

CREATE TRIGGER trg_user_sessions_id_not_null_update BEFORE UPDATE OF id ON user_sessions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: user_sessions.id');
END;

CREATE TRIGGER trg_api_keys_id_not_null_insert BEFORE INSERT ON api_keys FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: api_keys.id');
END;

CREATE TRIGGER trg_api_keys_id_not_null_update BEFORE UPDATE OF id ON api_keys FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: api_keys.id');
END;

CREATE TRIGGER trg_notifications_id_not_null_insert BEFORE INSERT ON notifications FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: notifications.id');
END;

CREATE TRIGGER trg_notifications_id_not_null_update BEFORE UPDATE OF id ON notifications FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: notifications.id');
END;

CREATE TRIGGER trg_projects_id_not_null_insert BEFORE INSERT ON projects FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: projects.id');
END;

CREATE TRIGGER trg_projects_id_not_null_update BEFORE UPDATE OF id ON projects FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: projects.id');
END;

CREATE TRIGGER trg_workflows_id_not_null_insert BEFORE INSERT ON workflows FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflows.id');
END;

CREATE TRIGGER trg_workflows_id_not_null_update BEFORE UPDATE OF id ON workflows FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflows.id');
END;

CREATE TRIGGER trg_workflow_versions_id_not_null_insert BEFORE INSERT ON workflow_versions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_versions.id');
END;

CREATE TRIGGER trg_workflow_versions_id_not_null_update BEFORE UPDATE OF id ON workflow_versions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_versions.id');
END;

CREATE TRIGGER trg_workflow_shares_id_not_null_insert BEFORE INSERT ON workflow_shares FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_shares.id');
END;

CREATE TRIGGER trg_workflow_shares_id_not_null_update BEFORE UPDATE OF id ON workflow_shares FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_shares.id');
END;

CREATE TRIGGER trg_workflow_executions_id_not_null_insert BEFORE INSERT ON workflow_executions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_executions.id');
END;

CREATE TRIGGER trg_workflow_executions_id_not_null_update BEFORE UPDATE OF id ON workflow_executions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_executions.id');
END;

CREATE TRIGGER trg_tasks_id_not_null_insert BEFORE INSERT ON tasks FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: tasks.id');
END;

CREATE TRIGGER trg_tasks_id_not_null_update BEFORE UPDATE OF id ON tasks FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: tasks.id');
END;

CREATE TRIGGER trg_task_executions_id_not_null_insert BEFORE INSERT ON task_executions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: task_executions.id');
END;

CREATE TRIGGER trg_task_executions_id_not_null_update BEFORE UPDATE OF id ON task_executions FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: task_executions.id');
END;

CREATE TRIGGER trg_workflow_metrics_id_not_null_insert BEFORE INSERT ON workflow_metrics FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_metrics.id');
END;

CREATE TRIGGER trg_workflow_metrics_id_not_null_update BEFORE UPDATE OF id ON workflow_metrics FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: workflow_metrics.id');
END;

CREATE TRIGGER trg_system_metrics_id_not_null_insert BEFORE INSERT ON system_metrics FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: system_metrics.id');
END;

CREATE TRIGGER trg_system_metrics_id_not_null_update BEFORE UPDATE OF id ON system_metrics FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: system_metrics.id');
END;

CREATE TRIGGER trg_handler_registry_id_not_null_insert BEFORE INSERT ON handler_registry FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: handler_registry.id');
END;

CREATE TRIGGER trg_handler_registry_id_not_null_update BEFORE UPDATE OF id ON handler_registry FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: handler_registry.id');
END;

CREATE TRIGGER trg_components_id_not_null_insert BEFORE INSERT ON components FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: components.id');
END;

CREATE TRIGGER trg_components_id_not_null_update BEFORE UPDATE OF id ON components FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: components.id');
END;

CREATE TRIGGER trg_pull_requests_id_not_null_insert BEFORE INSERT ON pull_requests FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: pull_requests.id');
END;

CREATE TRIGGER trg_pull_requests_id_not_null_update BEFORE UPDATE OF id ON pull_requests FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: pull_requests.id');
END;

CREATE TRIGGER trg_logs_id_not_null_insert BEFORE INSERT ON logs FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: logs.id');
END;

CREATE TRIGGER trg_logs_id_not_null_update BEFORE UPDATE OF id ON logs FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: logs.id');
END;

CREATE TRIGGER trg_configurations_id_not_null_insert BEFORE INSERT ON configurations FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: configurations.id');
END;

CREATE TRIGGER trg_configurations_id_not_null_update BEFORE UPDATE OF id ON configurations FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: configurations.id');
END;

CREATE TRIGGER trg_credentials_id_not_null_insert BEFORE INSERT ON credentials FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: credentials.id');
END;

CREATE TRIGGER trg_credentials_id_not_null_update BEFORE UPDATE OF id ON credentials FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: credentials.id');
END;

CREATE TRIGGER trg_webhooks_id_not_null_insert BEFORE INSERT ON webhooks FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: webhooks.id');
END;

CREATE TRIGGER trg_webhooks_id_not_null_update BEFORE UPDATE OF id ON webhooks FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: webhooks.id');
END;

CREATE TRIGGER trg_webhook_deliveries_id_not_null_insert BEFORE INSERT ON webhook_deliveries FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: webhook_deliveries.id');
END;

CREATE TRIGGER trg_webhook_deliveries_id_not_null_update BEFORE UPDATE OF id ON webhook_deliveries FOR EACH ROW WHEN NEW.id IS NULL
BEGIN
    SELECT RAISE(ABORT, 'NOT NULL constraint failed: webhook_deliveries.id');
END;
