//! Notifications: each user sees, reads and deletes their own only (another user's
//! answers 404), chooses which kinds they want (`/users/me/notification-preferences`),
//! and may follow them as they are written (`GET /notifications/stream`, server-sent
//! events of the caller's own notifications and no one else's).

use axum::http::StatusCode;
use axum::Json as AxumJson;
use flowstore_core::ids::{NotificationId, UserId};
use flowstore_core::model::identity_access::{
    Notification, NotificationFilter, NotificationPreferences, NotificationPreferencesPatch,
};
use flowstore_core::{Page, Tx};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::error::{ApiResult, Json, Path, Problem, Query};
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
        .routes(routes!(preferences, update_preferences))
}

/// The stream of one's notifications, with its OpenAPI path: long-lived, so
/// [`crate::app`] serves it without the request timeout.
pub(crate) fn stream_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
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

/// Which kinds of notification the caller wants.
#[utoipa::path(get, path = "/api/v1/users/me/notification-preferences", tag = "notifications",
    responses((status = 200, body = NotificationPreferences), (status = 403, body = Problem)))]
pub async fn preferences(api: Api) -> ApiResult<AxumJson<NotificationPreferences>> {
    let me = access::me(&api.caller)?;
    let mut tx = api.read().await?;
    let off = tx.notification_types_off(me).await?;
    Ok(AxumJson(NotificationPreferences::with_off(&off)))
}

/// Changes which kinds of notification the caller wants (absent kinds stay as they
/// are); notifications of a kind switched off are not written at all. Security
/// alerts cannot be switched off (422 on `security_alert`). Written to the audit log
/// as `user.notification_preferences`.
#[utoipa::path(patch, path = "/api/v1/users/me/notification-preferences", tag = "notifications",
    request_body = NotificationPreferencesPatch,
    responses((status = 200, body = NotificationPreferences), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_preferences(
    api: Api,
    Json(patch): Json<NotificationPreferencesPatch>,
) -> ApiResult<AxumJson<NotificationPreferences>> {
    let me = access::me(&api.caller)?;
    let changes = patch.changes()?;
    let now = flowstore_core::time::now();
    let mut tx = api.write().await?;
    let before = NotificationPreferences::with_off(&tx.notification_types_off(me).await?);
    for (kind, enabled) in changes {
        tx.set_notification_preference(me, kind, enabled, now)
            .await?;
    }
    let after = NotificationPreferences::with_off(&tx.notification_types_off(me).await?);
    api.commit_change(tx, "user.notification_preferences", me, &before, &after)
        .await?;
    Ok(AxumJson(after))
}

/// Notifications read at once by a stream.
const STREAM_BATCH: u32 = 200;
/// How far back a stream looks for notifications committed after others it already
/// sent (their transactions ended later than they began): a notification whose
/// transaction took longer than this to commit may be missed by a stream, never by
/// the list.
const STREAM_LAG: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// What a notification stream has sent, to send each notification once.
struct StreamCursor {
    me: UserId,
    /// Nothing created before this is sent.
    from: flowstore_core::time::Timestamp,
    /// Nothing with this ID or a lower one is sent (`Last-Event-ID`).
    after: Option<NotificationId>,
    /// What was sent within the look-back window, by ID.
    sent: std::collections::BTreeMap<NotificationId, flowstore_core::time::Timestamp>,
}

impl StreamCursor {
    /// The caller's notifications not sent yet, oldest first.
    async fn next(&mut self, state: &AppState) -> flowstore_core::StoreResult<Vec<Notification>> {
        let now = flowstore_core::time::now();
        self.sent
            .retain(|_, at| *at >= now - STREAM_LAG - STREAM_LAG);
        let since = std::cmp::max(self.from, now - STREAM_LAG);
        let mut out = Vec::new();
        let mut after = self.after;
        loop {
            let mut tx = state.backend().begin_read().await?;
            let got = tx
                .notifications_since(self.me, since, after, STREAM_BATCH)
                .await;
            let _ = tx.rollback().await;
            let got = got?;
            let full = got.len() == STREAM_BATCH as usize;
            after = got.last().map(|n| n.id).or(after);
            for n in got {
                if let std::collections::btree_map::Entry::Vacant(e) = self.sent.entry(n.id) {
                    e.insert(n.created_at);
                    out.push(n);
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }
}

/// The caller's notifications as server-sent events, as they are written (the event
/// type is the notification's `type`, its id the notification's ID, its data the
/// notification as JSON): those created after the stream opened, or after the
/// notification named by `Last-Event-ID`. Only the caller's own, whatever their role.
#[utoipa::path(get, path = "/api/v1/notifications/stream", tag = "notifications",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this notification (its ID)")),
    responses((status = 200, content_type = "text/event-stream", description = "notifications: id = the notification's ID, event = its type, data = the notification as JSON"),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn stream(
    api: Api,
    headers: axum::http::HeaderMap,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};

    let me = access::me(&api.caller)?;
    let mut from = flowstore_core::time::now();
    let mut after = None;
    if let Some(v) = headers.get("last-event-id") {
        let id = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<NotificationId>().ok())
            .ok_or_else(|| Problem::invalid("Last-Event-ID", "must be the ID of a notification"))?;
        let mut tx = api.read().await?;
        let n = tx.get_notification(id).await;
        let _ = tx.rollback().await;
        match n {
            Ok(n) if n.user_id == me => {
                from = std::cmp::min(from, n.created_at);
                after = Some(id);
            }
            Ok(_) | Err(flowstore_core::StoreError::NotFound { .. }) => {
                return Err(Problem::invalid(
                    "Last-Event-ID",
                    "names no notification of yours",
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut cursor = StreamCursor {
        me,
        from,
        after,
        sent: Default::default(),
    };
    // The first read happens now, so that an unreachable database is a 503 rather
    // than an empty stream.
    let first = cursor.next(&api.state).await?;
    let state = api.state;
    let shutdown = state.shutdown_signal();
    let open = crate::metrics::Held::new(&state, |m| &m.event_streams);
    let events = futures::stream::unfold(
        (
            state,
            cursor,
            std::collections::VecDeque::from(first),
            shutdown,
            open,
        ),
        |(state, mut cursor, mut buffer, mut shutdown, open)| async move {
            loop {
                if let Some(n) = buffer.pop_front() {
                    let data = serde_json::to_string(&n).unwrap_or_else(|_| "{}".into());
                    let ev = SseEvent::default()
                        .id(n.id.to_string())
                        .event(n.kind.to_string())
                        .data(data);
                    return Some((Ok(ev), (state, cursor, buffer, shutdown, open)));
                }
                if state.shutting_down() {
                    return None;
                }
                // Notifications are written by many kinds of change, not all of which
                // tell the server: the stream looks every poll interval, and at once
                // when events are committed (runs ending, among them).
                let notified = state.event_notify().notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let nap = state.config().poll_interval;
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(nap) => {}
                    _ = shutdown.changed() => {}
                }
                match cursor.next(&state).await {
                    Ok(got) => buffer.extend(got),
                    Err(e) => {
                        tracing::warn!(error = %e, "notification stream could not read notifications")
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
