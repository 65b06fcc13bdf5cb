-- Back to calling the function on every row update.

DROP TRIGGER trg_users_updated_at ON users;
CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_teams_updated_at ON teams;
CREATE TRIGGER trg_teams_updated_at BEFORE UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_api_keys_updated_at ON api_keys;
CREATE TRIGGER trg_api_keys_updated_at BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_projects_updated_at ON projects;
CREATE TRIGGER trg_projects_updated_at BEFORE UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_workflows_updated_at ON workflows;
CREATE TRIGGER trg_workflows_updated_at BEFORE UPDATE ON workflows
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trigger_workflow_executions_updated_at ON workflow_executions;
CREATE TRIGGER trigger_workflow_executions_updated_at BEFORE UPDATE ON workflow_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_tasks_updated_at ON tasks;
CREATE TRIGGER trg_tasks_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_task_executions_updated_at ON task_executions;
CREATE TRIGGER trg_task_executions_updated_at BEFORE UPDATE ON task_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trigger_handler_registry_updated_at ON handler_registry;
CREATE TRIGGER trigger_handler_registry_updated_at BEFORE UPDATE ON handler_registry
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_components_updated_at ON components;
CREATE TRIGGER trg_components_updated_at BEFORE UPDATE ON components
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_pull_requests_updated_at ON pull_requests;
CREATE TRIGGER trg_pull_requests_updated_at BEFORE UPDATE ON pull_requests
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_configurations_updated_at ON configurations;
CREATE TRIGGER trg_configurations_updated_at BEFORE UPDATE ON configurations
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_credentials_updated_at ON credentials;
CREATE TRIGGER trg_credentials_updated_at BEFORE UPDATE ON credentials
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_webhooks_updated_at ON webhooks;
CREATE TRIGGER trg_webhooks_updated_at BEFORE UPDATE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

DROP TRIGGER trg_webhook_deliveries_updated_at ON webhook_deliveries;
CREATE TRIGGER trg_webhook_deliveries_updated_at BEFORE UPDATE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();
