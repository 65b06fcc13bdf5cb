//! The area of tasks, their dependencies, pull requests and the seed 003 summaries.
//!
//! A task is either standalone (seed 003: it belongs to a project, may have a parent,
//! requirements, context, tags and an assigned agent) or part of a workflow (seed 002:
//! a handler, a command, dependencies and an execution order). Both kinds live in the
//! one `tasks` table; the fields of the other kind are simply left empty.

pub mod query;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ProjectId, PullRequestId, RunId, TaskId, UserId, WorkflowId};
use crate::model::nullable;
use crate::model::pull_request::{
    NewPullRequest, PullRequest, PullRequestFilter, PullRequestStatus,
};
use crate::model::viewer::Viewer;
use crate::time::Timestamp;
use crate::validate;
use crate::{text_enum, Page, PageRequest, StoreError, StoreResult};

use self::query::{ActiveTask, PrValidation, TaskFilter, TaskProgress};

text_enum!(
    /// Where a task stands.
    TaskStatus, "status" {
        /// Waiting: for its dependencies, or for the engine to make it ready.
        Pending => "pending",
        /// May be claimed by a worker.
        Ready => "ready",
        /// Claimed by a worker, under a lease.
        Running => "running",
        /// Finished successfully.
        Completed => "completed",
        /// Finished unsuccessfully.
        Failed => "failed",
        /// Stopped on request.
        Cancelled => "cancelled",
        /// Ran past its timeout.
        TimedOut => "timed_out",
    }
);

impl TaskStatus {
    /// Whether the task is finished: a terminal status never changes again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Failed
                | TaskStatus::Cancelled
                | TaskStatus::TimedOut
        )
    }
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// Its ID.
    pub id: TaskId,
    /// The project it belongs to (standalone tasks).
    pub project_id: Option<ProjectId>,
    /// The workflow it belongs to (workflow tasks).
    pub workflow_id: Option<WorkflowId>,
    /// The run it was created for, if any.
    pub run_id: Option<RunId>,
    /// The task it is a sub-task of.
    pub parent_task_id: Option<TaskId>,
    /// Its key inside its run's definition, unique per run.
    pub step_key: Option<String>,
    /// A short title.
    pub title: String,
    /// What is to be done.
    pub description: Option<String>,
    /// A free-form kind, such as `feature` or `bugfix`.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub task_type: Option<String>,
    /// Where it stands.
    pub status: TaskStatus,
    /// Higher runs first.
    pub priority: i32,
    /// What an agent needs to take it on (a JSON object).
    pub requirements: Value,
    /// Context handed to the agent (a JSON object).
    pub context: Value,
    /// Its tags, distinct.
    #[sqlx(json)]
    pub tags: Vec<String>,
    /// Free-form metadata (a JSON object).
    pub metadata: Value,
    /// The agent it is assigned to.
    pub assigned_agent: Option<String>,
    /// The handler that runs it (workflow tasks).
    pub handler_type: Option<String>,
    /// The command the handler runs.
    pub command: Option<String>,
    /// Parameters for the handler (any JSON).
    pub parameters: Value,
    /// Environment variables for the handler (a JSON object).
    pub environment: Value,
    /// Where the command runs.
    pub working_directory: Option<String>,
    /// Its place among its workflow's tasks; lower first.
    pub execution_order: Option<i32>,
    /// How long one attempt may take.
    pub timeout_seconds: Option<i32>,
    /// How many times a failure is retried.
    pub max_retries: i32,
    /// How many retries were made.
    pub retry_count: i32,
    /// The expected duration.
    pub estimated_duration_seconds: Option<i32>,
    /// The result of the last attempt.
    pub result: Option<Value>,
    /// The error of the last attempt.
    pub error_message: Option<String>,
    /// When it first started.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal status.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<Timestamp>,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to create a task, standalone or in a workflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The project (standalone tasks); must exist.
    pub project_id: Option<ProjectId>,
    /// The workflow (workflow tasks); must exist.
    pub workflow_id: Option<WorkflowId>,
    /// The run it is created for; must exist.
    pub run_id: Option<RunId>,
    /// The parent task; must exist.
    pub parent_task_id: Option<TaskId>,
    /// Its key inside its run, at most 200 characters.
    pub step_key: Option<String>,
    /// The title; required, at most 500 characters.
    pub title: String,
    /// What is to be done.
    pub description: Option<String>,
    /// A free-form kind, at most 100 characters.
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    /// The priority; 0 when absent.
    pub priority: Option<i32>,
    /// Requirements; `{}` when absent.
    pub requirements: Option<Value>,
    /// Context; `{}` when absent.
    pub context: Option<Value>,
    /// Tags; none when absent.
    pub tags: Option<Vec<String>>,
    /// Metadata; `{}` when absent.
    pub metadata: Option<Value>,
    /// The assigned agent, at most 100 characters.
    pub assigned_agent: Option<String>,
    /// The handler, at most 255 characters.
    pub handler_type: Option<String>,
    /// The command.
    pub command: Option<String>,
    /// Handler parameters; `{}` when absent.
    pub parameters: Option<Value>,
    /// Environment variables; `{}` when absent.
    pub environment: Option<Value>,
    /// The working directory, at most 1000 characters.
    pub working_directory: Option<String>,
    /// Tasks that must complete first; each must exist, no repeats.
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
    /// Its place among its workflow's tasks.
    pub execution_order: Option<i32>,
    /// How long one attempt may take; more than 0.
    pub timeout_seconds: Option<i32>,
    /// How many times a failure is retried, 0..=100; 0 when absent.
    pub max_retries: Option<i32>,
    /// The expected duration; not negative.
    pub estimated_duration_seconds: Option<i32>,
    /// Who creates it; must exist.
    pub created_by: Option<UserId>,
}

patch_struct! {
    /// Changes to a task: absent fields stay as they are; `null` clears a nullable one.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TaskPatch {
        /// A new title.
        pub title: Option<String>,
        /// A new description, or `null` to clear it.
        #[serde(deserialize_with = "nullable")]
        pub description: Option<Option<String>>,
        /// A new priority.
        pub priority: Option<i32>,
        /// New requirements (replacing the old ones).
        pub requirements: Option<Value>,
        /// New context (replacing the old one).
        pub context: Option<Value>,
        /// New tags (replacing the old ones).
        pub tags: Option<Vec<String>>,
        /// New metadata (replacing the old one).
        pub metadata: Option<Value>,
        /// A new assigned agent, or `null` for none.
        #[serde(deserialize_with = "nullable")]
        pub assigned_agent: Option<Option<String>>,
        /// A new parent, or `null` for none; must exist and must not make a cycle.
        #[serde(deserialize_with = "nullable")]
        pub parent_task_id: Option<Option<TaskId>>,
        /// A new status. A terminal status is final, and `running` is only entered by a
        /// worker's claim, which takes a lease.
        pub status: Option<TaskStatus>,
    }
}

fn opt_text(field: &str, v: Option<String>, max: usize) -> StoreResult<Option<String>> {
    validate::optional_text(field, v.as_deref(), max)
}

impl NewTask {
    /// Checks every field and builds the row to insert, stamped `now`, with its
    /// dependencies (checked for repeats; their existence is the backend's to check).
    pub fn into_row(self, now: Timestamp) -> StoreResult<(Task, Vec<TaskId>)> {
        let id = TaskId::new();
        for (i, d) in self.depends_on.iter().enumerate() {
            if self.depends_on[..i].contains(d) {
                return Err(StoreError::invalid(
                    "depends_on",
                    format!("{d} is repeated"),
                ));
            }
        }
        if let Some(t) = self.timeout_seconds {
            validate::range_i64("timeout_seconds", t.into(), 1, i32::MAX.into())?;
        }
        let max_retries = self.max_retries.unwrap_or(0);
        validate::range_i64("max_retries", max_retries.into(), 0, 100)?;
        if let Some(e) = self.estimated_duration_seconds {
            validate::range_i64("estimated_duration_seconds", e.into(), 0, i32::MAX.into())?;
        }
        let parameters = self.parameters.unwrap_or(Value::Object(Default::default()));
        validate::json_size("parameters", &parameters)?;
        let row = Task {
            id,
            project_id: self.project_id,
            workflow_id: self.workflow_id,
            run_id: self.run_id,
            parent_task_id: self.parent_task_id,
            step_key: opt_text("step_key", self.step_key, 200)?,
            title: String::new(),
            description: None,
            task_type: opt_text("type", self.task_type, 100)?,
            status: TaskStatus::Pending,
            priority: 0,
            requirements: Value::Object(Default::default()),
            context: Value::Object(Default::default()),
            tags: Vec::new(),
            metadata: Value::Object(Default::default()),
            assigned_agent: None,
            handler_type: opt_text("handler_type", self.handler_type, 255)?,
            command: validate::free_text("command", self.command.as_deref())?,
            parameters,
            environment: validate::object_or_empty("environment", self.environment)?,
            working_directory: opt_text("working_directory", self.working_directory, 1000)?,
            execution_order: self.execution_order,
            timeout_seconds: self.timeout_seconds,
            max_retries,
            retry_count: 0,
            estimated_duration_seconds: self.estimated_duration_seconds,
            result: None,
            error_message: None,
            started_at: None,
            completed_at: None,
            created_by: self.created_by,
            created_at: now,
            updated_at: now,
        };
        let row = TaskPatch {
            title: Some(self.title),
            description: Some(self.description),
            priority: self.priority,
            requirements: self.requirements,
            context: self.context,
            tags: self.tags,
            metadata: self.metadata,
            assigned_agent: Some(self.assigned_agent),
            parent_task_id: None,
            status: None,
        }
        .apply(&row, now)?;
        Ok((row, self.depends_on))
    }
}

impl TaskPatch {
    /// The task as it is after this patch, every changed field checked. The parent's
    /// existence and the absence of a parent cycle are the backend's to check.
    pub fn apply(self, current: &Task, now: Timestamp) -> StoreResult<Task> {
        let mut t = current.clone();
        if let Some(title) = self.title {
            t.title = validate::required_text("title", &title, 500)?;
        }
        if let Some(d) = self.description {
            t.description = validate::free_text("description", d.as_deref())?;
        }
        if let Some(p) = self.priority {
            t.priority = p;
        }
        if let Some(r) = self.requirements {
            t.requirements = validate::object("requirements", r)?;
        }
        if let Some(c) = self.context {
            t.context = validate::object("context", c)?;
        }
        if let Some(tags) = self.tags {
            t.tags = validate::tags("tags", &tags)?;
        }
        if let Some(m) = self.metadata {
            t.metadata = validate::object("metadata", m)?;
        }
        if let Some(a) = self.assigned_agent {
            t.assigned_agent = opt_text("assigned_agent", a, 100)?;
        }
        if let Some(p) = self.parent_task_id {
            if p == Some(t.id) {
                return Err(StoreError::invalid(
                    "parent_task_id",
                    "a task cannot be its own parent",
                ));
            }
            t.parent_task_id = p;
        }
        if let Some(s) = self.status {
            if s != t.status {
                if t.status.is_terminal() {
                    return Err(StoreError::conflict(
                        "status",
                        format!("the task is {} and can no longer change", t.status),
                    ));
                }
                if s == TaskStatus::Running {
                    // The schema requires a lease for a running task; only a claim sets one.
                    return Err(StoreError::invalid(
                        "status",
                        "a task becomes running only when a worker claims it",
                    ));
                }
                if s.is_terminal() {
                    t.completed_at = Some(now);
                }
                t.status = s;
            }
        }
        t.updated_at = now;
        Ok(t)
    }
}

impl Task {
    /// Refuses a change of this task's dependencies after its creation, before
    /// anything is written. A step of a run is a conflict on `run_id`: the run's
    /// definition made its dependencies and the engine promotes, cancels and ends the
    /// run by them, so they change only with a new version of the workflow. A finished
    /// task is a conflict on `status` (its dependencies are part of its record), and
    /// so is adding one to a running task, whose worker has already started it.
    pub fn check_dependency_change(&self, adding: bool) -> StoreResult<()> {
        if let Some(run) = self.run_id {
            return Err(StoreError::conflict(
                "run_id",
                format!(
                    "this task is a step of run {run}, whose definition fixes its dependencies; \
                     change the workflow and start a new run instead"
                ),
            ));
        }
        if self.status.is_terminal() || (adding && self.status == TaskStatus::Running) {
            return Err(StoreError::conflict(
                "status",
                format!(
                    "the task is {}: its dependencies can no longer change",
                    self.status
                ),
            ));
        }
        Ok(())
    }
}

/// Storage operations on tasks, their dependencies and the seed 003 summaries.
#[async_trait]
pub trait TaskRepo: Send {
    /// Creates a task with its dependencies. Unknown project, workflow, run, parent or
    /// creator is invalid on that field; an unknown dependency is invalid `depends_on`.
    async fn create_task(&mut self, new: NewTask) -> StoreResult<Task>;
    /// The task with this ID.
    async fn get_task(&mut self, id: TaskId) -> StoreResult<Task>;
    /// The workflow of each of the tasks with these IDs that exists (`None` for a task
    /// of no workflow), in no particular order; an ID of no task is left out.
    async fn task_workflows(
        &mut self,
        ids: &[TaskId],
    ) -> StoreResult<Vec<(TaskId, Option<WorkflowId>)>>;
    /// Applies a patch and returns the task as stored. A parent that would make a
    /// cycle is invalid `parent_task_id`; leaving a terminal status is a conflict.
    async fn update_task(&mut self, id: TaskId, patch: TaskPatch) -> StoreResult<Task>;
    /// Deletes a task with its dependencies and attempts.
    async fn delete_task(&mut self, id: TaskId) -> StoreResult<()>;
    /// Makes `task` depend on `depends_on` and returns `task` as it is afterwards. An
    /// unknown `task` is NotFound; an unknown dependency, the task itself, or one that
    /// would close a cycle is invalid `depends_on` (a cycle with its path in the
    /// reason); the changes [`Task::check_dependency_change`] refuses are conflicts.
    /// Adding an existing dependency is a no-op. A `ready` task that gains a
    /// dependency not yet completed goes back to `pending`, so that no worker claims
    /// it before that dependency is done. Cycle checks are serialised, so two
    /// concurrent additions cannot close a cycle between them.
    async fn add_task_dependency(&mut self, task: TaskId, depends_on: TaskId) -> StoreResult<Task>;
    /// Removes a dependency; NotFound when `task` is unknown or did not depend on
    /// `depends_on`, and the conflicts of [`Task::check_dependency_change`]. The task's
    /// status does not change: a `pending` task is made `ready` by whoever manages it.
    async fn remove_task_dependency(&mut self, task: TaskId, depends_on: TaskId)
        -> StoreResult<()>;
    /// The tasks `task` depends on, oldest first.
    async fn task_dependencies(&mut self, task: TaskId) -> StoreResult<Vec<TaskId>>;
    /// The direct sub-tasks of `parent`, oldest first; NotFound for an unknown parent.
    async fn list_task_children(&mut self, parent: TaskId) -> StoreResult<Vec<Task>>;
    /// The pending tasks of a workflow whose dependencies have all completed, in
    /// execution order, then highest priority, then oldest (seed 002's
    /// `getRunnableTasks`).
    async fn get_runnable_tasks(&mut self, workflow_id: WorkflowId) -> StoreResult<Vec<Task>>;
    /// A page of tasks matching `filter`, newest first.
    async fn list_tasks(
        &mut self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Task>>;
    /// Up to `limit` tasks (1..=1000) whose title or description match every word of
    /// `query`, best match first. Ranked results are not keyset-paged.
    async fn search_tasks(
        &mut self,
        query: &str,
        filter: &TaskFilter,
        limit: u32,
    ) -> StoreResult<Vec<Task>>;
    /// How far a workflow's tasks have got.
    async fn workflow_progress(&mut self, workflow_id: WorkflowId) -> StoreResult<TaskProgress>;
    /// How far a run's tasks have got.
    async fn run_progress(&mut self, run_id: RunId) -> StoreResult<TaskProgress>;
    /// A page of the `active_tasks` view (pending, ready or running), optionally of
    /// one project, newest first, leaving out the tasks `viewer` may not read.
    async fn active_tasks_summary(
        &mut self,
        project_id: Option<ProjectId>,
        viewer: &Option<Viewer>,
        page: &PageRequest,
    ) -> StoreResult<Page<ActiveTask>>;
}

/// Storage operations on pull requests and their validation.
#[async_trait]
pub trait PullRequestRepo: Send {
    /// A page of the `pr_validation_status` view, optionally of one project, newest
    /// first, leaving out the pull requests `viewer` may not read.
    async fn pr_validation_status(
        &mut self,
        project_id: Option<ProjectId>,
        viewer: &Option<Viewer>,
        page: &PageRequest,
    ) -> StoreResult<Page<PrValidation>>;

    /// Creates a pull request. A taken (repository_url, pr_number) is a conflict.
    async fn create_pull_request(&mut self, new: NewPullRequest) -> StoreResult<PullRequest>;
    /// The pull request with this ID.
    async fn get_pull_request(&mut self, id: PullRequestId) -> StoreResult<PullRequest>;
    /// Moves a pull request to `status`; a move the rules refuse is a conflict on
    /// `status`.
    async fn update_pull_request_status(
        &mut self,
        id: PullRequestId,
        status: PullRequestStatus,
    ) -> StoreResult<PullRequest>;
    /// Replaces a pull request's validation results (a JSON object).
    async fn set_pull_request_validation(
        &mut self,
        id: PullRequestId,
        results: Value,
    ) -> StoreResult<PullRequest>;
    /// A page of pull requests, newest first.
    async fn list_pull_requests(
        &mut self,
        filter: &PullRequestFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<PullRequest>>;
}
