//! A task's links and removal: its dependencies, its sub-tasks, deleting it, and a
//! project's tasks by status. Access by [`crate::access`] as for the task (or the
//! project) itself.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, TaskId};
use flowstore_core::model::task::query::{TaskFilter, TaskProgress};
use flowstore_core::model::task::Task;
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::{Page, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delete))
        .routes(routes!(dependencies, add_dependency))
        .routes(routes!(remove_dependency))
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

/// The body of `POST /tasks/{id}/dependencies`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDependency {
    /// The task that must complete first: one the caller may read, not the task
    /// itself, and not one that (transitively) depends on the task.
    pub depends_on: TaskId,
}

/// The IDs of the tasks this task depends on that the caller may read, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/dependencies", tag = "tasks",
    params(in_path::Task),
    responses((status = 200, body = [String]), (status = 404, body = Problem)))]
pub async fn dependencies(api: Api, Path(id): Path<TaskId>) -> ApiResult<AxumJson<Vec<TaskId>>> {
    let mut tx = api.read().await?;
    access::task(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(
        visible_dependencies(&mut *tx, &api.caller, id).await?,
    ))
}

/// Makes the task depend on another one, after its creation. The caller must be
/// able to change the task and read the dependency (a hidden or missing one is an
/// invalid `depends_on`, as at creation). A dependency that would close a cycle, or
/// the task itself, is a 422 on `depends_on` (a cycle names its path); a step of a
/// run (its definition fixes its dependencies) and a running or finished task are a
/// 409. A `ready` task that gains a dependency not yet completed goes back to
/// `pending`. Adding an existing dependency changes nothing. Answers the task's
/// dependencies the caller may read.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/dependencies", tag = "tasks",
    request_body = NewDependency, params(in_path::Task),
    responses((status = 201, body = [String]), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_dependency(
    api: Api,
    Path(id): Path<TaskId>,
    Json(body): Json<NewDependency>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    let before = access::task(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    access::task_field(
        &mut *tx,
        &api.caller,
        "depends_on",
        body.depends_on,
        SharePermission::Read,
    )
    .await?;
    let deps_before = tx.task_dependencies(id).await?;
    let after = tx.add_task_dependency(id, body.depends_on).await?;
    let deps_after = tx.task_dependencies(id).await?;
    let visible = visible_dependencies(&mut *tx, &api.caller, id).await?;
    if deps_after != deps_before || after.status != before.status {
        api.commit(
            tx,
            "task.dependency_add",
            id,
            audit::json(&DependencyRecord::of(&before, deps_before)),
            audit::json(&DependencyRecord::of(&after, deps_after)),
        )
        .await?;
    }
    Ok((StatusCode::CREATED, AxumJson(visible)))
}

/// Removes one of the task's dependencies: 404 when the task depends on no such
/// task (or the caller may not read it), 409 for a step of a run or a finished task.
/// The task's status does not change.
#[utoipa::path(delete, path = "/api/v1/tasks/{id}/dependencies/{dep_id}", tag = "tasks",
    params(in_path::Task, ("dep_id" = String, Path, description = "ID of the task depended on")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn remove_dependency(
    api: Api,
    Path((id, dep_id)): Path<(TaskId, TaskId)>,
) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let task = access::task(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    // A dependency the caller may not read answers as one that does not exist.
    access::task(&mut *tx, &api.caller, dep_id, SharePermission::Read)
        .await
        .map_err(|p| {
            if p.status == 404 {
                Problem::not_found(format!("task {id} does not depend on {dep_id}"))
            } else {
                p
            }
        })?;
    let deps_before = tx.task_dependencies(id).await?;
    tx.remove_task_dependency(id, dep_id).await?;
    let deps_after = tx.task_dependencies(id).await?;
    api.commit(
        tx,
        "task.dependency_remove",
        id,
        audit::json(&DependencyRecord::of(&task, deps_before)),
        audit::json(&DependencyRecord::of(&task, deps_after)),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the audit log keeps of a change of dependencies: the whole list before and
/// after, and the status (which an addition may move back to `pending`).
#[derive(Serialize)]
struct DependencyRecord {
    status: flowstore_core::model::task::TaskStatus,
    depends_on: Vec<TaskId>,
}

impl DependencyRecord {
    fn of(task: &Task, depends_on: Vec<TaskId>) -> Self {
        DependencyRecord {
            status: task.status,
            depends_on,
        }
    }
}

/// The dependencies of `id` that `caller` may read: one it may not is left out, as
/// in every list.
async fn visible_dependencies(
    tx: &mut dyn flowstore_core::Tx,
    caller: &Caller,
    id: TaskId,
) -> ApiResult<Vec<TaskId>> {
    let mut visible = Vec::new();
    for dep in tx.task_dependencies(id).await? {
        match access::task(tx, caller, dep, SharePermission::Read).await {
            Ok(_) => visible.push(dep),
            Err(p) if p.status == 404 => {}
            Err(p) => return Err(p),
        }
    }
    Ok(visible)
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
