//! Authentication (bearer API keys and sign-in sessions), roles and the per-caller
//! rate limit.
//!
//! viewer: reads only; user: reads, writes and the worker protocol; admin:
//! everything, API key management included. An API key carries its own role; a
//! session carries its user's role as it is now, and stops working as soon as the
//! user is switched off or deleted (a sign-in throttle on the account leaves it
//! working: anyone may send wrong passwords for any email). `/healthz`, `/readyz`, `/metrics`, the
//! OpenAPI document, signing in (`POST /api/v1/sessions`) and firing a trigger
//! (`POST /hooks/{token}`, see [`crate::routes::triggers`]) are outside this layer.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowstore_core::ids::{ApiKeyId, SessionId, UserId};
use flowstore_core::model::audit::ActorType;
use flowstore_core::model::identity::{Role, User, UserStatus};
use flowstore_core::model::identity_access::{ApiKey, Scope, Session, API_KEY_PREFIX};
use flowstore_core::StoreError;
use uuid::Uuid;

use crate::error::Problem;
use crate::state::AppState;

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A bearer API key.
    ApiKey(ApiKey),
    /// A session opened by signing in with an email and a password.
    Session(Session),
}

/// Who made a request, with what role, and where from.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user acted for: the session's user, or the key's user if it has one.
    pub user_id: Option<UserId>,
    /// What the caller may do: the key's role, or the session user's.
    pub role: Role,
    /// The key or the session.
    pub credential: Credential,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The client's address, when the server knows it.
    pub ip_address: Option<String>,
}

/// The caller of a request, put in the request's extensions by [`authenticate`].
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses the request unless the caller's role is at least `needed` (and, for
    /// admin operations, its key's scopes include `admin`).
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
        if rank(self.0.role) < rank(needed) {
            return Err(Problem::forbidden(format!(
                "the caller's role ({}) may not do this; {} is needed",
                self.0.role, needed
            )));
        }
        if needed == Role::Admin {
            self.require_scope(Scope::Admin)?;
        }
        Ok(())
    }

    /// Refuses the request unless the caller's API key (if it came with one) has a
    /// scope that grants `needed`. Sessions carry no scopes: their user's role rules.
    pub fn require_scope(&self, needed: Scope) -> Result<(), Problem> {
        match &self.0.credential {
            Credential::ApiKey(k) if !k.allows(needed) => Err(Problem::forbidden(format!(
                "the API key's scopes ({}) do not allow this; {needed} is needed",
                k.scopes.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// The caller as a reader of objects (see [`flowstore_core::model::viewer`]).
    pub fn viewer(&self) -> flowstore_core::model::viewer::Viewer {
        flowstore_core::model::viewer::Viewer {
            user_id: self.0.user_id,
            admin: self.is_admin(),
        }
    }

    /// Who the run or change is attributed to: the user, else the key's name.
    pub fn who(&self) -> String {
        match (self.0.user_id, &self.0.credential) {
            (Some(u), _) => u.to_string(),
            (None, Credential::ApiKey(k)) => format!("apikey:{}", k.name),
            (None, Credential::Session(s)) => s.user_id.to_string(),
        }
    }

    /// The API key of the request, if it was made with one.
    pub fn api_key_id(&self) -> Option<ApiKeyId> {
        match &self.0.credential {
            Credential::ApiKey(k) => Some(k.id),
            Credential::Session(_) => None,
        }
    }

    /// The session of the request, if it was made with one.
    pub fn session_id(&self) -> Option<SessionId> {
        match &self.0.credential {
            Credential::Session(s) => Some(s.id),
            Credential::ApiKey(_) => None,
        }
    }

    /// Whom the audit log names: the user when there is one, else the API key.
    pub fn actor(&self) -> (ActorType, Option<String>) {
        match (self.0.user_id, &self.0.credential) {
            (Some(u), _) => (ActorType::User, Some(u.to_string())),
            (None, Credential::ApiKey(k)) => (ActorType::ApiKey, Some(k.id.to_string())),
            (None, Credential::Session(s)) => (ActorType::User, Some(s.user_id.to_string())),
        }
    }

    /// What the rate limit counts against: the key, or the session's user (so that
    /// opening more sessions does not buy more requests).
    fn rate_key(&self) -> Uuid {
        match &self.0.credential {
            Credential::ApiKey(k) => k.id.0,
            Credential::Session(s) => s.user_id.0,
        }
    }
}

fn rank(role: Role) -> u8 {
    role.rank()
}

/// The least role a request needs by its method and path. Handlers check more:
/// admin-only areas (API key creation, configurations, users, teams, handlers,
/// the audit log) and each object's access.
pub fn needed_role(method: &Method, path: &str) -> Role {
    if path.starts_with("/api/v1/apikeys") && method == Method::POST {
        Role::Admin
    } else if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        Role::Viewer
    } else if self_service(method, path) {
        // Anyone may sign out, change their own name and password, choose their
        // notifications and confirm their address; the handler refuses everything
        // else.
        Role::Viewer
    } else {
        Role::User
    }
}

/// The scope a request needs by its method and path (see [`Scope`]): reads need
/// `read`; starting and cancelling runs and the worker protocol need `execute`;
/// every other change needs `write`. Admin operations also need `admin`, checked
/// where the handler asks for the admin role ([`Caller::require`]).
pub fn needed_scope(method: &Method, path: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return Scope::Read;
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let executes = match segments.as_slice() {
        ["", "api", "v1", "worker", ..] => true,
        ["", "api", "v1", "workflows", _, "runs"] => true,
        ["", "api", "v1", "workflows", _, "runs", "batch"] => true,
        ["", "api", "v1", "runs", _, "cancel" | "rerun" | "retry"] => true,
        ["", "api", "v1", "executions"] => method == Method::POST,
        ["", "api", "v1", "executions", id] => *id != "statistics",
        _ => false,
    };
    if executes {
        Scope::Execute
    } else if needed_role(method, path) == Role::Admin {
        Scope::Admin
    } else {
        Scope::Write
    }
}

fn self_service(method: &Method, path: &str) -> bool {
    (method == Method::DELETE && path == "/api/v1/sessions/current")
        || (method == Method::PATCH && path == "/api/v1/users/me/notification-preferences")
        || (method == Method::POST && path == "/api/v1/users/me/email-verification")
        || (method == Method::PATCH
            && path
                .strip_prefix("/api/v1/users/")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/')))
}

/// The cookie that carries a dashboard session's token (HttpOnly: the page's
/// scripts never see it).
pub const SESSION_COOKIE: &str = "flowstore_session";
/// The cookie the dashboard reads its CSRF token from.
pub const CSRF_COOKIE: &str = "flowstore_csrf";
/// The header a request authenticated by [`SESSION_COOKIE`] must carry, unless it
/// only reads: the CSRF token its sign-in gave ([`csrf_token`]).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Marks a request authenticated by the session cookie rather than a bearer token.
#[derive(Clone, Copy, Debug)]
pub struct ByCookie;

/// The CSRF token of a session: derived from its token, so the server keeps no state
/// for it and another site, which can neither read the cookie nor this value, cannot
/// forge a change.
pub fn csrf_token(session_token: &str) -> String {
    flowstore_core::crypto::sha256_hex(&format!("flowstore-csrf\0{session_token}"))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Equality that takes as long whatever the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer credential of a request: its `Authorization` header, else (for the
/// dashboard) the session cookie, which must then come with its CSRF token unless
/// the request only reads. Whether it came by cookie.
fn presented(req: &Request) -> Result<(Option<String>, bool), Problem> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        return Ok((Some(v.to_str().unwrap_or("").to_string()), false));
    }
    // Only sessions travel in the cookie: an API key there is ignored.
    let Some(token) =
        cookie(req.headers(), SESSION_COOKIE).filter(|t| !t.starts_with(API_KEY_PREFIX))
    else {
        return Ok((None, false));
    };
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !reads {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(sent.as_bytes(), csrf_token(&token).as_bytes()) {
            return Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf",
                "a change made with the session cookie must send the X-CSRF-Token header its sign-in gave",
            ));
        }
    }
    Ok((Some(format!("Bearer {token}")), true))
}

/// Middleware: authenticates, checks the role and the rate limit, and puts the
/// [`Caller`] in the request's extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let (header, by_cookie) = match presented(&req) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let needed = needed_role(req.method(), req.uri().path());
    let scope = needed_scope(req.method(), req.uri().path());
    let origin = Origin::of(req.headers(), req.extensions());
    match check(&state, header, needed, scope).await {
        Ok(mut caller) => {
            caller.0.request_id = origin.request_id;
            caller.0.ip_address = origin.ip_address;
            req.extensions_mut().insert(caller);
            if by_cookie {
                req.extensions_mut().insert(ByCookie);
            }
            next.run(req).await
        }
        Err(p) => p.into_response(),
    }
}

/// Where a request comes from: its ID, the client's address (when the server runs
/// with connection info; in-process tests have none) and its user agent.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The client's address.
    pub ip_address: Option<String>,
    /// The client's `User-Agent`, cut to 512 characters.
    pub user_agent: Option<String>,
}

impl Origin {
    fn of(headers: &HeaderMap, extensions: &Extensions) -> Self {
        let text = |name: header::HeaderName, max: usize| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(max).collect::<String>())
        };
        Origin {
            request_id: text(header::HeaderName::from_static("x-request-id"), 128),
            ip_address: extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: text(header::USER_AGENT, 512),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin::of(&parts.headers, &parts.extensions))
    }
}

async fn check(
    state: &AppState,
    header: Option<String>,
    needed: Role,
    scope: Scope,
) -> Result<Caller, Problem> {
    let header = header.ok_or_else(|| {
        Problem::unauthenticated(
            "an API key or a session token is required: Authorization: Bearer <token>",
        )
    })?;
    let presented = header
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthenticated("the Authorization header must be: Bearer <token>")
        })?;
    let principal = if presented.starts_with(API_KEY_PREFIX) {
        let key = lookup(state, &presented).await?;
        Principal {
            user_id: key.user_id,
            role: key.role,
            credential: Credential::ApiKey(key),
            request_id: None,
            ip_address: None,
        }
    } else {
        let (session, user) = lookup_session(state, &presented).await?;
        Principal {
            user_id: Some(user.id),
            role: user.role,
            credential: Credential::Session(session),
            request_id: None,
            ip_address: None,
        }
    };
    let caller = Caller(principal);
    state
        .limiter()
        .check(caller.rate_key())
        .map_err(Problem::rate_limited)?;
    caller.require(needed)?;
    caller.require_scope(scope)?;
    Ok(caller)
}

/// The key presented, from the cache or the database; writes its `last_used_at`
/// at most once per `touch_interval`.
async fn lookup(state: &AppState, presented: &str) -> Result<ApiKey, Problem> {
    let cfg = state.config();
    let hash = flowstore_core::crypto::sha256_hex(presented);
    let now = flowstore_core::time::now();
    let cached = state
        .keys()
        .get(&hash, cfg.key_cache_ttl)
        .filter(|k| k.expires_at.is_none_or(|e| e > now));
    let key = match cached {
        Some(k) => k,
        None => {
            let mut tx = state.backend().begin_read().await?;
            let found = tx.find_api_key(presented, now).await;
            let _ = tx.rollback().await;
            match found {
                Ok(k) => {
                    state.keys().put(hash, k.clone(), cfg.key_cache_ttl);
                    k
                }
                Err(StoreError::NotFound { .. }) | Err(StoreError::Invalid { .. }) => {
                    return Err(Problem::unauthenticated(
                        "the API key is unknown, revoked or expired",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if state.keys().touch_due(key.id.0, cfg.touch_interval) {
        // Best effort: a failed write of last_used_at does not fail the request.
        let touched = async {
            let mut tx = state.backend().begin().await?;
            tx.touch_api_key(key.id, now).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, key = %key.id, "could not record the key's last use");
        }
    }
    Ok(key)
}

/// The session presented and its user, from the database on every request (so that
/// signing out or a disabled account take effect at once); writes its
/// `last_seen_at` at most once per `touch_interval`.
async fn lookup_session(state: &AppState, presented: &str) -> Result<(Session, User), Problem> {
    let now = flowstore_core::time::now();
    let mut tx = state.backend().begin_read().await?;
    let found = async {
        let s = tx.find_session(presented, now).await?;
        let u = tx.get_user(s.user_id).await?;
        Ok::<_, StoreError>((s, u))
    }
    .await;
    let _ = tx.rollback().await;
    let (session, user) = match found {
        Ok(found) => found,
        Err(StoreError::NotFound { .. }) | Err(StoreError::Invalid { .. }) => {
            return Err(Problem::unauthenticated(
                "the token is not an API key, and no live session has it",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // Only the account's status counts here: `locked_until` notes a sign-in throttle,
    // which strangers can cause and which must not end its owner's sessions.
    if user.status != UserStatus::Active {
        return Err(Problem::unauthenticated(
            "the session's account is not active",
        ));
    }
    if state
        .keys()
        .touch_due(session.id.0, state.config().touch_interval)
    {
        let touched = async {
            let mut tx = state.backend().begin().await?;
            tx.touch_session(session.id, now).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, session = %session.id, "could not record the session's last use");
        }
    }
    Ok((session, user))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::unauthenticated("an API key or a session token is required"))
    }
}
