//! The execution engine's logic, written once over the backends' [`EngineStore`]
//! primitives. Each function here is one transition and runs on the caller's
//! transaction: the task or run row, its attempt row, seed 000's metrics and an
//! outbox event are all written there, or none of them is.

use crate::model::identity::NotificationRepo;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::ids::{AttemptId, RunId, TaskId};
use crate::model::engine::{
    decide_failure, run_outcome, stops_run, AttemptRef, ClaimRequest, ClaimedTask, EngineStore,
    ExtendedLease, FailureDecision, Heartbeat, HotPath, NewEvent, RunState, TaskState, Transition,
};
use crate::model::metric::{MetricType, NewMetric};
use crate::model::run::{AttemptStatus, MetricRepo, RunRepo, RunStatus, RunStrategy};
use crate::model::task::TaskStatus;
use crate::model::workflow::WorkflowRepo;
use crate::time::{self, duration_ms, Timestamp};
use crate::{StoreError, StoreResult};

/// What the engine needs of a transaction.
pub trait EngineTx:
    EngineStore + HotPath + RunRepo + MetricRepo + WorkflowRepo + NotificationRepo + Send
{
}
impl<
        T: EngineStore
            + HotPath
            + RunRepo
            + MetricRepo
            + WorkflowRepo
            + NotificationRepo
            + Send
            + ?Sized,
    > EngineTx for T
{
}

fn ev(
    event_type: &'static str,
    run: Option<RunId>,
    task: Option<TaskId>,
    workflow: Option<&str>,
    payload: Value,
) -> NewEvent {
    NewEvent {
        event_type,
        run_id: run,
        task_id: task,
        workflow_id: workflow.map(str::to_string),
        payload,
    }
}

/// Claims ready tasks (see [`crate::model::engine::EngineRepo::claim`]).
pub async fn claim<T: EngineTx + ?Sized>(
    tx: &mut T,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedTask>> {
    request.check()?;
    let ids: Vec<AttemptId> = (0..request.limit).map(|_| AttemptId::new()).collect();
    let mut each = tx.claim_ready(&[request], time::now(), &ids).await?;
    Ok(each.pop().unwrap_or_default())
}

async fn locked_current<T: EngineTx + ?Sized>(
    tx: &mut T,
    attempt: AttemptRef,
) -> StoreResult<TaskState> {
    tx.lock_task(attempt.task_id)
        .await?
        .ok_or_else(|| StoreError::not_found("task", attempt.task_id))
}

fn stale(task: &TaskState, attempt: AttemptRef) -> StoreError {
    StoreError::conflict(
        "attempt",
        format!(
            "attempt {} is not current: the task is at attempt {} and {}",
            attempt.attempt, task.attempt, task.status
        ),
    )
}

/// When a lease of `lease` taken at `now` ends; refuses a lease out of bounds.
fn lease_end(lease: Duration, now: Timestamp) -> StoreResult<Timestamp> {
    crate::model::engine::check_lease(lease)?;
    Ok(now
        + chrono::Duration::from_std(lease)
            .map_err(|_| StoreError::invalid("lease", "is too long"))?)
}

/// Extends a lease (see [`crate::model::engine::EngineRepo::heartbeat`]).
pub async fn heartbeat<T: EngineTx + ?Sized>(
    tx: &mut T,
    attempt: AttemptRef,
    lease: Duration,
) -> StoreResult<Heartbeat> {
    let now = time::now();
    let until = lease_end(lease, now)?;
    let task = locked_current(tx, attempt).await?;
    if task.status != TaskStatus::Running || task.attempt != attempt.attempt {
        return Err(stale(&task, attempt));
    }
    if !tx.extend_lease(attempt, until, now).await? {
        return Err(stale(&task, attempt));
    }
    let cancel_requested = match task.run_id {
        Some(run) => tx
            .lock_run(run)
            .await?
            .is_some_and(|r| r.cancel_requested_at.is_some() || r.status.is_terminal()),
        None => false,
    };
    Ok(Heartbeat {
        lease_expires_at: until,
        cancel_requested,
    })
}

/// Extends many leases, each as [`heartbeat`] does, one answer per item in order: the
/// current attempts of distinct tasks in one go ([`extend_current`]), the rest (a
/// stale or unknown attempt, a task named again) one by one, for their own answer.
pub async fn heartbeat_many<T: EngineTx + ?Sized>(
    tx: &mut T,
    items: &[(AttemptRef, Duration)],
) -> StoreResult<Vec<StoreResult<Heartbeat>>> {
    let mut results = extend_current(tx, items).await?;
    for (result, &(attempt, lease)) in results.iter_mut().zip(items) {
        if result.is_none() {
            *result = Some(heartbeat(tx, attempt, lease).await);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// The first half of [`heartbeat_many`], in one statement where the backend allows
/// ([`HotPath::extend_leases`]): answers each item whose lease is out of bounds or
/// whose attempt is its task's current running one (the first naming a task); the
/// others (`None`) are left for [`heartbeat`] to answer.
pub async fn extend_current<T: HotPath + ?Sized>(
    tx: &mut T,
    items: &[(AttemptRef, Duration)],
) -> StoreResult<Vec<Option<StoreResult<Heartbeat>>>> {
    let now = time::now();
    let mut results: Vec<Option<StoreResult<Heartbeat>>> = items.iter().map(|_| None).collect();
    let mut firsts = Vec::new();
    let mut seen = HashSet::new();
    for (i, (attempt, lease)) in items.iter().enumerate() {
        match lease_end(*lease, now) {
            Err(e) => results[i] = Some(Err(e)),
            Ok(until) if seen.insert(attempt.task_id) => firsts.push((i, (*attempt, until))),
            Ok(_) => {}
        }
    }
    if firsts.is_empty() {
        return Ok(results);
    }
    let batch: Vec<(AttemptRef, Timestamp)> = firsts.iter().map(|(_, item)| *item).collect();
    let extended: HashMap<TaskId, ExtendedLease> = tx
        .extend_leases(&batch, now)
        .await?
        .into_iter()
        .map(|e| (e.task_id, e))
        .collect();
    for (i, (attempt, until)) in firsts {
        if let Some(e) = extended.get(&attempt.task_id) {
            results[i] = Some(Ok(Heartbeat {
                lease_expires_at: until,
                cancel_requested: e.cancel_requested(),
            }));
        }
    }
    Ok(results)
}

/// Fails an attempt (see [`crate::model::engine::EngineRepo::fail`]).
///
/// A repeat of an accepted failure (the worker lost the answer) gets the answer the
/// first report got, whatever happened to the task since; a failure reported for an
/// attempt that ended otherwise (its lease lapsed, it timed out, it was cancelled, or
/// it failed with another error) is refused as not current.
pub async fn fail<T: EngineTx + ?Sized>(
    tx: &mut T,
    attempt: AttemptRef,
    error: Value,
    retryable: bool,
) -> StoreResult<Transition> {
    crate::validate::json_size("error", &error)?;
    let now = time::now();
    let task = locked_current(tx, attempt).await?;
    if task.status != TaskStatus::Running || task.attempt != attempt.attempt {
        return repeated(tx, &task, attempt, Report::Failure(&error)).await;
    }
    let how = FailureKind {
        attempt_status: AttemptStatus::Failed,
        final_status: TaskStatus::Failed,
        immediate_retry: false,
    };
    let transition = resolve_failure(tx, task, &error, retryable, how, now).await?;
    keep_outcome(tx, &transition).await?;
    Ok(transition)
}

/// What a worker reported of an attempt.
#[derive(Clone, Copy)]
enum Report<'a> {
    Completion(&'a Value),
    Failure(&'a Value),
}

/// Keeps the answer to the report that ended an attempt, for a repeat of it.
async fn keep_outcome<T: EngineTx + ?Sized>(
    tx: &mut T,
    transition: &Transition,
) -> StoreResult<()> {
    let outcome = serde_json::to_value(transition)
        .map_err(|e| StoreError::internal(format!("encoding an outcome: {e}")))?;
    tx.record_outcome(transition.task_id, transition.attempt, &outcome)
        .await
}

/// The answer to a report for an attempt that is not its task's running one: the
/// first answer again when the same report was accepted before, else a conflict.
async fn repeated<T: EngineTx + ?Sized>(
    tx: &mut T,
    task: &TaskState,
    attempt: AttemptRef,
    report: Report<'_>,
) -> StoreResult<Transition> {
    let record = if attempt.attempt <= task.attempt {
        tx.attempt_record(task.id, attempt.attempt).await?
    } else {
        None
    };
    let Some(record) = record else {
        return Err(stale(task, attempt));
    };
    let (ended_so, same, what) = match report {
        Report::Completion(output) => (
            record.status == AttemptStatus::Completed,
            record.output.as_ref() == Some(output),
            "completed with another output",
        ),
        Report::Failure(error) => (
            record.status == AttemptStatus::Failed,
            record.error.as_ref() == Some(error),
            "failed with another error",
        ),
    };
    if !ended_so {
        return Err(stale(task, attempt));
    }
    if !same {
        let field = match report {
            Report::Completion(_) => "output",
            Report::Failure(_) => "error",
        };
        return Err(StoreError::conflict(
            field,
            format!("attempt {} was already {what}", attempt.attempt),
        ));
    }
    match record.outcome {
        Some(outcome) => serde_json::from_value(outcome)
            .map_err(|e| StoreError::internal(format!("decoding an outcome: {e}"))),
        // A completion whose answer carried nothing beyond the completion itself.
        None if matches!(report, Report::Completion(_)) => Ok(Transition {
            task_id: task.id,
            attempt: attempt.attempt,
            status: TaskStatus::Completed,
            retry_at: None,
            newly_ready: vec![],
            run_status: None,
        }),
        // A failure accepted before answers were kept: what it led to is unknown.
        None => Err(stale(task, attempt)),
    }
}

/// How an attempt ended badly, and what that means for its task.
struct FailureKind {
    /// The status recorded on the attempt row.
    attempt_status: AttemptStatus,
    /// The task's status when no retry remains.
    final_status: TaskStatus,
    /// Retry without backoff (a lost lease has already made the task wait).
    immediate_retry: bool,
}

/// Applies a failed attempt to its task: a retry with backoff, or the task's end
/// with `final_status`, and then the run's failure strategy.
async fn resolve_failure<T: EngineTx + ?Sized>(
    tx: &mut T,
    mut task: TaskState,
    error: &Value,
    retryable: bool,
    how: FailureKind,
    now: Timestamp,
) -> StoreResult<Transition> {
    let FailureKind {
        attempt_status,
        mut final_status,
        immediate_retry,
    } = how;
    // A run that is over starts nothing new: a failed attempt of one of its tasks is
    // not retried, and when the run was cancelled or timed out the task ends cancelled.
    let run = match task.run_id {
        Some(run_id) => Some(
            tx.lock_run(run_id)
                .await?
                .ok_or_else(|| StoreError::not_found("run", run_id))?,
        ),
        None => None,
    };
    let run_over = run
        .as_ref()
        .is_some_and(|r| r.status.is_terminal() || r.cancel_requested_at.is_some());
    if run_over
        && run
            .as_ref()
            .is_some_and(|r| matches!(r.status, RunStatus::Cancelled | RunStatus::TimedOut))
    {
        final_status = TaskStatus::Cancelled;
    }
    let retryable = retryable && !run_over;
    tx.finish_task_attempt(
        task.id,
        task.attempt,
        attempt_status,
        None,
        Some(error),
        now,
    )
    .await?;
    task.lease_owner = None;
    task.lease_expires_at = None;
    task.error_message = Some(error_text(error));
    task.actual_duration = task
        .attempt_started_at
        .or(task.started_at)
        .map(|s| duration_ms(s, now));
    let mut transition = Transition {
        task_id: task.id,
        attempt: task.attempt,
        status: final_status,
        retry_at: None,
        newly_ready: vec![],
        run_status: None,
    };
    let mut events = Vec::new();
    match decide_failure(retryable, task.retry_count, task.max_retries) {
        FailureDecision::Retry(delay) => {
            let delay = if immediate_retry {
                Duration::ZERO
            } else {
                delay
            };
            let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            task.status = TaskStatus::Ready;
            task.retry_count += 1;
            task.run_after = Some(at);
            tx.save_task(&task, now).await?;
            transition.status = TaskStatus::Ready;
            transition.retry_at = Some(at);
            events.push(ev(
                "task.retrying",
                task.run_id,
                Some(task.id),
                None,
                json!({"attempt": task.attempt, "retry_at": at, "reason": attempt_status.as_str()}),
            ));
        }
        FailureDecision::Fail => {
            task.status = final_status;
            task.completed_at = Some(now);
            tx.save_task(&task, now).await?;
            let kind = match final_status {
                TaskStatus::TimedOut => "task.timed_out",
                TaskStatus::Cancelled => "task.cancelled",
                _ => "task.failed",
            };
            events.push(ev(
                kind,
                task.run_id,
                Some(task.id),
                None,
                json!({"attempt": task.attempt, "error": error}),
            ));
            if let (Some(run_id), Some(run)) = (task.run_id, run) {
                if !run_over {
                    if stops_run(run.failure_strategy) {
                        let error_data = json!({"failed_task": task.id, "error": error});
                        let failed = RunStatus::Failed;
                        stop_run(
                            tx,
                            run,
                            failed,
                            "fail_fast",
                            Some(error_data),
                            now,
                            &mut events,
                        )
                        .await?;
                        transition.run_status = Some(RunStatus::Failed);
                    } else {
                        let dependents = tx.dependents_of(task.id).await?;
                        if !dependents.is_empty() {
                            let only = Some(&dependents[..]);
                            cancel_open(tx, run_id, only, "dependency_failed", now, &mut events)
                                .await?;
                        }
                        after_terminal(tx, run_id, now, &mut transition, &mut events).await?;
                    }
                }
            }
        }
    }
    tx.insert_events(&events, now).await?;
    Ok(transition)
}

/// Cancels the run's pending and ready tasks (all of them, or those in `only`), each
/// with a `task.cancelled` event that gives `reason`.
async fn cancel_open<T: EngineTx + ?Sized>(
    tx: &mut T,
    run_id: RunId,
    only: Option<&[TaskId]>,
    reason: &str,
    now: Timestamp,
    events: &mut Vec<NewEvent>,
) -> StoreResult<()> {
    let cancelled = tx.cancel_open_tasks(run_id, only, now).await?;
    events.extend(cancelled.iter().map(|t| {
        ev(
            "task.cancelled",
            Some(run_id),
            Some(*t),
            None,
            json!({"reason": reason}),
        )
    }));
    Ok(())
}

/// Stops a run (locked by the caller) that is not over: cancels its open tasks with
/// `reason`, marks the cancellation requested, records `error_data` (when given) and
/// ends the run in `status`.
async fn stop_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    mut run: RunState,
    status: RunStatus,
    reason: &str,
    error_data: Option<Value>,
    now: Timestamp,
    events: &mut Vec<NewEvent>,
) -> StoreResult<()> {
    cancel_open(tx, run.id, None, reason, now, events).await?;
    run.cancel_requested_at = Some(now);
    if error_data.is_some() {
        run.error_data = error_data;
    }
    end_run(tx, run, status, now, events).await
}

fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string()),
        other => other.to_string(),
    }
}

/// After a task of `run_id` reached a terminal status: make dependents ready, and end
/// the run when nothing is left open.
async fn after_terminal<T: EngineTx + ?Sized>(
    tx: &mut T,
    run_id: RunId,
    now: Timestamp,
    transition: &mut Transition,
    events: &mut Vec<NewEvent>,
) -> StoreResult<()> {
    let run = tx
        .lock_run(run_id)
        .await?
        .ok_or_else(|| StoreError::not_found("run", run_id))?;
    advance_run(tx, run, now, transition, events).await
}

/// After a task of `run` (locked by the caller) reached a terminal status: make the
/// run's pending tasks whose dependencies are complete ready, and end the run when
/// nothing is left open.
async fn advance_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    run: RunState,
    now: Timestamp,
    transition: &mut Transition,
    events: &mut Vec<NewEvent>,
) -> StoreResult<()> {
    if run.status.is_terminal() || run.cancel_requested_at.is_some() {
        return Ok(());
    }
    let run_id = run.id;
    let sequential = run.strategy == Some(RunStrategy::Sequential);
    let ready = tx.promote_ready(run_id, sequential, now).await?;
    events.extend(
        ready
            .iter()
            .map(|t| ev("task.ready", Some(run_id), Some(*t), None, json!({}))),
    );
    transition.newly_ready = ready;
    let counts = tx.run_task_counts(run_id).await?;
    if let Some(status) = run_outcome(counts) {
        end_run(tx, run, status, now, events).await?;
        transition.run_status = Some(status);
    }
    Ok(())
}

/// Ends a run: its row, an event and, for a completed run only (as seed 000 records
/// it, see [`crate::model::metric::duration_metric`]), seed 000's
/// `execution_duration` metric.
async fn end_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    mut run: RunState,
    status: RunStatus,
    now: Timestamp,
    events: &mut Vec<NewEvent>,
) -> StoreResult<()> {
    run.status = status;
    run.end_time = Some(now);
    run.actual_duration = run.start_time.map(|s| duration_ms(s, now));
    tx.save_run(&run, now).await?;
    crate::model::notify::run_ended(tx, run.id, &run.execution_id, &run.workflow_id, status)
        .await?;
    if let (RunStatus::Completed, Some(ms)) = (status, run.actual_duration) {
        tx.record_metric(NewMetric {
            execution_id: Some(run.execution_id.clone()),
            metric_name: "execution_duration".into(),
            metric_value: Some(ms.into()),
            metric_unit: Some("milliseconds".into()),
            metric_type: Some(MetricType::Performance),
            metadata: Some(json!({"status": status.as_str()})),
            recorded_at: Some(now),
        })
        .await?;
    }
    let kind = match status {
        RunStatus::Completed => "run.completed",
        RunStatus::Failed => "run.failed",
        RunStatus::Cancelled => "run.cancelled",
        RunStatus::TimedOut => "run.timed_out",
        RunStatus::Pending | RunStatus::Running | RunStatus::Paused => "run.updated",
    };
    events.push(ev(
        kind,
        Some(run.id),
        None,
        Some(&run.workflow_id),
        json!({"execution_id": run.execution_id, "duration_ms": run.actual_duration}),
    ));
    Ok(())
}

mod complete;
mod housekeeping;
mod repo;
pub mod shortcut;
mod start;

pub use complete::{complete, complete_many, complete_one};
pub use housekeeping::{cancel_run, enforce_timeouts, reap_expired_leases, retry_run};
pub use start::{start_run, start_runs};
