//! Runs of stored workflows: start, read, list, cancel, tasks, progress.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{RunId, TaskId, WorkflowId};
use flowstore_core::model::engine::{RunTask, StartRun, StartedRun};
use flowstore_core::model::run::{RunFilter, RunStatus, TaskAttempt, WorkflowExecution};
use flowstore_core::model::task::TaskStatus;
use flowstore_core::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;
use flowstore_core::model::workflow::SharePermission;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(start_batch))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(cancel))
        .routes(routes!(tasks))
        .routes(routes!(progress))
        .routes(routes!(attempts))
        .routes(routes!(rerun))
        .routes(routes!(retry))
}

/// The body of `POST /workflows/{id}/runs`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunBody {
    /// Which version; the workflow's current one when absent.
    #[serde(default)]
    pub version: Option<i32>,
    /// The caller's identifier of the run; generated when absent. Unique.
    #[serde(default)]
    pub execution_id: Option<String>,
    /// The run's input (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// The task this run works on.
    #[serde(default)]
    pub subject_task_id: Option<TaskId>,
    /// Priority added to each step's own.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Free-form metadata (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl StartRunBody {
    /// The start of a run of `workflow_id` this body asks for, on behalf of `caller`.
    fn start(self, workflow_id: WorkflowId, caller: &crate::auth::Caller) -> StartRun {
        StartRun {
            workflow_id,
            version: self.version,
            execution_id: self.execution_id,
            input: self.input,
            subject_task_id: self.subject_task_id,
            priority: self.priority,
            user_id: Some(caller.who()),
            metadata: self.metadata,
        }
    }
}

/// The most runs one `POST /workflows/{id}/runs/batch` starts.
pub const MAX_START_BATCH: usize = 1000;

/// The body of `POST /workflows/{id}/runs/batch`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunsBody {
    /// The runs to start, 1 to 1000, each as `POST /workflows/{id}/runs` takes one.
    pub runs: Vec<StartRunBody>,
}

/// A run a batch started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedRunRef {
    /// The run's ID.
    pub id: RunId,
    /// Its `execution_id` (the one given, or the one generated).
    pub execution_id: String,
    /// Where it stands (`running` once its first steps are ready).
    pub status: RunStatus,
}

/// What `POST /workflows/{id}/runs/batch` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedRuns {
    /// The runs started, in the order they were given.
    pub runs: Vec<StartedRunRef>,
}

paged_query_params! {
    /// Filters and page of `GET /runs`; every filter given must match.
    pub struct ListRuns {
        /// Only runs of this workflow (its ID, or seed 000's free-text workflow ID);
        /// the caller must be able to read it.
        pub workflow_id: Option<String>,
        /// Only runs in this status.
        pub status: Option<String>,
        /// Only runs created at or after this instant (RFC 3339).
        pub since: Option<String>,
        /// Only runs created before this instant (RFC 3339).
        pub until: Option<String>,
        /// Only runs this text names: a run ID, an `execution_id`, or part of the
        /// workflow's name.
        pub q: Option<String>,
    }
}

/// Wakes a waiting claim for each task of `started` that is ready (see
/// `AppState::notify_ready`).
pub(crate) fn wake_for(api: &Api, started: &StartedRun) {
    api.state.notify_ready(
        started
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Ready)
            .filter_map(|t| t.handler_type.as_deref()),
    );
}

/// Starts a run of a workflow version. Starts that arrive together are written in
/// one transaction (see [`crate::start_group`]); each is answered as if alone.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/runs", tag = "runs", request_body = StartRunBody,
    params(in_path::Workflow),
    responses((status = 201, body = doc::StartedRun), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the execution_id is already taken"), (status = 422, body = Problem)))]
pub async fn start(
    api: Api,
    Path(id): Path<WorkflowId>,
    Json(body): Json<StartRunBody>,
) -> ApiResult<impl IntoResponse> {
    let start = body.start(id, &api.caller);
    // Refused before it waits for a group, as it would be alone.
    start.check()?;
    let started = api
        .state
        .start_group()
        .start(api.clone(), id, start)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(started)))
}

/// The audit action of a run's start, alone or in a group.
pub(crate) const START_ACTION: &str = "run.start";

/// Starts a run in a transaction of its own: the caller's right, the run, its audit
/// entry, one commit; then wakes the claims waiting for its ready tasks.
pub(crate) async fn start_alone(
    api: &Api,
    id: WorkflowId,
    start: StartRun,
) -> ApiResult<StartedRun> {
    let mut tx = api.write().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Execute).await?;
    let started = tx.start_run(start).await?;
    api.commit(
        tx,
        START_ACTION,
        started.run.id,
        None,
        audit::json(&started.run),
    )
    .await?;
    wake_for(api, &started);
    Ok(started)
}

/// Starts many runs of a workflow in one transaction: all of them, or none when one
/// is refused (the problem names it, as `runs[i].field`). The audit log gets one
/// entry for the batch, naming the runs.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/runs/batch", tag = "runs", request_body = StartRunsBody,
    params(in_path::Workflow),
    responses((status = 201, body = StartedRuns), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "an execution_id is already taken"),
        (status = 422, body = Problem, description = "no runs, more than 1000, or one run's fields")))]
pub async fn start_batch(
    api: Api,
    Path(id): Path<WorkflowId>,
    Json(body): Json<StartRunsBody>,
) -> ApiResult<impl IntoResponse> {
    if body.runs.is_empty() || body.runs.len() > MAX_START_BATCH {
        return Err(Problem::invalid(
            "runs",
            format!(
                "{} runs given; 1..={MAX_START_BATCH} are allowed",
                body.runs.len()
            ),
        ));
    }
    let mut tx = api.write().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Execute).await?;
    let starts = body
        .runs
        .into_iter()
        .map(|b| b.start(id, &api.caller))
        .collect();
    let runs: Vec<StartedRunRef> = tx
        .start_runs(starts)
        .await?
        .into_iter()
        .map(|StartedRun { run, .. }| StartedRunRef {
            id: run.id,
            execution_id: run.execution_id,
            status: run.status,
        })
        .collect();
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    api.commit(
        tx,
        "run.start_batch",
        id,
        None,
        Some(serde_json::json!({ "runs": ids })),
    )
    .await?;
    api.state.notify_changed();
    Ok((StatusCode::CREATED, AxumJson(StartedRuns { runs })))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(in_path::Run),
    responses((status = 200, body = doc::Run), (status = 404, body = Problem)))]
pub async fn get(api: Api, Path(id): Path<RunId>) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(
        access::run(&mut *tx, &api.caller, id, SharePermission::Read).await?,
    ))
}

/// A page of the runs the caller may read, across workflows, newest first by
/// creation time (then by ID: seed 000's clients insert runs with random IDs).
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListRuns),
    responses((status = 200, body = doc::RunPage), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn list(
    api: Api,
    Query(q): Query<ListRuns>,
) -> ApiResult<AxumJson<Page<WorkflowExecution>>> {
    let filter = RunFilter {
        workflow_id: q.workflow_id.filter(|w| !w.trim().is_empty()),
        status: super::parse_opt::<RunStatus>("status", q.status.as_deref())?,
        since: super::instant("since", q.since.as_deref())?,
        until: super::instant("until", q.until.as_deref())?,
        text: q.q.filter(|t| !t.trim().is_empty()),
        viewer: Some(api.caller.viewer()),
    };
    let mut tx = api.lagging_read().await?;
    if let Some(w) = &filter.workflow_id {
        access::check_workflow_named(&mut *tx, &api.caller, w, SharePermission::Read).await?;
    }
    Ok(AxumJson(
        tx.list_runs(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// A page of the runs of the workflow `workflow_id` names (required; the caller must
/// be able to read it), newest first, optionally only those in `status`: the answer
/// of `GET /runs` and of seed 000's `GET /executions`.
pub(super) async fn workflow_runs(
    api: &Api,
    workflow_id: Option<String>,
    status: Option<&str>,
    page: PageRequest,
) -> ApiResult<AxumJson<Page<WorkflowExecution>>> {
    let workflow_id = workflow_id
        .filter(|w| !w.trim().is_empty())
        .ok_or_else(|| Problem::invalid("workflow_id", "workflow_id is required"))?;
    let status = super::parse_opt::<RunStatus>("status", status)?;
    let mut tx = api.read().await?;
    access::check_workflow_named(&mut *tx, &api.caller, &workflow_id, SharePermission::Read)
        .await?;
    Ok(AxumJson(
        tx.list_by_workflow(&workflow_id, status, &page).await?,
    ))
}

/// Cancels a run: tasks not started are cancelled; running attempts learn it on
/// their next heartbeat.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(in_path::Run),
    responses((status = 200, body = doc::Run), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(api: Api, Path(id): Path<RunId>) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = api.write().await?;
    let before = access::run(&mut *tx, &api.caller, id, SharePermission::Execute).await?;
    let run = tx.cancel_run(id).await?;
    api.commit_change(tx, "run.cancel", id, &before, &run)
        .await?;
    api.state.notify_changed();
    Ok(AxumJson(run))
}

/// The tasks of a run.
#[utoipa::path(get, path = "/api/v1/runs/{id}/tasks", tag = "runs",
    params(in_path::Run),
    responses((status = 200, body = [doc::RunTask]), (status = 404, body = Problem)))]
pub async fn tasks(api: Api, Path(id): Path<RunId>) -> ApiResult<AxumJson<Vec<RunTask>>> {
    let mut tx = api.read().await?;
    access::run(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.run_tasks(id).await?))
}

/// The attempts at a run's tasks, in the order they were made: when each started
/// and ended, which worker held it, its error or output, and what it cost.
#[utoipa::path(get, path = "/api/v1/runs/{id}/attempts", tag = "runs",
    params(in_path::Run),
    responses((status = 200, body = [TaskAttempt]), (status = 404, body = Problem)))]
pub async fn attempts(api: Api, Path(id): Path<RunId>) -> ApiResult<AxumJson<Vec<TaskAttempt>>> {
    let mut tx = api.read().await?;
    access::run(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.list_run_attempts(id).await?))
}

/// Starts a new run of the same workflow version with the same input, subject task
/// and metadata (its `rerun_of` names this run); the caller must be able to execute
/// the workflow. A run of no stored workflow (seed 000's) cannot be re-run.
#[utoipa::path(post, path = "/api/v1/runs/{id}/rerun", tag = "runs",
    params(in_path::Run),
    responses((status = 201, body = doc::StartedRun), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the run names no stored workflow or version")))]
pub async fn rerun(api: Api, Path(id): Path<RunId>) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    let before = access::run(&mut *tx, &api.caller, id, SharePermission::Execute).await?;
    // The version number the run recorded; its `workflow_version_id` says the
    // version still exists (deleting a version blanks it).
    let version = before
        .workflow_version
        .as_deref()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|_| before.workflow_version_id.is_some());
    let (Some(workflow_id), Some(version)) = (before.workflow_ref, version) else {
        return Err(flowstore_core::StoreError::conflict(
            "workflow_ref",
            "this run names no stored workflow version: start the workflow instead",
        )
        .into());
    };
    let mut metadata = before
        .metadata
        .clone()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Default::default()));
    metadata["rerun_of"] = Value::String(before.id.to_string());
    let started = tx
        .start_run(StartRun {
            workflow_id,
            version: Some(version),
            execution_id: None,
            input: Some(before.input.clone()),
            subject_task_id: before.task_id,
            // A run records 1 when started with no priority of its own.
            priority: before.priority.filter(|p| *p != 1),
            user_id: Some(api.caller.who()),
            metadata: Some(metadata),
        })
        .await?;
    api.commit(
        tx,
        "run.rerun",
        started.run.id,
        audit::json(&before),
        audit::json(&started.run),
    )
    .await?;
    wake_for(&api, &started);
    Ok((StatusCode::CREATED, AxumJson(started)))
}

/// Retries a run that failed, was cancelled or timed out: the tasks that did not
/// complete run again (with their retries counted afresh; completed ones keep their
/// results), and the run is running until they end.
#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs",
    params(in_path::Run),
    responses((status = 200, body = doc::Run), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the run is not over, completed, or past its deadline")))]
pub async fn retry(api: Api, Path(id): Path<RunId>) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = api.write().await?;
    let before = access::run(&mut *tx, &api.caller, id, SharePermission::Execute).await?;
    let run = tx.retry_run(id).await?;
    api.commit_change(tx, "run.retry", id, &before, &run)
        .await?;
    api.state.notify_changed();
    Ok(AxumJson(run))
}

/// Counts of a run's tasks by status.
#[utoipa::path(get, path = "/api/v1/runs/{id}/progress", tag = "runs",
    params(in_path::Run),
    responses((status = 200, body = doc::TaskProgress), (status = 404, body = Problem)))]
pub async fn progress(api: Api, Path(id): Path<RunId>) -> ApiResult<impl IntoResponse> {
    let mut tx = api.read().await?;
    access::run(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.run_progress(id).await?))
}
