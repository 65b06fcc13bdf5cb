//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(),
    responses((status = 200, description = "alive", body = crate::openapi::Health)))]
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

/// The database answers (on a connection kept for health checks, within two
/// seconds), its schema is the one this binary needs and it can take writes: its disk
/// has room and is writable, it is not a read-only replica. The problem's type says
/// which failed: `unavailable`, `timeout`, `schema`, `storage-full` (507) or
/// `read-only`.
#[utoipa::path(get, path = "/readyz", tag = "health", security(),
    responses((status = 200, description = "ready", body = crate::openapi::Health),
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
    Ok((StatusCode::OK, axum::Json(json!({"status": "ready"}))))
}
