//! A workflow's life beyond create and change: archive, delete, duplicate, one
//! version, and its summary. Access by [`crate::access`] as for the workflow itself.
//!
//! Deleting is for workflows that never ran: a run's tasks go with their workflow,
//! so a workflow with runs is kept for the record and archived instead (its runs
//! and statistics stay readable, and it can no longer be started).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::WorkflowId;
use flowstore_core::model::summary::WorkflowSummary;
use flowstore_core::model::workflow::{SharePermission, Workflow, WorkflowVersion};
use flowstore_core::StoreError;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::error::{ApiResult, Json, Path, Problem};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delete))
        .routes(routes!(archive))
        .routes(routes!(duplicate))
        .routes(routes!(version))
        .routes(routes!(summary))
}

/// The body of `POST /workflows/{id}/duplicate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateBody {
    /// The copy's name; required, at most 255 characters.
    pub name: String,
}

/// Archives a workflow: it stays readable with its runs but can no longer be
/// started. Archiving again keeps the first `archived_at`.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/archive", tag = "workflows",
    params(in_path::Workflow),
    responses((status = 200, body = doc::Workflow), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn archive(api: Api, Path(id): Path<WorkflowId>) -> ApiResult<AxumJson<Workflow>> {
    let mut tx = api.write().await?;
    let before = access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let w = tx.archive_workflow(id).await?;
    api.commit_change(tx, "workflow.archive", id, &before, &w)
        .await?;
    Ok(AxumJson(w))
}

/// Deletes a workflow with its versions and shares. One that has runs is a 409:
/// archive it instead.
#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(in_path::Workflow),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(api: Api, Path(id): Path<WorkflowId>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let before = access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    if tx.workflow_has_runs(id).await? {
        return Err(StoreError::conflict(
            "workflow",
            "this workflow has runs, which would lose their tasks; archive it instead \
             (POST /api/v1/workflows/{id}/archive)",
        )
        .into());
    }
    tx.delete_workflow(id).await?;
    api.commit(tx, "workflow.delete", id, audit::json(&before), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies a workflow (its current definition, configuration and settings) as a
/// private draft named `name`, owned by the caller, with its own version 1 and
/// `parent_workflow_id` pointing back. Anyone who may read the workflow may copy it.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/duplicate", tag = "workflows", request_body = DuplicateBody,
    params(in_path::Workflow),
    responses((status = 201, body = doc::Workflow), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn duplicate(
    api: Api,
    Path(id): Path<WorkflowId>,
    Json(body): Json<DuplicateBody>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    let copy = tx
        .duplicate_workflow(id, &body.name, api.caller.0.user_id)
        .await?;
    let after = serde_json::json!({ "copy_of": id, "workflow": copy });
    api.commit(tx, "workflow.duplicate", copy.id, None, Some(after))
        .await?;
    Ok((StatusCode::CREATED, AxumJson(copy)))
}

/// One version of a workflow.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions/{version}", tag = "workflows",
    params(in_path::Workflow, ("version" = i32, Path, description = "version number, from 1")),
    responses((status = 200, body = doc::WorkflowVersion), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn version(
    api: Api,
    Path((id, version)): Path<(WorkflowId, i32)>,
) -> ApiResult<AxumJson<WorkflowVersion>> {
    let mut tx = api.read().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.get_workflow_version(id, version).await?))
}

/// A workflow at a glance: its runs by status, their statistics (read from the
/// counters the database keeps, so as cheap at a million runs as at ten) and its
/// tasks by status.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/summary", tag = "workflows",
    params(in_path::Workflow),
    responses((status = 200, body = WorkflowSummary), (status = 404, body = Problem)))]
pub async fn summary(api: Api, Path(id): Path<WorkflowId>) -> ApiResult<AxumJson<WorkflowSummary>> {
    let mut tx = api.read().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    let text = id.to_string();
    let runs = tx.run_counts(&text).await?;
    let statistics = tx.workflow_statistics(&text, None).await?;
    let tasks = tx.workflow_progress(id).await?;
    Ok(AxumJson(WorkflowSummary {
        runs,
        statistics,
        tasks,
    }))
}
