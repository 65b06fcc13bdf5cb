//! A task's links and removal: its dependencies, its sub-tasks, deleting it, and a
//! project's tasks by status. Access by [`crate::access`] as for the task (or the
//! project) itself.

use axum::http::StatusCode;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, TaskId};
use flowstore_core::model::task::query::{TaskFilter, TaskProgress};
use flowstore_core::model::task::Task;
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::{Page, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::error::{ApiResult, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delete))
        .routes(routes!(dependencies))
        .routes(routes!(children))
        .routes(routes!(project_summary))
}

/// Deletes a task with its dependencies and attempts. A step of a run is a 409: it
/// belongs to the run's record (cancel the run instead).
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(in_path::Task),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(api: Api, Path(id): Path<TaskId>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let task = access::task(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    if let Some(run) = task.run_id {
        return Err(StoreError::conflict(
            "run_id",
            format!("this task is a step of run {run}; cancel the run instead"),
        )
        .into());
    }
    tx.delete_task(id).await?;
    let before = audit::json(&task);
    api.commit(tx, "task.delete", id, before, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The IDs of the tasks this task depends on that the caller may read, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/dependencies", tag = "tasks",
    params(in_path::Task),
    responses((status = 200, body = [String]), (status = 404, body = Problem)))]
pub async fn dependencies(api: Api, Path(id): Path<TaskId>) -> ApiResult<AxumJson<Vec<TaskId>>> {
    let mut tx = api.read().await?;
    access::task(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    // A dependency the api.caller may not read is left out, as in every list.
    let mut visible = Vec::new();
    for dep in tx.task_dependencies(id).await? {
        match access::task(&mut *tx, &api.caller, dep, SharePermission::Read).await {
            Ok(_) => visible.push(dep),
            Err(p) if p.status == 404 => {}
            Err(p) => return Err(p),
        }
    }
    Ok(AxumJson(visible))
}

/// A page of the direct sub-tasks of a task that the key may read, newest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/children", tag = "tasks", params(super::PageQuery,
        in_path::Task),
    responses((status = 200, body = doc::TaskPage), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn children(
    api: Api,
    Path(id): Path<TaskId>,
    Query(q): Query<super::PageQuery>,
) -> ApiResult<AxumJson<Page<Task>>> {
    let mut tx = api.read().await?;
    access::task(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    let filter = TaskFilter {
        parent_task_id: Some(id),
        viewer: Some(api.caller.viewer()),
        ..TaskFilter::default()
    };
    Ok(AxumJson(
        tx.list_tasks(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// A project's tasks by status, with the percentage completed.
#[utoipa::path(get, path = "/api/v1/projects/{id}/summary", tag = "projects",
    params(in_path::Project),
    responses((status = 200, body = doc::TaskProgress), (status = 404, body = Problem)))]
pub async fn project_summary(
    api: Api,
    Path(id): Path<ProjectId>,
) -> ApiResult<AxumJson<TaskProgress>> {
    let mut tx = api.read().await?;
    access::project(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.project_progress(id).await?))
}
