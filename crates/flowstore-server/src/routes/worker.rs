//! The worker protocol: claim (long poll), heartbeat, complete, fail. The attempt
//! number from a claim is a fencing token: a stale one is refused with 409.
//!
//! A key other than an admin's works only on tasks of workflows it may execute (its
//! own, unowned ones, and those shared with it for execute or write; tasks of no
//! workflow too): a claim hands out no others, and a report on another is refused
//! (404 when the key may not read the workflow, 403 when it may only read it).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json as AxumJson;
use flowstore_core::ids::{TaskId, WorkflowId};
use flowstore_core::model::engine::{
    AttemptRef, ClaimRequest, ClaimedTask, Heartbeat, Transition, MAX_CLAIM,
};
use flowstore_core::model::run::Usage;
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::{StoreError, Tx};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Problem};
use crate::openapi as doc;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(claim))
        .routes(routes!(heartbeat))
        .routes(routes!(complete))
        .routes(routes!(complete_batch))
        .routes(routes!(fail))
}

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
    /// What the attempt cost, when the worker measures it.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The body of `POST /worker/complete-batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBatchBody {
    /// The attempts to complete (1..=1000), each as `POST /worker/complete` takes it.
    pub items: Vec<CompleteBody>,
}

/// One attempt's result in `POST /worker/complete-batch`: a transition, or the
/// problem `POST /worker/complete` would have answered for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompleteBatchResult {
    /// The task.
    #[schema(value_type = String)]
    pub task_id: TaskId,
    /// The attempt number reported.
    pub attempt: i32,
    /// The outcome, when the attempt was completed (or had already been completed
    /// with the same output).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<doc::Transition>)]
    pub transition: Option<Transition>,
    /// Why it was refused: 409 for a stale attempt or another output, 404 for an
    /// unknown task, 422 for an output too large.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// The answer of `POST /worker/complete-batch`: one result per attempt, in the order
/// given.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompleteBatchAnswer {
    /// The results.
    pub results: Vec<CompleteBatchResult>,
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
    /// What the attempt cost, when the worker measures it.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// Claims ready tasks; when none is ready, waits up to `wait_ms` for some.
#[utoipa::path(post, path = "/api/v1/worker/claim", tag = "worker", request_body = ClaimBody,
    responses((status = 200, body = [doc::ClaimedTask]), (status = 422, body = Problem)))]
pub async fn claim(api: Api, Json(body): Json<ClaimBody>) -> ApiResult<AxumJson<Vec<ClaimedTask>>> {
    let request = ClaimRequest {
        worker_id: body.worker_id,
        handler_types: body.handler_types,
        limit: body.limit,
        lease: Duration::from_millis(body.lease_ms),
        executor: Some(api.caller.viewer()),
    };
    request.check().map_err(|e| match e {
        flowstore_core::StoreError::Invalid { field, reason } if field == "lease" => {
            Problem::invalid("lease_ms", format!("invalid lease_ms: {reason}"))
        }
        other => other.into(),
    })?;
    let max = api.state.config().max_claim_wait;
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
    let _waiting = crate::metrics::Held::new(&api.state, |m| &m.waiting_claims);
    let mut shutdown = api.state.shutdown_signal();
    let place = api.state.wait_for_work(&request.handler_types);
    loop {
        // Register interest before looking, so a change between the look and the
        // wait is not missed.
        let notified = api.state.work_notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let woken = place.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let targeted = place.was_targeted();
        // In a transaction of its own, which SQLite may commit together with other
        // workers' claims (see `Backend::claim_now`).
        let claimed = api.state.backend().claim_now(&request).await?;
        if claimed.is_empty() {
            api.state
                .metrics()
                .claims_found_nothing
                .fetch_add(1, Ordering::Relaxed);
            if targeted {
                // Woken for a task this claim did not get: let every claim look.
                api.state.work_notify().notify_waiters();
            }
        }
        let now = tokio::time::Instant::now();
        if !claimed.is_empty() || now >= deadline || api.state.shutting_down() {
            api.state
                .metrics()
                .claimed
                .fetch_add(claimed.len() as u64, Ordering::Relaxed);
            if !claimed.is_empty() {
                api.state.event_notify().notify_waiters();
            }
            return Ok(AxumJson(claimed));
        }
        let nap = api.state.wait_interval().min(deadline - now);
        tokio::select! {
            _ = &mut notified => {}
            _ = &mut woken => {}
            _ = tokio::time::sleep(nap) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Extends a lease; tells the worker whether its run was cancelled.
#[utoipa::path(post, path = "/api/v1/worker/heartbeat", tag = "worker", request_body = HeartbeatBody,
    responses((status = 200, body = doc::Heartbeat), (status = 404, body = Problem), (status = 409, body = Problem, description = "stale attempt")))]
pub async fn heartbeat(
    api: Api,
    Json(body): Json<HeartbeatBody>,
) -> ApiResult<AxumJson<Heartbeat>> {
    let lease = Duration::from_millis(body.lease_ms);
    flowstore_core::model::engine::check_lease(lease)
        .map_err(|e| Problem::invalid("lease_ms", e.to_string()))?;
    // The backend's own heartbeat, which a backend may commit together with other
    // workers' transitions (see `Backend::claim_now`), after the caller's right to
    // execute the task is checked in a read.
    let attempt = reported(&api, body.task_id, body.attempt).await?;
    let hb = api.state.backend().heartbeat_now(attempt, lease).await?;
    Ok(AxumJson(hb))
}

/// Completes an attempt with its output.
#[utoipa::path(post, path = "/api/v1/worker/complete", tag = "worker", request_body = CompleteBody,
    responses((status = 200, body = doc::Transition), (status = 404, body = Problem), (status = 409, body = Problem, description = "stale attempt")))]
pub async fn complete(api: Api, Json(body): Json<CompleteBody>) -> ApiResult<AxumJson<Transition>> {
    checked(&body.usage)?;
    let t = if body.usage.as_ref().is_none_or(Usage::is_empty) {
        // Nothing but the transition to write: it goes to the backend's own
        // completion, which commits it together with other workers' completions
        // arriving meanwhile (see `Backend::complete_now`). The caller's right to
        // execute the task is checked first, as the claim checked it.
        let attempt = reported(&api, body.task_id, body.attempt).await?;
        api.state
            .backend()
            .complete_now(attempt, body.output)
            .await?
    } else {
        let (mut tx, attempt) = report(&api, body.task_id, body.attempt).await?;
        let t = tx.complete(attempt, body.output).await?;
        record_usage(&mut *tx, attempt, body.usage).await?;
        tx.commit().await?;
        t
    };
    after_completions(&api, !t.newly_ready.is_empty());
    Ok(AxumJson(t))
}

/// Completes many attempts. Each gets its own result, once it is durable: a stale or
/// unknown attempt is reported in its place and does not stop the others. Without
/// usage figures the batch goes to the backend's own completion, which writes its
/// items together and with other workers' completions arriving meanwhile (as
/// `complete` does); with them, every item and its usage are written in one
/// transaction.
#[utoipa::path(post, path = "/api/v1/worker/complete-batch", tag = "worker",
    request_body = CompleteBatchBody,
    responses((status = 200, body = CompleteBatchAnswer, description = "one result per attempt, in order"),
        (status = 422, body = Problem, description = "no attempts, or more than 1000")))]
pub async fn complete_batch(
    api: Api,
    Json(body): Json<CompleteBatchBody>,
) -> ApiResult<AxumJson<CompleteBatchAnswer>> {
    if body.items.is_empty() || body.items.len() > MAX_CLAIM as usize {
        return Err(Problem::invalid(
            "items",
            format!(
                "{} attempts given; 1..={MAX_CLAIM} are allowed",
                body.items.len()
            ),
        ));
    }
    for (i, b) in body.items.iter().enumerate() {
        checked(&b.usage).map_err(|p| p.with_field(format!("items[{i}].usage")))?;
    }
    let refs: Vec<AttemptRef> = body
        .items
        .iter()
        .map(|b| AttemptRef {
            task_id: b.task_id,
            attempt: b.attempt,
        })
        .collect();
    // A report on a task the key may not execute is refused in its place, with the
    // problem `complete` would answer; the others go on.
    let mut problems: Vec<Option<Problem>> = refs.iter().map(|_| None).collect();
    let with_usage = body
        .items
        .iter()
        .any(|b| b.usage.as_ref().is_some_and(|u| !u.is_empty()));
    // The caller's right to execute each task, checked in a read before anything is
    // written (an admin's without one).
    let items = if api.caller.is_admin() {
        body.items
    } else {
        let mut tx = api.state.backend().begin_read().await?;
        executable(&mut *tx, &api.caller, body.items, &mut problems).await?
    };
    let (items, usages): (Vec<(AttemptRef, Value)>, Vec<_>) = items
        .into_iter()
        .map(|b| {
            let a = AttemptRef {
                task_id: b.task_id,
                attempt: b.attempt,
            };
            ((a, b.output), (a, b.usage))
        })
        .unzip();
    let outcomes = if items.is_empty() {
        Vec::new()
    } else if with_usage {
        // Usage figures are written in the transitions' own transaction.
        let mut tx = api.state.backend().begin_transition().await?;
        let outcomes = tx.complete_many(items).await?;
        for ((a, usage), outcome) in usages.into_iter().zip(&outcomes) {
            if outcome.is_ok() {
                record_usage(&mut *tx, a, usage).await?;
            }
        }
        tx.commit().await?;
        outcomes
    } else {
        // Nothing but the transitions to write: the backend's own completion, which
        // commits them together with other workers' (as `complete` does).
        api.state.backend().complete_many_now(items).await?
    };
    let readied = outcomes
        .iter()
        .any(|o| o.as_ref().is_ok_and(|t| !t.newly_ready.is_empty()));
    let mut outcomes = outcomes.into_iter();
    after_completions(&api, readied);
    let results = refs
        .into_iter()
        .zip(problems)
        .map(|(a, refused)| {
            let (transition, problem) = match refused {
                Some(p) => (None, Some(p)),
                None => match outcomes.next() {
                    Some(Ok(t)) => (Some(t), None),
                    Some(Err(e)) => (None, Some(Problem::from(e))),
                    None => (
                        None,
                        Some(Problem::from(flowstore_core::StoreError::not_found(
                            "task", a.task_id,
                        ))),
                    ),
                },
            };
            CompleteBatchResult {
                task_id: a.task_id,
                attempt: a.attempt,
                transition,
                problem,
            }
        })
        .collect();
    Ok(AxumJson(CompleteBatchAnswer { results }))
}

/// Fails an attempt; retried with backoff while retries remain and it is retryable.
#[utoipa::path(post, path = "/api/v1/worker/fail", tag = "worker", request_body = FailBody,
    responses((status = 200, body = doc::Transition), (status = 404, body = Problem), (status = 409, body = Problem, description = "stale attempt")))]
pub async fn fail(api: Api, Json(body): Json<FailBody>) -> ApiResult<AxumJson<Transition>> {
    checked(&body.usage)?;
    let t = if body.usage.as_ref().is_none_or(Usage::is_empty) {
        // Nothing but the transition to write: the backend's own, as for `complete`.
        let attempt = reported(&api, body.task_id, body.attempt).await?;
        api.state
            .backend()
            .fail_now(attempt, body.error, body.retryable)
            .await?
    } else {
        let (mut tx, attempt) = report(&api, body.task_id, body.attempt).await?;
        let t = tx.fail(attempt, body.error, body.retryable).await?;
        record_usage(&mut *tx, attempt, body.usage).await?;
        tx.commit().await?;
        t
    };
    api.state.notify_changed();
    Ok(AxumJson(t))
}

/// Refuses usage figures that are negative, before any transaction is opened.
fn checked(usage: &Option<Usage>) -> ApiResult<()> {
    match usage {
        Some(u) => u.check().map_err(|e| match e {
            flowstore_core::StoreError::Invalid { field, reason } => {
                Problem::invalid(format!("usage.{field}"), reason)
            }
            other => other.into(),
        }),
        None => Ok(()),
    }
}

/// Records what an accepted report says the attempt cost, in the report's
/// transaction (nothing when it says nothing).
async fn record_usage(tx: &mut dyn Tx, a: AttemptRef, usage: Option<Usage>) -> ApiResult<()> {
    match usage.filter(|u| !u.is_empty()) {
        Some(u) => Ok(tx.record_usage(a.task_id, a.attempt, u).await?),
        None => Ok(()),
    }
}

/// Tells of committed completions. They make work only where they readied tasks,
/// whose handler types are not known here, so then every waiting claim looks; else
/// none does.
fn after_completions(api: &Api, readied: bool) {
    if readied {
        api.state.notify_changed();
    } else {
        api.state.notify_unclaimable();
    }
}

/// The transition's transaction of a report on `attempt` of task `task_id`, opened
/// once the caller's right to execute the task is checked in a read (on SQLite the
/// transaction holds the writer's place; the check need not). A share revoked
/// between the two lets this one report through, as for every other report; a
/// task's workflow never changes.
async fn report(api: &Api, task_id: TaskId, attempt: i32) -> ApiResult<(Box<dyn Tx>, AttemptRef)> {
    let attempt = reported(api, task_id, attempt).await?;
    Ok((api.state.backend().begin_transition().await?, attempt))
}

/// The attempt a report names, once the caller's right to execute its task is
/// checked in a read (an admin's without one); for reports that the backend then
/// writes in a transaction of its own (`Backend::complete_now` and its siblings).
async fn reported(api: &Api, task_id: TaskId, attempt: i32) -> ApiResult<AttemptRef> {
    if !api.caller.is_admin() {
        let mut tx = api.state.backend().begin_read().await?;
        may_execute(&mut *tx, &api.caller, &[task_id])
            .await?
            .pop()
            .unwrap_or_else(|| Err(hidden_task(task_id)))?;
    }
    Ok(AttemptRef { task_id, attempt })
}

/// The reports of a batch on tasks `caller` (not an admin) may execute, in order;
/// each refused one has its problem put in its place in `problems` (a fault of the
/// database ends the whole batch).
async fn executable(
    tx: &mut dyn Tx,
    caller: &Caller,
    items: Vec<CompleteBody>,
    problems: &mut [Option<Problem>],
) -> ApiResult<Vec<CompleteBody>> {
    let ids: Vec<TaskId> = items.iter().map(|b| b.task_id).collect();
    let verdicts = may_execute(tx, caller, &ids).await?;
    let mut allowed = Vec::with_capacity(items.len());
    for ((i, b), verdict) in items.into_iter().enumerate().zip(verdicts) {
        match verdict {
            Ok(()) => allowed.push(b),
            Err(p) => problems[i] = Some(p),
        }
    }
    Ok(allowed)
}

/// Whether `caller`, who is not an admin, may execute each of the tasks `ids`, in
/// order (see the module's rule, which the claim query applies too): the tasks'
/// workflows are read in one statement, and each workflow is checked once, however
/// many of its tasks are named. A fault of the database is the call's error.
async fn may_execute(
    tx: &mut dyn Tx,
    caller: &Caller,
    ids: &[TaskId],
) -> ApiResult<Vec<ApiResult<()>>> {
    let workflows: HashMap<TaskId, Option<WorkflowId>> =
        tx.task_workflows(ids).await?.into_iter().collect();
    let mut checked: HashMap<WorkflowId, ApiResult<()>> = HashMap::new();
    let mut verdicts = Vec::with_capacity(ids.len());
    for &id in ids {
        // A task of no workflow is anyone's.
        let verdict = match workflows.get(&id) {
            None => Err(hidden_task(id)),
            Some(None) => Ok(()),
            Some(Some(w)) => match checked.get(w) {
                Some(v) => v.clone(),
                None => {
                    let v = workflow_verdict(tx, caller, *w).await;
                    if let Err(p) = &v {
                        if p.status >= 500 {
                            return Err(p.clone());
                        }
                    }
                    checked.insert(*w, v.clone());
                    v
                }
            },
        };
        verdicts.push(verdict.map_err(|p| if p.status == 404 { hidden_task(id) } else { p }));
    }
    Ok(verdicts)
}

/// Whether `caller` may execute the tasks of workflow `w`: 404 when it may not even
/// read the workflow, or the workflow is gone (deleted since its task was read; its
/// tasks go with it), 403 when it may read but not execute it.
async fn workflow_verdict(tx: &mut dyn Tx, caller: &Caller, w: WorkflowId) -> ApiResult<()> {
    let wf = match tx.get_workflow(w).await {
        Ok(wf) => wf,
        Err(StoreError::NotFound { .. }) => return Err(Problem::not_found("workflow")),
        Err(e) => return Err(e.into()),
    };
    access::check_workflow(tx, caller, &wf, SharePermission::Execute).await
}

/// What a caller who is not an admin hears of a task it may not execute, of one that
/// does not exist and of one whose workflow is gone: the same answer, so that it
/// cannot tell them apart.
fn hidden_task(id: TaskId) -> Problem {
    Problem::not_found(format!("no task {id}"))
}
