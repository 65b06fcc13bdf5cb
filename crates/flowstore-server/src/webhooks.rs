//! The webhook dispatcher: every lifecycle event of the outbox goes to the active
//! webhooks that subscribe to it, signed, retried with backoff, and recorded.
//!
//! Each round (on a timer, or sooner when something happened) does three things,
//! each in its own transactions: fan out the events past the persisted cursor into
//! one delivery per matching webhook (so a restart neither loses nor repeats an
//! event); claim the deliveries that are due (on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, on SQLite under the writer lock, and with a lease, so several servers on
//! one database never send the same delivery at once); then POST each one and
//! record how it went, scheduling a retry with exponential backoff and jitter or
//! giving up after the last attempt.
//!
//! A delivery is `POST url` with the JSON body stored on it and these headers:
//! `X-Flowstore-Event-Id` (the event's `seq`, or `test-…`), `X-Flowstore-Event`
//! (its type), `X-Flowstore-Delivery` (the delivery's ID), `X-Flowstore-Timestamp`
//! (Unix seconds) and `X-Flowstore-Signature: sha256=HEX`, the HMAC-SHA256 with the
//! webhook's secret of `TIMESTAMP.BODY`. A receiver recomputes it (see [`sign`]),
//! compares in constant time and refuses old timestamps. Redirects are not followed.
//!
//! Deliveries go only where [`WebhookConfig::destinations`] allows (by default,
//! public addresses): a URL with a literal address is judged before anything is
//! sent, and a host name on every address it resolves to, by the client's own
//! resolver ([`GuardedResolver`]), so that a name pointed inside after the
//! webhook was written (DNS rebinding) is refused too. A refused delivery is a
//! failed attempt whose error names the address and the `webhook_allow` setting.
//! Of an answer only the status and a summary (reason phrase, body type and
//! length) are recorded, never the receiver's text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flowstore_core::model::integration::{
    AttemptResult, ClaimedDelivery, Destinations, Refused, RetryPolicy, MAX_RESPONSE_BODY_BYTES,
};
use flowstore_core::{StoreError, StoreResult};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::state::AppState;

/// Settings of the webhook dispatcher.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Whether this server dispatches webhooks at all.
    pub enabled: bool,
    /// Longest wait between two rounds when nothing wakes the dispatcher.
    pub interval: Duration,
    /// Events fanned out, and deliveries claimed, per transaction.
    pub batch: u32,
    /// Longest a receiver may take to answer.
    pub timeout: Duration,
    /// How long a claimed delivery is kept from other dispatchers (longer than
    /// `timeout`); if this server dies mid-send, another retries it after that.
    pub lease: Duration,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
    /// Where deliveries may go: public addresses, plus what the operator allows
    /// (the `webhook_allow` setting). Webhook URLs are checked against it when
    /// written through the API, and every delivery when it is sent.
    pub destinations: Destinations,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: true,
            interval: Duration::from_secs(1),
            batch: 100,
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            destinations: Destinations::default(),
        }
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Deliveries queued from new events.
    pub queued: u64,
    /// Deliveries attempted.
    pub attempted: u64,
    /// Of those, how many the receiver took (2xx).
    pub succeeded: u64,
}

/// The signature of a delivery: hex HMAC-SHA256 with `secret` over
/// `"{timestamp}." + body`, sent as `X-Flowstore-Signature: sha256=<hex>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The HTTP client deliveries are sent with: rustls, no redirects, the timeout,
/// no proxy (a proxy would resolve and connect on the client's behalf, past the
/// destination rule), and host names resolved by a [`GuardedResolver`].
pub fn client(config: &WebhookConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(config.destinations.clone())))
        .user_agent(concat!("flowstore-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        // Without its resolver the client must not be used: every send fails.
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the webhook client could not be built");
            reqwest::Client::builder()
                .dns_resolver(Arc::new(GuardedResolver::refusing()))
                .no_proxy()
                .build()
                .expect("a plain client builds")
        })
}

/// Resolves delivery host names with the system resolver and keeps only the
/// addresses [`Destinations`] allows; when none is left, the lookup fails with
/// the [`Refused`] of the first address, and the delivery with it. Checking here,
/// on the addresses the connection is then made to, is what defeats a name that
/// resolved to a public address when it was checked and to an internal one now.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    destinations: Option<Arc<Destinations>>,
}

impl GuardedResolver {
    /// A resolver that lets through what `destinations` allows.
    pub fn new(destinations: Destinations) -> Self {
        GuardedResolver {
            destinations: Some(Arc::new(destinations)),
        }
    }

    /// A resolver that resolves nothing.
    fn refusing() -> Self {
        GuardedResolver { destinations: None }
    }

    /// The addresses of `host` that deliveries may go to (port 0).
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let Some(destinations) = &self.destinations else {
            return Err(ResolveError::Lookup(format!(
                "{host}: webhook delivery is not configured"
            )));
        };
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| ResolveError::Lookup(format!("{host}: {e}")))?
            .collect();
        if destinations.allows_name(host) {
            return Ok(found);
        }
        let mut refused = None;
        let kept: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| match destinations.check_addr(a.ip()) {
                Ok(()) => true,
                Err(r) => {
                    refused.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (kept.is_empty(), refused) {
            (false, _) => Ok(kept),
            (true, Some(r)) => Err(ResolveError::Refused(r)),
            (true, None) => Err(ResolveError::Lookup(format!("{host}: no address"))),
        }
    }
}

/// Why a delivery host name gave no address to connect to.
#[derive(Debug)]
pub enum ResolveError {
    /// Every address it resolved to is refused.
    Refused(Refused),
    /// It did not resolve.
    Lookup(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Refused(r) => r.fmt(f),
            ResolveError::Lookup(e) => write!(f, "cannot resolve {e}"),
        }
    }
}

impl std::error::Error for ResolveError {}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The message recorded for a failed request: the resolver's own when it refused
/// or failed (the client wraps it in errors of its own), else the client's. The
/// URL is left out: it may carry a token in its query.
fn failure(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<ResolveError>() {
            return r.to_string();
        }
        source = s.source();
    }
    e.to_string()
}

/// What is recorded of an answer: the standard reason phrase of its status and the
/// media type and length its headers declare. Never its body, nor any text the
/// receiver chose (a custom reason phrase, header values other than these).
fn summary(res: &reqwest::Response) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(reason) = res.status().canonical_reason() {
        parts.push(reason.to_string());
    }
    let media_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| {
            v.len() <= 100
                && v.split_once('/').is_some_and(|(a, b)| {
                    let token = |t: &str| {
                        !t.is_empty()
                            && t.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
                    };
                    token(a) && token(b)
                })
        });
    if let Some(t) = media_type {
        parts.push(t);
    }
    if let Some(len) = res.content_length() {
        parts.push(format!("{len} bytes"));
    }
    let mut text = parts.join("; ");
    text.truncate(MAX_RESPONSE_BODY_BYTES);
    (!text.is_empty()).then_some(text)
}

/// Runs rounds until shutdown: after each interval, or sooner when the server tells
/// that something changed.
pub async fn run(state: AppState) {
    let config = state.config().webhooks.clone();
    if !config.enabled {
        return;
    }
    let http = client(&config);
    let mut shutdown = state.shutdown_signal();
    loop {
        if state.shutting_down() {
            return;
        }
        let woken = state.event_notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Err(e) = round(&state, &http).await {
            state
                .metrics()
                .webhook_round_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "webhook dispatch failed; retrying on the next round");
        }
        // Events committed meanwhile wait for the next round (the wake-up is
        // enabled above, so none is missed): under load, rounds of many events
        // rather than a round of numbering, fan-out and claiming for each commit.
        tokio::select! {
            _ = tokio::time::sleep(ROUND_GAP) => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(config.interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The least time between two dispatch rounds: events are sent at most this much
/// later than with a round for each commit.
pub const ROUND_GAP: std::time::Duration = std::time::Duration::from_millis(20);

/// One round: fan out new events, claim what is due, send it, record the outcomes.
/// `http` must come from [`client`] with this state's settings: its resolver
/// applies the destination rule to host names.
pub async fn round(state: &AppState, http: &reqwest::Client) -> StoreResult<Round> {
    let config = &state.config().webhooks;
    let backend = state.backend();
    if backend.capabilities().sequences_events {
        // Events are numbered after they commit; number them now rather than wait
        // for the maintenance task.
        let mut tx = backend.begin().await?;
        tx.sequence_events().await?;
        tx.commit().await?;
    }
    let mut out = Round::default();
    loop {
        let mut tx = backend.begin().await?;
        let f = tx.fan_out_events(config.batch).await?;
        tx.commit().await?;
        out.queued += f.deliveries;
        if f.events < u64::from(config.batch) {
            break;
        }
    }
    let mut tx = backend.begin().await?;
    let claimed = tx.claim_deliveries(config.batch, config.lease).await?;
    tx.commit().await?;
    let sent =
        futures::future::join_all(claimed.iter().map(|c| send(http, &config.destinations, c)))
            .await;
    for (c, result) in claimed.iter().zip(sent) {
        out.attempted += 1;
        if result.succeeded() {
            out.succeeded += 1;
        }
        let d = &c.delivery;
        let mut tx = backend.begin().await?;
        match tx
            .finish_delivery(d.id, d.attempts, result, &config.retry)
            .await
        {
            Ok(done) => {
                tx.commit().await?;
                tracing::debug!(delivery = %done.id, webhook = %done.webhook_id,
                    status = %done.status, attempts = done.attempts, "webhook delivery attempted");
            }
            // Its lease ran out and another dispatcher took it over: that one records.
            Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {
                tx.rollback().await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// POSTs one delivery and says how it went; never fails itself.
async fn send(
    http: &reqwest::Client,
    destinations: &Destinations,
    c: &ClaimedDelivery,
) -> AttemptResult {
    // The client resolves names through its guarded resolver, but connects to a
    // literal address without resolving it: that is judged here.
    if let Err(refused) = destinations.check_literal(&c.url) {
        return AttemptResult {
            response_code: None,
            response_body: None,
            error: Some(refused.to_string()),
        };
    }
    let d = &c.delivery;
    let body = serde_json::to_vec(&d.payload).unwrap_or_default();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(c.secret.expose(), timestamp, &body);
    let event_id = match d.event_seq {
        Some(seq) => seq.to_string(),
        None => d.payload["id"].as_str().unwrap_or_default().to_string(),
    };
    let mut req = http.post(&c.url);
    for (name, value) in &c.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let req = req
        .header("content-type", "application/json")
        .header("x-flowstore-event-id", event_id)
        .header("x-flowstore-event", d.event_type.as_str())
        .header("x-flowstore-delivery", d.id.to_string())
        .header("x-flowstore-timestamp", timestamp.to_string())
        .header("x-flowstore-signature", format!("sha256={signature}"))
        .body(body);
    match req.send().await {
        // The body is not read: only the status and a summary are kept.
        Ok(res) => AttemptResult {
            response_code: Some(res.status().as_u16()),
            response_body: summary(&res),
            error: None,
        },
        Err(e) => AttemptResult {
            response_code: None,
            response_body: None,
            error: Some(failure(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        let sig = sign("key", 0, b"x");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"0.x");
        assert_eq!(sig, hex::encode(mac.finalize().into_bytes()));
        assert_ne!(sign("key", 1, b"x"), sig, "the timestamp is signed");
        assert_ne!(sign("other", 0, b"x"), sig);
        assert_eq!(sig.len(), 64);
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses() {
        // `localhost` resolves to loopback only, through /etc/hosts.
        let r = GuardedResolver::new(Destinations::default());
        match r.lookup("localhost").await {
            Err(ResolveError::Refused(refused)) => {
                assert_eq!(refused.reason, "loopback");
                assert!(refused.to_string().ends_with("see webhook_allow"));
            }
            other => panic!("loopback resolved: {other:?}"),
        }
        let r = GuardedResolver::new(Destinations::new(["127.0.0.0/8", "::1/128"]).unwrap());
        let addrs = r.lookup("localhost").await.unwrap();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
        let r = GuardedResolver::new(Destinations::new(["127.0.0.1/32"]).unwrap());
        let addrs = r.lookup("localhost").await.unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST),
            "only the allowed address is kept: {addrs:?}"
        );
        let r = GuardedResolver::new(Destinations::new(["LocalHost"]).unwrap());
        assert!(!r.lookup("localhost").await.unwrap().is_empty());
        assert!(matches!(
            GuardedResolver::refusing().lookup("localhost").await,
            Err(ResolveError::Lookup(_))
        ));
    }
}
