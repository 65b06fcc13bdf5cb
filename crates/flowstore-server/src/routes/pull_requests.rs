//! Pull requests: create, read, move status, set validation, list. They inherit
//! their project's access ([`crate::access`]): whoever may read the project may read
//! them (others get 404); changes are for the project's owner (or an unowned
//! project's users) and admins (others who may read get 403).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, PullRequestId, TaskId};
use flowstore_core::model::pull_request::{
    NewPullRequest, PullRequest, PullRequestFilter, PullRequestStatus,
};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::Page;
use serde::Deserialize;
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

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(set_status))
        .routes(routes!(set_validation))
}

paged_query_params! {
    /// Filters and page of `GET /pull-requests`.
    pub struct ListPullRequests {
        /// Only this project's.
        pub project_id: Option<String>,
        /// Only in this status.
        pub status: Option<String>,
        /// Only this task's.
        pub task_id: Option<String>,
    }
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

/// Creates a pull request.
#[utoipa::path(post, path = "/api/v1/pull-requests", tag = "pull-requests", request_body = doc::NewPullRequest,
    responses((status = 201, body = doc::PullRequest), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(api: Api, Json(new): Json<NewPullRequest>) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    access::project_field(
        &mut *tx,
        &api.caller,
        "project_id",
        new.project_id,
        SharePermission::Write,
    )
    .await?;
    if let Some(t) = new.task_id {
        match access::task(&mut *tx, &api.caller, t, SharePermission::Read).await {
            Err(p) if p.status == 404 => return Err(Problem::invalid("task_id", "no such task")),
            other => other?,
        };
    }
    let pr = tx.create_pull_request(new).await?;
    let after = audit::json(&pr);
    api.commit(tx, "pull_request.create", pr.id, None, after)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(pr)))
}

/// One pull request.
#[utoipa::path(get, path = "/api/v1/pull-requests/{id}", tag = "pull-requests",
    params(in_path::PullRequest),
    responses((status = 200, body = doc::PullRequest), (status = 404, body = Problem)))]
pub async fn get(api: Api, Path(id): Path<PullRequestId>) -> ApiResult<AxumJson<PullRequest>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(
        access::pull_request(&mut *tx, &api.caller, id, SharePermission::Read).await?,
    ))
}

/// Moves a pull request to another status.
#[utoipa::path(post, path = "/api/v1/pull-requests/{id}/status", tag = "pull-requests", request_body = StatusBody,
    params(in_path::PullRequest),
    responses((status = 200, body = doc::PullRequest), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_status(
    api: Api,
    Path(id): Path<PullRequestId>,
    Json(body): Json<StatusBody>,
) -> ApiResult<AxumJson<PullRequest>> {
    let status = super::parse_opt::<PullRequestStatus>("status", Some(&body.status))?
        .ok_or_else(|| Problem::invalid("status", "status is required"))?;
    let mut tx = api.write().await?;
    let before = access::pull_request(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let pr = tx.update_pull_request_status(id, status).await?;
    api.commit_change(tx, "pull_request.status", id, &before, &pr)
        .await?;
    Ok(AxumJson(pr))
}

/// Replaces a pull request's validation results.
#[utoipa::path(put, path = "/api/v1/pull-requests/{id}/validation", tag = "pull-requests", request_body = ValidationBody,
    params(in_path::PullRequest),
    responses((status = 200, body = doc::PullRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_validation(
    api: Api,
    Path(id): Path<PullRequestId>,
    Json(body): Json<ValidationBody>,
) -> ApiResult<AxumJson<PullRequest>> {
    let mut tx = api.write().await?;
    let before = access::pull_request(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let pr = tx
        .set_pull_request_validation(id, body.validation_results)
        .await?;
    api.commit_change(tx, "pull_request.validation", id, &before, &pr)
        .await?;
    Ok(AxumJson(pr))
}

/// A page of the pull requests the key may read, newest first.
#[utoipa::path(get, path = "/api/v1/pull-requests", tag = "pull-requests", params(ListPullRequests),
    responses((status = 200, body = doc::PullRequestPage), (status = 422, body = Problem)))]
pub async fn list(
    api: Api,
    Query(q): Query<ListPullRequests>,
) -> ApiResult<AxumJson<Page<PullRequest>>> {
    let filter = PullRequestFilter {
        project_id: super::parse_opt::<ProjectId>("project_id", q.project_id.as_deref())?,
        status: super::parse_opt::<PullRequestStatus>("status", q.status.as_deref())?,
        task_id: super::parse_opt::<TaskId>("task_id", q.task_id.as_deref())?,
        viewer: Some(api.caller.viewer()),
    };
    let mut tx = api.lagging_read().await?;
    Ok(AxumJson(
        tx.list_pull_requests(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}
