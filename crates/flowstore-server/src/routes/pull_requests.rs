//! Pull requests: create, read, move status, set validation, list. Every key may
//! read them; changes are for the project's owner (or an unowned project's users)
//! and admins.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, PullRequestId, TaskId};
use flowstore_core::model::pull_request::{
    NewPullRequest, PullRequest, PullRequestFilter, PullRequestStatus,
};
use flowstore_core::Page;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;

/// Filters and page of `GET /pull-requests`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPullRequests {
    /// Only this project's.
    pub project_id: Option<String>,
    /// Only in this status.
    pub status: Option<String>,
    /// Only this task's.
    pub task_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// The body of `POST /pull-requests/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// draft, open, merged, closed… (moves the rules refuse are 409).
    pub status: String,
}

/// The body of `PUT /pull-requests/{id}/validation`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationBody {
    /// The validation results (a JSON object).
    #[schema(value_type = Object)]
    pub validation_results: Value,
}

async fn check_change(
    tx: &mut dyn flowstore_core::Tx,
    caller: &Caller,
    project: ProjectId,
) -> ApiResult<()> {
    let owner = tx.get_project(project).await?.owner_id;
    access::owner_or_admin(caller, &[owner], "project")
}

/// Creates a pull request.
#[utoipa::path(post, path = "/api/v1/pull-requests", tag = "pull-requests", request_body = doc::NewPullRequest,
    responses((status = 201, body = doc::PullRequest), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewPullRequest>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.backend().begin().await?;
    match tx.get_project(new.project_id).await {
        Ok(p) => access::owner_or_admin(&caller, &[p.owner_id], "project")?,
        Err(flowstore_core::StoreError::NotFound { .. }) => {
            return Err(Problem::invalid("project_id", "no such project"))
        }
        Err(e) => return Err(e.into()),
    }
    let pr = tx.create_pull_request(new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(pr)))
}

/// One pull request.
#[utoipa::path(get, path = "/api/v1/pull-requests/{id}", tag = "pull-requests",
    params(("id" = String, Path, description = "pull request ID")),
    responses((status = 200, body = doc::PullRequest), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<PullRequestId>,
) -> ApiResult<AxumJson<PullRequest>> {
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(tx.get_pull_request(id).await?))
}

/// Moves a pull request to another status.
#[utoipa::path(post, path = "/api/v1/pull-requests/{id}/status", tag = "pull-requests", request_body = StatusBody,
    params(("id" = String, Path, description = "pull request ID")),
    responses((status = 200, body = doc::PullRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PullRequestId>,
    Json(body): Json<StatusBody>,
) -> ApiResult<AxumJson<PullRequest>> {
    let status = super::parse_opt::<PullRequestStatus>("status", Some(&body.status))?
        .ok_or_else(|| Problem::invalid("status", "status is required"))?;
    let mut tx = state.backend().begin().await?;
    let pr = tx.get_pull_request(id).await?;
    check_change(&mut *tx, &caller, pr.project_id).await?;
    let pr = tx.update_pull_request_status(id, status).await?;
    tx.commit().await?;
    Ok(AxumJson(pr))
}

/// Replaces a pull request's validation results.
#[utoipa::path(put, path = "/api/v1/pull-requests/{id}/validation", tag = "pull-requests", request_body = ValidationBody,
    params(("id" = String, Path, description = "pull request ID")),
    responses((status = 200, body = doc::PullRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_validation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<PullRequestId>,
    Json(body): Json<ValidationBody>,
) -> ApiResult<AxumJson<PullRequest>> {
    let mut tx = state.backend().begin().await?;
    let pr = tx.get_pull_request(id).await?;
    check_change(&mut *tx, &caller, pr.project_id).await?;
    let pr = tx
        .set_pull_request_validation(id, body.validation_results)
        .await?;
    tx.commit().await?;
    Ok(AxumJson(pr))
}

/// A page of pull requests, newest first.
#[utoipa::path(get, path = "/api/v1/pull-requests", tag = "pull-requests", params(ListPullRequests),
    responses((status = 200, body = doc::Page), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListPullRequests>,
) -> ApiResult<AxumJson<Page<PullRequest>>> {
    let filter = PullRequestFilter {
        project_id: super::parse_opt::<ProjectId>("project_id", q.project_id.as_deref())?,
        status: super::parse_opt::<PullRequestStatus>("status", q.status.as_deref())?,
        task_id: super::parse_opt::<TaskId>("task_id", q.task_id.as_deref())?,
    };
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        tx.list_pull_requests(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}
