DROP TRIGGER trg_workflow_stats_insert ON workflow_executions;
CREATE TRIGGER trg_workflow_stats_insert AFTER INSERT ON workflow_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_workflow_stats();
DROP FUNCTION flowstore_workflow_stats_added();
