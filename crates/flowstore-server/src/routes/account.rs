//! Password reset and email verification over HTTP.
//!
//! - `POST /password-resets {email}` (no key): when the address is an active
//!   account's, a reset token (1 hour, single use, stored as its SHA-256) is made and
//!   mailed (at most 3 messages at once, then 1 a minute, per address); whatever the address, the answer is the same 202 after the same work
//!   (a read, one write transaction with its audit entry), and the mail leaves
//!   after the commit, on a task of its own, so neither its time nor its failure
//!   shows.
//! - `POST /password-resets/confirm {token, password}` (no key): the new password is
//!   checked against the policy and hashed before the transaction (whether or not
//!   the token turns out good), then the token is consumed, the password set, the
//!   account unlocked and every session of the user ended (API keys stay: they are
//!   credentials of their own, listed and revoked by their user); the user is told
//!   (`security_alert`).
//! - `POST /users/me/email-verification` (signed in): a verification token (1 day,
//!   single use) mailed to the caller's address.
//! - `POST /email-verifications/confirm {token}` (no key): sets `email_verified_at`
//!   (a `pending_verification` account becomes active).
//!
//! Without mail configured the answers are the same; the operator hands tokens out
//! with `flowstore users reset-token USER` and `flowstore users verification-token
//! USER`. Each step is written to the audit log in its transaction.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as AxumJson;
use flowstore_core::crypto::SecretString;
use flowstore_core::model::audit::{ActorType, NewAuditEntry};
use flowstore_core::model::identity::{normalize_email, User, UserStatus};
use flowstore_core::model::notify;
use flowstore_core::{time, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::Origin;
use crate::error::{ApiResult, Json, Problem};
use crate::mail::{self, MailKind};
use crate::routes::Api;
use crate::signin;
use crate::state::AppState;

/// The routes that need no key (a token or an address is what they take), with
/// their OpenAPI paths.
pub(crate) fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
        .routes(routes!(confirm_verification))
}

/// The routes of a signed-in user, with their OpenAPI paths.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(request_verification))
}

/// The body of `POST /password-resets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The account's email address (any case).
    pub email: String,
}

/// The body of `POST /password-resets/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The token of the reset message.
    pub token: String,
    /// The new password (see the password policy).
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// The body of `POST /email-verifications/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationConfirm {
    /// The token of the verification message.
    pub token: String,
}

/// The answer to a request for a message: the same whether or not one is sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requested {
    /// What happens next.
    pub message: String,
}

const RESET_REQUESTED: &str =
    "if the address belongs to an active account, a message with a link to choose a new password is on its way";

/// Refuses a client address past the sign-in rate (these routes are as open as
/// signing in, and share its budget).
fn admit(state: &AppState, origin: &Origin) -> ApiResult<()> {
    if let Some(address) = origin.ip_address.as_deref() {
        state
            .sign_in()
            .admit_address(address, Instant::now())
            .map_err(signin::address_throttled)?;
    }
    Ok(())
}

/// An audit entry of these routes: by the user it is about when known, else by the
/// system.
fn entry(
    origin: &Origin,
    action: &str,
    user: Option<&User>,
    after: serde_json::Value,
) -> NewAuditEntry {
    let id = user.map(|u| u.id.to_string());
    let actor = if user.is_some() {
        ActorType::User
    } else {
        ActorType::System
    };
    let mut e = NewAuditEntry::new(actor, id.clone(), action, "user", id);
    e.after = Some(after);
    e.ip_address = origin.ip_address.clone();
    e.request_id = origin.request_id.clone();
    e
}

/// Asks for a password-reset message. The answer is the same 202 for an unknown
/// address, an account that is not active and an active one; only the latter gets
/// a message (when mail is configured).
#[utoipa::path(post, path = "/api/v1/password-resets", tag = "account", request_body = ResetRequest,
    security(()),
    responses((status = 202, body = Requested),
        (status = 422, body = Problem, description = "not an email address"),
        (status = 429, body = Problem, description = "too many attempts from this address")))]
pub async fn request_reset(
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<ResetRequest>,
) -> ApiResult<Response> {
    admit(&state, &origin)?;
    let email = normalize_email(&body.email)?;
    // Past 3 messages at once and then 1 a minute for this address, none is sent
    // (the answer stays the same).
    let may_send = state.sign_in().admit_reset_mail(&email);
    let now = time::now();
    // The same work on every path: one write transaction that reads the user,
    // writes the token when there is one to write, and the audit entry.
    let mut tx = state.backend().begin().await?;
    let user = match tx.get_user_by_email(&email).await {
        Ok(u) if u.status == UserStatus::Active && may_send => Some(u),
        Ok(_) | Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let token = match &user {
        Some(u) => Some(tx.issue_reset_token(u.id, now).await?),
        None => None,
    };
    let after = json!({"email": email, "sent": user.is_some(), "limited": !may_send});
    tx.append_audit(entry(
        &origin,
        "user.password_reset_request",
        user.as_ref(),
        after,
    ))
    .await?;
    tx.commit().await?;
    if let (Some(u), Some(token)) = (user, token) {
        mail::send_later(&state, MailKind::PasswordReset, u.email, token);
    }
    let answer = Requested {
        message: RESET_REQUESTED.into(),
    };
    Ok((StatusCode::ACCEPTED, AxumJson(answer)).into_response())
}

/// Chooses a new password with a reset token. The token works once, for an hour;
/// every session of the user ends, and their sign-in throttle is lifted.
#[utoipa::path(post, path = "/api/v1/password-resets/confirm", tag = "account", request_body = ResetConfirm,
    security(()),
    responses((status = 204, description = "the password is set; every session of the user ended"),
        (status = 422, body = Problem, description = "an unknown, used or expired token (field `token`), or a password the policy refuses (field `password`)"),
        (status = 429, body = Problem, description = "too many attempts from this address")))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<ResetConfirm>,
) -> ApiResult<StatusCode> {
    admit(&state, &origin)?;
    // Checked and hashed first, whatever the token: slow, and outside any
    // transaction.
    let hash = state.sign_in().passwords().hash(body.password).await?;
    let now = time::now();
    let mut tx = state.backend().begin().await?;
    let user = tx.reset_password(&body.token, &hash, now).await?;
    let after = json!({"sessions_ended": true});
    tx.append_audit(entry(&origin, "user.password_reset", Some(&user), after))
        .await?;
    notify::password_changed(&mut *tx, user.id, "reset").await?;
    tx.commit().await?;
    // Wrong guesses at the old password no longer matter.
    state
        .sign_in()
        .accounts()
        .clear(&signin::account_key(&user.email));
    Ok(StatusCode::NO_CONTENT)
}

/// Asks for a message that confirms the caller's email address (a user's key or
/// session). An address already confirmed is a conflict on `email_verified_at`.
#[utoipa::path(post, path = "/api/v1/users/me/email-verification", tag = "account",
    responses((status = 202, body = Requested), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "the address is already confirmed")))]
pub async fn request_verification(api: Api) -> ApiResult<Response> {
    let me = access::me(&api.caller)?;
    let now = time::now();
    let mut tx = api.write().await?;
    let user = tx.get_user(me).await?;
    if user.email_verified_at.is_some() {
        return Err(
            StoreError::conflict("email_verified_at", "the address is already confirmed").into(),
        );
    }
    let token = tx.issue_verification_token(me, now).await?;
    let after = Some(json!({"email": user.email}));
    crate::audit::record(
        &mut *tx,
        &api.caller,
        "user.verification_request",
        me,
        None,
        after,
    )
    .await?;
    tx.commit().await?;
    api.state.audit_queued();
    mail::send_later(&api.state, MailKind::Verification, user.email, token);
    let answer = Requested {
        message: "a message with a link to confirm your address is on its way".into(),
    };
    Ok((StatusCode::ACCEPTED, AxumJson(answer)).into_response())
}

/// Confirms an email address with a verification token: once, within a day.
#[utoipa::path(post, path = "/api/v1/email-verifications/confirm", tag = "account",
    request_body = VerificationConfirm,
    security(()),
    responses((status = 204, description = "the address is confirmed"),
        (status = 422, body = Problem, description = "an unknown, used or expired token"),
        (status = 429, body = Problem, description = "too many attempts from this address")))]
pub async fn confirm_verification(
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<VerificationConfirm>,
) -> ApiResult<StatusCode> {
    admit(&state, &origin)?;
    let now = time::now();
    let mut tx = state.backend().begin().await?;
    let user = tx.verify_email(&body.token, now).await?;
    let after = json!({"email": user.email, "email_verified_at": user.email_verified_at, "status": user.status});
    tx.append_audit(entry(&origin, "user.email_verified", Some(&user), after))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
