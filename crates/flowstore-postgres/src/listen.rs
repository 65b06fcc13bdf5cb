//! The listening side of the change feed (see [`flowstore_core::change`]): one
//! connection per backend `LISTEN`s to the channels the change-feed migration's
//! triggers notify, and reconnects by itself when it loses its connection.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use flowstore_core::change::{Change, ChangeSink};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

/// The channels the triggers of the change-feed migration notify.
const CHANNELS: [&str; 3] = ["flowstore_work", "flowstore_events", "flowstore_access"];

/// How long the listener waits for a notification before asking whether anyone
/// still listens.
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// The longest pause between attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts listening on a connection of its own (not one of the backend's pools,
/// which it would hold for good), delivering to `sink` until it is closed. The
/// backend's own announcements (payload `origin`) are passed over.
pub(crate) fn spawn(options: PgConnectOptions, sink: Arc<dyn ChangeSink>, origin: String) {
    tokio::spawn(run(options, sink, origin));
}

async fn run(options: PgConnectOptions, sink: Arc<dyn ChangeSink>, origin: String) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_lazy_with(options);
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_until_lost(&pool, &*sink, &origin).await {
            Ended::Closed => return,
            Ended::Lost(why) => {
                tracing::warn!(error = %why, "the change feed lost its connection; polling until it is back");
                if !sink.changed(Change::Lost) {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if sink.is_closed() {
            return;
        }
    }
}

enum Ended {
    /// The receiver is gone.
    Closed,
    /// The connection failed or was lost.
    Lost(String),
}

async fn listen_until_lost(pool: &sqlx::PgPool, sink: &dyn ChangeSink, origin: &str) -> Ended {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    if let Err(e) = listener.listen_all(CHANNELS).await {
        return Ended::Lost(e.to_string());
    }
    // Whatever was committed before LISTEN took effect was not heard: the receiver
    // treats `Listening` as "look again".
    if !sink.changed(Change::Listening) {
        return Ended::Closed;
    }
    loop {
        match tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await {
            Err(_) if sink.is_closed() => return Ended::Closed,
            Err(_) => {}
            Ok(Ok(Some(n))) => {
                if let Some(change) = change_of(n.channel(), n.payload(), origin) {
                    if !sink.changed(change) {
                        return Ended::Closed;
                    }
                }
            }
            Ok(Ok(None)) => return Ended::Lost("the connection was closed".into()),
            Ok(Err(e)) => return Ended::Lost(e.to_string()),
        }
    }
}

/// The change a notification on `channel` with `payload` stands for; none for the
/// listening backend's own announcement (payload `own`).
fn change_of(channel: &str, payload: &str, own: &str) -> Option<Change> {
    match channel {
        "flowstore_work" if payload == own => None,
        "flowstore_work" => Some(Change::Work {
            at: payload
                .parse::<i64>()
                .ok()
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        }),
        "flowstore_events" => Some(Change::Events),
        "flowstore_access" => Some(Change::Access),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_map_to_changes() {
        let own = "origin-1";
        assert_eq!(
            change_of("flowstore_work", "", own),
            Some(Change::Work { at: None })
        );
        assert_eq!(
            change_of("flowstore_work", "origin-2", own),
            Some(Change::Work { at: None }),
            "another server's announcement"
        );
        assert_eq!(change_of("flowstore_work", own, own), None, "our own");
        assert_eq!(
            change_of("flowstore_work", "1700000000123", own),
            Some(Change::Work {
                at: Utc.timestamp_millis_opt(1_700_000_000_123).single()
            })
        );
        assert_eq!(change_of("flowstore_events", "", own), Some(Change::Events));
        assert_eq!(change_of("flowstore_access", "", own), Some(Change::Access));
        assert_eq!(change_of("elsewhere", "", own), None);
    }
}
