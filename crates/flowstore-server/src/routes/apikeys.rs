//! API key management (admin only): create (the key is shown once) and revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::ApiKeyId;
use flowstore_core::model::identity_access::{ApiKey, NewApiKey};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, Json, Path, Problem};
use crate::openapi as doc;
use crate::state::AppState;

/// A key just created: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key to send as `Authorization: Bearer <key>`.
    pub key: String,
    /// The key as stored.
    #[schema(value_type = doc::ApiKey)]
    pub api_key: ApiKey,
}

/// Creates an API key.
#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", request_body = doc::NewApiKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewApiKey>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.backend().begin().await?;
    let created = tx.create_api_key(new).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        AxumJson(CreatedKey {
            key: created.key.expose().to_string(),
            api_key: created.api_key,
        }),
    ))
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/api/v1/apikeys/{id}", tag = "apikeys",
    params(("id" = String, Path, description = "API key ID")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<ApiKeyId>,
) -> ApiResult<StatusCode> {
    let mut tx = state.backend().begin().await?;
    tx.revoke_api_key(id, flowstore_core::time::now()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
