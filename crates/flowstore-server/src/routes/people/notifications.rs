//! Notifications: each user sees, reads and deletes their own only (another user's
//! answers 404).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as AxumJson;
use flowstore_core::ids::NotificationId;
use flowstore_core::model::identity_access::{Notification, NotificationFilter};
use flowstore_core::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::Caller;
use crate::error::{ApiResult, Path, Problem, Query};
use crate::openapi as doc;
use crate::state::AppState;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(notifications))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
        .routes(routes!(unread_count))
        .routes(routes!(delete_notification))
}

/// Filters and page of `GET /notifications`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListNotifications {
    /// Only unread ones.
    pub unread_only: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=1000.
    pub limit: Option<u32>,
}

/// The answer of `GET /notifications/unread-count`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    /// How many of the caller's notifications are unread.
    pub unread: u64,
}

/// A page of the caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(ListNotifications),
    responses((status = 200, body = doc::NotificationPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListNotifications>,
) -> ApiResult<AxumJson<Page<Notification>>> {
    let me = access::me(&caller)?;
    let filter = NotificationFilter {
        unread_only: q.unread_only.unwrap_or(false),
    };
    let mut tx = state.backend().begin_read().await?;
    Ok(AxumJson(
        tx.list_notifications(me, &filter, &super::super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Marks one of one's notifications read (another user's answers 404).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(("id" = String, Path, description = "notification ID")),
    responses((status = 200, body = doc::Notification), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<NotificationId>,
) -> ApiResult<AxumJson<Notification>> {
    let me = access::me(&caller)?;
    let mut tx = state.backend().begin().await?;
    if tx.get_notification(id).await?.user_id != me {
        return Err(Problem::not_found(format!("no notification {id}")));
    }
    let n = tx
        .mark_notification_read(id, flowstore_core::time::now())
        .await?;
    tx.commit().await?;
    Ok(AxumJson(n))
}

/// Marks every one of one's notifications read; returns how many.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    responses((status = 200, body = doc::Marked), (status = 403, body = Problem)))]
pub async fn mark_all_read(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<serde_json::Value>> {
    let me = access::me(&caller)?;
    let mut tx = state.backend().begin().await?;
    let n = tx
        .mark_all_notifications_read(me, flowstore_core::time::now())
        .await?;
    tx.commit().await?;
    Ok(AxumJson(serde_json::json!({ "marked": n })))
}

/// How many of one's notifications are unread.
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications",
    responses((status = 200, body = UnreadCount), (status = 403, body = Problem)))]
pub async fn unread_count(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<UnreadCount>> {
    let me = access::me(&caller)?;
    let mut tx = state.backend().begin_read().await?;
    let unread = tx.unread_notification_count(me).await?;
    Ok(AxumJson(UnreadCount { unread }))
}

/// Deletes one of one's notifications (another user's answers 404).
#[utoipa::path(delete, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(("id" = String, Path, description = "notification ID")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_notification(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<NotificationId>,
) -> ApiResult<StatusCode> {
    let me = access::me(&caller)?;
    let mut tx = state.backend().begin().await?;
    if tx.get_notification(id).await?.user_id != me {
        return Err(Problem::not_found(format!("no notification {id}")));
    }
    tx.delete_notification(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
