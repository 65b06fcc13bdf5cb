-- The work itself: runs (seed 000's workflow_executions), tasks and their dependencies,
-- attempts, metrics, the handler registry, components and pull requests.

CREATE TABLE workflow_executions (
    -- The columns of seed 000, with their names and meanings.
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    execution_id VARCHAR(255) UNIQUE NOT NULL CHECK (length(execution_id) > 0),
    workflow_id VARCHAR(255) NOT NULL,
    workflow_name VARCHAR(255) NOT NULL,
    workflow_version VARCHAR(50),
    task_id UUID,
    user_id VARCHAR(255),
    status VARCHAR(50) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'timed_out')),
    strategy VARCHAR(100) CHECK (strategy IN ('parallel', 'sequential')),
    priority INTEGER DEFAULT 1,
    estimated_duration INTEGER CHECK (estimated_duration >= 0),
    actual_duration INTEGER CHECK (actual_duration >= 0),
    start_time TIMESTAMPTZ,
    end_time TIMESTAMPTZ,
    result_data JSONB,
    error_data JSONB,
    metadata JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- flowstore's additions.
    workflow_ref UUID REFERENCES workflows (id) ON DELETE SET NULL,
    workflow_version_id UUID REFERENCES workflow_versions (id) ON DELETE SET NULL,
    failure_strategy TEXT NOT NULL DEFAULT 'fail_fast'
        CHECK (failure_strategy IN ('fail_fast', 'continue')),
    input JSONB NOT NULL DEFAULT '{}',
    deadline_at TIMESTAMPTZ,
    cancel_requested_at TIMESTAMPTZ,
    CHECK (end_time IS NULL OR start_time IS NULL OR end_time >= start_time)
);
CREATE INDEX idx_workflow_executions_execution_id ON workflow_executions (execution_id);
CREATE INDEX idx_workflow_executions_workflow_id ON workflow_executions (workflow_id);
CREATE INDEX idx_workflow_executions_task_id ON workflow_executions (task_id);
CREATE INDEX idx_workflow_executions_status ON workflow_executions (status);
CREATE INDEX idx_workflow_executions_start_time ON workflow_executions (start_time);
CREATE INDEX idx_workflow_executions_user_id ON workflow_executions (user_id);
-- Keyset pages of a workflow's runs, with and without a status filter.
CREATE INDEX idx_workflow_executions_workflow_page ON workflow_executions (workflow_id, id DESC);
CREATE INDEX idx_workflow_executions_workflow_status_page
    ON workflow_executions (workflow_id, status, id DESC);
CREATE INDEX idx_workflow_executions_live ON workflow_executions (deadline_at)
    WHERE status IN ('pending', 'running');
CREATE TRIGGER trigger_workflow_executions_updated_at BEFORE UPDATE ON workflow_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE tasks (
    id UUID PRIMARY KEY,
    project_id UUID REFERENCES projects (id) ON DELETE CASCADE,
    workflow_id UUID REFERENCES workflows (id) ON DELETE CASCADE,
    run_id UUID REFERENCES workflow_executions (id) ON DELETE CASCADE,
    parent_task_id UUID REFERENCES tasks (id) ON DELETE SET NULL,
    step_key VARCHAR(200),
    title VARCHAR(500) NOT NULL CHECK (length(title) > 0),
    description TEXT,
    type VARCHAR(100),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'ready', 'running', 'completed', 'failed', 'cancelled', 'timed_out')),
    priority INTEGER NOT NULL DEFAULT 0,
    requirements JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(requirements) = 'object'),
    context JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    tags JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags) = 'array'),
    metadata JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    assigned_agent VARCHAR(100),
    handler_type VARCHAR(255),
    command TEXT,
    parameters JSONB NOT NULL DEFAULT '{}',
    environment JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(environment) = 'object'),
    working_directory VARCHAR(1000),
    execution_order INTEGER,
    timeout_seconds INTEGER CHECK (timeout_seconds > 0),
    max_retries INTEGER NOT NULL DEFAULT 0 CHECK (max_retries BETWEEN 0 AND 100),
    retry_count INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_owner VARCHAR(255),
    lease_expires_at TIMESTAMPTZ,
    run_after TIMESTAMPTZ,
    result JSONB,
    output TEXT,
    error_message TEXT,
    exit_code INTEGER,
    estimated_duration_seconds INTEGER CHECK (estimated_duration_seconds >= 0),
    actual_duration INTEGER CHECK (actual_duration >= 0),
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    search_vector tsvector GENERATED ALWAYS AS (
        to_tsvector('english', coalesce(title, '') || ' ' || coalesce(description, ''))
    ) STORED,
    CHECK (parent_task_id IS NULL OR parent_task_id <> id),
    CHECK (status <> 'running' OR lease_expires_at IS NOT NULL),
    UNIQUE (run_id, step_key)
);
CREATE INDEX idx_tasks_project_status ON tasks (project_id, status, id);
CREATE INDEX idx_tasks_workflow_status ON tasks (workflow_id, status);
CREATE INDEX idx_tasks_run_status ON tasks (run_id, status);
CREATE INDEX idx_tasks_parent ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
-- The claim path: ready tasks by handler, highest priority then oldest.
CREATE INDEX idx_tasks_claim ON tasks (handler_type, priority DESC, id) WHERE status = 'ready';
-- The reaper's path: running tasks by lease expiry.
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX idx_tasks_requirements ON tasks USING GIN (requirements jsonb_path_ops);
CREATE INDEX idx_tasks_tags ON tasks USING GIN (tags);
CREATE INDEX idx_tasks_search ON tasks USING GIN (search_vector);
CREATE TRIGGER trg_tasks_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

ALTER TABLE workflow_executions
    ADD CONSTRAINT workflow_executions_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks (id)
    ON DELETE SET NULL;

CREATE TABLE task_dependencies (
    task_id UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on_id UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on_id),
    CHECK (task_id <> depends_on_id)
);
CREATE INDEX idx_task_dependencies_depends_on ON task_dependencies (depends_on_id);

CREATE TABLE task_executions (
    id UUID PRIMARY KEY,
    task_id UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    run_id UUID REFERENCES workflow_executions (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    agent_type VARCHAR(255) NOT NULL,
    worker_id VARCHAR(255),
    execution_status TEXT NOT NULL DEFAULT 'queued'
        CHECK (execution_status IN ('queued', 'running', 'completed', 'failed', 'cancelled',
            'timed_out', 'lease_expired')),
    input_context JSONB NOT NULL DEFAULT '{}',
    output_results JSONB NOT NULL DEFAULT '{}',
    error_details JSONB NOT NULL DEFAULT '{}',
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    lease_expires_at TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    duration_ms BIGINT CHECK (duration_ms >= 0),
    memory_usage_mb INTEGER CHECK (memory_usage_mb >= 0),
    cpu_time_ms BIGINT CHECK (cpu_time_ms >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (task_id, attempt)
);
CREATE INDEX idx_task_executions_run ON task_executions (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX idx_task_executions_agent_status ON task_executions (agent_type, execution_status);
CREATE INDEX idx_task_executions_running ON task_executions (worker_id)
    WHERE execution_status = 'running';
CREATE TRIGGER trg_task_executions_updated_at BEFORE UPDATE ON task_executions
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE workflow_metrics (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    execution_id VARCHAR(255) REFERENCES workflow_executions (execution_id) ON DELETE CASCADE,
    metric_name VARCHAR(255) NOT NULL CHECK (length(metric_name) > 0),
    metric_value DECIMAL(15, 4),
    metric_unit VARCHAR(50),
    metric_type VARCHAR(50) CHECK (metric_type IN ('performance', 'resource', 'quality', 'custom')),
    metadata JSONB,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_workflow_metrics_execution_id ON workflow_metrics (execution_id, recorded_at DESC);
CREATE INDEX idx_workflow_metrics_metric_name ON workflow_metrics (metric_name);
CREATE INDEX idx_workflow_metrics_metric_type ON workflow_metrics (metric_type);
CREATE INDEX idx_workflow_metrics_recorded_at ON workflow_metrics (recorded_at);
CREATE INDEX idx_workflow_metrics_name_type_time
    ON workflow_metrics (metric_name, metric_type, recorded_at);

-- Hourly rollups of workflow_metrics, kept in the transaction that records a metric,
-- so that analytics over months read thousands of rows rather than millions.
CREATE TABLE metric_rollups (
    bucket_start TIMESTAMPTZ NOT NULL,
    metric_name VARCHAR(255) NOT NULL,
    metric_type VARCHAR(50) NOT NULL DEFAULT '',
    sample_count BIGINT NOT NULL CHECK (sample_count >= 0),
    value_sum DOUBLE PRECISION NOT NULL,
    value_min DOUBLE PRECISION,
    value_max DOUBLE PRECISION,
    PRIMARY KEY (metric_name, metric_type, bucket_start)
);
CREATE INDEX idx_metric_rollups_bucket ON metric_rollups (bucket_start);

CREATE TABLE system_metrics (
    id UUID PRIMARY KEY,
    metric_name VARCHAR(255) NOT NULL CHECK (length(metric_name) > 0),
    metric_value DOUBLE PRECISION NOT NULL,
    metric_unit VARCHAR(50),
    component VARCHAR(255),
    labels JSONB NOT NULL DEFAULT '{}',
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_system_metrics_name_time ON system_metrics (metric_name, recorded_at);
CREATE INDEX idx_system_metrics_recorded_at ON system_metrics (recorded_at);

CREATE TABLE handler_registry (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    handler_type VARCHAR(255) UNIQUE NOT NULL CHECK (length(handler_type) > 0),
    handler_name VARCHAR(255) NOT NULL,
    handler_class VARCHAR(255),
    handler_path VARCHAR(500),
    version VARCHAR(50),
    description TEXT,
    capabilities JSONB,
    configuration JSONB,
    is_active BOOLEAN NOT NULL DEFAULT true,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_handler_registry_handler_type ON handler_registry (handler_type);
CREATE INDEX idx_handler_registry_handler_name ON handler_registry (handler_name);
CREATE INDEX idx_handler_registry_is_active ON handler_registry (is_active);
CREATE TRIGGER trigger_handler_registry_updated_at BEFORE UPDATE ON handler_registry
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE components (
    id UUID PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE CHECK (length(name) > 0),
    type VARCHAR(100) NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'inactive', 'maintenance', 'error')),
    version VARCHAR(50),
    configuration JSONB NOT NULL DEFAULT '{}',
    endpoints JSONB NOT NULL DEFAULT '{}',
    health_check_url VARCHAR(1000),
    health_status TEXT NOT NULL DEFAULT 'unknown'
        CHECK (health_status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
    last_health_check TIMESTAMPTZ,
    performance_metrics JSONB NOT NULL DEFAULT '{}',
    dependencies JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(dependencies) = 'array'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_components_health ON components (health_status, id);
CREATE TRIGGER trg_components_updated_at BEFORE UPDATE ON components
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE pull_requests (
    id UUID PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id UUID REFERENCES tasks (id) ON DELETE SET NULL,
    pr_number INTEGER CHECK (pr_number > 0),
    repository_url VARCHAR(500) NOT NULL CHECK (length(repository_url) > 0),
    branch_name VARCHAR(255) NOT NULL CHECK (length(branch_name) > 0),
    base_branch VARCHAR(255),
    title VARCHAR(500) NOT NULL CHECK (length(title) > 0),
    description TEXT,
    status TEXT NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'open', 'review', 'merged', 'closed')),
    validation_results JSONB NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(validation_results) = 'object'),
    merged_at TIMESTAMPTZ,
    closed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_url, pr_number)
);
CREATE INDEX idx_pull_requests_project_status ON pull_requests (project_id, status, id);
CREATE INDEX idx_pull_requests_task ON pull_requests (task_id) WHERE task_id IS NOT NULL;
CREATE TRIGGER trg_pull_requests_updated_at BEFORE UPDATE ON pull_requests
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

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
       avg(duration_ms)::DOUBLE PRECISION AS average_duration_ms,
       avg(memory_usage_mb)::DOUBLE PRECISION AS average_memory_mb,
       avg(cpu_time_ms)::DOUBLE PRECISION AS average_cpu_time_ms
FROM task_executions
GROUP BY agent_type;

CREATE VIEW pr_validation_status AS
SELECT pr.id, pr.project_id, pr.task_id, pr.pr_number, pr.title, pr.status,
       pr.validation_results->>'status' AS validation_status,
       pr.updated_at
FROM pull_requests pr;
