//! The worker protocol: claim (long poll), heartbeat, complete, fail. The attempt
//! number from a claim is a fencing token: a stale one is refused with 409.
//!
//! A key other than an admin's works only on tasks of workflows it may execute (its
//! own, unowned ones, and those shared with it for execute or write; tasks of no
//! workflow too): a claim hands out no others, and a report on another is refused
//! (404 when the key may not read the workflow, 403 when it may only read it).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::Json as AxumJson;
use flowstore_core::ids::TaskId;
use flowstore_core::model::engine::{AttemptRef, ClaimRequest, ClaimedTask, Heartbeat, Transition};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::Tx;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Problem};
use crate::openapi as doc;
use crate::state::AppState;

/// The body of `POST /worker/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Who is asking.
    pub worker_id: String,
    /// The handler types this worker serves.
    pub handler_types: Vec<String>,
    /// Most tasks to return (1..=1000).
    pub limit: u32,
    /// How long each lease lasts before a heartbeat is needed (100..=3 600 000).
    pub lease_ms: u64,
    /// How long to wait for work when none is ready (at most the server's bound,
    /// 30 s by default); 0 answers at once.
    #[serde(default)]
    pub wait_ms: u64,
}

/// The body of `POST /worker/heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The task.
    pub task_id: TaskId,
    /// The attempt number from the claim.
    pub attempt: i32,
    /// The lease's new length from now.
    pub lease_ms: u64,
}

/// The body of `POST /worker/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The task.
    pub task_id: TaskId,
    /// The attempt number from the claim.
    pub attempt: i32,
    /// What the task produced (any JSON).
    #[serde(default)]
    pub output: Value,
}

/// The body of `POST /worker/fail`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// The task.
    pub task_id: TaskId,
    /// The attempt number from the claim.
    pub attempt: i32,
    /// What went wrong (any JSON).
    pub error: Value,
    /// Whether another attempt may succeed.
    #[serde(default)]
    pub retryable: bool,
}

/// Claims ready tasks; when none is ready, waits up to `wait_ms` for some.
#[utoipa::path(post, path = "/api/v1/worker/claim", tag = "worker", request_body = ClaimBody,
    responses((status = 200, body = [doc::ClaimedTask]), (status = 422, body = Problem)))]
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ClaimBody>,
) -> ApiResult<AxumJson<Vec<ClaimedTask>>> {
    let request = ClaimRequest {
        worker_id: body.worker_id,
        handler_types: body.handler_types,
        limit: body.limit,
        lease: Duration::from_millis(body.lease_ms),
        executor: Some(access::viewer(&caller)),
    };
    request.check().map_err(|e| match e {
        flowstore_core::StoreError::Invalid { field, reason } if field == "lease" => {
            Problem::invalid("lease_ms", format!("invalid lease_ms: {reason}"))
        }
        other => other.into(),
    })?;
    let max = state.config().max_claim_wait;
    let wait = Duration::from_millis(body.wait_ms);
    if wait > max {
        return Err(Problem::invalid(
            "wait_ms",
            format!(
                "{} is more than the {} ms allowed",
                body.wait_ms,
                max.as_millis()
            ),
        ));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = state.shutdown_signal();
    loop {
        // Register interest before looking, so a change between the look and the
        // wait is not missed.
        let notified = state.work_notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut tx = state.backend().begin().await?;
        let claimed = tx.claim(&request).await?;
        tx.commit().await?;
        let now = tokio::time::Instant::now();
        if !claimed.is_empty() || now >= deadline || state.shutting_down() {
            state
                .metrics()
                .claimed
                .fetch_add(claimed.len() as u64, Ordering::Relaxed);
            if !claimed.is_empty() {
                state.event_notify().notify_waiters();
            }
            return Ok(AxumJson(claimed));
        }
        let nap = state.config().poll_interval.min(deadline - now);
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(nap) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Extends a lease; tells the worker whether its run was cancelled.
#[utoipa::path(post, path = "/api/v1/worker/heartbeat", tag = "worker", request_body = HeartbeatBody,
    responses((status = 200, body = doc::Heartbeat), (status = 404, body = Problem), (status = 409, body = Problem, description = "stale attempt")))]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<HeartbeatBody>,
) -> ApiResult<AxumJson<Heartbeat>> {
    let lease = Duration::from_millis(body.lease_ms);
    flowstore_core::model::engine::check_lease(lease)
        .map_err(|e| Problem::invalid("lease_ms", e.to_string()))?;
    let attempt = AttemptRef {
        task_id: body.task_id,
        attempt: body.attempt,
    };
    let mut tx = state.backend().begin().await?;
    check_executes(&mut *tx, &caller, body.task_id).await?;
    let hb = tx.heartbeat(attempt, lease).await?;
    tx.commit().await?;
    Ok(AxumJson(hb))
}

/// Completes an attempt with its output.
#[utoipa::path(post, path = "/api/v1/worker/complete", tag = "worker", request_body = CompleteBody,
    responses((status = 200, body = doc::Transition), (status = 404, body = Problem), (status = 409, body = Problem, description = "stale attempt")))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CompleteBody>,
) -> ApiResult<AxumJson<Transition>> {
    let attempt = AttemptRef {
        task_id: body.task_id,
        attempt: body.attempt,
    };
    let mut tx = state.backend().begin().await?;
    check_executes(&mut *tx, &caller, body.task_id).await?;
    let t = tx.complete(attempt, body.output).await?;
    tx.commit().await?;
    state.notify_changed();
    Ok(AxumJson(t))
}

/// Fails an attempt; retried with backoff while retries remain and it is retryable.
#[utoipa::path(post, path = "/api/v1/worker/fail", tag = "worker", request_body = FailBody,
    responses((status = 200, body = doc::Transition), (status = 404, body = Problem), (status = 409, body = Problem, description = "stale attempt")))]
pub async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<FailBody>,
) -> ApiResult<AxumJson<Transition>> {
    let attempt = AttemptRef {
        task_id: body.task_id,
        attempt: body.attempt,
    };
    let mut tx = state.backend().begin().await?;
    check_executes(&mut *tx, &caller, body.task_id).await?;
    let t = tx.fail(attempt, body.error, body.retryable).await?;
    tx.commit().await?;
    state.notify_changed();
    Ok(AxumJson(t))
}

/// Refuses a report on a task of a workflow `caller` may not execute (see the
/// module's rule, which the claim query applies too).
async fn check_executes(tx: &mut dyn Tx, caller: &Caller, id: TaskId) -> ApiResult<()> {
    if caller.is_admin() {
        return Ok(());
    }
    let task = tx.get_task(id).await?;
    if let Some(w) = task.workflow_id {
        let wf = tx.get_workflow(w).await?;
        access::check_workflow(tx, caller, &wf, SharePermission::Execute)
            .await
            .map_err(|p| {
                if p.status == 404 {
                    Problem::not_found(format!("no task {id}"))
                } else {
                    p
                }
            })?;
    }
    Ok(())
}
