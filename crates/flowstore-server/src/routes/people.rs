//! Users and teams (admin: create, list, members; a user: themself) and
//! notifications (one's own only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{NotificationId, TeamId, UserId};
use flowstore_core::model::identity::{
    NewTeam, NewUser, Role, Team, TeamMember, TeamRole, User, UserFilter, UserStatus,
};
use flowstore_core::model::identity_access::{Notification, NotificationFilter};
use flowstore_core::Page;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;

/// Filters and page of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    /// Only users with this role.
    pub role: Option<String>,
    /// Only users in this status.
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// Filters and page of `GET /notifications`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListNotifications {
    /// Only unread ones.
    pub unread_only: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// The body of `POST /teams/{id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    /// The user.
    pub user_id: UserId,
    /// owner, admin or member (member when absent).
    pub role: Option<String>,
}

/// Creates a user (admin only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = doc::NewUser,
    responses((status = 201, body = doc::User), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewUser>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let u = tx.create_user(new).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AxumJson(u)))
}

/// A page of users (admin only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListUsers),
    responses((status = 200, body = doc::UserPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListUsers>,
) -> ApiResult<AxumJson<Page<User>>> {
    caller.require(Role::Admin)?;
    let filter = UserFilter {
        role: super::parse_opt::<Role>("role", q.role.as_deref())?,
        status: super::parse_opt::<UserStatus>("status", q.status.as_deref())?,
    };
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        tx.list_users(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// The user the key acts for.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, body = doc::User), (status = 403, body = Problem)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<AxumJson<User>> {
    let id = access::me(&caller)?;
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(tx.get_user(id).await?))
}

/// One user: oneself, or anyone as an admin (another user's answers 404).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user ID")),
    responses((status = 200, body = doc::User), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
) -> ApiResult<AxumJson<User>> {
    if !caller.is_admin() && caller.0.user_id != Some(id) {
        return Err(Problem::not_found(format!("no user {id}")));
    }
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(tx.get_user(id).await?))
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
        tx.list_teams(&super::page(q.cursor, q.limit)).await?,
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
    let role =
        super::parse_opt::<TeamRole>("role", body.role.as_deref())?.unwrap_or(TeamRole::Member);
    let mut tx = state.backend().begin().await?;
    let m = tx.add_team_member(id, body.user_id, role).await?;
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

/// A page of the key's user's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(ListNotifications),
    responses((status = 200, body = doc::NotificationPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListNotifications>,
) -> ApiResult<AxumJson<Page<Notification>>> {
    let me = access::me(&caller)?;
    let filter = NotificationFilter {
        unread_only: q.unread_only.unwrap_or(false),
    };
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        tx.list_notifications(me, &filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Marks one of one's notifications read (another user's answers 404).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "notification ID")),
    responses((status = 200, body = doc::Notification), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<NotificationId>,
) -> ApiResult<AxumJson<Notification>> {
    let me = access::me(&caller)?;
    let mut tx = state.backend().begin().await?;
    let n = tx
        .mark_notification_read(id, flowstore_core::time::now())
        .await?;
    if n.user_id != me {
        // Undone by not committing: another user's notification stays unread.
        let _ = tx.rollback().await;
        return Err(Problem::not_found(format!("no notification {id}")));
    }
    tx.commit().await?;
    Ok(AxumJson(n))
}

/// Marks every one of one's notifications read; returns how many.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    responses((status = 200, body = doc::Marked), (status = 403, body = Problem)))]
pub async fn mark_all_read(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let me = access::me(&caller)?;
    let mut tx = state.backend().begin().await?;
    let n = tx
        .mark_all_notifications_read(me, flowstore_core::time::now())
        .await?;
    tx.commit().await?;
    Ok(AxumJson(serde_json::json!({ "marked": n })))
}
