//! Signing in and out: `POST /sessions` opens a session with an email and a
//! password (the token is shown once; only its hash is stored), `GET
//! /sessions/current` says who the caller is, `DELETE /sessions/current` signs out.
//! Every attempt to sign in, successful or not, is written to the audit log.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as AxumJson;
use chrono::TimeDelta;
use flowstore_core::crypto::SecretString;
use flowstore_core::model::audit::{ActorType, NewAuditEntry};
use flowstore_core::model::identity::{
    burn_password_check, normalize_email, LoginOutcome, Role, User,
};
use flowstore_core::model::identity_access::{ApiKey, NewSession, Session};
use flowstore_core::{time, StoreError, Tx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit;
use crate::auth::{Caller, Credential, Origin, Principal};
use crate::error::{ApiResult, Json, Problem};
use crate::state::AppState;

/// The body of `POST /sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The account's email address (any case).
    pub email: String,
    /// Its password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// A session just opened: the only time `token` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedIn {
    /// The token to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The session as stored.
    pub session: Session,
    /// The user signed in.
    pub user: User,
}

/// Who the caller is and how they authenticated.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// `session` or `api_key`.
    pub credential: String,
    /// What the caller may do.
    pub role: Role,
    /// The user acted for, if any.
    pub user: Option<User>,
    /// The session, when signed in with one.
    pub session: Option<Session>,
    /// The API key, when called with one.
    pub api_key: Option<ApiKey>,
}

const BAD_CREDENTIALS: &str = "the email address or the password is wrong";

/// Signs in: checks the password (argon2id), counts failures and locks the account
/// after too many. An unknown email and a wrong password get the same answer, after
/// the same work.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = LoginBody,
    security(()),
    responses((status = 201, body = SignedIn),
        (status = 401, body = Problem, description = "unknown email or wrong password"),
        (status = 403, body = Problem, description = "the account is not active"),
        (status = 422, body = Problem),
        (status = 429, body = Problem, description = "the account is locked for a while, or too many attempts from this address")))]
pub async fn login(
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    // Attempts are limited per client address, the only thing known about the
    // client yet (in-process callers, without one, share a bucket).
    let mut h = DefaultHasher::new();
    ("sign-in", &origin.ip_address).hash(&mut h);
    state
        .limiter()
        .check(Uuid::from_u64_pair(h.finish(), 0))
        .map_err(|secs| {
            let mut p = Problem::rate_limited(secs);
            p.detail = format!("too many sign-in attempts from this address; retry in {secs} s");
            p
        })?;
    let now = time::now();
    let mut tx = state.backend().begin().await?;
    let outcome = tx
        .verify_password(&body.email, body.password.expose(), now)
        .await;
    match outcome {
        Ok(LoginOutcome::Success(user)) => {
            let ttl = TimeDelta::from_std(state.config().session_ttl)
                .map_err(|_| Problem::internal(&"the session lifetime is out of range"))?;
            let created = tx
                .create_session(NewSession {
                    user_id: user.id,
                    expires_at: now + ttl,
                    ip_address: origin.ip_address.clone(),
                    user_agent: origin.user_agent.clone(),
                })
                .await?;
            let caller = Caller(Principal {
                user_id: Some(user.id),
                role: user.role,
                credential: Credential::Session(created.session.clone()),
                request_id: origin.request_id.clone(),
                ip_address: origin.ip_address.clone(),
            });
            let (id, after) = (created.session.id, audit::json(&created.session));
            audit::record(
                &mut *tx,
                &caller,
                "session.login",
                "session",
                id,
                None,
                after,
            )
            .await?;
            tx.commit().await?;
            let signed_in = SignedIn {
                token: created.token.expose().to_string(),
                session: created.session,
                user,
            };
            Ok((StatusCode::CREATED, AxumJson(signed_in)).into_response())
        }
        Ok(LoginOutcome::BadCredentials { .. }) => {
            failed(&mut *tx, &origin, &body.email, "bad_credentials").await?;
            tx.commit().await?;
            Err(Problem::unauthenticated(BAD_CREDENTIALS))
        }
        Err(StoreError::Conflict { field, message }) if field == "locked_until" => {
            // As slow as a password check, so that the time taken does not tell.
            burn_password_check(body.password.expose());
            let user = failed(&mut *tx, &origin, &body.email, "locked").await?;
            tx.commit().await?;
            let secs = user
                .and_then(|u| u.locked_until)
                .map_or(1, |t| (t - now).num_seconds().max(1) as u64);
            let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "account-locked", message)
                .with_field("locked_until");
            p.retry_after = Some(secs);
            Err(p)
        }
        Err(StoreError::Conflict { field, message }) if field == "status" => {
            failed(&mut *tx, &origin, &body.email, "not_active").await?;
            tx.commit().await?;
            Err(Problem::forbidden(message))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the audit entry of a refused sign-in: by no one known yet, about the user
/// the email names (if it names one). Returns that user.
async fn failed(
    tx: &mut dyn Tx,
    origin: &Origin,
    email: &str,
    reason: &str,
) -> ApiResult<Option<User>> {
    let email = normalize_email(email).ok();
    let user = match &email {
        Some(e) => match tx.get_user_by_email(e).await {
            Ok(u) => Some(u),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let mut entry = NewAuditEntry::new(
        ActorType::System,
        None,
        "session.login_failed",
        "user",
        user.as_ref().map(|u| u.id.to_string()),
    );
    entry.after = Some(json!({
        "email": email,
        "reason": reason,
        "failed_login_count": user.as_ref().map(|u| u.failed_login_count),
        "locked_until": user.as_ref().and_then(|u| u.locked_until),
    }));
    entry.ip_address = origin.ip_address.clone();
    entry.request_id = origin.request_id.clone();
    tx.append_audit(entry).await?;
    Ok(user)
}

/// Who the caller is: the user and the session or API key of this request.
#[utoipa::path(get, path = "/api/v1/sessions/current", tag = "sessions",
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem)))]
pub async fn current(State(state): State<AppState>, caller: Caller) -> ApiResult<AxumJson<WhoAmI>> {
    let mut tx = state.backend().begin_read().await?;
    let user = match caller.0.user_id {
        Some(id) => Some(tx.get_user(id).await?),
        None => None,
    };
    let (credential, session, api_key) = match caller.0.credential {
        Credential::Session(s) => ("session", Some(s), None),
        Credential::ApiKey(k) => ("api_key", None, Some(k)),
    };
    Ok(AxumJson(WhoAmI {
        credential: credential.into(),
        role: caller.0.role,
        user,
        session,
        api_key,
    }))
}

/// Signs out: the session of this request stops working at once.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "sessions",
    responses((status = 204), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "the request was made with an API key, not a session")))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let Credential::Session(session) = &caller.0.credential else {
        return Err(Problem::not_found(
            "this request was made with an API key, not a session: revoke the key instead",
        ));
    };
    let now = time::now();
    let mut tx = state.backend().begin().await?;
    tx.revoke_session(session.id, now).await?;
    let after = Session {
        revoked_at: Some(now),
        ..session.clone()
    };
    let (id, before, after) = (session.id, audit::json(session), audit::json(&after));
    audit::record(
        &mut *tx,
        &caller,
        "session.logout",
        "session",
        id,
        before,
        after,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
