//! Bearer API keys, roles and the per-key rate limit.
//!
//! viewer: reads only; user: reads, writes and the worker protocol; admin:
//! everything, API key management included. `/healthz`, `/readyz`, `/metrics` and
//! the OpenAPI document are outside this layer.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowstore_core::model::identity::Role;
use flowstore_core::model::identity_access::ApiKey;

use crate::error::Problem;
use crate::state::AppState;

/// The API key that made the request.
#[derive(Clone, Debug)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// Refuses the request unless the key's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
        if rank(self.0.role) >= rank(needed) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this API key's role ({}) may not do this; {} is needed",
                self.0.role, needed
            )))
        }
    }

    /// Whether the key is an admin's.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// Who the run or change is attributed to: the key's user, else its name.
    pub fn who(&self) -> String {
        match self.0.user_id {
            Some(u) => u.to_string(),
            None => format!("apikey:{}", self.0.name),
        }
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::User => 1,
        Role::Admin => 2,
    }
}

/// The least role a request needs by its method and path. Handlers check more:
/// admin-only areas (API key creation, configurations, users, teams, handlers)
/// and each object's access.
pub fn needed_role(method: &Method, path: &str) -> Role {
    if path.starts_with("/api/v1/apikeys") && method == Method::POST {
        Role::Admin
    } else if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        Role::Viewer
    } else {
        Role::User
    }
}

/// Middleware: authenticates, checks the role and the rate limit, and puts the
/// [`Caller`] in the request's extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let needed = needed_role(req.method(), req.uri().path());
    match check(&state, header, needed).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(p) => p.into_response(),
    }
}

async fn check(state: &AppState, header: Option<String>, needed: Role) -> Result<Caller, Problem> {
    let header = header.ok_or_else(|| {
        Problem::unauthenticated("an API key is required: Authorization: Bearer <key>")
    })?;
    let presented = header
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthenticated("the Authorization header must be: Bearer <key>")
        })?;
    let key = lookup(state, &presented).await?;
    state
        .limiter()
        .check(key.id)
        .map_err(Problem::rate_limited)?;
    let caller = Caller(key);
    caller.require(needed)?;
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
                Err(flowstore_core::StoreError::NotFound { .. })
                | Err(flowstore_core::StoreError::Invalid { .. }) => {
                    return Err(Problem::unauthenticated(
                        "the API key is unknown, revoked or expired",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if state.keys().touch_due(key.id, cfg.touch_interval) {
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

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::unauthenticated("an API key is required"))
    }
}
