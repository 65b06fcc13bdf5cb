//! The handler registry: register, change and deactivate (admin only), list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json as AxumJson;
use flowstore_core::model::identity::Role;
use flowstore_core::model::registry::{Handler, HandlerPatch, NewHandler};
use flowstore_core::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiResult, Json, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(get, update))
        .routes(routes!(deactivate))
}

/// Which handlers `GET /handlers` lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListHandlers {
    /// `true`: a page of every handler, deactivated ones included (with `cursor`
    /// and `limit`); otherwise every active handler.
    pub all: Option<bool>,
    /// The `next_cursor` of the previous page (with `all=true`).
    pub cursor: Option<String>,
    /// Page size, 1..=1000 (with `all=true`).
    pub limit: Option<u32>,
}

/// Registers a handler type (admin only).
#[utoipa::path(post, path = "/api/v1/handlers", tag = "handlers", request_body = doc::NewHandler,
    responses((status = 201, body = doc::Handler), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewHandler>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let h = tx.register_handler(new).await?;
    let after = audit::json(&h);
    audit::record(
        &mut *tx,
        &caller,
        "handler.register",
        "handler",
        &h.handler_type,
        None,
        after,
    )
    .await?;
    tx.commit().await?;
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
    params(("handler_type" = String, Path)),
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
    request_body = doc::HandlerPatch, params(("handler_type" = String, Path)),
    responses((status = 200, body = doc::Handler), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(handler_type): Path<String>,
    Json(patch): Json<HandlerPatch>,
) -> ApiResult<AxumJson<Handler>> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let before = audit::json(&tx.get_handler(&handler_type).await?);
    let h = tx.update_handler(&handler_type, patch).await?;
    let after = audit::json(&h);
    audit::record(
        &mut *tx,
        &caller,
        "handler.update",
        "handler",
        &handler_type,
        before,
        after,
    )
    .await?;
    tx.commit().await?;
    Ok(AxumJson(h))
}

/// Deactivates a handler (admin only): workers stop being offered its tasks.
#[utoipa::path(post, path = "/api/v1/handlers/{handler_type}/deactivate", tag = "handlers",
    params(("handler_type" = String, Path)),
    responses((status = 200, body = doc::Handler), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Path(handler_type): Path<String>,
) -> ApiResult<AxumJson<Handler>> {
    caller.require(Role::Admin)?;
    let mut tx = state.backend().begin().await?;
    let before = audit::json(&tx.get_handler(&handler_type).await?);
    let h = tx.deactivate_handler(&handler_type).await?;
    let after = audit::json(&h);
    audit::record(
        &mut *tx,
        &caller,
        "handler.deactivate",
        "handler",
        &handler_type,
        before,
        after,
    )
    .await?;
    tx.commit().await?;
    Ok(AxumJson(h))
}
