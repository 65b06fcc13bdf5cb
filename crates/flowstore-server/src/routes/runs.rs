//! Runs of stored workflows: start, read, list, cancel, tasks, progress.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{RunId, TaskId, WorkflowId};
use flowstore_core::model::engine::{RunTask, StartRun};
use flowstore_core::model::run::{RunStatus, WorkflowExecution};
use flowstore_core::Page;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;
use flowstore_core::model::workflow::SharePermission;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(cancel))
        .routes(routes!(tasks))
        .routes(routes!(progress))
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

/// Filters and page of `GET /runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRuns {
    /// The workflow whose runs to list (required).
    pub workflow_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// Starts a run of a workflow version.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/runs", tag = "runs", request_body = StartRunBody,
    params(("id" = String, Path, description = "workflow ID")),
    responses((status = 201, body = doc::StartedRun), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the execution_id is already taken"), (status = 422, body = Problem)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<WorkflowId>,
    Json(body): Json<StartRunBody>,
) -> ApiResult<impl IntoResponse> {
    let start = StartRun {
        workflow_id: id,
        version: body.version,
        execution_id: body.execution_id,
        input: body.input,
        subject_task_id: body.subject_task_id,
        priority: body.priority,
        user_id: Some(caller.who()),
        metadata: body.metadata,
    };
    let mut tx = state.backend().begin().await?;
    access::workflow(&mut *tx, &caller, id, SharePermission::Execute).await?;
    let started = tx.start_run(start).await?;
    audit::record(
        &mut *tx,
        &caller,
        "run.start",
        "run",
        started.run.id,
        None,
        audit::json(&started.run),
    )
    .await?;
    tx.commit().await?;
    state.notify_changed();
    Ok((StatusCode::CREATED, AxumJson(started)))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "run ID")),
    responses((status = 200, body = doc::Run), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<RunId>,
) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        access::run(&mut *tx, &caller, id, SharePermission::Read).await?,
    ))
}

/// A page of one workflow's runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListRuns),
    responses((status = 200, body = doc::RunPage), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListRuns>,
) -> ApiResult<AxumJson<Page<WorkflowExecution>>> {
    let workflow_id = q
        .workflow_id
        .filter(|w| !w.trim().is_empty())
        .ok_or_else(|| Problem::invalid("workflow_id", "workflow_id is required"))?;
    let status = super::parse_opt::<RunStatus>("status", q.status.as_deref())?;
    let mut tx = state.backend().begin_read().await?;
    access::check_workflow_named(&mut *tx, &caller, &workflow_id, SharePermission::Read).await?;
    Ok(AxumJson(
        tx.list_by_workflow(&workflow_id, status, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Cancels a run: tasks not started are cancelled; running attempts learn it on
/// their next heartbeat.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "run ID")),
    responses((status = 200, body = doc::Run), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<RunId>,
) -> ApiResult<AxumJson<WorkflowExecution>> {
    let mut tx = state.backend().begin().await?;
    let before = access::run(&mut *tx, &caller, id, SharePermission::Execute).await?;
    let run = tx.cancel_run(id).await?;
    audit::record(
        &mut *tx,
        &caller,
        "run.cancel",
        "run",
        id,
        audit::json(&before),
        audit::json(&run),
    )
    .await?;
    tx.commit().await?;
    state.notify_changed();
    Ok(AxumJson(run))
}

/// The tasks of a run.
#[utoipa::path(get, path = "/api/v1/runs/{id}/tasks", tag = "runs",
    params(("id" = String, Path, description = "run ID")),
    responses((status = 200, body = [doc::RunTask]), (status = 404, body = Problem)))]
pub async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<RunId>,
) -> ApiResult<AxumJson<Vec<RunTask>>> {
    let mut tx = state.backend().begin_read().await?;
    access::run(&mut *tx, &caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.run_tasks(id).await?))
}

/// Counts of a run's tasks by status.
#[utoipa::path(get, path = "/api/v1/runs/{id}/progress", tag = "runs",
    params(("id" = String, Path, description = "run ID")),
    responses((status = 200, body = doc::TaskProgress), (status = 404, body = Problem)))]
pub async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<RunId>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.backend().begin_read().await?;
    access::run(&mut *tx, &caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.run_progress(id).await?))
}
