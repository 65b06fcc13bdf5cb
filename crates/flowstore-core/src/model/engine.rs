//! The execution engine's operations (SPEC §2): start a run from a workflow
//! version, claim ready tasks under a lease, heartbeat, complete, fail with retries,
//! reap expired leases, enforce timeouts, cancel. Each operation is one transaction
//! on the caller's [`crate::Tx`]; the rules that decide outcomes (backoff, how a run
//! ends) are pure functions here, so both backends decide alike.
//!
//! The attempt number handed out by a claim is a fencing token: every later call
//! carries it, and a call with an attempt that is no longer the task's current one is
//! refused, so a worker that lost its lease can never overwrite its successor's work.

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AttemptId, RunId, TaskId, WorkflowId};
use crate::model::run::FailureStrategy;
use crate::model::run::{ExecutionStatistics, RunStatus, WorkflowExecution};
use crate::model::task::TaskStatus;
use crate::model::viewer::Viewer;
use crate::time::Timestamp;
use crate::{validate, StoreError, StoreResult};

pub use crate::model::engine_store::{
    AttemptRecord, CompletedAttempt, EngineStore, ExtendedLease, HotPath, NewEvent, Promotion,
    RunState, StepTask, TaskState,
};

/// Most tasks one claim may return.
pub const MAX_CLAIM: u32 = 1000;
/// Shortest lease a worker may ask for.
pub const MIN_LEASE: Duration = Duration::from_millis(100);
/// Longest lease a worker may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// What the engine writes besides what its guarantees need, chosen by the operator
/// for the whole store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// Whether a claim writes a `task.claimed` event for each task it hands out (the
    /// default). Without them a claim writes the task and attempt rows alone: two
    /// fewer row writes per task (the event and its numbering), for deployments
    /// whose event subscribers, SSE clients and webhooks do not follow claims. The
    /// attempt row still records who took the task and when; every other event is
    /// written as before.
    pub claim_events: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings { claim_events: true }
    }
}

/// What a caller gives to start a run of a stored workflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The workflow to run.
    pub workflow_id: WorkflowId,
    /// Which version; the workflow's current one when absent.
    pub version: Option<i32>,
    /// The caller's identifier for the run; generated when absent. Unique.
    pub execution_id: Option<String>,
    /// The run's input, handed to every task (a JSON object).
    pub input: Option<Value>,
    /// The task this run works on (seed 000's `task_id`).
    pub subject_task_id: Option<TaskId>,
    /// The run's priority, added to each step's own.
    pub priority: Option<i32>,
    /// Who started it.
    pub user_id: Option<String>,
    /// Free-form metadata (a JSON object).
    pub metadata: Option<Value>,
}

impl StartRun {
    /// Checks the caller's fields.
    pub fn check(&self) -> StoreResult<()> {
        if let Some(e) = &self.execution_id {
            validate::required_text("execution_id", e, 255)?;
        }
        if let Some(v) = &self.input {
            validate::json_object("input", v)?;
        }
        if let Some(v) = &self.metadata {
            validate::json_object("metadata", v)?;
        }
        if let Some(u) = &self.user_id {
            validate::bounded("user_id", u, 255)?;
        }
        if let Some(p) = self.priority {
            validate::range_i64("priority", p.into(), -1000, 1000)?;
        }
        if let Some(v) = self.version {
            validate::range_i64("version", v.into(), 1, i32::MAX.into())?;
        }
        Ok(())
    }
}

/// A started run with its tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartedRun {
    /// The run.
    pub run: WorkflowExecution,
    /// Its tasks, one per step: `(task, step key, status)`.
    pub tasks: Vec<RunTask>,
}

/// One task of a run, as the engine sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunTask {
    /// The task.
    pub id: TaskId,
    /// The step it runs.
    pub step_key: Option<String>,
    /// Where it stands.
    pub status: TaskStatus,
    /// The handler that runs it.
    pub handler_type: Option<String>,
    /// Its current attempt number (0 before the first claim).
    pub attempt: i32,
    /// Retries made so far.
    pub retry_count: i32,
}

/// A worker's request for work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who is asking; recorded on the attempt and the lease.
    pub worker_id: String,
    /// The handler types the worker serves.
    pub handler_types: Vec<String>,
    /// Most tasks to return.
    pub limit: u32,
    /// How long the worker holds each task before it must heartbeat.
    #[serde(with = "millis")]
    pub lease: Duration,
    /// Whose key asks, when only the tasks of workflows it may execute are to be
    /// handed out: their owner's, unowned ones, and those shared with it for execute
    /// or write (tasks of no workflow too). `None`, or an admin, takes any task.
    #[serde(skip)]
    pub executor: Option<Viewer>,
}

impl ClaimRequest {
    /// Checks the request's fields.
    pub fn check(&self) -> StoreResult<()> {
        validate::required_text("worker_id", &self.worker_id, 255)?;
        if self.handler_types.is_empty() {
            return Err(StoreError::invalid(
                "handler_types",
                "must name at least one handler type",
            ));
        }
        if self.handler_types.len() > 100 {
            return Err(StoreError::invalid(
                "handler_types",
                "at most 100 handler types",
            ));
        }
        for h in &self.handler_types {
            validate::required_text("handler_types", h, 255)?;
        }
        if self.limit == 0 || self.limit > MAX_CLAIM {
            return Err(StoreError::invalid(
                "limit",
                format!("{} is outside 1..={MAX_CLAIM}", self.limit),
            ));
        }
        check_lease(self.lease)
    }
}

/// Claims of several workers run as one statement (a backend's group of claims that
/// ask for the same handler types under the same key and lease): the tasks picked
/// are ranked by priority, and each request takes the ranks of its share in turn.
pub struct SharedClaim<'a> {
    requests: &'a [&'a ClaimRequest],
}

impl<'a> SharedClaim<'a> {
    /// The requests, in the order their shares are taken; `None` when there is none.
    pub fn new(requests: &'a [&'a ClaimRequest]) -> Option<Self> {
        (!requests.is_empty()).then_some(SharedClaim { requests })
    }

    /// The first request, whose handler types, key and lease all the others share.
    pub fn first(&self) -> &'a ClaimRequest {
        self.requests[0]
    }

    /// When the leases taken at `now` end.
    pub fn lease_until(&self, now: Timestamp) -> Timestamp {
        now + chrono::Duration::from_std(self.first().lease).unwrap_or_default()
    }

    /// Each request's worker with the ranks of its share, `lo + 1 ..= hi`, in order.
    pub fn shares(&self) -> Vec<(&'a str, i64, i64)> {
        let mut lo = 0i64;
        self.requests
            .iter()
            .map(|r| {
                let hi = lo + i64::from(r.limit);
                let share = (r.worker_id.as_str(), lo, hi);
                lo = hi;
                share
            })
            .collect()
    }

    /// How many tasks the requests ask for in all.
    pub fn total(&self) -> i64 {
        self.requests.iter().map(|r| i64::from(r.limit)).sum()
    }

    /// Hands each claimed task (with the worker its lease went to) to the first
    /// request of that worker with room left (one worker may have asked twice), each
    /// request's tasks in task order.
    pub fn share_out(&self, mut claimed: Vec<(ClaimedTask, String)>) -> Vec<Vec<ClaimedTask>> {
        claimed.sort_by_key(|(c, _)| c.task_id);
        let mut each: Vec<Vec<ClaimedTask>> = self.requests.iter().map(|_| Vec::new()).collect();
        for (task, owner) in claimed {
            let room = (0..self.requests.len()).find(|&i| {
                self.requests[i].worker_id == owner
                    && each[i].len() < self.requests[i].limit as usize
            });
            if let Some(i) = room {
                each[i].push(task);
            }
        }
        each
    }
}

/// Refuses a lease outside [`MIN_LEASE`]..=[`MAX_LEASE`].
pub fn check_lease(lease: Duration) -> StoreResult<()> {
    if lease < MIN_LEASE || lease > MAX_LEASE {
        return Err(StoreError::invalid(
            "lease",
            format!(
                "{} ms is outside {}..={} ms",
                lease.as_millis(),
                MIN_LEASE.as_millis(),
                MAX_LEASE.as_millis()
            ),
        ));
    }
    Ok(())
}

/// A task handed to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedTask {
    /// The task.
    pub task_id: TaskId,
    /// The attempt row recorded for this claim.
    pub attempt_id: AttemptId,
    /// The attempt number: the fencing token to send back.
    pub attempt: i32,
    /// The run it belongs to.
    pub run_id: Option<RunId>,
    /// The step it runs.
    pub step_key: Option<String>,
    /// The handler that runs it.
    pub handler_type: String,
    /// The step's parameters.
    pub parameters: Value,
    /// When the lease ends unless renewed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub lease_expires_at: Timestamp,
}

/// Names one attempt of one task: what heartbeats, completions and failures carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptRef {
    /// The task.
    pub task_id: TaskId,
    /// The attempt number given by the claim.
    pub attempt: i32,
}

/// What a heartbeat tells the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The lease's new end.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub lease_expires_at: Timestamp,
    /// The run was cancelled: the worker should stop and report.
    pub cancel_requested: bool,
}

/// The result of a completion or failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transition {
    /// The task.
    pub task_id: TaskId,
    /// The attempt reported.
    pub attempt: i32,
    /// The task's status afterwards (`ready` again when a failure will be retried).
    pub status: TaskStatus,
    /// When a retry may be claimed, if one was scheduled.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub retry_at: Option<Timestamp>,
    /// Tasks this transition made ready.
    pub newly_ready: Vec<TaskId>,
    /// The run's status when this transition ended it.
    pub run_status: Option<RunStatus>,
}

impl Transition {
    /// The answer to the completion of `attempt` that only completed its task: no
    /// dependent made ready, no run ended.
    pub fn completed(attempt: AttemptRef) -> Transition {
        Transition {
            task_id: attempt.task_id,
            attempt: attempt.attempt,
            status: crate::model::task::TaskStatus::Completed,
            retry_at: None,
            newly_ready: vec![],
            run_status: None,
        }
    }
}

/// Depth of the queue for one handler type and status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueDepth {
    /// The handler type.
    pub handler_type: String,
    /// `ready` or `running`.
    pub status: TaskStatus,
    /// How many tasks.
    pub tasks: i64,
}

/// One event of the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Its gap-free sequence number.
    pub seq: i64,
    /// What happened, such as `task.completed`.
    pub event_type: String,
    /// The run concerned.
    pub run_id: Option<RunId>,
    /// The task concerned.
    pub task_id: Option<TaskId>,
    /// The workflow concerned (its ID as text, as in `workflow_executions`).
    pub workflow_id: Option<String>,
    /// Details.
    pub payload: Value,
    /// When it happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Which events to read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only this run's events.
    pub run_id: Option<RunId>,
    /// Only this workflow's events.
    pub workflow_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Who reads: events they may not read (see
    /// [`crate::model::viewer::may_read_event`]) are left out.
    pub viewer: Option<crate::model::viewer::Viewer>,
}

/// The delay before retry number `retry` (1 for the first retry): exponential from
/// one second, capped at five minutes, with full jitter over the upper half so that
/// failed tasks do not all return at once.
pub fn backoff(retry: i32) -> Duration {
    let exp = retry.clamp(1, 20) as u32 - 1;
    let ceiling = Duration::from_secs(1)
        .saturating_mul(1u32 << exp.min(16))
        .min(Duration::from_secs(300));
    let half = ceiling / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// How a failure is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureDecision {
    /// Try again after the delay.
    Retry(Duration),
    /// The task has failed for good.
    Fail,
}

/// Decides a failure: retried while retries remain and the error is retryable.
pub fn decide_failure(retryable: bool, retry_count: i32, max_retries: i32) -> FailureDecision {
    if retryable && retry_count < max_retries {
        FailureDecision::Retry(backoff(retry_count + 1))
    } else {
        FailureDecision::Fail
    }
}

/// Counts of a run's tasks, by what matters to how the run ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RunTaskCounts {
    /// Tasks not yet terminal.
    pub open: i64,
    /// Tasks completed.
    pub completed: i64,
    /// Tasks failed or timed out.
    pub failed: i64,
    /// Tasks cancelled.
    pub cancelled: i64,
}

/// How a run ends once its tasks say so, or `None` while work remains.
pub fn run_outcome(counts: RunTaskCounts) -> Option<RunStatus> {
    if counts.open > 0 {
        None
    } else if counts.failed > 0 {
        Some(RunStatus::Failed)
    } else if counts.cancelled > 0 {
        Some(RunStatus::Cancelled)
    } else {
        Some(RunStatus::Completed)
    }
}

/// Whether a failed step should stop the rest of its run.
pub fn stops_run(strategy: FailureStrategy) -> bool {
    matches!(strategy, FailureStrategy::FailFast)
}

/// Storage operations of the execution engine.
#[async_trait]
pub trait EngineRepo: Send {
    /// Starts a run of a workflow version: validates the definition and that every
    /// handler type is registered and active, then creates the run and one task per
    /// step; roots (or, for `sequential`, the first step) become `ready`.
    async fn start_run(&mut self, start: StartRun) -> StoreResult<StartedRun>;

    /// Starts many runs in this transaction, as [`EngineRepo::start_run`] starts one:
    /// all of them, or none when one is refused (its error names it, as
    /// `runs[i].field`). Each version named is read and checked once, and the runs'
    /// first events are written by one statement: the runs as created, with their
    /// tasks, in order.
    async fn start_runs(&mut self, starts: Vec<StartRun>) -> StoreResult<Vec<StartedRun>>;

    /// Claims up to `limit` ready tasks for the worker, highest priority then oldest,
    /// each with a new attempt and lease.
    async fn claim(&mut self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedTask>>;

    /// Extends the lease of a running attempt; refuses a stale attempt
    /// (`Conflict` on `attempt`).
    async fn heartbeat(&mut self, attempt: AttemptRef, lease: Duration) -> StoreResult<Heartbeat>;

    /// Completes a running attempt with its output and makes ready the dependents
    /// whose dependencies are all complete. Repeating an accepted completion returns
    /// the same result and changes nothing.
    async fn complete(&mut self, attempt: AttemptRef, output: Value) -> StoreResult<Transition>;

    /// Completes many attempts in this one transaction (at most [`MAX_CLAIM`]), each
    /// as [`EngineRepo::complete`] would, and reports each one's result in the order
    /// given: a stale, unknown or invalid attempt gets its own error and does not
    /// stop the others. An `Err` for the whole call (a database error) means the
    /// transaction must be rolled back.
    async fn complete_many(
        &mut self,
        items: Vec<(AttemptRef, Value)>,
    ) -> StoreResult<Vec<StoreResult<Transition>>>;

    /// Fails a running attempt: retried with backoff while retries remain and the
    /// error is retryable, otherwise the task fails and its run follows its failure
    /// strategy.
    async fn fail(
        &mut self,
        attempt: AttemptRef,
        error: Value,
        retryable: bool,
    ) -> StoreResult<Transition>;

    /// Returns running tasks whose lease has expired to `ready` (the attempt counts as
    /// a retry) or fails them when retries are spent; at most `limit` per call.
    async fn reap_expired_leases(&mut self, limit: u32) -> StoreResult<Vec<TaskId>>;

    /// Times out attempts that ran past their task's `timeout_seconds` and runs past
    /// their deadline; returns how many tasks and runs it timed out.
    async fn enforce_timeouts(&mut self, limit: u32) -> StoreResult<u64>;

    /// Cancels a run: tasks not started are cancelled at once; running attempts see
    /// the cancel on their next heartbeat.
    async fn cancel_run(&mut self, run: RunId) -> StoreResult<WorkflowExecution>;

    /// Retries a run that failed, was cancelled or timed out: its tasks that did not
    /// complete go back to pending with their retries counted afresh (completed
    /// ones keep their results), the run is running again, and the tasks whose
    /// dependencies are complete become ready. A run that is not over, or whose
    /// deadline has passed, is a conflict.
    async fn retry_run(&mut self, run: RunId) -> StoreResult<WorkflowExecution>;

    /// The tasks of a run.
    async fn run_tasks(&mut self, run: RunId) -> StoreResult<Vec<RunTask>>;

    /// Statistics of one workflow's runs (seed 000's getStatistics) from the
    /// counters kept by the transitions, whatever the number of runs.
    async fn workflow_statistics(
        &mut self,
        workflow_id: &str,
        status: Option<RunStatus>,
    ) -> StoreResult<ExecutionStatistics>;

    /// Ready and running tasks by handler type.
    async fn queue_depth(&mut self) -> StoreResult<Vec<QueueDepth>>;

    /// Sequenced events after `after_seq`, oldest first, at most `limit`.
    async fn events_after(
        &mut self,
        after_seq: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;

    /// The `seq` of the newest numbered event (0 when there is none): where a reader
    /// that wants only what happens from now on starts.
    async fn newest_event_seq(&mut self) -> StoreResult<i64>;

    /// Gives committed events their sequence numbers; returns how many. (SQLite
    /// numbers events as it writes them, so there it has nothing to do.)
    async fn sequence_events(&mut self) -> StoreResult<u64>;
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(worker: &str, limit: u32) -> ClaimRequest {
        ClaimRequest {
            worker_id: worker.into(),
            handler_types: vec!["h".into()],
            limit,
            lease: Duration::from_secs(60),
            executor: None,
        }
    }

    fn claimed(owner: &str) -> (ClaimedTask, String) {
        let task = ClaimedTask {
            task_id: TaskId::new(),
            attempt_id: AttemptId::new(),
            attempt: 1,
            run_id: None,
            step_key: None,
            handler_type: "h".into(),
            parameters: Value::Null,
            lease_expires_at: crate::time::now(),
        };
        (task, owner.into())
    }

    #[test]
    fn a_shared_claim_hands_out_every_task_within_each_share() {
        // Worker a asks twice, b once: ranks 1..=2 and 6..=6 are a's, 3..=5 b's.
        let (a1, b, a2) = (asking("a", 2), asking("b", 3), asking("a", 1));
        let requests = [&a1, &b, &a2];
        let shared = SharedClaim::new(&requests).unwrap();
        assert_eq!(shared.total(), 6);
        assert_eq!(shared.shares(), vec![("a", 0, 2), ("b", 2, 5), ("a", 5, 6)]);
        let tasks: Vec<_> = ["a", "b", "a", "b", "a", "b"]
            .into_iter()
            .map(claimed)
            .collect();
        let mut ids: Vec<TaskId> = tasks.iter().map(|(t, _)| t.task_id).collect();
        ids.sort();
        let each = shared.share_out(tasks);
        assert_eq!(
            each.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 3, 1],
            "every task reaches a request of its worker, none beyond its limit"
        );
        let mut handed: Vec<TaskId> = each.iter().flatten().map(|t| t.task_id).collect();
        handed.sort();
        assert_eq!(handed, ids, "no task is lost or given twice");
        for share in &each {
            assert!(share.windows(2).all(|w| w[0].task_id < w[1].task_id));
        }
        assert!(SharedClaim::new(&[]).is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let third = backoff(3);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            assert!(backoff(30) <= Duration::from_secs(300));
        }
    }

    #[test]
    fn failures_retry_until_spent() {
        assert!(matches!(
            decide_failure(true, 0, 2),
            FailureDecision::Retry(_)
        ));
        assert_eq!(decide_failure(true, 2, 2), FailureDecision::Fail);
        assert_eq!(decide_failure(false, 0, 5), FailureDecision::Fail);
    }

    #[test]
    fn runs_end_by_their_tasks() {
        let c = |open, completed, failed, cancelled| RunTaskCounts {
            open,
            completed,
            failed,
            cancelled,
        };
        assert_eq!(run_outcome(c(1, 3, 0, 0)), None);
        assert_eq!(run_outcome(c(0, 3, 0, 0)), Some(RunStatus::Completed));
        assert_eq!(run_outcome(c(0, 2, 1, 1)), Some(RunStatus::Failed));
        assert_eq!(run_outcome(c(0, 2, 0, 1)), Some(RunStatus::Cancelled));
    }

    #[test]
    fn claims_are_checked() {
        let ok = ClaimRequest {
            worker_id: "w1".into(),
            handler_types: vec!["shell".into()],
            limit: 10,
            lease: Duration::from_secs(30),
            executor: None,
        };
        assert!(ok.check().is_ok());
        assert!(ClaimRequest {
            limit: 0,
            ..ok.clone()
        }
        .check()
        .is_err());
        assert!(ClaimRequest {
            handler_types: vec![],
            ..ok.clone()
        }
        .check()
        .is_err());
        assert!(ClaimRequest {
            lease: Duration::from_secs(7200),
            executor: None,
            ..ok.clone()
        }
        .check()
        .is_err());
        assert!(ClaimRequest {
            worker_id: " ".into(),
            ..ok
        }
        .check()
        .is_err());
    }
}
