//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::error::ApiResult;
use crate::state::AppState;

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(),
    responses((status = 200, description = "alive", body = crate::openapi::Health)))]
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

/// The database answers and its schema is the one this binary needs.
#[utoipa::path(get, path = "/readyz", tag = "health", security(),
    responses((status = 200, description = "ready", body = crate::openapi::Health),
              (status = 503, description = "database unreachable or schema not current", body = crate::error::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    if state.shutting_down() {
        return Err(crate::error::Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down",
        ));
    }
    state.backend().ping().await?;
    state.backend().check_schema().await?;
    Ok((StatusCode::OK, axum::Json(json!({"status": "ready"}))))
}
