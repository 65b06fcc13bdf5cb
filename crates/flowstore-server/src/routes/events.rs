//! `GET /api/v1/events`: the outbox as server-sent events. The SSE id is the
//! event's gap-free `seq`; a client that reconnects with `Last-Event-ID` gets exactly
//! the events after it, so nothing is lost or repeated.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use flowstore_core::ids::RunId;
use flowstore_core::model::engine::{Event, EventFilter};
use flowstore_core::StoreResult;
use futures::Stream;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::error::{ApiResult, Problem, Query};
use crate::routes::Api;
use crate::state::AppState;
use flowstore_core::model::workflow::SharePermission;

/// This module's routes with their OpenAPI paths, each declared once, on its handler
/// (the layers they run under are [`crate::app`]'s).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

const BATCH: u32 = 200;

query_params! {
    /// Filters of the event stream.
    pub struct EventsQuery {
        /// Only this run's events.
        pub run_id: Option<String>,
        /// Only this workflow's events.
        pub workflow_id: Option<String>,
        /// Only events of this type, such as `task.completed`.
        pub event_type: Option<String>,
        /// Start after this `seq` (the `Last-Event-ID` header wins when both are given).
        pub after: Option<i64>,
        /// Start at the newest event, so that only what happens from now on is sent
        /// (`after` and `Last-Event-ID` win over it).
        pub tail: Option<bool>,
    }
}

struct Cursor {
    state: AppState,
    filter: EventFilter,
    after: i64,
    /// Every event up to this `seq` has been read through the filter: once the
    /// buffer is sent, the stream goes on from here, so that events the filter
    /// leaves out (another user's) are not read again at every wake.
    read_up_to: i64,
    buffer: VecDeque<Event>,
    shutdown: watch::Receiver<bool>,
    /// Counts the stream in `/metrics` while it is open.
    _open: crate::metrics::Held,
}

/// Streams events after `Last-Event-ID` (or `after`, or the newest with `tail=true`,
/// or from the start). A caller who is not an admin gets only the events they may
/// read: those of runs, tasks and workflows visible to them.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this seq")),
    responses((status = 200, content_type = "text/event-stream", description = "events: id = seq, event = event_type, data = the event as JSON"),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn stream(
    api: Api,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Problem::invalid("Last-Event-ID", "must be the seq of an event (an integer)")
                })?,
        ),
        None => q.after.map(|n| n.max(0)),
    };
    let mut filter = EventFilter {
        run_id: super::parse_opt::<RunId>("run_id", q.run_id.as_deref())?,
        workflow_id: q.workflow_id,
        event_type: q.event_type,
        viewer: None,
    };
    // Events inherit their objects' access: an admin may stream everything; anyone
    // else gets the events they may read, checked in the query itself, and a run or
    // workflow they name must be one they may read.
    if !api.caller.is_admin() {
        let mut tx = api.read().await?;
        match (filter.run_id, filter.workflow_id.as_deref()) {
            (Some(run), _) => {
                access::run(&mut *tx, &api.caller, run, SharePermission::Read).await?;
            }
            (None, Some(w)) => {
                access::check_workflow_named(&mut *tx, &api.caller, w, SharePermission::Read)
                    .await?;
            }
            (None, None) => {}
        }
        filter.viewer = Some(api.caller.viewer());
    }
    let after = match resume {
        Some(after) => after,
        None if q.tail == Some(true) => {
            let mut tx = api.state.backend().begin_read().await?;
            let newest = tx.newest_event_seq().await;
            let _ = tx.rollback().await;
            newest?
        }
        None => 0,
    };
    // The first read happens now, so that an unreachable database is a 503 rather
    // than an empty stream.
    let (first, read_up_to) = fetch(&api.state, after, &filter).await?;
    let cursor = Cursor {
        read_up_to,
        _open: crate::metrics::Held::new(&api.state, |m| &m.event_streams),
        shutdown: api.state.shutdown_signal(),
        state: api.state,
        filter,
        after,
        buffer: first.into(),
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(ev) = c.buffer.pop_front() {
                c.after = ev.seq;
                return Some((Ok(to_sse(&ev)), c));
            }
            c.after = c.after.max(c.read_up_to);
            if c.state.shutting_down() {
                return None;
            }
            let notified = c.state.event_notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match fetch(&c.state, c.after, &c.filter).await {
                Ok((evs, read_up_to)) => {
                    c.read_up_to = read_up_to;
                    if !evs.is_empty() {
                        c.buffer.extend(evs);
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event stream could not read events"),
            }
            let nap = c.state.wait_interval();
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {}
                _ = c.shutdown.changed() => {}
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn to_sse(ev: &Event) -> SseEvent {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    SseEvent::default()
        .id(ev.seq.to_string())
        .event(ev.event_type.clone())
        .data(data)
}

/// Events after `after` that pass `filter`, and the `seq` up to which every event
/// was read through it; on PostgreSQL, when none is numbered yet, numbers the
/// committed ones first so that a stream does not wait for the maintenance task.
///
/// The newest `seq` is read before the events: an event numbered later has a higher
/// one (numbers are given in order, after commit), so none is passed over.
async fn fetch(
    state: &AppState,
    after: i64,
    filter: &EventFilter,
) -> StoreResult<(Vec<Event>, i64)> {
    let read = |state: &AppState| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let mut tx = state.backend().begin_read().await?;
            let read = async {
                let newest = tx.newest_event_seq().await?;
                let evs = tx.events_after(after, &filter, BATCH).await?;
                // A full batch may stop short of the newest: go on after its last.
                let up_to = match evs.last() {
                    Some(last) if evs.len() == BATCH as usize => last.seq,
                    _ => newest.max(after),
                };
                StoreResult::Ok((evs, up_to))
            }
            .await;
            let _ = tx.rollback().await;
            read
        }
    };
    let (evs, up_to) = read(state).await?;
    if evs.is_empty() && state.backend().capabilities().sequences_events {
        let mut tx = state.backend().begin().await?;
        let n = tx.sequence_events().await?;
        tx.commit().await?;
        if n > 0 {
            return read(state).await;
        }
    }
    Ok((evs, up_to))
}
