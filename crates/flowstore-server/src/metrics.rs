//! Prometheus text exposition, written by hand from counters in memory: requests and
//! latency histograms by route, method and status, claims, lease expirations, slow
//! statements, scheduled backups (told by `flowstore serve`), the
//! database pool's connections in use and idle, and the queue depth read from the
//! database when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

const UP_HELP: &str = "# HELP flowstore_database_up Whether the database answered the scrape.\n# TYPE flowstore_database_up gauge\n";

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// Tasks handed out by claims.
    pub claimed: AtomicU64,
    /// Looks at the database by claims that found nothing to take (a claim's first
    /// look, and each wake or poll that came to nothing).
    pub claims_found_nothing: AtomicU64,
    /// Leases the maintenance task found expired.
    pub leases_expired: AtomicU64,
    /// Runs started by single starts written together with others (see
    /// [`crate::start_group`]).
    pub grouped_starts: AtomicU64,
    /// Groups of single starts refused as a whole before their commit, whose
    /// starts were then written alone.
    pub start_groups_refused: AtomicU64,
    /// Tasks and runs timed out by the maintenance task.
    pub timed_out: AtomicU64,
    /// Times the database's change feed was interrupted.
    pub feed_lost: AtomicU64,
    /// Claims waiting for work now.
    pub waiting_claims: AtomicU64,
    /// Event streams open now.
    pub event_streams: AtomicU64,
    /// Maintenance rounds and audit linker rounds that failed.
    pub maintenance_errors: AtomicU64,
    /// Webhook dispatch rounds that failed.
    pub webhook_round_errors: AtomicU64,
    /// Messages (password resets, email verifications) the SMTP server accepted.
    pub mail_sent: AtomicU64,
    /// Messages that could not be sent.
    pub mail_failed: AtomicU64,
    /// Scheduled backups, told by whoever runs them (`flowstore serve`).
    pub backups: BackupMetrics,
}

/// What scheduled backups report to `/metrics`. Shown once backups are scheduled.
#[derive(Default)]
pub struct BackupMetrics {
    /// Whether backups are scheduled at all.
    pub scheduled: std::sync::atomic::AtomicBool,
    /// Backups written.
    pub succeeded: AtomicU64,
    /// Backups that failed.
    pub failed: AtomicU64,
    /// When the newest backup was written (Unix seconds).
    pub last_success: AtomicU64,
    /// Its size in bytes.
    pub last_bytes: AtomicU64,
    /// How long it took, in milliseconds.
    pub last_duration_ms: AtomicU64,
}

impl BackupMetrics {
    /// Records a backup written at `unix_seconds`, of `bytes`, in `elapsed`.
    pub fn success(&self, unix_seconds: u64, bytes: u64, elapsed: Duration) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        self.last_success.store(unix_seconds, Ordering::Relaxed);
        self.last_bytes.store(bytes, Ordering::Relaxed);
        self.last_duration_ms
            .store(elapsed.as_millis() as u64, Ordering::Relaxed);
    }

    /// Records a backup that failed.
    pub fn failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        if !self.scheduled.load(Ordering::Relaxed) {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP flowstore_backups_total Scheduled backups, by result.
# TYPE flowstore_backups_total counter
flowstore_backups_total{{result=\"success\"}} {}
flowstore_backups_total{{result=\"failure\"}} {}",
            self.succeeded.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowstore_backup_last_success_timestamp_seconds When the newest scheduled backup was written (0: none yet).
# TYPE flowstore_backup_last_success_timestamp_seconds gauge
flowstore_backup_last_success_timestamp_seconds {}",
            self.last_success.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowstore_backup_last_size_bytes The size of the newest scheduled backup.
# TYPE flowstore_backup_last_size_bytes gauge
flowstore_backup_last_size_bytes {}",
            self.last_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowstore_backup_last_duration_seconds How long the newest scheduled backup took.
# TYPE flowstore_backup_last_duration_seconds gauge
flowstore_backup_last_duration_seconds {}",
            self.last_duration_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
    }
}

/// Counts one of a gauge's holders (a waiting claim, an open stream) while it lives.
pub(crate) struct Held {
    state: crate::AppState,
    gauge: fn(&Metrics) -> &AtomicU64,
}

impl Held {
    pub(crate) fn new(state: &crate::AppState, gauge: fn(&Metrics) -> &AtomicU64) -> Self {
        gauge(state.metrics()).fetch_add(1, Ordering::Relaxed);
        Held {
            state: state.clone(),
            gauge,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        (self.gauge)(self.state.metrics()).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let h = map
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The counters as Prometheus text.
    pub fn render(&self, out: &mut String) {
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP flowstore_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE flowstore_http_requests_total counter\n");
        for ((route, method, status), h) in map.iter() {
            let _ = writeln!(
                out,
                "flowstore_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP flowstore_http_request_duration_seconds Time to answer.\n");
        out.push_str("# TYPE flowstore_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in map.iter() {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "flowstore_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "flowstore_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "flowstore_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "flowstore_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        drop(map);
        for (kind, name, help, v) in [
            (
                "counter",
                "flowstore_tasks_claimed_total",
                "Tasks handed to workers.",
                &self.claimed,
            ),
            (
                "counter",
                "flowstore_claims_found_nothing_total",
                "Claims' looks at the database that found nothing to take.",
                &self.claims_found_nothing,
            ),
            (
                "counter",
                "flowstore_leases_expired_total",
                "Leases found expired by the reaper.",
                &self.leases_expired,
            ),
            (
                "counter",
                "flowstore_timeouts_total",
                "Tasks and runs timed out.",
                &self.timed_out,
            ),
            (
                "counter",
                "flowstore_grouped_starts_total",
                "Runs started by single starts that shared a transaction with others.",
                &self.grouped_starts,
            ),
            (
                "counter",
                "flowstore_start_groups_refused_total",
                "Groups of single starts refused before their commit, whose starts were then written alone.",
                &self.start_groups_refused,
            ),
            (
                "counter",
                "flowstore_change_feed_lost_total",
                "Times the database's change feed was interrupted.",
                &self.feed_lost,
            ),
            (
                "counter",
                "flowstore_maintenance_errors_total",
                "Maintenance rounds (reaper, timeouts, event numbering, audit linking) that failed.",
                &self.maintenance_errors,
            ),
            (
                "counter",
                "flowstore_webhook_round_errors_total",
                "Webhook dispatch rounds that failed.",
                &self.webhook_round_errors,
            ),
            (
                "counter",
                "flowstore_mail_sent_total",
                "Messages (password resets, email verifications) the SMTP server accepted.",
                &self.mail_sent,
            ),
            (
                "counter",
                "flowstore_mail_failed_total",
                "Messages that could not be sent (see the log).",
                &self.mail_failed,
            ),
            (
                "gauge",
                "flowstore_waiting_claims",
                "Claims waiting for work.",
                &self.waiting_claims,
            ),
            (
                "gauge",
                "flowstore_event_streams",
                "Event streams open.",
                &self.event_streams,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        // Counted by the process for every store it opened (`flowstore_core::slow`).
        let _ = writeln!(
            out,
            "# HELP flowstore_slow_queries_total Statements that took at least the slow-query threshold (FLOWSTORE_SLOW_QUERY_MS).\n# TYPE flowstore_slow_queries_total counter\nflowstore_slow_queries_total {}",
            flowstore_core::slow::total()
        );
        self.backups.render(out);
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording every request by its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    state
        .metrics()
        .observe(&route, &method, res.status().as_u16(), start.elapsed());
    res
}

/// The scrape's route with its OpenAPI path (public, like the health checks).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Longest a scrape waits for the database's part of its answer.
const SCRAPE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Seconds from `t` to now; 0 when there is none.
fn seconds_since(t: Option<flowstore_core::time::Timestamp>) -> f64 {
    t.map(|t| (flowstore_core::time::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// `GET /metrics`: Prometheus text. The queue depth is read from the database; when
/// the database does not answer, the in-memory counters are still served.
#[utoipa::path(get, path = "/metrics", tag = "health", security(),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain")))]
pub async fn scrape(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(4096);
    state.metrics().render(&mut out);
    let _ = writeln!(
        out,
        "# HELP flowstore_change_feed_live Whether this server hears the database's change feed.\n\
         # TYPE flowstore_change_feed_live gauge\nflowstore_change_feed_live {}",
        u8::from(state.feed_live())
    );
    let _ = writeln!(
        out,
        "# HELP flowstore_build_info The running build.\n\
         # TYPE flowstore_build_info gauge\nflowstore_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let backlog = tokio::time::timeout(SCRAPE_WAIT, async {
        let mut tx = state.backend().begin_read().await?;
        let b = tx.delivery_backlog().await;
        let _ = tx.rollback().await;
        b
    })
    .await;
    match backlog {
        Ok(Ok(b)) => {
            let _ = writeln!(
                out,
                "# HELP flowstore_webhook_deliveries Webhook deliveries waiting to be sent, and given up on.\n\
                 # TYPE flowstore_webhook_deliveries gauge\n\
                 flowstore_webhook_deliveries{{status=\"pending\"}} {}\n\
                 flowstore_webhook_deliveries{{status=\"dead\"}} {}\n\
                 # HELP flowstore_webhook_oldest_pending_seconds How long the oldest waiting delivery has waited.\n\
                 # TYPE flowstore_webhook_oldest_pending_seconds gauge\n\
                 flowstore_webhook_oldest_pending_seconds {:.3}\n\
                 # HELP flowstore_events_unnumbered Events committed and not numbered yet: streams and webhooks wait for their number.\n\
                 # TYPE flowstore_events_unnumbered gauge\n\
                 flowstore_events_unnumbered {}\n\
                 # HELP flowstore_event_lag_seconds How long the oldest unnumbered event has waited for its number.\n\
                 # TYPE flowstore_event_lag_seconds gauge\n\
                 flowstore_event_lag_seconds {:.3}\n\
                 # HELP flowstore_webhook_events_behind Numbered events the webhook fan-out has not read yet (up to 100000).\n\
                 # TYPE flowstore_webhook_events_behind gauge\n\
                 flowstore_webhook_events_behind {}",
                b.pending,
                b.dead,
                seconds_since(b.oldest_pending),
                b.events_unnumbered,
                seconds_since(b.oldest_unnumbered),
                b.events_undispatched,
            );
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "webhook backlog unavailable for /metrics"),
        Err(_) => tracing::warn!("webhook backlog not read in time for /metrics"),
    }
    let known = state.backend().migrations().iter().map(|m| m.version).max();
    let applied = tokio::time::timeout(SCRAPE_WAIT, state.backend().migration_status())
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|all| {
            all.iter()
                .filter(|m| m.applied_at.is_some())
                .map(|m| m.version)
                .max()
        });
    out.push_str(
        "# HELP flowstore_schema_version The newest schema version this build knows and the newest the database has.\n\
         # TYPE flowstore_schema_version gauge\n",
    );
    for (which, version) in [("known", known), ("applied", applied)] {
        if let Some(v) = version {
            let _ = writeln!(out, "flowstore_schema_version{{which=\"{which}\"}} {v}");
        }
    }
    // A scrape never waits long for a busy pool: what it cannot read in time is
    // reported as such and the rest is served.
    let depth = tokio::time::timeout(SCRAPE_WAIT, async {
        let mut tx = state.backend().begin_read().await?;
        let d = tx.queue_depth().await;
        let _ = tx.rollback().await;
        d
    })
    .await
    .unwrap_or_else(|_| {
        Err(flowstore_core::StoreError::TimedOut(
            "the queue depth was not read in time".into(),
        ))
    });
    match state.backend().lock_waits().await {
        Ok(waits) => {
            out.push_str(
                "# HELP flowstore_db_lock_waits Statements or transactions of this database waiting for a lock now.
                 # TYPE flowstore_db_lock_waits gauge
",
            );
            let _ = writeln!(out, "flowstore_db_lock_waits {}", waits.waiting);
            out.push_str(
                "# HELP flowstore_db_lock_wait_longest_seconds How long the oldest of those waits has lasted.
                 # TYPE flowstore_db_lock_wait_longest_seconds gauge
",
            );
            let _ = writeln!(
                out,
                "flowstore_db_lock_wait_longest_seconds {:.3}",
                waits.longest_ms as f64 / 1000.0
            );
        }
        Err(e) => tracing::warn!(error = %e, "lock waits unavailable for /metrics"),
    }
    let pool = state.backend().pool_status();
    out.push_str(
        "# HELP flowstore_db_connections Connections of the database pool, by state.\n\
         # TYPE flowstore_db_connections gauge\n",
    );
    let _ = writeln!(
        out,
        "flowstore_db_connections{{state=\"in_use\"}} {}\nflowstore_db_connections{{state=\"idle\"}} {}",
        pool.in_use(),
        pool.idle
    );
    out.push_str(
        "# HELP flowstore_db_connections_max The most connections the pool opens.\n\
         # TYPE flowstore_db_connections_max gauge\n",
    );
    let _ = writeln!(out, "flowstore_db_connections_max {}", pool.max);
    match depth {
        Ok(rows) => {
            out.push_str("# HELP flowstore_queue_depth Ready and running tasks.\n");
            out.push_str("# TYPE flowstore_queue_depth gauge\n");
            for r in rows {
                let _ = writeln!(
                    out,
                    "flowstore_queue_depth{{handler_type=\"{}\",state=\"{}\"}} {}",
                    escape(&r.handler_type),
                    r.status,
                    r.tasks
                );
            }
            out.push_str(UP_HELP);
            out.push_str("flowstore_database_up 1\n");
        }
        Err(e) => {
            tracing::warn!(error = %e, "queue depth unavailable for /metrics");
            out.push_str(UP_HELP);
            out.push_str("flowstore_database_up 0\n");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
