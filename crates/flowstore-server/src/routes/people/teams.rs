//! Teams and their members (admin: create, list, delete, add, change and remove
//! members; a member: see the members). Every change is written to the audit log.

use axum::extract::State;
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
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
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
pub async fn create_team(
    State(state): State<AppState>,
    caller: Caller,
    Json(mut new): Json<NewTeam>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    if new.created_by.is_none() {
        new.created_by = caller.0.user_id;
    }
    let mut tx = state.backend().begin().await?;
    let t = tx.create_team(new).await?;
    audit::record(
        &mut *tx,
        &caller,
        "team.create",
        "team",
        t.id,
        None,
        audit::json(&t),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(t)))
}

/// A page of teams (admin only).
#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", params(crate::routes::ops::PageQuery),
    responses((status = 200, body = doc::TeamPage), (status = 403, body = Problem)))]
pub async fn list_teams(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<crate::routes::ops::PageQuery>,
) -> ApiResult<AxumJson<Page<Team>>> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        tx.list_teams(&super::super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Adds a member to a team (admin only).
#[utoipa::path(post, path = "/api/v1/teams/{id}/members", tag = "teams", request_body = MemberBody,
    params(("id" = String, Path, description = "team ID")),
    responses((status = 201, body = doc::TeamMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TeamId>,
    Json(body): Json<MemberBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let role = super::super::parse_opt::<TeamRole>("role", body.role.as_deref())?
        .unwrap_or(TeamRole::Member);
    let mut tx = state.backend().begin().await?;
    let m = tx.add_team_member(id, body.user_id, role).await?;
    audit::record(
        &mut *tx,
        &caller,
        "team.member_add",
        "team",
        id,
        None,
        audit::json(&m),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(m)))
}

/// The members of a team (an admin, or a member).
#[utoipa::path(get, path = "/api/v1/teams/{id}/members", tag = "teams",
    params(("id" = String, Path, description = "team ID")),
    responses((status = 200, body = [doc::TeamMember]), (status = 404, body = Problem)))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TeamId>,
) -> ApiResult<AxumJson<Vec<TeamMember>>> {
    let mut tx = state.backend().begin_read().await?;
    tx.get_team(id).await?;
    let members = tx.list_team_members(id).await?;
    let member = caller
        .0
        .user_id
        .is_some_and(|me| members.iter().any(|m| m.user_id == me));
    if !caller.is_admin() && !member {
        return Err(Problem::not_found(format!("no team {id}")));
    }
    Ok(AxumJson(members))
}

/// Deletes a team with its memberships (admin only). Workflows of the team stay,
/// without a team.
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams",
    params(("id" = String, Path, description = "team ID")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TeamId>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let team = tx.get_team(id).await?;
    let members = tx.list_team_members(id).await?;
    tx.delete_team(id).await?;
    let before = serde_json::json!({ "team": team, "members": members });
    audit::record(
        &mut *tx,
        &caller,
        "team.delete",
        "team",
        id,
        Some(before),
        None,
    )
    .await?;
    tx.commit().await?;
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
    params(("id" = String, Path, description = "team ID"), ("user_id" = String, Path, description = "user ID")),
    responses((status = 200, body = doc::TeamMember), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(TeamId, UserId)>,
    Json(body): Json<MemberRoleBody>,
) -> ApiResult<AxumJson<TeamMember>> {
    caller.require(Role::Admin)?;
    let role = super::super::parse_opt::<TeamRole>("role", Some(&body.role))?
        .ok_or_else(|| Problem::invalid("role", "role is required"))?;
    let mut tx = state.backend().begin().await?;
    let before = member(&mut *tx, id, user_id).await?;
    let after = tx.update_team_member(id, user_id, role).await?;
    let (b, a) = (audit::json(&before), audit::json(&after));
    audit::record(&mut *tx, &caller, "team.member_update", "team", id, b, a).await?;
    tx.commit().await?;
    Ok(AxumJson(after))
}

/// Removes a member from a team (admin only).
#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams",
    params(("id" = String, Path, description = "team ID"), ("user_id" = String, Path, description = "user ID")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(TeamId, UserId)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let before = member(&mut *tx, id, user_id).await?;
    tx.remove_team_member(id, user_id).await?;
    let b = audit::json(&before);
    audit::record(&mut *tx, &caller, "team.member_remove", "team", id, b, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
