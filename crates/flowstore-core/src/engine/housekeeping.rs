//! The transitions nobody reports: expired leases, timeouts, and cancellation.

use serde_json::json;

use super::{ev, resolve_failure, stop_run, EngineTx, FailureKind};
use crate::ids::{RunId, TaskId};
use crate::model::run::{AttemptStatus, RunStatus, WorkflowExecution};
use crate::model::task::TaskStatus;
use crate::time;
use crate::{StoreError, StoreResult};

/// Returns expired leases to the queue (see
/// [`crate::model::engine::EngineRepo::reap_expired_leases`]).
pub async fn reap_expired_leases<T: EngineTx + ?Sized>(
    tx: &mut T,
    limit: u32,
) -> StoreResult<Vec<TaskId>> {
    let now = time::now();
    let expired = tx.expired_leases(now, limit.clamp(1, 10_000)).await?;
    let mut reaped = Vec::with_capacity(expired.len());
    for id in expired {
        let Some(task) = tx.lock_task(id).await? else {
            continue;
        };
        if task.status != TaskStatus::Running || task.lease_expires_at.is_none_or(|t| t >= now) {
            continue;
        }
        let error = json!({"message": "lease expired", "worker_id": task.lease_owner});
        // A lost lease counts as an attempt; it is retried at once while retries
        // remain, since the lease has already made the task wait.
        let how = FailureKind {
            attempt_status: AttemptStatus::LeaseExpired,
            final_status: TaskStatus::Failed,
            immediate_retry: true,
        };
        resolve_failure(tx, task, &error, true, how, now).await?;
        reaped.push(id);
    }
    Ok(reaped)
}

/// Times out attempts and runs (see
/// [`crate::model::engine::EngineRepo::enforce_timeouts`]).
pub async fn enforce_timeouts<T: EngineTx + ?Sized>(tx: &mut T, limit: u32) -> StoreResult<u64> {
    let now = time::now();
    let limit = limit.clamp(1, 10_000);
    let mut count = 0;
    for id in tx.overdue_tasks(now, limit).await? {
        let Some(task) = tx.lock_task(id).await? else {
            continue;
        };
        if task.status != TaskStatus::Running {
            continue;
        }
        let error =
            json!({"message": "attempt timed out", "timeout_seconds": task.timeout_seconds});
        let how = FailureKind {
            attempt_status: AttemptStatus::TimedOut,
            final_status: TaskStatus::TimedOut,
            immediate_retry: false,
        };
        resolve_failure(tx, task, &error, true, how, now).await?;
        count += 1;
    }
    for run_id in tx.overdue_runs(now, limit).await? {
        let Some(run) = tx.lock_run(run_id).await? else {
            continue;
        };
        if run.status.is_terminal() {
            continue;
        }
        let mut events = Vec::new();
        let error_data = json!({"message": "the run passed its deadline"});
        let status = RunStatus::TimedOut;
        stop_run(
            tx,
            run,
            status,
            "run_timed_out",
            Some(error_data),
            now,
            &mut events,
        )
        .await?;
        tx.insert_events(&events, now).await?;
        count += 1;
    }
    Ok(count)
}

/// Retries a run that ended without completing (see
/// [`crate::model::engine::EngineRepo::retry_run`]).
pub async fn retry_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    run_id: RunId,
) -> StoreResult<WorkflowExecution> {
    let now = time::now();
    let mut run = tx
        .lock_run(run_id)
        .await?
        .ok_or_else(|| StoreError::not_found("run", run_id))?;
    if !matches!(
        run.status,
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::TimedOut
    ) {
        return Err(StoreError::conflict(
            "status",
            format!(
                "the run is {}: only a failed, cancelled or timed-out run is retried",
                run.status
            ),
        ));
    }
    if run.deadline_at.is_some_and(|d| d <= now) {
        return Err(StoreError::conflict(
            "deadline_at",
            "the run's deadline has passed: start the workflow again instead",
        ));
    }
    let reopened = tx.reopen_tasks(run_id, now).await?;
    if reopened.is_empty() {
        return Err(StoreError::conflict(
            "status",
            "every task of the run completed: nothing is left to retry",
        ));
    }
    run.status = RunStatus::Running;
    run.end_time = None;
    run.actual_duration = None;
    run.error_data = None;
    run.cancel_requested_at = None;
    let sequential = run.strategy == Some(crate::model::run::RunStrategy::Sequential);
    tx.save_run(&run, now).await?;
    let mut events = vec![ev(
        "run.retried",
        Some(run_id),
        None,
        Some(&run.workflow_id),
        json!({"execution_id": run.execution_id, "reopened": reopened}),
    )];
    let ready = tx.promote_ready(run_id, sequential, now).await?;
    events.extend(
        ready
            .iter()
            .map(|t| ev("task.ready", Some(run_id), Some(*t), None, json!({}))),
    );
    tx.insert_events(&events, now).await?;
    tx.get_execution(run_id).await
}

/// Cancels a run (see [`crate::model::engine::EngineRepo::cancel_run`]).
pub async fn cancel_run<T: EngineTx + ?Sized>(
    tx: &mut T,
    run_id: RunId,
) -> StoreResult<WorkflowExecution> {
    let now = time::now();
    let run = tx
        .lock_run(run_id)
        .await?
        .ok_or_else(|| StoreError::not_found("run", run_id))?;
    if run.status.is_terminal() {
        return Err(StoreError::conflict(
            "status",
            format!("the run is already {}", run.status),
        ));
    }
    let mut events = Vec::new();
    let status = RunStatus::Cancelled;
    stop_run(tx, run, status, "run_cancelled", None, now, &mut events).await?;
    tx.insert_events(&events, now).await?;
    tx.get_execution(run_id).await
}
