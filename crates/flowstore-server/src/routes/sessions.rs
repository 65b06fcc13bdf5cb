//! Signing in and out: `POST /sessions` opens a session with an email and a
//! password (the token is shown once; only its hash is stored), `GET
//! /sessions/current` says who the caller is, `DELETE /sessions/current` signs out.
//! Every attempt to sign in that reaches the password check, successful or not, is
//! written to the audit log, and so is a throttle engaging (see [`crate::signin`]).

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json as AxumJson;
use chrono::TimeDelta;
use flowstore_core::crypto::SecretString;
use flowstore_core::model::audit::{ActorType, NewAuditEntry};
use flowstore_core::model::identity::{normalize_email, Role, User, UserStatus};
use flowstore_core::model::identity_access::{ApiKey, NewSession, Session};
use flowstore_core::time::Timestamp;
use flowstore_core::{time, StoreError, Tx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::auth::{ByCookie, Caller, Credential, Origin, Principal};
use crate::error::{ApiResult, Json, Problem};
use crate::routes::Api;
use crate::signin::{self, Counted};
use crate::state::AppState;

/// The session of the caller (`GET` and `DELETE /sessions/current`), with their
/// OpenAPI paths: behind a key or a session, like the rest of the API.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(current, logout))
}

/// Signing in (`POST /sessions`), with its OpenAPI path: apart from [`router`]
/// because it is how a client gets a token, so [`crate::app`] serves it without one.
pub(crate) fn sign_in_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

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

/// Signs in: checks the password (argon2id, off the async workers and outside any
/// transaction) and opens a session. Attempts are throttled per client address and
/// per email address, with delays that grow with every wrong password (README.md,
/// "Sign-in throttling"); an unknown email gets the same answers as an existing one,
/// after the same work. A throttled account's sessions and API keys keep working.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = LoginBody,
    security(()),
    responses((status = 201, body = SignedIn),
        (status = 401, body = Problem, description = "unknown email or wrong password"),
        (status = 403, body = Problem, description = "the account is not active"),
        (status = 422, body = Problem),
        (status = 429, body = Problem, description = "too many wrong passwords for this email address, or too many attempts from this address: wait for Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let signed_in = open_session(&state, &origin, &body).await?;
    Ok((StatusCode::CREATED, AxumJson(signed_in)).into_response())
}

/// Signing in, whatever carries the token back (the API's JSON answer, or the
/// dashboard's cookie): the throttles, the password check and the new session.
pub(crate) async fn open_session(
    state: &AppState,
    origin: &Origin,
    body: &LoginBody,
) -> ApiResult<SignedIn> {
    let guard = state.sign_in();
    let started = Instant::now();
    // The client's address is checked first, before any work (in-process callers
    // have none, and no address limit).
    if let Some(address) = origin.ip_address.as_deref() {
        guard
            .admit_address(address, started)
            .map_err(signin::address_throttled)?;
    }
    let account = signin::account_key(&body.email);
    // Counted as a wrong password until the check says otherwise.
    let counted = guard
        .accounts()
        .begin(&account, started)
        .map_err(signin::account_throttled)?;
    let (user, matches) = match check(state, body).await {
        Ok(verdict) => verdict,
        Err(e) => {
            guard.accounts().undo(&account);
            return Err(e);
        }
    };
    let now = time::now();
    match user {
        Some(user) if matches => {
            guard.accounts().clear(&account);
            if user.status == UserStatus::Active {
                signed_in(state, origin, user, now).await
            } else {
                let mut tx = state.backend().begin().await?;
                failed(&mut *tx, origin, &body.email, Some(&user), "not_active").await?;
                tx.commit().await?;
                Err(Problem::forbidden(format!(
                    "the account is {}",
                    user.status
                )))
            }
        }
        user => {
            wrong_password(state, origin, &body.email, user, counted, now).await?;
            Err(Problem::unauthenticated(BAD_CREDENTIALS))
        }
    }
}

/// The user the email names (if any) and whether the password is theirs: the user
/// read in a read transaction, closed before the slow check runs on the pool.
async fn check(state: &AppState, body: &LoginBody) -> ApiResult<(Option<User>, bool)> {
    let mut tx = state.backend().begin_read().await?;
    let found = tx.get_user_by_email(&body.email).await;
    let _ = tx.rollback().await;
    let user = match found {
        Ok(u) => Some(u),
        Err(StoreError::NotFound { .. } | StoreError::Invalid { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = state
        .sign_in()
        .passwords()
        .check(stored, body.password.clone())
        .await?;
    Ok((user, matches))
}

/// Opens the session of a user whose password matched: one short write transaction.
async fn signed_in(
    state: &AppState,
    origin: &Origin,
    user: User,
    now: Timestamp,
) -> ApiResult<SignedIn> {
    let ttl = TimeDelta::from_std(state.config().session_ttl)
        .map_err(|_| Problem::internal(&"the session lifetime is out of range"))?;
    let mut tx = state.backend().begin().await?;
    let user = tx.record_login_success(user.id, now).await?;
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
    audit::record(&mut *tx, &caller, "session.login", id, None, after).await?;
    tx.commit().await?;
    state.audit_queued();
    Ok(SignedIn {
        token: created.token.expose().to_string(),
        session: created.session,
        user,
    })
}

/// Records a wrong password (or an unknown email): the account's counter, the audit
/// entry, and the throttles that this failure engaged; one short write transaction.
async fn wrong_password(
    state: &AppState,
    origin: &Origin,
    email: &str,
    user: Option<User>,
    counted: Counted,
    now: Timestamp,
) -> ApiResult<()> {
    let by_address = origin.ip_address.as_deref().map(|a| {
        (
            a,
            state.sign_in().address_failures().fail(a, Instant::now()),
        )
    });
    let throttled_until = counted
        .blocked_for
        .and_then(|d| TimeDelta::from_std(d).ok())
        .map(|d| now + d);
    let mut tx = state.backend().begin().await?;
    let user = match user {
        Some(u) => match tx.record_login_failure(u.id, throttled_until, now).await {
            Ok(u) => Some(u),
            // Deleted meanwhile: an unknown email now.
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    failed(&mut *tx, origin, email, user.as_ref(), "bad_credentials").await?;
    if counted.engaged {
        let email = normalize_email(email).ok();
        let subject = json!({"scope": "account", "email": email});
        let user_id = user.as_ref().map(|u| u.id.to_string());
        throttled(&mut *tx, origin, "user", user_id, subject, counted).await?;
        if let Some(u) = &user {
            flowstore_core::model::notify::sign_in_throttled(&mut *tx, u.id, throttled_until)
                .await?;
        }
    }
    if let Some((address, c)) = by_address.filter(|(_, c)| c.engaged) {
        let subject = json!({"scope": "address", "ip_address": address});
        throttled(&mut *tx, origin, "client_address", None, subject, c).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes the audit entry of a refused sign-in: by no one known yet, about the user
/// the email names (if it names one).
async fn failed(
    tx: &mut dyn Tx,
    origin: &Origin,
    email: &str,
    user: Option<&User>,
    reason: &str,
) -> ApiResult<()> {
    let email = normalize_email(email).ok();
    let mut entry = NewAuditEntry::new(
        ActorType::System,
        None,
        "session.login_failed",
        "user",
        user.map(|u| u.id.to_string()),
    );
    entry.after = Some(json!({
        "email": email,
        "reason": reason,
        "failed_login_count": user.map(|u| u.failed_login_count),
        "locked_until": user.and_then(|u| u.locked_until),
    }));
    entry.ip_address = origin.ip_address.clone();
    entry.request_id = origin.request_id.clone();
    tx.append_audit(entry).await?;
    Ok(())
}

/// Writes the audit entry of a throttle engaging (`session.throttled`): once per
/// streak of wrong passwords, not for every attempt it refuses.
pub(crate) async fn throttled(
    tx: &mut dyn Tx,
    origin: &Origin,
    entity_type: &str,
    entity_id: Option<String>,
    mut subject: serde_json::Value,
    counted: Counted,
) -> ApiResult<()> {
    let mut entry = NewAuditEntry::new(
        ActorType::System,
        None,
        "session.throttled",
        entity_type,
        entity_id,
    );
    subject["failures"] = json!(counted.failures);
    subject["retry_after_seconds"] = json!(counted.blocked_for.map(signin::retry_secs));
    entry.after = Some(subject);
    entry.ip_address = origin.ip_address.clone();
    entry.request_id = origin.request_id.clone();
    tx.append_audit(entry).await?;
    Ok(())
}

/// Who the caller is: the user and the session or API key of this request.
#[utoipa::path(get, path = "/api/v1/sessions/current", tag = "sessions",
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem)))]
pub async fn current(api: Api) -> ApiResult<AxumJson<WhoAmI>> {
    let mut tx = api.read().await?;
    let user = match api.caller.0.user_id {
        Some(id) => Some(tx.get_user(id).await?),
        None => None,
    };
    let (credential, session, api_key) = match api.caller.0.credential {
        Credential::Session(s) => ("session", Some(s), None),
        Credential::ApiKey(k) => ("api_key", None, Some(k)),
    };
    Ok(AxumJson(WhoAmI {
        credential: credential.into(),
        role: api.caller.0.role,
        user,
        session,
        api_key,
    }))
}

/// Signs out: the session of this request stops working at once.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "sessions",
    responses((status = 204), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "the request was made with an API key, not a session")))]
pub async fn logout(api: Api, by_cookie: Option<Extension<ByCookie>>) -> ApiResult<Response> {
    let Credential::Session(session) = &api.caller.0.credential else {
        return Err(Problem::not_found(
            "this request was made with an API key, not a session: revoke the key instead",
        ));
    };
    let now = time::now();
    let mut tx = api.write().await?;
    tx.revoke_session(session.id, now).await?;
    let after = Session {
        revoked_at: Some(now),
        ..session.clone()
    };
    api.commit_change(tx, "session.logout", session.id, session, &after)
        .await?;
    // The dashboard's cookies go with the session they carried.
    let mut answer = StatusCode::NO_CONTENT.into_response();
    if by_cookie.is_some() {
        crate::dashboard::clear_cookies(answer.headers_mut());
    }
    Ok(answer)
}
