//! The area of runs (seed 000's workflow executions), their metrics and task attempts.
//!
//! A run is a row of `workflow_executions` with every column of seed 000 plus
//! flowstore's additions. Metrics live in [`crate::model::metric`]; this module holds
//! runs, task attempts (seeds 002/003's `task_executions`) and the [`RunRepo`] trait.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AttemptId, RunId, TaskId, WorkflowId, WorkflowVersionId};
use crate::model::metric::{
    AggregateFilter, MetricAggregate, MetricType, NewMetric, WorkflowMetric,
};
use crate::model::nullable;
use crate::model::viewer::Viewer;
use crate::time::{self, Timestamp};
use crate::{text_enum, validate, Page, PageRequest, StoreError, StoreResult};

text_enum!(
    /// Where a run stands.
    RunStatus, "status" {
        /// Created, not started.
        Pending => "pending",
        /// Started.
        Running => "running",
        /// Held by its owner (seed 000's clients write it): its ready tasks are not
        /// claimed, and it is not timed out, until it is `running` again. Work
        /// already claimed finishes, and a run whose last task ends while paused
        /// ends as usual.
        Paused => "paused",
        /// Finished successfully.
        Completed => "completed",
        /// Finished with an error.
        Failed => "failed",
        /// Stopped on request.
        Cancelled => "cancelled",
        /// Stopped by its deadline.
        TimedOut => "timed_out",
    }
);

impl RunStatus {
    /// Whether the run is over: a terminal status never changes again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut
        )
    }
}

/// How a run schedules its steps (seed 000's `strategy`): the workflow's execution
/// strategy, recorded on the run.
pub use crate::model::workflow::ExecutionStrategy as RunStrategy;
/// What a run does when a step fails: the workflow's failure strategy, recorded on the
/// run.
pub use crate::model::workflow::FailureStrategy;

text_enum!(
    /// Where one attempt at a task stands.
    AttemptStatus, "status" {
        /// Waiting for a worker.
        Queued => "queued",
        /// A worker holds it.
        Running => "running",
        /// Finished successfully.
        Completed => "completed",
        /// Finished with an error.
        Failed => "failed",
        /// Stopped on request.
        Cancelled => "cancelled",
        /// Ran out of time.
        TimedOut => "timed_out",
        /// Its worker stopped renewing the lease.
        LeaseExpired => "lease_expired",
    }
);

impl AttemptStatus {
    /// Whether the attempt is over.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, AttemptStatus::Queued | AttemptStatus::Running)
    }
}

/// A run as stored: every column of `workflow_executions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowExecution {
    /// Its ID.
    pub id: RunId,
    /// The caller's identifier of the run, unique.
    pub execution_id: String,
    /// The caller's identifier of the workflow (free text in seed 000).
    pub workflow_id: String,
    /// The workflow's name.
    pub workflow_name: String,
    /// The workflow's version label.
    pub workflow_version: Option<String>,
    /// The task this run serves.
    pub task_id: Option<TaskId>,
    /// Who started it (free text in seed 000).
    pub user_id: Option<String>,
    /// Where it stands.
    pub status: RunStatus,
    /// How it schedules its steps.
    pub strategy: Option<RunStrategy>,
    /// Its priority (1 unless given).
    pub priority: Option<i32>,
    /// The expected duration in milliseconds.
    pub estimated_duration: Option<i32>,
    /// The measured duration in milliseconds.
    pub actual_duration: Option<i32>,
    /// When it started.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub end_time: Option<Timestamp>,
    /// What it produced.
    pub result_data: Option<Value>,
    /// What went wrong.
    pub error_data: Option<Value>,
    /// Free-form details (a JSON object).
    pub metadata: Option<Value>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// The stored workflow it runs, when it runs one.
    pub workflow_ref: Option<WorkflowId>,
    /// The immutable version it runs.
    pub workflow_version_id: Option<WorkflowVersionId>,
    /// What it does when a step fails.
    pub failure_strategy: FailureStrategy,
    /// Its input (a JSON object).
    pub input: Value,
    /// When it must be over.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deadline_at: Option<Timestamp>,
    /// When someone asked to cancel it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub cancel_requested_at: Option<Timestamp>,
}

/// What a caller gives to create a run (seed 000's `create`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewExecution {
    /// The caller's identifier; required, unique, at most 255 characters.
    pub execution_id: String,
    /// The workflow's identifier; required, at most 255 characters.
    pub workflow_id: String,
    /// The workflow's name; required, at most 255 characters.
    pub workflow_name: String,
    /// The version label, at most 50 characters.
    pub workflow_version: Option<String>,
    /// The task served; must exist.
    pub task_id: Option<TaskId>,
    /// Who starts it, at most 255 characters.
    pub user_id: Option<String>,
    /// The first status; `pending` when absent.
    pub status: Option<RunStatus>,
    /// The scheduling strategy.
    pub strategy: Option<RunStrategy>,
    /// The priority; 1 when absent.
    pub priority: Option<i32>,
    /// The expected duration in milliseconds, not negative.
    pub estimated_duration: Option<i32>,
    /// When it started.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub start_time: Option<Timestamp>,
    /// Details (a JSON object); `{}` when absent, as in seed 000.
    pub metadata: Option<Value>,
    /// The stored workflow it runs; must exist.
    pub workflow_ref: Option<WorkflowId>,
    /// The workflow version it runs; must exist.
    pub workflow_version_id: Option<WorkflowVersionId>,
    /// What to do when a step fails; `fail_fast` when absent.
    pub failure_strategy: Option<FailureStrategy>,
    /// The input (a JSON object); `{}` when absent.
    pub input: Option<Value>,
    /// When it must be over.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deadline_at: Option<Timestamp>,
}

patch_struct! {
    /// Changes to a run (seed 000's `update`): only the fields named change; `null` clears
    /// a nullable one.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct ExecutionPatch {
        /// A new status; a terminal status never changes again.
        pub status: Option<RunStatus>,
        /// A new start time, or `null`.
        #[serde(deserialize_with = "nullable")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Option<String>>, format = DateTime))]
        pub start_time: Option<Option<Timestamp>>,
        /// A new end time, or `null`.
        #[serde(deserialize_with = "nullable")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Option<String>>, format = DateTime))]
        pub end_time: Option<Option<Timestamp>>,
        /// The measured duration in milliseconds, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub actual_duration: Option<Option<i32>>,
        /// What it produced (any JSON), or `null`.
        #[serde(deserialize_with = "nullable")]
        pub result_data: Option<Option<Value>>,
        /// What went wrong (any JSON), or `null`.
        #[serde(deserialize_with = "nullable")]
        pub error_data: Option<Option<Value>>,
        /// New details (a JSON object), or `null`.
        #[serde(deserialize_with = "nullable")]
        pub metadata: Option<Option<Value>>,
        /// A new expected duration, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub estimated_duration: Option<Option<i32>>,
        /// A new strategy, or `null`.
        #[serde(deserialize_with = "nullable")]
        pub strategy: Option<Option<RunStrategy>>,
        /// A new priority.
        pub priority: Option<i32>,
    }
}

/// Filters of seed 000's `getStatistics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsFilter {
    /// Only runs of this workflow.
    pub workflow_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
}

/// Seed 000's execution statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionStatistics {
    /// Runs matched.
    pub total_executions: i64,
    /// Of which completed.
    pub completed_executions: i64,
    /// Of which failed.
    pub failed_executions: i64,
    /// Mean of the known durations (ms); `None` when no run has one.
    pub average_duration: Option<f64>,
    /// Shortest known duration (ms).
    pub min_duration: Option<i32>,
    /// Longest known duration (ms).
    pub max_duration: Option<i32>,
}

fn non_negative(field: &str, v: Option<i32>) -> StoreResult<Option<i32>> {
    if let Some(n) = v {
        validate::range_i64(field, n.into(), 0, i32::MAX.into())?;
    }
    Ok(v)
}

impl NewExecution {
    /// Checks every field and builds the row to insert, stamped `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<WorkflowExecution> {
        let input = validate::object_or_empty("input", self.input)?;
        let row = WorkflowExecution {
            id: RunId::new(),
            execution_id: validate::required_text("execution_id", &self.execution_id, 255)?,
            workflow_id: validate::required_text("workflow_id", &self.workflow_id, 255)?,
            workflow_name: validate::required_text("workflow_name", &self.workflow_name, 255)?,
            workflow_version: validate::optional_text(
                "workflow_version",
                self.workflow_version.as_deref(),
                50,
            )?,
            task_id: self.task_id,
            user_id: validate::optional_text("user_id", self.user_id.as_deref(), 255)?,
            status: self.status.unwrap_or(RunStatus::Pending),
            strategy: None,
            priority: Some(1),
            estimated_duration: None,
            actual_duration: None,
            start_time: None,
            end_time: None,
            result_data: None,
            error_data: None,
            metadata: None,
            created_at: now,
            updated_at: now,
            workflow_ref: self.workflow_ref,
            workflow_version_id: self.workflow_version_id,
            failure_strategy: self.failure_strategy.unwrap_or(FailureStrategy::FailFast),
            input,
            deadline_at: self.deadline_at.map(time::truncate),
            cancel_requested_at: None,
        };
        ExecutionPatch {
            strategy: Some(self.strategy),
            priority: self.priority,
            estimated_duration: Some(self.estimated_duration),
            start_time: Some(self.start_time),
            metadata: Some(Some(
                self.metadata
                    .unwrap_or_else(|| Value::Object(Default::default())),
            )),
            ..Default::default()
        }
        .apply(&row, now)
    }
}

impl ExecutionPatch {
    /// The run as it is after this patch, every changed field checked. A terminal
    /// status cannot change (conflict on `status`). When the run becomes completed or
    /// failed without a duration but with both times, the duration is computed from them.
    pub fn apply(
        self,
        current: &WorkflowExecution,
        now: Timestamp,
    ) -> StoreResult<WorkflowExecution> {
        let mut r = current.clone();
        if let Some(s) = self.status {
            if current.status.is_terminal() && s != current.status {
                return Err(StoreError::conflict(
                    "status",
                    format!(
                        "the run is already {} and cannot become {s}",
                        current.status
                    ),
                ));
            }
            r.status = s;
        }
        if let Some(t) = self.start_time {
            r.start_time = t.map(time::truncate);
        }
        if let Some(t) = self.end_time {
            r.end_time = t.map(time::truncate);
        }
        if let (Some(start), Some(end)) = (r.start_time, r.end_time) {
            if end < start {
                return Err(StoreError::invalid("end_time", "is before start_time"));
            }
        }
        if let Some(d) = self.actual_duration {
            r.actual_duration = non_negative("actual_duration", d)?;
        }
        if let Some(d) = self.estimated_duration {
            r.estimated_duration = non_negative("estimated_duration", d)?;
        }
        if let Some(v) = self.result_data {
            r.result_data = validate::optional_json("result_data", v)?;
        }
        if let Some(v) = self.error_data {
            r.error_data = validate::optional_json("error_data", v)?;
        }
        if let Some(v) = self.metadata {
            r.metadata = validate::optional_object("metadata", v)?;
        }
        if let Some(s) = self.strategy {
            r.strategy = s;
        }
        if let Some(p) = self.priority {
            r.priority = Some(p);
        }
        let finishing = matches!(r.status, RunStatus::Completed | RunStatus::Failed)
            && r.status != current.status;
        if finishing && r.actual_duration.is_none() {
            if let (Some(start), Some(end)) = (r.start_time, r.end_time) {
                r.actual_duration = Some(time::duration_ms(start, end));
            }
        }
        r.updated_at = now;
        Ok(r)
    }
}

/// One attempt at a task: a row of `task_executions` (seeds 002/003).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskAttempt {
    /// Its ID.
    pub id: AttemptId,
    /// The task attempted.
    pub task_id: TaskId,
    /// The run it belongs to, if any.
    pub run_id: Option<RunId>,
    /// Its number, from 1.
    pub attempt: i32,
    /// The kind of agent that runs it.
    pub agent_type: String,
    /// The worker holding it.
    pub worker_id: Option<String>,
    /// Where it stands.
    pub execution_status: AttemptStatus,
    /// What it was given (a JSON object).
    pub input_context: Value,
    /// What it produced (a JSON object).
    pub output_results: Value,
    /// What went wrong (a JSON object).
    pub error_details: Value,
    /// When it started.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<Timestamp>,
    /// When its worker's lease runs out.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub lease_expires_at: Option<Timestamp>,
    /// When its worker last reported.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub heartbeat_at: Option<Timestamp>,
    /// How long it took, from start to end.
    pub duration_ms: Option<i64>,
    /// Peak memory, in MB.
    pub memory_usage_mb: Option<i32>,
    /// CPU time used.
    pub cpu_time_ms: Option<i64>,
    /// When it was recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// What a caller gives to record an attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAttempt {
    /// The task; must exist.
    pub task_id: TaskId,
    /// The run; must exist when given.
    pub run_id: Option<RunId>,
    /// The attempt number, from 1, unique per task.
    pub attempt: i32,
    /// The kind of agent; required, at most 255 characters.
    pub agent_type: String,
    /// The worker, at most 255 characters.
    pub worker_id: Option<String>,
    /// The first status; `queued` when absent.
    pub status: Option<AttemptStatus>,
    /// The input (a JSON object); `{}` when absent.
    pub input_context: Option<Value>,
    /// When it started; now when it starts `running` without one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    /// When the worker's lease runs out.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub lease_expires_at: Option<Timestamp>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AttemptOutcome {
    /// The final status; must be terminal.
    pub status: AttemptStatus,
    /// What it produced (a JSON object).
    pub output_results: Option<Value>,
    /// What went wrong (a JSON object).
    pub error_details: Option<Value>,
    /// When it ended; now when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<Timestamp>,
    /// Peak memory in MB, not negative.
    pub memory_usage_mb: Option<i32>,
    /// CPU time in ms, not negative.
    pub cpu_time_ms: Option<i64>,
}

/// Seed 003's `task_execution_summary`: one row per agent type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSummary {
    /// The agent type.
    pub agent_type: String,
    /// Attempts recorded.
    pub total_executions: i64,
    /// Of which completed.
    pub completed_executions: i64,
    /// Of which failed.
    pub failed_executions: i64,
    /// Mean duration of the attempts that have one (ms).
    pub average_duration_ms: Option<f64>,
    /// Mean peak memory (MB).
    pub average_memory_mb: Option<f64>,
    /// Mean CPU time (ms).
    pub average_cpu_time_ms: Option<f64>,
}

impl NewAttempt {
    /// Checks every field and builds the row to insert, stamped `now`.
    pub fn into_row(self, now: Timestamp) -> StoreResult<TaskAttempt> {
        if self.attempt < 1 {
            return Err(StoreError::invalid("attempt", "must be at least 1"));
        }
        let input_context = validate::object_or_empty("input_context", self.input_context)?;
        let status = self.status.unwrap_or(AttemptStatus::Queued);
        let started_at = match (self.started_at, status) {
            (Some(t), _) => Some(time::truncate(t)),
            (None, AttemptStatus::Running) => Some(now),
            (None, _) => None,
        };
        Ok(TaskAttempt {
            id: AttemptId::new(),
            task_id: self.task_id,
            run_id: self.run_id,
            attempt: self.attempt,
            agent_type: validate::required_text("agent_type", &self.agent_type, 255)?,
            worker_id: validate::optional_text("worker_id", self.worker_id.as_deref(), 255)?,
            execution_status: status,
            input_context,
            output_results: Value::Object(Default::default()),
            error_details: Value::Object(Default::default()),
            started_at,
            completed_at: None,
            lease_expires_at: self.lease_expires_at.map(time::truncate),
            heartbeat_at: None,
            duration_ms: None,
            memory_usage_mb: None,
            cpu_time_ms: None,
            created_at: now,
            updated_at: now,
        })
    }
}

impl AttemptOutcome {
    /// The attempt as it is after ending this way. An attempt already over is a
    /// conflict on `status`; the duration runs from `started_at` to `completed_at`.
    pub fn apply(self, current: &TaskAttempt, now: Timestamp) -> StoreResult<TaskAttempt> {
        if !self.status.is_terminal() {
            return Err(StoreError::invalid(
                "status",
                "an outcome must be a final status",
            ));
        }
        if current.execution_status.is_terminal() {
            return Err(StoreError::conflict(
                "status",
                format!("the attempt is already {}", current.execution_status),
            ));
        }
        let mut a = current.clone();
        let completed_at = self.completed_at.map(time::truncate).unwrap_or(now);
        if let Some(start) = a.started_at {
            if completed_at < start {
                return Err(StoreError::invalid("completed_at", "is before started_at"));
            }
            a.duration_ms = Some((completed_at - start).num_milliseconds().max(0));
        }
        if let Some(v) = self.output_results {
            a.output_results = validate::object("output_results", v)?;
        }
        if let Some(v) = self.error_details {
            a.error_details = validate::object("error_details", v)?;
        }
        Usage {
            memory_usage_mb: self.memory_usage_mb,
            cpu_time_ms: self.cpu_time_ms,
        }
        .check()?;
        a.memory_usage_mb = self.memory_usage_mb.or(a.memory_usage_mb);
        a.cpu_time_ms = self.cpu_time_ms.or(a.cpu_time_ms);
        a.execution_status = self.status;
        a.completed_at = Some(completed_at);
        a.updated_at = now;
        Ok(a)
    }
}

/// Filters of a page of runs across workflows ([`RunRepo::list_runs`]); each filter
/// given must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    /// Only runs of this workflow (seed 000's free-text `workflow_id`).
    pub workflow_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs created at or after this instant.
    pub since: Option<Timestamp>,
    /// Only runs created before this instant.
    pub until: Option<Timestamp>,
    /// Only runs this text names: the run with this ID or `execution_id` when there
    /// is one, else the runs with this text in their workflow's name
    /// (case-insensitive for ASCII letters).
    pub text: Option<String>,
    /// Who reads: runs of workflows they may not read are left out.
    pub viewer: Option<Viewer>,
}

impl RunFilter {
    /// Checks the filter: texts within their columns' bounds, free of NUL bytes, and
    /// a range that is not reversed.
    pub fn check(&self) -> StoreResult<()> {
        if let Some(w) = &self.workflow_id {
            validate::required_text("workflow_id", w, 255)?;
        }
        if let Some(t) = &self.text {
            validate::required_text("q", t, 255)?;
        }
        if let (Some(s), Some(u)) = (self.since, self.until) {
            if u < s {
                return Err(StoreError::invalid("until", "is before since"));
            }
        }
        Ok(())
    }
}

/// What a worker may report of an attempt's cost when it ends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Peak memory in MB, not negative.
    pub memory_usage_mb: Option<i32>,
    /// CPU time in milliseconds, not negative.
    pub cpu_time_ms: Option<i64>,
}

impl Usage {
    /// Whether nothing is reported.
    pub fn is_empty(&self) -> bool {
        self.memory_usage_mb.is_none() && self.cpu_time_ms.is_none()
    }

    /// Checks that the figures are not negative.
    pub fn check(&self) -> StoreResult<()> {
        if let Some(m) = self.memory_usage_mb {
            validate::range_i64("memory_usage_mb", m.into(), 0, i32::MAX.into())?;
        }
        if let Some(c) = self.cpu_time_ms {
            validate::range_i64("cpu_time_ms", c, 0, i64::MAX)?;
        }
        Ok(())
    }
}

/// Storage operations on runs (seed 000's workflow executions).
#[async_trait]
pub trait RunRepo: Send {
    /// Creates a run and, in the same transaction, its `execution_started` metric. A
    /// taken `execution_id` is a conflict; an unknown task is invalid `task_id`.
    async fn create_execution(&mut self, new: NewExecution) -> StoreResult<WorkflowExecution>;
    /// The run with this row ID.
    async fn get_execution(&mut self, id: RunId) -> StoreResult<WorkflowExecution>;
    /// The run with this `execution_id`.
    async fn find_by_execution_id(&mut self, execution_id: &str) -> StoreResult<WorkflowExecution>;
    /// Applies a patch; records `execution_duration` when the run becomes completed or
    /// failed with a known duration.
    async fn update_execution(
        &mut self,
        execution_id: &str,
        patch: ExecutionPatch,
    ) -> StoreResult<WorkflowExecution>;
    /// A page of a workflow's runs, newest first, optionally in one status.
    async fn list_by_workflow(
        &mut self,
        workflow_id: &str,
        status: Option<RunStatus>,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkflowExecution>>;
    /// A page of runs of every workflow matching `filter`, newest (by creation) first.
    async fn list_runs(
        &mut self,
        filter: &RunFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<WorkflowExecution>>;
    /// The runs serving a task, newest first.
    async fn find_by_task(&mut self, task_id: TaskId) -> StoreResult<Vec<WorkflowExecution>>;
    /// Seed 000's statistics over the runs matched.
    async fn execution_statistics(
        &mut self,
        filter: &StatsFilter,
    ) -> StoreResult<ExecutionStatistics>;
    /// Deletes a run with its metrics.
    async fn delete_execution(&mut self, execution_id: &str) -> StoreResult<()>;
}

/// Storage operations on seed 000's workflow metrics and their hourly rollups.
#[async_trait]
pub trait MetricRepo: Send {
    /// Records a metric sample and folds it into its hourly rollup.
    async fn record_metric(&mut self, new: NewMetric) -> StoreResult<WorkflowMetric>;
    /// A run's metrics, newest first; `limit` is 100 unless given (at most 1000).
    async fn metrics_for_execution(
        &mut self,
        execution_id: &str,
        metric_type: Option<MetricType>,
        limit: Option<u32>,
    ) -> StoreResult<Vec<WorkflowMetric>>;
    /// Seed 000's aggregated metrics over the raw samples.
    async fn aggregated_metrics(
        &mut self,
        filter: &AggregateFilter,
    ) -> StoreResult<Vec<MetricAggregate>>;
    /// The same answer from the hourly rollups: exact when `since` is on an hour
    /// boundary; samples without a value are not counted there.
    async fn aggregated_metrics_from_rollups(
        &mut self,
        filter: &AggregateFilter,
    ) -> StoreResult<Vec<MetricAggregate>>;
}

/// Storage operations on task attempts (seed 000's task executions).
#[async_trait]
pub trait AttemptRepo: Send {
    /// Records an attempt at a task. A repeated `(task_id, attempt)` is a conflict.
    async fn record_attempt(&mut self, new: NewAttempt) -> StoreResult<TaskAttempt>;
    /// Ends an attempt with its outcome, computing its duration.
    async fn finish_attempt(
        &mut self,
        id: AttemptId,
        outcome: AttemptOutcome,
    ) -> StoreResult<TaskAttempt>;
    /// A task's attempts, first attempt first.
    async fn list_attempts(&mut self, task_id: TaskId) -> StoreResult<Vec<TaskAttempt>>;
    /// The attempts of a run's tasks, in the order they were made.
    async fn list_run_attempts(&mut self, run_id: RunId) -> StoreResult<Vec<TaskAttempt>>;
    /// Records what attempt `attempt` of `task_id` cost, as its worker reports when it
    /// ends it; figures not given stay as they are. NotFound when there is no such
    /// attempt.
    async fn record_usage(
        &mut self,
        task_id: TaskId,
        attempt: i32,
        usage: Usage,
    ) -> StoreResult<()>;
    /// Seed 003's per-agent summary of attempts, by agent type.
    async fn task_execution_summary(&mut self) -> StoreResult<Vec<AgentSummary>>;
}
