-- Projects, workflows, their immutable versions and their shares.

CREATE TABLE projects (
    id UUID PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    description TEXT,
    repository_url VARCHAR(500),
    repository_name VARCHAR(255),
    default_branch VARCHAR(100) NOT NULL DEFAULT 'main',
    settings JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    owner_id UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_projects_owner ON projects (owner_id, id);
CREATE TRIGGER trg_projects_updated_at BEFORE UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE workflows (
    id UUID PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    type VARCHAR(100) NOT NULL DEFAULT 'general',
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'inactive', 'archived')),
    priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    definition JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(definition) = 'object'),
    configuration JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(configuration) = 'object'),
    environment_variables JSONB NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(environment_variables) = 'object'),
    tags JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags) = 'array'),
    metadata JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    visibility TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'public')),
    execution_strategy TEXT NOT NULL DEFAULT 'parallel'
        CHECK (execution_strategy IN ('parallel', 'sequential')),
    failure_strategy TEXT NOT NULL DEFAULT 'fail_fast'
        CHECK (failure_strategy IN ('fail_fast', 'continue')),
    timeout_seconds INTEGER CHECK (timeout_seconds > 0),
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    owner_id UUID REFERENCES users (id) ON DELETE SET NULL,
    team_id UUID REFERENCES teams (id) ON DELETE SET NULL,
    project_id UUID REFERENCES projects (id) ON DELETE SET NULL,
    parent_workflow_id UUID REFERENCES workflows (id) ON DELETE SET NULL,
    archived_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_workflows_status_created_at ON workflows (status, created_at);
CREATE INDEX idx_workflows_status_id ON workflows (status, id);
CREATE INDEX idx_workflows_owner ON workflows (owner_id, id);
CREATE INDEX idx_workflows_team ON workflows (team_id, id) WHERE team_id IS NOT NULL;
CREATE INDEX idx_workflows_project ON workflows (project_id, id) WHERE project_id IS NOT NULL;
CREATE INDEX idx_workflows_active ON workflows (id) WHERE status = 'active';
CREATE INDEX idx_workflows_tags ON workflows USING GIN (tags);
CREATE TRIGGER trg_workflows_updated_at BEFORE UPDATE ON workflows
    FOR EACH ROW EXECUTE FUNCTION flowstore_touch_updated_at();

CREATE TABLE workflow_versions (
    id UUID PRIMARY KEY,
    workflow_id UUID NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version >= 1),
    definition JSONB NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    configuration JSONB NOT NULL DEFAULT '{}',
    change_note TEXT,
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, version)
);
-- A version is a record of what ran: it never changes once written.
CREATE TRIGGER trg_workflow_versions_immutable BEFORE UPDATE ON workflow_versions
    FOR EACH ROW EXECUTE FUNCTION flowstore_refuse_change();

CREATE TABLE workflow_shares (
    id UUID PRIMARY KEY,
    workflow_id UUID NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    team_id UUID REFERENCES teams (id) ON DELETE CASCADE,
    permission TEXT NOT NULL DEFAULT 'read' CHECK (permission IN ('read', 'execute', 'write')),
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (team_id IS NULL)),
    UNIQUE (workflow_id, user_id),
    UNIQUE (workflow_id, team_id)
);
CREATE INDEX idx_workflow_shares_user ON workflow_shares (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX idx_workflow_shares_team ON workflow_shares (team_id) WHERE team_id IS NOT NULL;
