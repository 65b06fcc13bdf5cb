//! Users (admin: create, list, change anyone, delete; a user: read and change
//! themself), with teams in `people/teams.rs` and notifications in
//! `people/notifications.rs`. Every change is written to the audit log.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::crypto::SecretString;
use flowstore_core::ids::UserId;
use flowstore_core::model::identity::{NewUser, Role, User, UserFilter, UserPatch, UserStatus};
use flowstore_core::model::nullable;
use flowstore_core::{time, Page};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::auth::Origin;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::signin;
use crate::state::AppState;

mod notifications;
mod teams;

pub use notifications::*;
pub use teams::*;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(me))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(unlock_user))
        .merge(teams::router())
        .merge(notifications::router())
}

/// The stream of the caller's notifications: long-lived, served without the
/// request timeout (see [`crate::app`]).
pub(crate) fn stream_router() -> OpenApiRouter<AppState> {
    notifications::stream_router()
}

paged_query_params! {
    /// Filters and page of `GET /users`.
    pub struct ListUsers {
        /// Only users with this role.
        pub role: Option<String>,
        /// Only users in this status.
        pub status: Option<String>,
    }
}

/// Creates a user (admin only). A user created `pending_verification` is mailed a
/// link that confirms their address (and so activates the account) when mail is
/// configured.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = doc::NewUser,
    responses((status = 201, body = doc::User), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(api: Api, Json(new): Json<NewUser>) -> ApiResult<impl IntoResponse> {
    api.caller.require(Role::Admin)?;
    // Hashed before the transaction, which it would otherwise hold for its length.
    let new = api.state.sign_in().passwords().hash_user(new).await?;
    let mut tx = api.write().await?;
    let u = tx.create_user(new).await?;
    let token = if u.status == UserStatus::PendingVerification {
        Some(tx.issue_verification_token(u.id, time::now()).await?)
    } else {
        None
    };
    api.commit(tx, "user.create", u.id, None, audit::json(&u))
        .await?;
    if let Some(token) = token {
        crate::mail::send_later(
            &api.state,
            crate::mail::MailKind::Verification,
            u.email.clone(),
            token,
        );
    }
    Ok((StatusCode::CREATED, AxumJson(u)))
}

/// A page of users (admin only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListUsers),
    responses((status = 200, body = doc::UserPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_users(api: Api, Query(q): Query<ListUsers>) -> ApiResult<AxumJson<Page<User>>> {
    api.caller.require(Role::Admin)?;
    let filter = UserFilter {
        role: super::parse_opt::<Role>("role", q.role.as_deref())?,
        status: super::parse_opt::<UserStatus>("status", q.status.as_deref())?,
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_users(&filter, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// The user the key acts for.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, body = doc::User), (status = 403, body = Problem)))]
pub async fn me(api: Api) -> ApiResult<AxumJson<User>> {
    let id = access::me(&api.caller)?;
    let mut tx = api.read().await?;
    Ok(AxumJson(tx.get_user(id).await?))
}

/// One user: oneself, or anyone as an admin (another user's answers 404).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(in_path::User),
    responses((status = 200, body = doc::User), (status = 404, body = Problem)))]
pub async fn get_user(api: Api, Path(id): Path<UserId>) -> ApiResult<AxumJson<User>> {
    if !api.caller.is_admin() && api.caller.0.user_id != Some(id) {
        return Err(Problem::not_found(format!("no user {id}")));
    }
    let mut tx = api.read().await?;
    Ok(AxumJson(tx.get_user(id).await?))
}

/// The body of `PATCH /users/{id}`. Absent fields stay; email, IDs and times cannot
/// be changed here (they are refused as unknown fields).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new display name, or `null` to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// A new role: admin, user or viewer (an admin only).
    #[serde(default)]
    pub role: Option<Role>,
    /// A new status: active, inactive, suspended, pending_verification (an admin
    /// only). Any status but active ends the user's sessions.
    #[serde(default)]
    pub status: Option<UserStatus>,
    /// A new password: at least 8 characters, not a common one, hard enough to
    /// guess (see the password policy). Other sessions of the user end.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
    /// The current password: required to change one's own password.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
}

/// Changes a user. An admin may change anyone's display name, role, status and
/// password; anyone may change their own display name, and their own password by
/// giving the current one. Another user answers 404 to a non-admin. The last active
/// admin cannot be demoted or switched off (409).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserUpdate,
    params(in_path::User),
    responses((status = 200, body = doc::User), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_user(
    api: Api,
    origin: Origin,
    Path(id): Path<UserId>,
    Json(body): Json<UserUpdate>,
) -> ApiResult<AxumJson<User>> {
    let myself = api.caller.0.user_id == Some(id);
    if !api.caller.is_admin() && !myself {
        return Err(Problem::not_found(format!("no user {id}")));
    }
    if !api.caller.is_admin() {
        if body.role.is_some() {
            return Err(Problem::forbidden("only an admin may change a role").with_field("role"));
        }
        if body.status.is_some() {
            return Err(
                Problem::forbidden("only an admin may change a status").with_field("status")
            );
        }
    }
    if body.current_password.is_some() && body.password.is_none() {
        return Err(Problem::invalid(
            "current_password",
            "goes with a new password",
        ));
    }
    // The slow password work happens before the write transaction opens: the current
    // password checked against the stored hash, the new one hashed.
    let mut checked_hash = None;
    let new_hash = match &body.password {
        Some(password) => {
            let mut tx = api.read().await?;
            let found = tx.get_user(id).await;
            let _ = tx.rollback().await;
            let stored = found?;
            if myself {
                check_current(&api.state, &origin, &stored, body.current_password.as_ref()).await?;
                checked_hash = Some(stored.password_hash);
            }
            Some(
                api.state
                    .sign_in()
                    .passwords()
                    .hash(password.clone())
                    .await?,
            )
        }
        None => None,
    };
    let now = time::now();
    let mut tx = api.write().await?;
    let before = tx.get_user(id).await?;
    if checked_hash.is_some_and(|h| h != before.password_hash) {
        return Err(Problem::from(flowstore_core::StoreError::conflict(
            "current_password",
            "the password changed while this request was checked: try again",
        )));
    }
    let demoted = body.role.is_some_and(|r| r != Role::Admin)
        || body.status.is_some_and(|s| s != UserStatus::Active);
    if is_active_admin(&before) && demoted && tx.count_active_admins().await? <= 1 {
        let field = if body.role.is_some_and(|r| r != Role::Admin) {
            "role"
        } else {
            "status"
        };
        return Err(Problem::from(flowstore_core::StoreError::conflict(
            field,
            "this is the last active admin: make another admin first",
        )));
    }
    let patch = UserPatch {
        display_name: body.display_name,
        role: body.role,
        status: body.status,
    };
    let mut after = tx.update_user(id, patch).await?;
    if let Some(hash) = &new_hash {
        let keep = if myself {
            api.caller.session_id()
        } else {
            None
        };
        after = tx.set_password(id, hash, keep, now).await?;
    }
    if after.status != UserStatus::Active {
        tx.revoke_user_sessions(id, now).await?;
    }
    let (b, a) = (audit::json(&before), audit::json(&after));
    audit::record(&mut *tx, &api.caller, "user.update", id, b, a).await?;
    if new_hash.is_some() {
        audit::record(
            &mut *tx,
            &api.caller,
            "user.password_change",
            id,
            None,
            None,
        )
        .await?;
        let how = if myself { "self" } else { "admin" };
        flowstore_core::model::notify::password_changed(&mut *tx, id, how).await?;
    }
    tx.commit().await?;
    api.state.audit_queued();
    if new_hash.is_some() {
        // Wrong guesses at the old password no longer matter.
        api.state
            .sign_in()
            .accounts()
            .clear(&signin::account_key(&after.email));
    }
    if after.status != UserStatus::Active || after.role != before.role {
        // A user switched off loses their API keys too (the store no longer finds
        // them), and a key never exceeds its user's current role: stop trusting
        // cached copies at once.
        api.state.keys().forget_user(id);
    }
    Ok(AxumJson(after))
}

/// Checks the current password a user gives to change their own. Guesses count
/// against the account's sign-in throttle like wrong passwords at sign-in, so that a
/// session cannot be used to try passwords faster.
async fn check_current(
    state: &AppState,
    origin: &Origin,
    user: &User,
    current: Option<&SecretString>,
) -> ApiResult<()> {
    let current = current.ok_or_else(|| {
        Problem::invalid(
            "current_password",
            "is required to change one's own password",
        )
    })?;
    let guard = state.sign_in();
    let account = signin::account_key(&user.email);
    let counted = guard
        .accounts()
        .begin(&account, std::time::Instant::now())
        .map_err(|left| signin::account_throttled(left).with_field("current_password"))?;
    let ok = match guard
        .passwords()
        .check(user.password_hash.clone(), current.clone())
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            guard.accounts().undo(&account);
            return Err(e);
        }
    };
    if ok {
        guard.accounts().clear(&account);
        return Ok(());
    }
    if counted.engaged {
        let mut tx = state.backend().begin().await?;
        let subject = serde_json::json!({"scope": "account", "email": user.email});
        let id = Some(user.id.to_string());
        super::sessions::throttled(&mut *tx, origin, "user", id, subject, counted).await?;
        tx.commit().await?;
    }
    Err(Problem::invalid(
        "current_password",
        "is not the current password",
    ))
}

fn is_active_admin(u: &User) -> bool {
    u.role == Role::Admin && u.status == UserStatus::Active
}

/// Deletes a user with their memberships, sessions, API keys and notifications
/// (admin only). The last active admin cannot be deleted (409).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(in_path::User),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_user(api: Api, Path(id): Path<UserId>) -> ApiResult<StatusCode> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = tx.get_user(id).await?;
    if is_active_admin(&before) && tx.count_active_admins().await? <= 1 {
        return Err(Problem::from(flowstore_core::StoreError::conflict(
            "id",
            "this is the last active admin: make another admin first",
        )));
    }
    tx.delete_user(id).await?;
    api.commit(tx, "user.delete", id, audit::json(&before), None)
        .await?;
    // Its API keys went with it: stop trusting cached copies at once.
    api.state.keys().forget_user(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts the sign-in throttle of a user (admin only): their count of wrong passwords
/// and `locked_until` are cleared, in the database and in this server's throttle, so
/// that they can sign in at once. Sessions are untouched. Written to the audit log as
/// `user.unlock`.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users",
    params(in_path::User),
    responses((status = 200, body = doc::User), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unlock_user(api: Api, Path(id): Path<UserId>) -> ApiResult<AxumJson<User>> {
    api.caller.require(Role::Admin)?;
    let now = time::now();
    let mut tx = api.write().await?;
    let before = tx.get_user(id).await?;
    let after = tx.unlock_user(id, now).await?;
    api.commit_change(tx, "user.unlock", id, &before, &after)
        .await?;
    api.state
        .sign_in()
        .accounts()
        .clear(&signin::account_key(&after.email));
    Ok(AxumJson(after))
}
