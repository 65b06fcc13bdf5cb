//! Standalone tasks: create, read, change, list with filters and search. A task of
//! a workflow or run inherits its access; a standalone one is read by its creator
//! and whoever may read its project (a task of no project: its creator, or every key
//! when no one created it) and changed by its creator, its project's owner or an
//! admin (see [`crate::access`]).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, RunId, TaskId, WorkflowId};
use flowstore_core::model::task::query::TaskFilter;
use flowstore_core::model::task::{NewTask, Task, TaskPatch, TaskStatus};
use flowstore_core::model::workflow::SharePermission;
use flowstore_core::Page;
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
        .routes(routes!(create, list))
        .routes(routes!(get, update))
}

paged_query_params! {
    /// Filters and page of `GET /tasks`.
    pub struct ListTasks {
        /// Words every task found must contain in its title or description (ranked,
        /// best first, up to `limit`; no cursor).
        pub q: Option<String>,
        /// Only tasks of this project.
        pub project_id: Option<String>,
        /// Only tasks of this workflow.
        pub workflow_id: Option<String>,
        /// Only tasks of this run.
        pub run_id: Option<String>,
        /// Only tasks in this status.
        pub status: Option<String>,
        /// Only tasks with this tag.
        pub tag: Option<String>,
        /// Only tasks assigned to this agent.
        pub assigned_agent: Option<String>,
        /// Only tasks whose `requirements` contain this JSON object, e.g.
        /// `{"gpu":true}` (URL-encoded).
        pub requirements: Option<String>,
    }
}

/// Creates a task; its creator is the key's user.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = doc::NewTask,
    responses((status = 201, body = doc::Task), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create(api: Api, Json(mut new): Json<NewTask>) -> ApiResult<impl IntoResponse> {
    super::set_by_server("created_by", &new.created_by)?;
    new.created_by = api.caller.0.user_id;
    let mut tx = api.write().await?;
    if let Some(w) = new.workflow_id {
        access::workflow(&mut *tx, &api.caller, w, SharePermission::Write).await?;
    }
    if let Some(r) = new.run_id {
        access::run(&mut *tx, &api.caller, r, SharePermission::Execute).await?;
    }
    if let Some(p) = new.project_id {
        access::project_field(
            &mut *tx,
            &api.caller,
            "project_id",
            p,
            SharePermission::Write,
        )
        .await?;
    }
    // A task may wait only for tasks its creator may see (a dependency is only read).
    check_parent(&mut *tx, &api.caller, new.parent_task_id).await?;
    for dep in &new.depends_on {
        access::task_field(
            &mut *tx,
            &api.caller,
            "depends_on",
            *dep,
            SharePermission::Read,
        )
        .await?;
    }
    let t = tx.create_task(new).await?;
    let after = audit::json(&t);
    api.commit(tx, "task.create", t.id, None, after).await?;
    Ok((StatusCode::CREATED, AxumJson(t)))
}

/// One task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(in_path::Task),
    responses((status = 200, body = doc::Task), (status = 404, body = Problem)))]
pub async fn get(api: Api, Path(id): Path<TaskId>) -> ApiResult<AxumJson<Task>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(
        access::task(&mut *tx, &api.caller, id, SharePermission::Read).await?,
    ))
}

/// Changes a task (status moves follow the task state machine: leaving a terminal
/// status is a 409).
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", request_body = doc::TaskPatch,
    params(in_path::Task),
    responses((status = 200, body = doc::Task), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    api: Api,
    Path(id): Path<TaskId>,
    Json(patch): Json<TaskPatch>,
) -> ApiResult<AxumJson<Task>> {
    let mut tx = api.write().await?;
    let before = access::task(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    check_parent(&mut *tx, &api.caller, patch.parent_task_id.flatten()).await?;
    let t = tx.update_task(id, patch).await?;
    api.commit_change(tx, "task.update", id, &before, &t)
        .await?;
    Ok(AxumJson(t))
}

/// A page of tasks matching the filters, newest first; with `q`, the best matches
/// (no cursor). Tasks the key may not read are left out by the query itself, so
/// every page but the last is full.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(ListTasks),
    responses((status = 200, body = doc::TaskPage), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(api: Api, Query(q): Query<ListTasks>) -> ApiResult<AxumJson<Page<Task>>> {
    let requirements = match q
        .requirements
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => return Err(Problem::invalid("requirements", "must be a JSON object")),
        },
    };
    let filter = TaskFilter {
        project_id: super::parse_opt::<ProjectId>("project_id", q.project_id.as_deref())?,
        workflow_id: super::parse_opt::<WorkflowId>("workflow_id", q.workflow_id.as_deref())?,
        run_id: super::parse_opt::<RunId>("run_id", q.run_id.as_deref())?,
        status: super::parse_opt::<TaskStatus>("status", q.status.as_deref())?,
        assigned_agent: q.assigned_agent,
        parent_task_id: None,
        tag: q.tag,
        requirements,
        viewer: Some(api.caller.viewer()),
    };
    let mut tx = api.lagging_read().await?;
    if let Some(w) = filter.workflow_id {
        access::workflow(&mut *tx, &api.caller, w, SharePermission::Read).await?;
    }
    if let Some(r) = filter.run_id {
        access::run(&mut *tx, &api.caller, r, SharePermission::Read).await?;
    }
    let found = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(words) => Page {
            items: tx
                .search_tasks(words, &filter, q.limit.unwrap_or(50))
                .await?,
            next_cursor: None,
        },
        None => {
            tx.list_tasks(&filter, &super::page(q.cursor, q.limit))
                .await?
        }
    };
    Ok(AxumJson(found))
}

/// A task may hang only under a task the caller may change (a child is added to
/// its parent); a hidden parent is invalid `parent_task_id`, as a missing one is.
async fn check_parent(
    tx: &mut dyn flowstore_core::Tx,
    caller: &Caller,
    parent: Option<TaskId>,
) -> ApiResult<()> {
    if let Some(parent) = parent {
        access::task_field(tx, caller, "parent_task_id", parent, SharePermission::Write).await?;
    }
    Ok(())
}
