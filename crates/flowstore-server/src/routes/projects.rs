//! Projects: create, read, change, delete, list by cursor. Access by
//! [`crate::access`]: a project the key may not read answers 404; one it may read
//! but not change, 403.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, UserId};
use flowstore_core::model::project::{NewProject, Project, ProjectFilter, ProjectPatch};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::Page;
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
        .routes(routes!(get, update, delete))
}

query_params! {
    /// Filters and page of `GET /projects`.
    pub struct ListProjects {
        /// The `next_cursor` of the previous page.
        pub cursor: Option<String>,
        /// Page size, 1..=1000 (50 when absent).
        pub limit: Option<u32>,
        /// Only projects of this owner.
        pub owner_id: Option<String>,
    }
}

/// Creates a project.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = doc::NewProject,
    responses((status = 201, body = doc::Project), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(api: Api, Json(mut new): Json<NewProject>) -> ApiResult<impl IntoResponse> {
    if new.owner_id.is_none() {
        new.owner_id = api.caller.0.user_id;
    }
    super::check_owner(&api.caller, new.owner_id, "project")?;
    let mut tx = api.write().await?;
    let p = tx.create_project(new).await?;
    let after = audit::json(&p);
    api.commit(tx, "project.create", p.id, None, after).await?;
    Ok((StatusCode::CREATED, AxumJson(p)))
}

/// A page of the projects the key may read, newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ListProjects),
    responses((status = 200, body = doc::ProjectPage), (status = 422, body = Problem)))]
pub async fn list(api: Api, Query(q): Query<ListProjects>) -> ApiResult<AxumJson<Page<Project>>> {
    let filter = ProjectFilter {
        owner_id: super::parse_opt::<UserId>("owner_id", q.owner_id.as_deref())?,
        viewer: Some(api.caller.viewer()),
    };
    let mut tx = api.lagging_read().await?;
    Ok(AxumJson(
        tx.list_projects(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(in_path::Project),
    responses((status = 200, body = doc::Project), (status = 404, body = Problem)))]
pub async fn get(api: Api, Path(id): Path<ProjectId>) -> ApiResult<AxumJson<Project>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(
        access::project(&mut *tx, &api.caller, id, SharePermission::Read).await?,
    ))
}

/// Changes a project.
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", request_body = doc::ProjectPatch,
    params(in_path::Project),
    responses((status = 200, body = doc::Project), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    api: Api,
    Path(id): Path<ProjectId>,
    Json(patch): Json<ProjectPatch>,
) -> ApiResult<AxumJson<Project>> {
    let mut tx = api.write().await?;
    let before = access::project(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let p = tx.update_project(id, patch).await?;
    api.commit_change(tx, "project.update", id, &before, &p)
        .await?;
    Ok(AxumJson(p))
}

/// Deletes a project with its tasks and pull requests.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(in_path::Project),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(api: Api, Path(id): Path<ProjectId>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let before = access::project(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    tx.delete_project(id).await?;
    let b = audit::json(&before);
    api.commit(tx, "project.delete", id, b, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
