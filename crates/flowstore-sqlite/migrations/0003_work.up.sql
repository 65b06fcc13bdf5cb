-- The work itself: runs (seed 000's workflow_executions), tasks and their dependencies,
-- attempts, metrics, the handler registry, components and pull requests.

CREATE TABLE workflow_executions (
    -- The columns of seed 000, with their names and meanings.
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    execution_id TEXT UNIQUE NOT NULL CHECK (length(execution_id) BETWEEN 1 AND 255),
    workflow_id TEXT NOT NULL CHECK (length(workflow_id) <= 255),
    workflow_name TEXT NOT NULL CHECK (length(workflow_name) <= 255),
    workflow_version TEXT CHECK (length(workflow_version) <= 50),
    task_id BLOB REFERENCES tasks (id) ON DELETE SET NULL,
    user_id TEXT CHECK (length(user_id) <= 255),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'timed_out')),
    strategy TEXT CHECK (strategy IN ('parallel', 'sequential')),
    priority INTEGER DEFAULT 1,
    estimated_duration INTEGER CHECK (estimated_duration >= 0),
    actual_duration INTEGER CHECK (actual_duration >= 0),
    start_time TEXT,
    end_time TEXT,
    result_data TEXT CHECK (result_data IS NULL OR json_valid(result_data)),
    error_data TEXT CHECK (error_data IS NULL OR json_valid(error_data)),
    metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    -- flowstore's additions.
    workflow_ref BLOB REFERENCES workflows (id) ON DELETE SET NULL,
    workflow_version_id BLOB REFERENCES workflow_versions (id) ON DELETE SET NULL,
    failure_strategy TEXT NOT NULL DEFAULT 'fail_fast'
        CHECK (failure_strategy IN ('fail_fast', 'continue')),
    input TEXT NOT NULL DEFAULT '{}' CHECK (input IS NULL OR json_valid(input)),
    deadline_at TEXT,
    cancel_requested_at TEXT,
    CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
);
CREATE INDEX idx_workflow_executions_workflow_id ON workflow_executions (workflow_id);
CREATE INDEX idx_workflow_executions_task_id ON workflow_executions (task_id);
CREATE INDEX idx_workflow_executions_status ON workflow_executions (status);
CREATE INDEX idx_workflow_executions_start_time ON workflow_executions (start_time);
CREATE INDEX idx_workflow_executions_user_id ON workflow_executions (user_id);
CREATE INDEX idx_workflow_executions_workflow_page ON workflow_executions (workflow_id, id DESC);
CREATE INDEX idx_workflow_executions_workflow_status_page
    ON workflow_executions (workflow_id, status, id DESC);
CREATE INDEX idx_workflow_executions_live ON workflow_executions (deadline_at)
    WHERE status IN ('pending', 'running');
CREATE TRIGGER trigger_workflow_executions_updated_at AFTER UPDATE ON workflow_executions
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE workflow_executions SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
    WHERE rowid = NEW.rowid;
END;

CREATE TABLE tasks (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    project_id BLOB REFERENCES projects (id) ON DELETE CASCADE,
    workflow_id BLOB REFERENCES workflows (id) ON DELETE CASCADE,
    run_id BLOB REFERENCES workflow_executions (id) ON DELETE CASCADE,
    parent_task_id BLOB REFERENCES tasks (id) ON DELETE SET NULL,
    step_key TEXT CHECK (length(step_key) <= 200),
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description TEXT,
    type TEXT CHECK (length(type) <= 100),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'ready', 'running', 'completed', 'failed', 'cancelled', 'timed_out')),
    priority INTEGER NOT NULL DEFAULT 0,
    requirements TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(requirements) AND json_type(requirements) = 'object'),
    context TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(context) AND json_type(context) = 'object'),
    tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags) AND json_type(tags) = 'array'),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    assigned_agent TEXT CHECK (length(assigned_agent) <= 100),
    handler_type TEXT CHECK (length(handler_type) <= 255),
    command TEXT,
    parameters TEXT NOT NULL DEFAULT '{}' CHECK (parameters IS NULL OR json_valid(parameters)),
    environment TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(environment) AND json_type(environment) = 'object'),
    working_directory TEXT CHECK (length(working_directory) <= 1000),
    execution_order INTEGER,
    timeout_seconds INTEGER CHECK (timeout_seconds > 0),
    max_retries INTEGER NOT NULL DEFAULT 0 CHECK (max_retries BETWEEN 0 AND 100),
    retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_owner TEXT,
    lease_expires_at TEXT,
    run_after TEXT,
    result TEXT CHECK (result IS NULL OR json_valid(result)),
    output TEXT,
    error_message TEXT,
    exit_code INTEGER,
    estimated_duration_seconds INTEGER CHECK (estimated_duration_seconds >= 0),
    actual_duration INTEGER CHECK (actual_duration >= 0),
    started_at TEXT,
    completed_at TEXT,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CHECK (parent_task_id IS NULL OR parent_task_id <> id),
    CHECK (status <> 'running' OR lease_expires_at IS NOT NULL),
    UNIQUE (run_id, step_key)
);
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id);
CREATE INDEX idx_tasks_workflow_status ON tasks (workflow_id, status);
CREATE INDEX idx_tasks_run_status ON tasks (run_id, status);
CREATE INDEX idx_tasks_parent ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
CREATE INDEX idx_tasks_claim ON tasks (handler_type, priority DESC, id) WHERE status = 'ready';
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
CREATE TRIGGER trg_tasks_updated_at AFTER UPDATE ON tasks
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE tasks SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

-- Full-text search over title and description, kept in step with tasks by triggers.
CREATE VIRTUAL TABLE tasks_fts USING fts5 (
    title, description, content = 'tasks', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
CREATE TRIGGER trg_tasks_fts_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO tasks_fts (rowid, title, description) VALUES (NEW.rowid, NEW.title, NEW.description);
END;
CREATE TRIGGER trg_tasks_fts_delete AFTER DELETE ON tasks
BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, title, description)
    VALUES ('delete', OLD.rowid, OLD.title, OLD.description);
END;
CREATE TRIGGER trg_tasks_fts_update AFTER UPDATE OF title, description ON tasks
BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, title, description)
    VALUES ('delete', OLD.rowid, OLD.title, OLD.description);
    INSERT INTO tasks_fts (rowid, title, description) VALUES (NEW.rowid, NEW.title, NEW.description);
END;

CREATE TABLE task_dependencies (
    task_id BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on_id BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on_id),
    CHECK (task_id <> depends_on_id)
);
CREATE INDEX idx_task_dependencies_depends_on ON task_dependencies (depends_on_id);

CREATE TABLE task_executions (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    task_id BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    run_id BLOB REFERENCES workflow_executions (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    agent_type TEXT NOT NULL CHECK (length(agent_type) BETWEEN 1 AND 255),
    worker_id TEXT CHECK (length(worker_id) <= 255),
    execution_status TEXT NOT NULL DEFAULT 'queued'
        CHECK (execution_status IN ('queued', 'running', 'completed', 'failed', 'cancelled',
            'timed_out', 'lease_expired')),
    input_context TEXT NOT NULL DEFAULT '{}' CHECK (input_context IS NULL OR json_valid(input_context)),
    output_results TEXT NOT NULL DEFAULT '{}' CHECK (output_results IS NULL OR json_valid(output_results)),
    error_details TEXT NOT NULL DEFAULT '{}' CHECK (error_details IS NULL OR json_valid(error_details)),
    started_at TEXT,
    completed_at TEXT,
    lease_expires_at TEXT,
    heartbeat_at TEXT,
    duration_ms INTEGER CHECK (duration_ms >= 0),
    memory_usage_mb INTEGER CHECK (memory_usage_mb >= 0),
    cpu_time_ms INTEGER CHECK (cpu_time_ms >= 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (task_id, attempt)
);
CREATE INDEX idx_task_executions_run ON task_executions (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX idx_task_executions_agent_status ON task_executions (agent_type, execution_status);
CREATE INDEX idx_task_executions_running ON task_executions (worker_id)
    WHERE execution_status = 'running';
CREATE TRIGGER trg_task_executions_updated_at AFTER UPDATE ON task_executions
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE task_executions SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
    WHERE rowid = NEW.rowid;
END;

CREATE TABLE workflow_metrics (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    execution_id TEXT REFERENCES workflow_executions (execution_id) ON DELETE CASCADE,
    metric_name TEXT NOT NULL CHECK (length(metric_name) BETWEEN 1 AND 255),
    metric_value REAL,
    metric_unit TEXT CHECK (length(metric_unit) <= 50),
    metric_type TEXT CHECK (metric_type IN ('performance', 'resource', 'quality', 'custom')),
    metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_workflow_metrics_execution_id ON workflow_metrics (execution_id, recorded_at DESC);
CREATE INDEX idx_workflow_metrics_metric_name ON workflow_metrics (metric_name);
CREATE INDEX idx_workflow_metrics_metric_type ON workflow_metrics (metric_type);
CREATE INDEX idx_workflow_metrics_recorded_at ON workflow_metrics (recorded_at);
CREATE INDEX idx_workflow_metrics_name_type_time
    ON workflow_metrics (metric_name, metric_type, recorded_at);

-- Hourly rollups of workflow_metrics, kept in the transaction that records a metric.
CREATE TABLE metric_rollups (
    bucket_start TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    metric_type TEXT NOT NULL DEFAULT '',
    sample_count INTEGER NOT NULL CHECK (sample_count >= 0),
    value_sum REAL NOT NULL,
    value_min REAL,
    value_max REAL,
    PRIMARY KEY (metric_name, metric_type, bucket_start)
);
CREATE INDEX idx_metric_rollups_bucket ON metric_rollups (bucket_start);

CREATE TABLE system_metrics (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    metric_name TEXT NOT NULL CHECK (length(metric_name) BETWEEN 1 AND 255),
    metric_value REAL NOT NULL,
    metric_unit TEXT,
    component TEXT,
    labels TEXT NOT NULL DEFAULT '{}' CHECK (labels IS NULL OR json_valid(labels)),
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_system_metrics_name_time ON system_metrics (metric_name, recorded_at);
CREATE INDEX idx_system_metrics_recorded_at ON system_metrics (recorded_at);

CREATE TABLE handler_registry (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    handler_type TEXT UNIQUE NOT NULL CHECK (length(handler_type) BETWEEN 1 AND 255),
    handler_name TEXT NOT NULL CHECK (length(handler_name) <= 255),
    handler_class TEXT CHECK (length(handler_class) <= 255),
    handler_path TEXT CHECK (length(handler_path) <= 500),
    version TEXT CHECK (length(version) <= 50),
    description TEXT,
    capabilities TEXT CHECK (capabilities IS NULL OR json_valid(capabilities)),
    configuration TEXT CHECK (configuration IS NULL OR json_valid(configuration)),
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    registered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_handler_registry_handler_name ON handler_registry (handler_name);
CREATE INDEX idx_handler_registry_is_active ON handler_registry (is_active);
CREATE TRIGGER trigger_handler_registry_updated_at AFTER UPDATE ON handler_registry
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE handler_registry SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
    WHERE rowid = NEW.rowid;
END;

CREATE TABLE components (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    type TEXT NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'inactive', 'maintenance', 'error')),
    version TEXT,
    configuration TEXT NOT NULL DEFAULT '{}' CHECK (configuration IS NULL OR json_valid(configuration)),
    endpoints TEXT NOT NULL DEFAULT '{}' CHECK (endpoints IS NULL OR json_valid(endpoints)),
    health_check_url TEXT,
    health_status TEXT NOT NULL DEFAULT 'unknown'
        CHECK (health_status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
    last_health_check TEXT,
    performance_metrics TEXT NOT NULL DEFAULT '{}' CHECK (performance_metrics IS NULL OR json_valid(performance_metrics)),
    dependencies TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(dependencies) AND json_type(dependencies) = 'array'),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_components_health ON components (health_status, id);
CREATE TRIGGER trg_components_updated_at AFTER UPDATE ON components
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE components SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE pull_requests (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id BLOB REFERENCES tasks (id) ON DELETE SET NULL,
    pr_number INTEGER CHECK (pr_number > 0),
    repository_url TEXT NOT NULL CHECK (length(repository_url) BETWEEN 1 AND 500),
    branch_name TEXT NOT NULL CHECK (length(branch_name) BETWEEN 1 AND 255),
    base_branch TEXT,
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description TEXT,
    status TEXT NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'open', 'review', 'merged', 'closed')),
    validation_results TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(validation_results) AND json_type(validation_results) = 'object'),
    merged_at TEXT,
    closed_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (repository_url, pr_number)
);
CREATE INDEX idx_pull_requests_project_status ON pull_requests (project_id, status, id);
CREATE INDEX idx_pull_requests_task ON pull_requests (task_id) WHERE task_id IS NOT NULL;
CREATE TRIGGER trg_pull_requests_updated_at AFTER UPDATE ON pull_requests
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE pull_requests SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

-- Seed 003's summaries.
CREATE VIEW active_tasks AS
SELECT t.id, t.project_id, p.name AS project_name, t.title, t.status, t.priority,
       t.assigned_agent, t.created_at,
       (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id) AS execution_count
FROM tasks t
LEFT JOIN projects p ON p.id = t.project_id
WHERE t.status IN ('pending', 'ready', 'running');

CREATE VIEW task_execution_summary AS
SELECT agent_type,
       count(*) AS total_executions,
       count(*) FILTER (WHERE execution_status = 'completed') AS completed_executions,
       count(*) FILTER (WHERE execution_status = 'failed') AS failed_executions,
       CAST(avg(duration_ms) AS REAL) AS average_duration_ms,
       CAST(avg(memory_usage_mb) AS REAL) AS average_memory_mb,
       CAST(avg(cpu_time_ms) AS REAL) AS average_cpu_time_ms
FROM task_executions
GROUP BY agent_type;

CREATE VIEW pr_validation_status AS
SELECT pr.id, pr.project_id, pr.task_id, pr.pr_number, pr.title, pr.status,
       json_extract(pr.validation_results, '$.status') AS validation_status,
       pr.updated_at
FROM pull_requests pr;
