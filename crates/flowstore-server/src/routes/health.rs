//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::state::AppState;

/// What `/healthz` and `/readyz` answer: seed 002's health report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (the process answers) or `ready` (and so does the database).
    pub status: String,
    /// When this was answered.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: flowstore_core::time::Timestamp,
    /// The running build.
    pub version: String,
    /// The database pool's connections now.
    pub pool: PoolFigures,
    /// The schema versions (`/readyz` only, which asks the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaVersions>,
}

/// The database pool's connections at one instant.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PoolFigures {
    /// Open, in use or idle.
    pub size: u32,
    /// Of which idle.
    pub idle: u32,
    /// Of which in use.
    pub in_use: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// The newest schema version this build knows and the newest the database has.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SchemaVersions {
    /// Known by this build.
    pub known: i64,
    /// Applied to the database.
    pub applied: i64,
}

fn report(state: &AppState, status: &str, schema: Option<SchemaVersions>) -> Health {
    let pool = state.backend().pool_status();
    Health {
        status: status.to_string(),
        timestamp: flowstore_core::time::now(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        pool: PoolFigures {
            size: pool.size,
            idle: pool.idle,
            in_use: pool.in_use(),
            max: pool.max,
        },
        schema,
    }
}

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(),
    responses((status = 200, description = "alive", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    (StatusCode::OK, axum::Json(report(&state, "ok", None)))
}

/// The database answers (on a connection kept for health checks, within two
/// seconds), its schema is the one this binary needs and it can take writes: its disk
/// has room and is writable, it is not a read-only replica. The problem's type says
/// which failed: `unavailable`, `timeout`, `schema`, `storage-full` (507) or
/// `read-only`.
#[utoipa::path(get, path = "/readyz", tag = "health", security(),
    responses((status = 200, description = "ready", body = Health),
              (status = 503, description = "database unreachable, too slow, read-only, or schema not current", body = crate::error::Problem),
              (status = 507, description = "the disk holding the database is full", body = crate::error::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    if state.shutting_down() {
        return Err(crate::error::Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down",
        ));
    }
    state.backend().readiness().await?;
    // The versions are read from the general pool, which slow work may hold: they
    // are left out rather than make the answer late (readiness itself, asked on the
    // health connection, has already checked that the schema is current).
    let known = state.backend().migrations().iter().map(|m| m.version).max();
    let applied = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        state.backend().migration_status(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .and_then(|all| {
        all.into_iter()
            .filter(|m| m.applied_at.is_some())
            .map(|m| m.version)
            .max()
    });
    let schema = known
        .zip(applied)
        .map(|(known, applied)| SchemaVersions { known, applied });
    Ok((StatusCode::OK, axum::Json(report(&state, "ready", schema))))
}
