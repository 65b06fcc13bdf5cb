//! Summaries and time-ranged queries read from the counters and indexes the schema
//! keeps: a project's tasks by status, a workflow's runs by status, and pages of
//! system metrics over a time range.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::{ProjectId, WorkflowId};
use crate::model::registry::SystemMetric;
use crate::model::run::{ExecutionStatistics, RunStatus};
use crate::model::task::query::TaskProgress;
use crate::time::Timestamp;
use crate::validate;
use crate::{Page, PageRequest, StoreError, StoreResult};

/// How many runs of a workflow are in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunCounts {
    /// Every run.
    pub total: i64,
    /// Runs pending.
    pub pending: i64,
    /// Runs running.
    pub running: i64,
    /// Runs paused.
    pub paused: i64,
    /// Runs completed.
    pub completed: i64,
    /// Runs failed.
    pub failed: i64,
    /// Runs cancelled.
    pub cancelled: i64,
    /// Runs timed out.
    pub timed_out: i64,
}

impl RunCounts {
    /// Folds the rows of a count by status.
    pub fn from_counts(rows: &[(RunStatus, i64)]) -> Self {
        let mut c = RunCounts::default();
        for (s, n) in rows {
            let slot = match s {
                RunStatus::Pending => &mut c.pending,
                RunStatus::Running => &mut c.running,
                RunStatus::Paused => &mut c.paused,
                RunStatus::Completed => &mut c.completed,
                RunStatus::Failed => &mut c.failed,
                RunStatus::Cancelled => &mut c.cancelled,
                RunStatus::TimedOut => &mut c.timed_out,
            };
            *slot += n;
            c.total += n;
        }
        c
    }
}

/// A workflow at a glance: its runs by status, seed 000's statistics over them, and
/// its tasks by status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowSummary {
    /// Runs by status.
    pub runs: RunCounts,
    /// Totals and durations of the runs.
    pub statistics: ExecutionStatistics,
    /// The workflow's tasks (of every run) by status.
    pub tasks: TaskProgress,
}

/// Filters of a page of system metrics; every filter given must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemMetricFilter {
    /// Only samples of this metric.
    pub name: Option<String>,
    /// Only samples of this component.
    pub component: Option<String>,
    /// Only samples recorded at or after this instant.
    pub since: Option<Timestamp>,
    /// Only samples recorded before this instant.
    pub until: Option<Timestamp>,
}

impl SystemMetricFilter {
    /// Checks the filter: non-empty names and a range that is not reversed.
    pub fn check(&self) -> StoreResult<()> {
        if let Some(n) = &self.name {
            validate::required_text("name", n, 255)?;
        }
        if let Some(c) = &self.component {
            validate::required_text("component", c, 255)?;
        }
        if let (Some(s), Some(u)) = (self.since, self.until) {
            if u < s {
                return Err(StoreError::invalid("until", "is before since"));
            }
        }
        Ok(())
    }
}

/// Storage operations behind the summaries.
#[async_trait]
pub trait SummaryRepo: Send {
    /// How far a project's tasks have got; NotFound for an unknown project.
    async fn project_progress(&mut self, project_id: ProjectId) -> StoreResult<TaskProgress>;
    /// A workflow's runs by status, from the counters kept by the database (a few
    /// rows whatever the number of runs). `workflow_id` is seed 000's free text.
    async fn run_counts(&mut self, workflow_id: &str) -> StoreResult<RunCounts>;
    /// Whether any run belongs to the stored workflow `id`: by its `workflow_ref`,
    /// or by a `workflow_id` text equal to the ID.
    async fn workflow_has_runs(&mut self, id: WorkflowId) -> StoreResult<bool>;
    /// A page of system metric samples matching `filter`, newest first.
    async fn page_system_metrics(
        &mut self,
        filter: &SystemMetricFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<SystemMetric>>;
}
