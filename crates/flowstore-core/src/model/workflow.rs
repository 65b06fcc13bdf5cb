//! The area of workflows, their immutable versions and their shares (seeds 002, 004).
//!
//! A workflow's definition and configuration are versioned: every change to either
//! bumps `version` and writes a new `workflow_versions` row in the same transaction,
//! and the database refuses any UPDATE of a version row, so a run can always be traced
//! to exactly what it ran.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ProjectId, ShareId, TeamId, UserId, WorkflowId, WorkflowVersionId};
use crate::model::dag::WorkflowDefinition;
use crate::model::nullable;
use crate::model::viewer::Viewer;
use crate::text_enum;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

text_enum!(
    /// Where a workflow is in its life.
    WorkflowStatus, "status" {
        /// Being written; may have no steps yet.
        Draft => "draft",
        /// Runnable.
        Active => "active",
        /// Kept but not runnable.
        Inactive => "inactive",
        /// Retired; kept for the record.
        Archived => "archived",
    }
);

text_enum!(
    /// Who may see a workflow besides its owner and those it is shared with.
    Visibility, "visibility" {
        /// Nobody else.
        Private => "private",
        /// Members of its team (read only).
        Team => "team",
        /// Everybody (read only).
        Public => "public",
    }
);

text_enum!(
    /// How the steps of a run are scheduled.
    ExecutionStrategy, "execution_strategy" {
        /// Every step whose dependencies are done may run at once.
        Parallel => "parallel",
        /// One step at a time, in topological order.
        Sequential => "sequential",
    }
);

text_enum!(
    /// What a run does when a step fails for good.
    FailureStrategy, "failure_strategy" {
        /// Stop the run.
        FailFast => "fail_fast",
        /// Carry on with the steps that do not depend on the failed one.
        Continue => "continue",
    }
);

text_enum!(
    /// What a share allows; each level includes the ones before it.
    SharePermission, "permission" {
        /// See the workflow.
        Read => "read",
        /// See it and start runs.
        Execute => "execute",
        /// See, run and change it.
        Write => "write",
    }
);

impl SharePermission {
    /// Whether holding `self` is enough for `needed`.
    pub fn allows(self, needed: SharePermission) -> bool {
        let rank = |p: SharePermission| match p {
            SharePermission::Read => 0,
            SharePermission::Execute => 1,
            SharePermission::Write => 2,
        };
        rank(self) >= rank(needed)
    }
}

/// A workflow as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workflow {
    /// Its ID.
    pub id: WorkflowId,
    /// Its name (not unique).
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// A free-form kind, such as `ci`; `general` by default.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub workflow_type: String,
    /// Where it is in its life.
    pub status: WorkflowStatus,
    /// -1000..=1000; higher runs first.
    pub priority: i32,
    /// The DAG of steps (a JSON object that parses as [`WorkflowDefinition`]).
    pub definition: Value,
    /// Settings of its runs (a JSON object).
    pub configuration: Value,
    /// Environment given to every step (a JSON object).
    pub environment_variables: Value,
    /// Labels for finding it.
    #[sqlx(json)]
    pub tags: Vec<String>,
    /// Free-form data (a JSON object).
    pub metadata: Value,
    /// Who may see it.
    pub visibility: Visibility,
    /// How the steps of a run are scheduled.
    pub execution_strategy: ExecutionStrategy,
    /// What a run does when a step fails.
    pub failure_strategy: FailureStrategy,
    /// How long a whole run may take.
    pub timeout_seconds: Option<i32>,
    /// The current version of definition and configuration.
    pub version: i32,
    /// The user who owns it.
    pub owner_id: Option<UserId>,
    /// The team it belongs to.
    pub team_id: Option<TeamId>,
    /// The project it belongs to.
    pub project_id: Option<ProjectId>,
    /// The workflow it was duplicated from.
    pub parent_workflow_id: Option<WorkflowId>,
    /// When it was archived.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub archived_at: Option<Timestamp>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// One immutable version of a workflow's definition and configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowVersion {
    /// Its ID.
    pub id: WorkflowVersionId,
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// Its number, from 1.
    pub version: i32,
    /// The definition as it was.
    pub definition: Value,
    /// The configuration as it was.
    pub configuration: Value,
    /// Why it changed.
    pub change_note: Option<String>,
    /// Who changed it.
    pub created_by: Option<UserId>,
    /// When it was written.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// A workflow shared with a user or a team.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowShare {
    /// Its ID.
    pub id: ShareId,
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// The user it is shared with (exactly one of user and team).
    pub user_id: Option<UserId>,
    /// The team it is shared with.
    pub team_id: Option<TeamId>,
    /// What it allows.
    pub permission: SharePermission,
    /// Who shared it.
    pub created_by: Option<UserId>,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// What a caller gives to create a workflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWorkflow {
    /// The name; required, at most 255 characters.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its kind; `general` when absent.
    #[serde(rename = "type")]
    pub workflow_type: Option<String>,
    /// Its status; `draft` when absent.
    pub status: Option<WorkflowStatus>,
    /// Its priority; 0 when absent.
    pub priority: Option<i32>,
    /// The definition; `{}` (no steps) when absent.
    pub definition: Option<Value>,
    /// The configuration; `{}` when absent.
    pub configuration: Option<Value>,
    /// The environment; `{}` when absent.
    pub environment_variables: Option<Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Metadata; `{}` when absent.
    pub metadata: Option<Value>,
    /// Visibility; `private` when absent.
    pub visibility: Option<Visibility>,
    /// Scheduling; `parallel` when absent.
    pub execution_strategy: Option<ExecutionStrategy>,
    /// On failure; `fail_fast` when absent.
    pub failure_strategy: Option<FailureStrategy>,
    /// Timeout of a whole run.
    pub timeout_seconds: Option<i32>,
    /// The owner.
    pub owner_id: Option<UserId>,
    /// The team.
    pub team_id: Option<TeamId>,
    /// The project.
    pub project_id: Option<ProjectId>,
}

patch_struct! {
    /// Changes to a workflow: absent fields stay as they are; `null` clears a nullable
    /// one. Changing the definition or configuration makes a new version.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct WorkflowPatch {
        /// A new name.
        pub name: Option<String>,
        /// A new description, or `null` to clear it.
        #[serde(deserialize_with = "nullable")]
        pub description: Option<Option<String>>,
        /// A new kind.
        #[serde(rename = "type")]
        pub workflow_type: Option<String>,
        /// A new status (archiving stamps `archived_at`; leaving archived clears it).
        pub status: Option<WorkflowStatus>,
        /// A new priority.
        pub priority: Option<i32>,
        /// A new definition (replacing the old one).
        pub definition: Option<Value>,
        /// A new configuration (replacing the old one).
        pub configuration: Option<Value>,
        /// New environment variables.
        pub environment_variables: Option<Value>,
        /// New tags (replacing the old ones).
        pub tags: Option<Vec<String>>,
        /// New metadata.
        pub metadata: Option<Value>,
        /// New visibility.
        pub visibility: Option<Visibility>,
        /// New scheduling.
        pub execution_strategy: Option<ExecutionStrategy>,
        /// New failure handling.
        pub failure_strategy: Option<FailureStrategy>,
        /// A new timeout, or `null` for none.
        #[serde(deserialize_with = "nullable")]
        pub timeout_seconds: Option<Option<i32>>,
        /// A new team, or `null` for none.
        #[serde(deserialize_with = "nullable")]
        pub team_id: Option<Option<TeamId>>,
        /// A new project, or `null` for none.
        #[serde(deserialize_with = "nullable")]
        pub project_id: Option<Option<ProjectId>>,
        /// Why the definition or configuration changed; kept on the new version.
        pub change_note: Option<String>,
        /// Who made the change; kept on the new version.
        pub changed_by: Option<UserId>,
    }
}

/// Filters for listing workflows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowFilter {
    /// Only workflows in this status.
    pub status: Option<WorkflowStatus>,
    /// Only workflows owned by this user.
    pub owner_id: Option<UserId>,
    /// Only workflows of this team.
    pub team_id: Option<TeamId>,
    /// Only workflows of this project.
    pub project_id: Option<ProjectId>,
    /// Only workflows carrying this tag.
    pub tag: Option<String>,
    /// Only workflows this viewer may see (see [`crate::model::viewer`]).
    #[serde(skip)]
    pub viewer: Option<Viewer>,
}

/// What a caller gives to share a workflow: exactly one of user and team.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// The user to share with.
    pub user_id: Option<UserId>,
    /// The team to share with.
    pub team_id: Option<TeamId>,
    /// What it allows; `read` when absent.
    pub permission: Option<SharePermission>,
    /// Who shares it.
    pub created_by: Option<UserId>,
}

impl NewWorkflow {
    /// Checks every field and builds the row to insert, stamped `now`, as version 1.
    pub fn into_row(self, now: Timestamp) -> StoreResult<Workflow> {
        let empty = || Value::Object(Default::default());
        let row = Workflow {
            id: WorkflowId::new(),
            name: String::new(),
            description: None,
            workflow_type: "general".into(),
            status: WorkflowStatus::Draft,
            priority: 0,
            definition: empty(),
            configuration: empty(),
            environment_variables: empty(),
            tags: Vec::new(),
            metadata: empty(),
            visibility: Visibility::Private,
            execution_strategy: ExecutionStrategy::Parallel,
            failure_strategy: FailureStrategy::FailFast,
            timeout_seconds: None,
            version: 1,
            owner_id: self.owner_id,
            team_id: None,
            project_id: None,
            parent_workflow_id: None,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        let (mut row, _) = WorkflowPatch {
            name: Some(self.name),
            description: Some(self.description),
            workflow_type: self.workflow_type,
            status: self.status,
            priority: self.priority,
            definition: self.definition,
            configuration: self.configuration,
            environment_variables: self.environment_variables,
            tags: Some(self.tags),
            metadata: self.metadata,
            visibility: self.visibility,
            execution_strategy: self.execution_strategy,
            failure_strategy: self.failure_strategy,
            timeout_seconds: Some(self.timeout_seconds),
            team_id: Some(self.team_id),
            project_id: Some(self.project_id),
            change_note: None,
            changed_by: None,
        }
        .apply(&row, now)?;
        // The first version is version 1 whatever the patch logic concluded.
        row.version = 1;
        Ok(row)
    }
}

impl WorkflowPatch {
    /// The workflow as it is after this patch, every changed field checked, and
    /// whether the definition or configuration changed (so a new version is due, and
    /// `version` has been bumped).
    pub fn apply(self, current: &Workflow, now: Timestamp) -> StoreResult<(Workflow, bool)> {
        let mut w = current.clone();
        if let Some(name) = self.name {
            w.name = validate::required_text("name", &name, 255)?;
        }
        if let Some(d) = self.description {
            w.description = validate::free_text("description", d.as_deref())?;
        }
        if let Some(t) = self.workflow_type {
            w.workflow_type = validate::required_text("type", &t, 100)?;
        }
        if let Some(s) = self.status {
            w.status = s;
        }
        if let Some(p) = self.priority {
            validate::range_i64("priority", p.into(), -1000, 1000)?;
            w.priority = p;
        }
        if let Some(d) = self.definition {
            w.definition = d;
        }
        // Checked whenever it or the status changes: activating a draft without
        // steps is refused just as writing an empty definition to an active one.
        WorkflowDefinition::parse(&w.definition, w.status == WorkflowStatus::Active)?;
        if let Some(c) = self.configuration {
            w.configuration = validate::object("configuration", c)?;
        }
        if let Some(e) = self.environment_variables {
            validate::json_object("environment_variables", &e)?;
            if e.as_object()
                .is_some_and(|m| m.values().any(|v| !v.is_string()))
            {
                return Err(StoreError::invalid(
                    "environment_variables",
                    "every value must be a string",
                ));
            }
            w.environment_variables = e;
        }
        if let Some(t) = self.tags {
            w.tags = validate::tags("tags", &t)?;
        }
        if let Some(m) = self.metadata {
            w.metadata = validate::object("metadata", m)?;
        }
        if let Some(v) = self.visibility {
            w.visibility = v;
        }
        if let Some(e) = self.execution_strategy {
            w.execution_strategy = e;
        }
        if let Some(f) = self.failure_strategy {
            w.failure_strategy = f;
        }
        if let Some(t) = self.timeout_seconds {
            if let Some(secs) = t {
                validate::range_i64("timeout_seconds", secs.into(), 1, i32::MAX.into())?;
            }
            w.timeout_seconds = t;
        }
        if let Some(t) = self.team_id {
            w.team_id = t;
        }
        if let Some(p) = self.project_id {
            w.project_id = p;
        }
        if let Some(n) = &self.change_note {
            validate::bounded("change_note", n, validate::MAX_TEXT_BYTES)?;
        }
        if w.visibility == Visibility::Team && w.team_id.is_none() {
            return Err(StoreError::invalid(
                "team_id",
                "is required when visibility is team",
            ));
        }
        match (current.status, w.status) {
            (s, WorkflowStatus::Archived) if s != WorkflowStatus::Archived => {
                w.archived_at = Some(now)
            }
            (_, s) if s != WorkflowStatus::Archived => w.archived_at = None,
            _ => {}
        }
        let new_version =
            w.definition != current.definition || w.configuration != current.configuration;
        if new_version {
            w.version = current
                .version
                .checked_add(1)
                .ok_or_else(|| StoreError::invalid("version", "too many versions"))?;
        }
        w.updated_at = now;
        Ok((w, new_version))
    }
}

impl NewShare {
    /// Checks the share and builds the row to insert.
    pub fn into_row(self, workflow_id: WorkflowId, now: Timestamp) -> StoreResult<WorkflowShare> {
        if self.user_id.is_some() == self.team_id.is_some() {
            return Err(StoreError::invalid(
                "user_id",
                "give exactly one of user_id and team_id",
            ));
        }
        Ok(WorkflowShare {
            id: ShareId::new(),
            workflow_id,
            user_id: self.user_id,
            team_id: self.team_id,
            permission: self.permission.unwrap_or(SharePermission::Read),
            created_by: self.created_by,
            created_at: now,
        })
    }
}

impl Workflow {
    /// The version row recording this workflow's current definition and configuration.
    pub fn version_row(
        &self,
        change_note: Option<String>,
        created_by: Option<UserId>,
    ) -> WorkflowVersion {
        WorkflowVersion {
            id: WorkflowVersionId::new(),
            workflow_id: self.id,
            version: self.version,
            definition: self.definition.clone(),
            configuration: self.configuration.clone(),
            change_note,
            created_by,
            created_at: self.updated_at,
        }
    }

    /// A draft copy named `name`, owned by `owner`, pointing back at this workflow.
    /// It is private whatever the original was: the new owner decides who sees it.
    pub fn duplicate(
        &self,
        name: &str,
        owner: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<Workflow> {
        Ok(Workflow {
            id: WorkflowId::new(),
            name: validate::required_text("name", name, 255)?,
            status: WorkflowStatus::Draft,
            visibility: Visibility::Private,
            version: 1,
            owner_id: owner,
            parent_workflow_id: Some(self.id),
            archived_at: None,
            created_at: now,
            updated_at: now,
            ..self.clone()
        })
    }
}

/// Whether `viewer` may do what `needed` asks with `workflow`: the owner may do
/// anything; a public workflow may be read by anyone and a team-visible one by the
/// members of its team; beyond that, a share with the viewer or one of their teams
/// grants its permission. `shares` are the shares of this workflow.
pub fn can_access(
    workflow: &Workflow,
    viewer: UserId,
    viewer_teams: &[TeamId],
    shares: &[WorkflowShare],
    needed: SharePermission,
) -> bool {
    if workflow.owner_id == Some(viewer) {
        return true;
    }
    let reads = needed == SharePermission::Read;
    match workflow.visibility {
        Visibility::Public if reads => return true,
        Visibility::Team
            if reads && workflow.team_id.is_some_and(|t| viewer_teams.contains(&t)) =>
        {
            return true
        }
        _ => {}
    }
    shares.iter().any(|s| {
        s.workflow_id == workflow.id
            && (s.user_id == Some(viewer) || s.team_id.is_some_and(|t| viewer_teams.contains(&t)))
            && s.permission.allows(needed)
    })
}

/// Storage operations on workflows, their versions and shares.
#[async_trait]
pub trait WorkflowRepo: Send {
    /// Creates a workflow and its version 1. Unknown owner, team or project is invalid
    /// `owner_id`, `team_id` or `project_id`.
    async fn create_workflow(&mut self, new: NewWorkflow) -> StoreResult<Workflow>;
    /// The workflow with this ID.
    async fn get_workflow(&mut self, id: WorkflowId) -> StoreResult<Workflow>;
    /// Applies a patch; a changed definition or configuration writes a new version.
    async fn update_workflow(
        &mut self,
        id: WorkflowId,
        patch: WorkflowPatch,
    ) -> StoreResult<Workflow>;
    /// Archives a workflow (idempotent: archiving again keeps the first `archived_at`).
    async fn archive_workflow(&mut self, id: WorkflowId) -> StoreResult<Workflow>;
    /// Deletes a workflow with its versions and shares.
    async fn delete_workflow(&mut self, id: WorkflowId) -> StoreResult<()>;
    /// A page of workflows, newest first.
    async fn list_workflows(
        &mut self,
        filter: &WorkflowFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Workflow>>;
    /// Every active workflow, highest priority first (seed 002 `getActiveWorkflows`).
    async fn list_active_workflows(&mut self) -> StoreResult<Vec<Workflow>>;
    /// One version of a workflow.
    async fn get_workflow_version(
        &mut self,
        workflow_id: WorkflowId,
        version: i32,
    ) -> StoreResult<WorkflowVersion>;
    /// Every version of a workflow, oldest first.
    async fn list_workflow_versions(
        &mut self,
        workflow_id: WorkflowId,
    ) -> StoreResult<Vec<WorkflowVersion>>;
    /// Copies a workflow as a private draft named `new_name`, owned by `owner`, with
    /// `parent_workflow_id` set and its own version 1.
    async fn duplicate_workflow(
        &mut self,
        id: WorkflowId,
        new_name: &str,
        owner: Option<UserId>,
    ) -> StoreResult<Workflow>;
    /// Shares a workflow with a user or a team. Sharing twice with the same one is a
    /// conflict on `workflow_id, user_id` or `workflow_id, team_id`.
    async fn share_workflow(
        &mut self,
        workflow_id: WorkflowId,
        share: NewShare,
    ) -> StoreResult<WorkflowShare>;
    /// The shares of a workflow, oldest first.
    async fn list_workflow_shares(
        &mut self,
        workflow_id: WorkflowId,
    ) -> StoreResult<Vec<WorkflowShare>>;
    /// Removes a share.
    async fn remove_workflow_share(&mut self, share_id: ShareId) -> StoreResult<()>;
    /// Whether `user_id` may do what `needed` asks with the workflow, by
    /// [`can_access`] over its shares and the user's teams.
    async fn workflow_access(
        &mut self,
        workflow_id: WorkflowId,
        user_id: UserId,
        needed: SharePermission,
    ) -> StoreResult<bool>;
    /// A page of the workflows `user_id` may see, newest first: owned, public,
    /// team-visible in one of their teams, or shared with them or one of their teams.
    async fn list_visible_workflows(
        &mut self,
        user_id: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<Workflow>>;
}
