//! Summaries and time-ranged queries read from the counters and indexes the schema
//! keeps: a project's tasks by status, a workflow's runs by status, finished runs per
//! hour or day (from the rollups kept by trigger), the workers seen lately, and
//! pages of system metrics over a time range.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::{ProjectId, WorkflowId};
use crate::model::registry::SystemMetric;
use crate::model::run::{ExecutionStatistics, RunStatus};
use crate::model::task::query::TaskProgress;
use crate::model::viewer::Viewer;
use crate::time::Timestamp;
use crate::validate;
use crate::{text_enum, Page, PageRequest, StoreError, StoreResult};

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

text_enum!(
    /// The width of one point of a time series.
    Bucket, "bucket" {
        /// One UTC hour.
        Hour => "hour",
        /// One UTC day.
        Day => "day",
    }
);

/// The most points one time series may have.
pub const MAX_BUCKETS: i64 = 10_000;

/// Which finished runs to count, per bucket ([`SummaryRepo::run_series`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RunSeriesFilter {
    /// Only runs of this workflow (seed 000's free-text `workflow_id`); every
    /// workflow the viewer may read when `None`.
    pub workflow_id: Option<String>,
    /// From this instant, rounded down to its bucket.
    pub since: Timestamp,
    /// Up to this instant (excluded).
    pub until: Timestamp,
    /// The width of a point.
    pub bucket: Bucket,
    /// Who reads: runs of workflows they may not read are not counted.
    pub viewer: Option<Viewer>,
}

impl RunSeriesFilter {
    /// Checks the range: not reversed, and at most [`MAX_BUCKETS`] points.
    pub fn check(&self) -> StoreResult<()> {
        if let Some(w) = &self.workflow_id {
            validate::required_text("workflow_id", w, 255)?;
        }
        if self.until <= self.since {
            return Err(StoreError::invalid("until", "must be after since"));
        }
        let width = match self.bucket {
            Bucket::Hour => 3_600,
            Bucket::Day => 86_400,
        };
        if (self.until - self.since).num_seconds() / width > MAX_BUCKETS {
            return Err(StoreError::invalid(
                "since",
                format!("the range holds more than {MAX_BUCKETS} {}s", self.bucket),
            ));
        }
        Ok(())
    }
}

/// The runs that finished in one bucket of time, by how they ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunBucket {
    /// Where the bucket starts (UTC).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub bucket_start: Timestamp,
    /// Runs that ended in it.
    pub total: i64,
    /// Of which completed.
    pub completed: i64,
    /// Of which failed.
    pub failed: i64,
    /// Of which cancelled.
    pub cancelled: i64,
    /// Of which timed out.
    pub timed_out: i64,
    /// Failed and timed-out runs over all runs, from 0 to 1.
    pub failure_rate: f64,
    /// Mean duration (ms) of the runs with a known duration.
    pub average_duration_ms: Option<f64>,
    /// Shortest duration (ms) seen in the bucket.
    pub min_duration_ms: Option<i64>,
    /// Longest duration (ms) seen in the bucket.
    pub max_duration_ms: Option<i64>,
}

/// One rollup row as the series reads it: bucket, status, runs, durations counted,
/// their sum, least and greatest.
pub type RunRollupRow = (
    Timestamp,
    RunStatus,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

impl RunBucket {
    /// Folds rollup rows (ordered by bucket) into one point per bucket.
    pub fn fold(rows: Vec<RunRollupRow>) -> Vec<RunBucket> {
        let mut out: Vec<RunBucket> = Vec::new();
        let mut sums: Vec<(i64, i64)> = Vec::new();
        for (at, status, runs, count, sum, min, max) in rows {
            if out.last().is_none_or(|b| b.bucket_start != at) {
                out.push(RunBucket {
                    bucket_start: at,
                    ..RunBucket::default()
                });
                sums.push((0, 0));
            }
            let (b, s) = (
                out.last_mut().expect("pushed"),
                sums.last_mut().expect("pushed"),
            );
            match status {
                RunStatus::Completed => b.completed += runs,
                RunStatus::Failed => b.failed += runs,
                RunStatus::Cancelled => b.cancelled += runs,
                RunStatus::TimedOut => b.timed_out += runs,
                RunStatus::Pending | RunStatus::Running | RunStatus::Paused => continue,
            }
            b.total += runs;
            s.0 += count;
            s.1 += sum;
            b.min_duration_ms = match (b.min_duration_ms, min) {
                (Some(a), Some(m)) => Some(a.min(m)),
                (a, m) => a.or(m),
            };
            b.max_duration_ms = match (b.max_duration_ms, max) {
                (Some(a), Some(m)) => Some(a.max(m)),
                (a, m) => a.or(m),
            };
        }
        for (b, (count, sum)) in out.iter_mut().zip(sums) {
            if b.total > 0 {
                b.failure_rate = (b.failed + b.timed_out) as f64 / b.total as f64;
            }
            if count > 0 {
                b.average_duration_ms = Some(sum as f64 / count as f64);
            }
        }
        out.retain(|b| b.total != 0);
        out
    }
}

/// How long a workflow's recent completed runs took, from their durations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurationStats {
    /// How many runs the figures are over (the newest completed ones).
    pub runs: i64,
    /// Their mean duration (ms).
    pub mean_ms: Option<f64>,
    /// The median (ms).
    pub p50_ms: Option<i64>,
    /// The 90th percentile (ms).
    pub p90_ms: Option<i64>,
    /// The 99th percentile (ms).
    pub p99_ms: Option<i64>,
    /// The longest (ms).
    pub max_ms: Option<i64>,
}

impl DurationStats {
    /// The figures of `durations` (any order), each percentile the nearest rank.
    pub fn of(mut durations: Vec<i64>) -> DurationStats {
        durations.sort_unstable();
        let n = durations.len();
        let rank = |p: f64| -> Option<i64> {
            (n > 0).then(|| durations[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        DurationStats {
            runs: n as i64,
            mean_ms: (n > 0).then(|| durations.iter().sum::<i64>() as f64 / n as f64),
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: durations.last().copied(),
        }
    }
}

/// A worker seen through the attempts it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerSeen {
    /// The ID the worker claims with.
    pub worker_id: String,
    /// When it last claimed, heartbeat or ended an attempt.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_seen_at: Timestamp,
    /// Attempts it holds now.
    pub running: i64,
    /// Attempts it completed in the window.
    pub completed: i64,
    /// Attempts that failed, timed out or lost their lease in the window.
    pub failed: i64,
    /// Of those, the attempts whose lease expired (the worker stopped heartbeating
    /// and the task went back to the queue).
    pub lease_expired: i64,
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
    /// Finished runs per bucket of time from the hourly rollups (see migration
    /// `0017_run_rollups`): a few rows per hour whatever the number of runs. Buckets
    /// without runs are left out.
    async fn run_series(&mut self, filter: &RunSeriesFilter) -> StoreResult<Vec<RunBucket>>;
    /// The durations (ms) of a workflow's newest completed runs that have one, at
    /// most `limit`. `workflow_id` is seed 000's free text.
    async fn recent_durations(&mut self, workflow_id: &str, limit: u32) -> StoreResult<Vec<i64>>;
    /// The workers that claimed, heartbeat or ended an attempt at or after `since`,
    /// most recently seen first, at most `limit`.
    async fn workers_seen(&mut self, since: Timestamp, limit: u32) -> StoreResult<Vec<WorkerSeen>>;
    /// A page of system metric samples matching `filter`, newest first.
    async fn page_system_metrics(
        &mut self,
        filter: &SystemMetricFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<SystemMetric>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_percentiles_take_the_nearest_rank() {
        let d = DurationStats::of((1..=100).rev().collect());
        assert_eq!(
            (d.runs, d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms),
            (100, Some(50), Some(90), Some(99), Some(100))
        );
        assert_eq!(d.mean_ms, Some(50.5));
        let one = DurationStats::of(vec![7]);
        assert_eq!(
            (one.p50_ms, one.p99_ms, one.max_ms),
            (Some(7), Some(7), Some(7))
        );
        assert_eq!(DurationStats::of(vec![]), DurationStats::default());
    }
}
