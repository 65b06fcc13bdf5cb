CREATE INDEX idx_workflow_executions_workflow_id ON workflow_executions (workflow_id);
CREATE INDEX idx_workflow_executions_start_time ON workflow_executions (start_time);
CREATE INDEX idx_workflow_metrics_metric_name ON workflow_metrics (metric_name);
