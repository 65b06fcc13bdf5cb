//! The handler registry: register, change and deactivate (admin only), list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::model::identity::Role;
use flowstore_core::model::registry::{Handler, HandlerPatch, NewHandler};
use flowstore_core::Page;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
        .routes(routes!(register, list))
        .routes(routes!(get, update))
        .routes(routes!(deactivate))
}

query_params! {
    /// Which handlers `GET /handlers` lists.
    pub struct ListHandlers {
        /// `true`: a page of every handler, deactivated ones included (with `cursor`
        /// and `limit`); otherwise every active handler.
        pub all: Option<bool>,
        /// The `next_cursor` of the previous page (with `all=true`).
        pub cursor: Option<String>,
        /// Page size, 1..=1000 (with `all=true`).
        pub limit: Option<u32>,
    }
}

/// Registers a handler type (admin only).
#[utoipa::path(post, path = "/api/v1/handlers", tag = "handlers", request_body = doc::NewHandler,
    responses((status = 201, body = doc::Handler), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn register(api: Api, Json(new): Json<NewHandler>) -> ApiResult<impl IntoResponse> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let h = tx.register_handler(new).await?;
    let after = audit::json(&h);
    api.commit(tx, "handler.register", &h.handler_type, None, after)
        .await?;
    Ok((StatusCode::CREATED, AxumJson(h)))
}

/// Every active handler, or with `all=true` a page of every handler.
#[utoipa::path(get, path = "/api/v1/handlers", tag = "handlers", params(ListHandlers),
    responses((status = 200, body = doc::HandlerList, description = "active handlers; a Page of handlers with all=true")))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListHandlers>,
) -> ApiResult<axum::response::Response> {
    let mut tx = state.backend().begin_read().await?;
    if q.all == Some(true) {
        let page: Page<Handler> = tx.list_handlers(&super::page(q.cursor, q.limit)).await?;
        return Ok(AxumJson(page).into_response());
    }
    Ok(AxumJson(tx.list_active_handlers().await?).into_response())
}

/// The handler for a task type.
#[utoipa::path(get, path = "/api/v1/handlers/{handler_type}", tag = "handlers",
    params(in_path::Handler),
    responses((status = 200, body = doc::Handler), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(handler_type): Path<String>,
) -> ApiResult<AxumJson<Handler>> {
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(tx.get_handler(&handler_type).await?))
}

/// Changes a handler (admin only).
#[utoipa::path(patch, path = "/api/v1/handlers/{handler_type}", tag = "handlers",
    request_body = doc::HandlerPatch, params(in_path::Handler),
    responses((status = 200, body = doc::Handler), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    api: Api,
    Path(handler_type): Path<String>,
    Json(patch): Json<HandlerPatch>,
) -> ApiResult<AxumJson<Handler>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = tx.get_handler(&handler_type).await?;
    let h = tx.update_handler(&handler_type, patch).await?;
    api.commit_change(tx, "handler.update", &handler_type, &before, &h)
        .await?;
    Ok(AxumJson(h))
}

/// Deactivates a handler (admin only): workers stop being offered its tasks.
#[utoipa::path(post, path = "/api/v1/handlers/{handler_type}/deactivate", tag = "handlers",
    params(in_path::Handler),
    responses((status = 200, body = doc::Handler), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn deactivate(
    api: Api,
    Path(handler_type): Path<String>,
) -> ApiResult<AxumJson<Handler>> {
    api.caller.require(Role::Admin)?;
    let mut tx = api.write().await?;
    let before = tx.get_handler(&handler_type).await?;
    let h = tx.deactivate_handler(&handler_type).await?;
    api.commit_change(tx, "handler.deactivate", &handler_type, &before, &h)
        .await?;
    Ok(AxumJson(h))
}
