//! API keys: create (admin only; the key is shown once), list (one's own; an admin
//! any user's) and revoke (one's own, or any as an admin).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::ids::{ApiKeyId, UserId};
use flowstore_core::model::identity_access::{ApiKey, NewApiKey};
use flowstore_core::Page;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::audit;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

/// A key just created: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key to send as `Authorization: Bearer <key>`.
    pub key: String,
    /// The key as stored.
    pub api_key: ApiKey,
}

paged_query_params! {
    /// Whose keys `GET /apikeys` lists.
    pub struct ListKeys {
        /// The user (an admin only; others always see their own).
        pub user_id: Option<String>,
    }
}

/// Creates an API key (admin only).
#[utoipa::path(post, path = "/api/v1/apikeys", tag = "apikeys", request_body = doc::NewApiKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(api: Api, Json(new): Json<NewApiKey>) -> ApiResult<impl IntoResponse> {
    let mut tx = api.write().await?;
    let created = tx.create_api_key(new).await?;
    let (id, after) = (created.api_key.id, audit::json(&created.api_key));
    api.commit(tx, "api_key.create", id, None, after).await?;
    Ok((
        StatusCode::CREATED,
        AxumJson(CreatedKey {
            key: created.key.expose().to_string(),
            api_key: created.api_key,
        }),
    ))
}

/// A page of a user's keys, newest first (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/apikeys", tag = "apikeys", params(ListKeys),
    responses((status = 200, body = doc::ApiKeyPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(api: Api, Query(q): Query<ListKeys>) -> ApiResult<AxumJson<Page<ApiKey>>> {
    let asked = super::parse_opt::<UserId>("user_id", q.user_id.as_deref())?;
    let user = match asked {
        Some(u) if api.caller.is_admin() || api.caller.0.user_id == Some(u) => u,
        Some(_) => {
            return Err(Problem::forbidden(
                "only an admin may list another user's keys",
            ))
        }
        None if api.caller.is_admin() && api.caller.0.user_id.is_none() => {
            return Err(Problem::invalid(
                "user_id",
                "name the user whose keys to list",
            ))
        }
        None => access::me(&api.caller)?,
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_api_keys(user, &super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Revokes an API key: one's own, or any as an admin. Another user's answers 404.
#[utoipa::path(delete, path = "/api/v1/apikeys/{id}", tag = "apikeys",
    params(in_path::ApiKey),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(api: Api, Path(id): Path<ApiKeyId>) -> ApiResult<StatusCode> {
    let mut tx = api.write().await?;
    let key = tx.get_api_key(id).await?;
    let own = api.caller.api_key_id() == Some(key.id)
        || (key.user_id.is_some() && key.user_id == api.caller.0.user_id);
    if !api.caller.is_admin() && !own {
        return Err(Problem::not_found(format!("no API key {id}")));
    }
    let now = flowstore_core::time::now();
    tx.revoke_api_key(id, now).await?;
    if key.revoked_at.is_none() {
        flowstore_core::model::notify::key_revoked(&mut *tx, &key, api.caller.0.user_id).await?;
    }
    let after = ApiKey {
        revoked_at: key.revoked_at.or(Some(now)),
        ..key.clone()
    };
    api.commit_change(tx, "api_key.revoke", id, &key, &after)
        .await?;
    api.state.keys().forget(id);
    Ok(StatusCode::NO_CONTENT)
}
