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

use std::time::Duration;

use flowstore_core::model::integration::{AttemptResult, ClaimedDelivery, RetryPolicy};
use flowstore_core::{BackendKind, StoreError, StoreResult};
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

/// The HTTP client deliveries are sent with: rustls, no redirects, the timeout.
pub fn client(config: &WebhookConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .user_agent(concat!("flowstore-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
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
            tracing::warn!(error = %e, "webhook dispatch failed; retrying on the next round");
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(config.interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One round: fan out new events, claim what is due, send it, record the outcomes.
pub async fn round(state: &AppState, http: &reqwest::Client) -> StoreResult<Round> {
    let config = &state.config().webhooks;
    let backend = state.backend();
    if backend.kind() == BackendKind::Postgres {
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
    let sent = futures::future::join_all(claimed.iter().map(|c| send(http, c))).await;
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
async fn send(http: &reqwest::Client, c: &ClaimedDelivery) -> AttemptResult {
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
        Ok(mut res) => {
            let code = res.status().as_u16();
            let mut kept = Vec::new();
            // Only the start of the answer is kept; the rest is not read.
            while kept.len() < flowstore_core::model::integration::MAX_RESPONSE_BODY_BYTES {
                match res.chunk().await {
                    Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            AttemptResult {
                response_code: Some(code),
                response_body: (!kept.is_empty())
                    .then(|| String::from_utf8_lossy(&kept).into_owned()),
                error: None,
            }
        }
        // The URL is left out of the error: it may carry a token in its query.
        Err(e) => AttemptResult {
            response_code: None,
            response_body: None,
            error: Some(e.without_url().to_string()),
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
}
