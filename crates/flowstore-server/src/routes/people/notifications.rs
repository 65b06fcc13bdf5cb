//! Notifications: each user sees, reads and deletes their own only (another user's
//! answers 404).

use axum::http::StatusCode;
use axum::Json as AxumJson;
use flowstore_core::ids::{NotificationId, UserId};
use flowstore_core::model::identity_access::{Notification, NotificationFilter};
use flowstore_core::{Page, Tx};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::error::{ApiResult, Path, Problem, Query};
use crate::openapi as doc;
use crate::routes::in_path;
use crate::routes::Api;
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

paged_query_params! {
    /// Filters and page of `GET /notifications`.
    pub struct ListNotifications {
        /// Only unread ones.
        pub unread_only: Option<bool>,
    }
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
    api: Api,
    Query(q): Query<ListNotifications>,
) -> ApiResult<AxumJson<Page<Notification>>> {
    let me = access::me(&api.caller)?;
    let filter = NotificationFilter {
        unread_only: q.unread_only.unwrap_or(false),
    };
    let mut tx = api.read().await?;
    Ok(AxumJson(
        tx.list_notifications(me, &filter, &super::super::page(q.cursor, q.limit))
            .await?,
    ))
}

/// Marks one of one's notifications read (another user's answers 404).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications",
    params(in_path::Notification),
    responses((status = 200, body = doc::Notification), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn mark_read(
    api: Api,
    Path(id): Path<NotificationId>,
) -> ApiResult<AxumJson<Notification>> {
    let me = access::me(&api.caller)?;
    let mut tx = api.write().await?;
    own(&mut *tx, me, id).await?;
    let n = tx
        .mark_notification_read(id, flowstore_core::time::now())
        .await?;
    tx.commit().await?;
    Ok(AxumJson(n))
}

/// Marks every one of one's notifications read; returns how many.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    responses((status = 200, body = doc::Marked), (status = 403, body = Problem)))]
pub async fn mark_all_read(api: Api) -> ApiResult<AxumJson<serde_json::Value>> {
    let me = access::me(&api.caller)?;
    let mut tx = api.write().await?;
    let n = tx
        .mark_all_notifications_read(me, flowstore_core::time::now())
        .await?;
    tx.commit().await?;
    Ok(AxumJson(serde_json::json!({ "marked": n })))
}

/// How many of one's notifications are unread.
#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications",
    responses((status = 200, body = UnreadCount), (status = 403, body = Problem)))]
pub async fn unread_count(api: Api) -> ApiResult<AxumJson<UnreadCount>> {
    let me = access::me(&api.caller)?;
    let mut tx = api.read().await?;
    let unread = tx.unread_notification_count(me).await?;
    Ok(AxumJson(UnreadCount { unread }))
}

/// Deletes one of one's notifications (another user's answers 404).
#[utoipa::path(delete, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(in_path::Notification),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_notification(
    api: Api,
    Path(id): Path<NotificationId>,
) -> ApiResult<StatusCode> {
    let me = access::me(&api.caller)?;
    let mut tx = api.write().await?;
    own(&mut *tx, me, id).await?;
    tx.delete_notification(id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses a notification of another user as if it did not exist.
async fn own(tx: &mut dyn Tx, me: UserId, id: NotificationId) -> ApiResult<()> {
    if tx.get_notification(id).await?.user_id != me {
        return Err(Problem::not_found(format!("no notification {id}")));
    }
    Ok(())
}
