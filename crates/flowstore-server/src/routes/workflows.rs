//! Workflows: create, read, change, list, versions, shares. Access by
//! [`crate::access`]: another user's private workflow answers 404.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ProjectId, ShareId, TeamId, UserId, WorkflowId};
use flowstore_core::model::workflow::NewWorkflow;
use flowstore_core::model::workflow::{
    NewShare, SharePermission, Workflow, WorkflowFilter, WorkflowPatch, WorkflowShare,
    WorkflowStatus, WorkflowVersion,
};
use flowstore_core::{Page, Tx};
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
        .routes(routes!(versions))
        .routes(routes!(share, shares))
        .routes(routes!(unshare))
}

query_params! {
    /// Filters and page of `GET /workflows`.
    pub struct ListWorkflows {
        /// The `next_cursor` of the previous page.
        pub cursor: Option<String>,
        /// Page size, 1..=1000.
        pub limit: Option<u32>,
        /// Only workflows in this status.
        pub status: Option<String>,
        /// Only workflows of this owner.
        pub owner_id: Option<String>,
        /// Only workflows of this team.
        pub team_id: Option<String>,
        /// Only workflows of this project.
        pub project_id: Option<String>,
        /// Only workflows with this tag.
        pub tag: Option<String>,
    }
}

/// Creates a workflow (version 1).
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = doc::NewWorkflow,
    responses((status = 201, body = doc::Workflow), (status = 422, body = Problem)))]
pub async fn create(api: Api, Json(mut new): Json<NewWorkflow>) -> ApiResult<impl IntoResponse> {
    if new.owner_id.is_none() {
        new.owner_id = api.caller.0.user_id;
    }
    super::check_owner(&api.caller, new.owner_id, "workflow")?;
    let mut tx = api.write().await?;
    check_placement(&mut *tx, &api.caller, new.project_id, new.team_id).await?;
    let w = tx.create_workflow(new).await?;
    api.commit(tx, "workflow.create", w.id, None, audit::json(&w))
        .await?;
    Ok((StatusCode::CREATED, AxumJson(w)))
}

/// A page of workflows, newest first. An admin sees every workflow; another key
/// sees the workflows it may read (a user's: unowned, owned, public, team-visible in
/// one of their teams, shared; a key of no user: unowned and public), left out by
/// the query itself so that every page but the last is full.
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(ListWorkflows),
    responses((status = 200, body = doc::WorkflowPage), (status = 422, body = Problem)))]
pub async fn list(api: Api, Query(q): Query<ListWorkflows>) -> ApiResult<AxumJson<Page<Workflow>>> {
    let filter = WorkflowFilter {
        status: super::parse_opt::<WorkflowStatus>("status", q.status.as_deref())?,
        owner_id: super::parse_opt::<UserId>("owner_id", q.owner_id.as_deref())?,
        team_id: super::parse_opt::<TeamId>("team_id", q.team_id.as_deref())?,
        project_id: super::parse_opt::<ProjectId>("project_id", q.project_id.as_deref())?,
        tag: q.tag,
        viewer: Some(api.caller.viewer()),
    };
    let mut tx = api.lagging_read().await?;
    let page = super::page(q.cursor, q.limit);
    Ok(AxumJson(tx.list_workflows(&filter, &page).await?))
}

/// One workflow.
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(in_path::Workflow),
    responses((status = 200, body = doc::Workflow), (status = 404, body = Problem)))]
pub async fn get(api: Api, Path(id): Path<WorkflowId>) -> ApiResult<AxumJson<Workflow>> {
    let mut tx = api.read().await?;
    Ok(AxumJson(
        access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?,
    ))
}

/// Changes a workflow; a new definition or configuration makes a new version.
#[utoipa::path(patch, path = "/api/v1/workflows/{id}", tag = "workflows", request_body = doc::WorkflowPatch,
    params(in_path::Workflow),
    responses((status = 200, body = doc::Workflow), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    api: Api,
    Path(id): Path<WorkflowId>,
    Json(mut patch): Json<WorkflowPatch>,
) -> ApiResult<AxumJson<Workflow>> {
    super::set_by_server("changed_by", &patch.changed_by)?;
    patch.changed_by = api.caller.0.user_id;
    let mut tx = api.write().await?;
    let before = access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let (project, team) = (patch.project_id.flatten(), patch.team_id.flatten());
    check_placement(&mut *tx, &api.caller, project, team).await?;
    let w = tx.update_workflow(id, patch).await?;
    api.commit_change(tx, "workflow.update", id, &before, &w)
        .await?;
    Ok(AxumJson(w))
}

/// Every version of a workflow, oldest first.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions", tag = "workflows",
    params(in_path::Workflow),
    responses((status = 200, body = [doc::WorkflowVersion]), (status = 404, body = Problem)))]
pub async fn versions(
    api: Api,
    Path(id): Path<WorkflowId>,
) -> ApiResult<AxumJson<Vec<WorkflowVersion>>> {
    let mut tx = api.read().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.list_workflow_versions(id).await?))
}

/// Shares a workflow with a user or a team (its owner, a holder of `write`, or an
/// admin).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/shares", tag = "workflows", request_body = doc::NewShare,
    params(in_path::Workflow),
    responses((status = 201, body = doc::WorkflowShare), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn share(
    api: Api,
    Path(id): Path<WorkflowId>,
    Json(mut new): Json<NewShare>,
) -> ApiResult<impl IntoResponse> {
    super::set_by_server("created_by", &new.created_by)?;
    new.created_by = api.caller.0.user_id;
    let mut tx = api.write().await?;
    let workflow = access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let s = tx.share_workflow(id, new).await?;
    flowstore_core::model::notify::workflow_shared(&mut *tx, &workflow, &s).await?;
    api.commit(tx, "workflow.share", id, None, audit::json(&s))
        .await?;
    Ok((StatusCode::CREATED, AxumJson(s)))
}

/// The shares of a workflow (anyone who may read it).
#[utoipa::path(get, path = "/api/v1/workflows/{id}/shares", tag = "workflows",
    params(in_path::Workflow),
    responses((status = 200, body = [doc::WorkflowShare]), (status = 404, body = Problem)))]
pub async fn shares(
    api: Api,
    Path(id): Path<WorkflowId>,
) -> ApiResult<AxumJson<Vec<WorkflowShare>>> {
    let mut tx = api.read().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Read).await?;
    Ok(AxumJson(tx.list_workflow_shares(id).await?))
}

/// Removes a share of a workflow.
#[utoipa::path(delete, path = "/api/v1/workflows/{id}/shares/{share_id}", tag = "workflows",
    params(in_path::Workflow, ("share_id" = String, Path, description = "share ID")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unshare(
    api: Api,
    Path((id, share_id)): Path<(WorkflowId, ShareId)>,
) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    access::workflow(&mut *tx, &api.caller, id, SharePermission::Write).await?;
    let shares = tx.list_workflow_shares(id).await?;
    let Some(share) = shares.iter().find(|s| s.id == share_id) else {
        return Err(Problem::not_found(format!(
            "no share {share_id} of this workflow"
        )));
    };
    tx.remove_workflow_share(share_id).await?;
    api.commit(tx, "workflow.unshare", id, audit::json(share), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses to put a workflow in a project the caller may not read, or in a team the
/// caller is not in (both as invalid fields of the body).
async fn check_placement(
    tx: &mut dyn Tx,
    caller: &Caller,
    project: Option<ProjectId>,
    team: Option<TeamId>,
) -> ApiResult<()> {
    if let Some(p) = project {
        access::project_field(tx, caller, "project_id", p, SharePermission::Read).await?;
    }
    if let Some(t) = team {
        access::team_field(tx, caller, "team_id", t).await?;
    }
    Ok(())
}
