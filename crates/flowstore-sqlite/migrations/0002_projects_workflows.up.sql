-- Projects, workflows, their immutable versions and their shares.

CREATE TABLE projects (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    repository_url TEXT CHECK (length(repository_url) <= 500),
    repository_name TEXT CHECK (length(repository_name) <= 255),
    default_branch TEXT NOT NULL DEFAULT 'main' CHECK (length(default_branch) BETWEEN 1 AND 100),
    settings TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings) AND json_type(settings) = 'object'),
    owner_id BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_projects_owner ON projects (owner_id, id);
CREATE TRIGGER trg_projects_updated_at AFTER UPDATE ON projects
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE projects SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE workflows (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    type TEXT NOT NULL DEFAULT 'general' CHECK (length(type) BETWEEN 1 AND 100),
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'inactive', 'archived')),
    priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    definition TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(definition) AND json_type(definition) = 'object'),
    configuration TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(configuration) AND json_type(configuration) = 'object'),
    environment_variables TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(environment_variables) AND json_type(environment_variables) = 'object'),
    tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags) AND json_type(tags) = 'array'),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    visibility TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'team', 'public')),
    execution_strategy TEXT NOT NULL DEFAULT 'parallel'
        CHECK (execution_strategy IN ('parallel', 'sequential')),
    failure_strategy TEXT NOT NULL DEFAULT 'fail_fast'
        CHECK (failure_strategy IN ('fail_fast', 'continue')),
    timeout_seconds INTEGER CHECK (timeout_seconds > 0),
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    owner_id BLOB REFERENCES users (id) ON DELETE SET NULL,
    team_id BLOB REFERENCES teams (id) ON DELETE SET NULL,
    project_id BLOB REFERENCES projects (id) ON DELETE SET NULL,
    parent_workflow_id BLOB REFERENCES workflows (id) ON DELETE SET NULL,
    archived_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
CREATE INDEX idx_workflows_status_created_at ON workflows (status, created_at);
CREATE INDEX idx_workflows_status_id ON workflows (status, id);
CREATE INDEX idx_workflows_owner ON workflows (owner_id, id);
CREATE INDEX idx_workflows_team ON workflows (team_id, id) WHERE team_id IS NOT NULL;
CREATE INDEX idx_workflows_project ON workflows (project_id, id) WHERE project_id IS NOT NULL;
CREATE INDEX idx_workflows_active ON workflows (id) WHERE status = 'active';
CREATE TRIGGER trg_workflows_updated_at AFTER UPDATE ON workflows
    FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE workflows SET updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now') WHERE rowid = NEW.rowid;
END;

CREATE TABLE workflow_versions (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    workflow_id BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version >= 1),
    definition TEXT NOT NULL CHECK (json_valid(definition) AND json_type(definition) = 'object'),
    configuration TEXT NOT NULL DEFAULT '{}' CHECK (configuration IS NULL OR json_valid(configuration)),
    change_note TEXT,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    UNIQUE (workflow_id, version)
);
-- A version is a record of what ran: it never changes once written.
CREATE TRIGGER trg_workflow_versions_immutable BEFORE UPDATE ON workflow_versions
BEGIN
    SELECT RAISE(ABORT, 'rows of workflow_versions are immutable');
END;

CREATE TABLE workflow_shares (
    id BLOB PRIMARY KEY CHECK (length(id) = 16),
    workflow_id BLOB NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    user_id BLOB REFERENCES users (id) ON DELETE CASCADE,
    team_id BLOB REFERENCES teams (id) ON DELETE CASCADE,
    permission TEXT NOT NULL DEFAULT 'read' CHECK (permission IN ('read', 'execute', 'write')),
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CHECK ((user_id IS NULL) <> (team_id IS NULL)),
    UNIQUE (workflow_id, user_id),
    UNIQUE (workflow_id, team_id)
);
CREATE INDEX idx_workflow_shares_user ON workflow_shares (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX idx_workflow_shares_team ON workflow_shares (team_id) WHERE team_id IS NOT NULL;
