//! Teams and their members (admin: create, list, delete, add, change and remove
//! members; a member: see the members). Every change is written to the audit log.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{TeamId, UserId};
use flowstore_core::model::identity::{NewTeam, Role, Team, TeamMember, TeamRole};
use flowstore_core::Page;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
        .routes(routes!(create_team, list_teams))
        .routes(routes!(add_member, members))
        .routes(routes!(delete_team))
        .routes(routes!(update_member, remove_member))
}

/// The body of `POST /teams/{id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    /// The user.
    pub user_id: UserId,
    /// owner, admin, member or viewer (member when absent).
    pub role: Option<String>,
}

/// The body of `PATCH /teams/{id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRoleBody {
    /// owner, admin, member or viewer.
    pub role: String,
}

/// Creates a team (admin only).
#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = doc::NewTeam,
    responses((status = 201, body = doc::Team), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_team(api: Api, Json(mut new): Json<NewTeam>) -> ApiResult<impl IntoResponse> {
    api.caller.require(Role::Admin)?;
    if new.created_by.is_none() {
        new.created_by = api.caller.0.user_id;
    }
    let mut tx = api.write().await?;
    let t = tx.create_team(new).await?;
    api.commit(tx, "team.create", t.id, None, audit::json(&t))
        .await?;
    Ok((StatusCode::CREATED, AxumJson(t)))
}

/// A page of teams (admin only).
#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", params(crate::routes::PageQuery),
    responses((status = 200, body = doc::TeamPage), (status = 403, body = Problem)))]
pub async fn list_teams(
    api: Api,
    Query(q): Query<crate::routes::PageQuery>,
) -> ApiResult<AxumJson<Page<Team>>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_teams(&super::super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Adds a member to a team (admin only).
#[utoipa::path(post, path = "/api/v1/teams/{id}/members", tag = "teams", request_body = MemberBody,
    params(in_path::Team),
    responses((status = 201, body = doc::TeamMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_member(
    api: Api,
    Path(id): Path<TeamId>,
    Json(body): Json<MemberBody>,
) -> ApiResult<impl IntoResponse> {
    api.caller.require(Role::Admin)?;
    let role = super::super::parse_opt::<TeamRole>("role", body.role.as_deref())?
        .unwrap_or(TeamRole::Member);
    let mut tx = api.write().await?;
    let m = tx.add_team_member(id, body.user_id, role).await?;
    api.commit(tx, "team.member_add", id, None, audit::json(&m))
        .await?;
    Ok((StatusCode::CREATED, AxumJson(m)))
}

/// The members of a team (an admin, or a member).
#[utoipa::path(get, path = "/api/v1/teams/{id}/members", tag = "teams",
    params(in_path::Team),
    responses((status = 200, body = [doc::TeamMember]), (status = 404, body = Problem)))]
pub async fn members(api: Api, Path(id): Path<TeamId>) -> ApiResult<AxumJson<Vec<TeamMember>>> {
    let mut tx = api.read().await?;
    tx.get_team(id).await?;
    let members = tx.list_team_members(id).await?;
    let member = api
        .caller
        .0
        .user_id
        .is_some_and(|me| members.iter().any(|m| m.user_id == me));
    if !api.caller.is_admin() && !member {
        return Err(Problem::not_found(format!("no team {id}")));
    }
    Ok(AxumJson(members))
}

/// Deletes a team with its memberships (admin only). Workflows of the team stay,
/// without a team.
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams",
    params(in_path::Team),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_team(api: Api, Path(id): Path<TeamId>) -> ApiResult<StatusCode> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let team = tx.get_team(id).await?;
    let members = tx.list_team_members(id).await?;
    tx.delete_team(id).await?;
    let before = serde_json::json!({ "team": team, "members": members });
    api.commit(tx, "team.delete", id, Some(before), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The member `user_id` of team `id`, or 404.
async fn member(
    tx: &mut dyn flowstore_core::Tx,
    id: TeamId,
    user_id: UserId,
) -> ApiResult<TeamMember> {
    tx.get_team(id).await?;
    tx.list_team_members(id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| Problem::not_found(format!("user {user_id} is not a member of team {id}")))
}

/// Changes a member's role in a team (admin only).
#[utoipa::path(patch, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams",
    request_body = MemberRoleBody,
    params(in_path::Team, in_path::Member),
    responses((status = 200, body = doc::TeamMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_member(
    api: Api,
    Path((id, user_id)): Path<(TeamId, UserId)>,
    Json(body): Json<MemberRoleBody>,
) -> ApiResult<AxumJson<TeamMember>> {
    api.caller.require(Role::Admin)?;
    let role = super::super::parse_opt::<TeamRole>("role", Some(&body.role))?
        .ok_or_else(|| Problem::invalid("role", "role is required"))?;
    let mut tx = api.write().await?;
    let before = member(&mut *tx, id, user_id).await?;
    let after = tx.update_team_member(id, user_id, role).await?;
    api.commit_change(tx, "team.member_update", id, &before, &after)
        .await?;
    Ok(AxumJson(after))
}

/// Removes a member from a team (admin only).
#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams",
    params(in_path::Team, in_path::Member),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_member(
    api: Api,
    Path((id, user_id)): Path<(TeamId, UserId)>,
) -> ApiResult<StatusCode> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = member(&mut *tx, id, user_id).await?;
    tx.remove_team_member(id, user_id).await?;
    let b = audit::json(&before);
    api.commit(tx, "team.member_remove", id, b, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
