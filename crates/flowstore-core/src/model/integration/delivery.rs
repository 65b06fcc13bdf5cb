//! Webhook deliveries: one row per webhook and event, with its attempts, and the
//! rule that decides, after each attempt, whether it succeeded, is retried later
//! (with exponential backoff and jitter) or is given up.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::SecretString;
use crate::ids::{DeliveryId, WebhookId};
use crate::model::engine::Event;
use crate::text_enum;
use crate::time::Timestamp;
use crate::{StoreError, StoreResult};

/// Longest summary of a receiver's answer kept on a delivery, in bytes. Only a
/// summary is kept (the status's reason phrase, the body's type and length), never
/// the receiver's text: a webhook's owner must not be able to read, through its
/// deliveries, what a server it does not control answered.
pub const MAX_RESPONSE_BODY_BYTES: usize = 256;

text_enum!(
    /// Where a delivery stands.
    DeliveryStatus, "status" {
        /// Not attempted yet.
        Pending => "pending",
        /// The receiver answered 2xx.
        Succeeded => "succeeded",
        /// The last attempt failed; another is scheduled at `next_attempt_at`.
        Failed => "failed",
        /// Every attempt failed; no more are made.
        Dead => "dead",
    }
);

/// One delivery of one event to one webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Its ID.
    pub id: DeliveryId,
    /// The webhook it goes to.
    pub webhook_id: WebhookId,
    /// The `seq` of the outbox event it carries; `None` for a test delivery.
    pub event_seq: Option<i64>,
    /// The event's type.
    pub event_type: String,
    /// The JSON body that is POSTed.
    pub payload: Value,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made (or under way).
    pub attempts: i32,
    /// When the next attempt is due; `None` once it succeeded or died.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt_at: Option<Timestamp>,
    /// When it was last attempted.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last answer (empty while an attempt is under way).
    pub response_code: Option<i32>,
    /// A short summary of the last answer, such as `Not Found; text/html; 512
    /// bytes`: its status's standard reason phrase and its body's type and length,
    /// never the body itself.
    pub response_body: Option<String>,
    /// Why the last attempt failed (every failed attempt records one, so an empty
    /// error on a pending or failed delivery marks an attempt under way).
    pub error: Option<String>,
    /// When it was queued.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A delivery to queue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDelivery {
    /// The webhook it goes to.
    pub webhook_id: WebhookId,
    /// The outbox event's `seq`, if it carries one.
    pub event_seq: Option<i64>,
    /// The event's type.
    pub event_type: String,
    /// The JSON body to POST.
    pub payload: Value,
}

impl NewDelivery {
    /// The delivery of an outbox event: the body carries the event's `seq` as its
    /// `id`, its type, time, subjects and details.
    pub fn of_event(webhook_id: WebhookId, ev: &Event) -> Self {
        NewDelivery {
            webhook_id,
            event_seq: Some(ev.seq),
            event_type: ev.event_type.clone(),
            payload: serde_json::json!({
                "id": ev.seq.to_string(),
                "type": ev.event_type,
                "occurred_at": ev.created_at,
                "run_id": ev.run_id,
                "task_id": ev.task_id,
                "workflow_id": ev.workflow_id,
                "data": ev.payload,
            }),
        }
    }

    /// A test delivery (`webhook.test`), which carries no outbox event.
    pub fn test(webhook_id: WebhookId, now: Timestamp) -> Self {
        NewDelivery {
            webhook_id,
            event_seq: None,
            event_type: "webhook.test".into(),
            payload: serde_json::json!({
                "id": format!("test-{}", uuid::Uuid::now_v7()),
                "type": "webhook.test",
                "occurred_at": now,
                "data": {"message": "a test delivery from flowstore"},
            }),
        }
    }

    /// Checks the event type and the body's size.
    pub fn check(&self) -> StoreResult<()> {
        let t = self.event_type.trim();
        if t.is_empty() || t.len() > 100 {
            return Err(StoreError::invalid(
                "event_type",
                "must be 1 to 100 characters",
            ));
        }
        crate::validate::json_object("payload", &self.payload)
    }
}

/// A delivery taken by a dispatcher, with what it needs to send it.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    /// The delivery, its `attempts` counting this one.
    pub delivery: WebhookDelivery,
    /// Where to POST.
    pub url: String,
    /// Extra headers of the webhook.
    pub headers: BTreeMap<String, String>,
    /// The webhook's signing secret.
    pub secret: SecretString,
}

/// The deliveries waiting or given up on, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DeliveryBacklog {
    /// Deliveries still to be sent (first tries and retries).
    pub pending: u64,
    /// Deliveries given up on after their last retry.
    pub dead: u64,
    /// When the oldest pending delivery was queued.
    pub oldest_pending: Option<crate::time::Timestamp>,
    /// Events committed but not numbered yet (streams and webhooks wait for the
    /// number; on a backend that numbers events as they are written, none).
    pub events_unnumbered: u64,
    /// When the oldest of them was written.
    pub oldest_unnumbered: Option<crate::time::Timestamp>,
    /// Numbered events the webhook fan-out has not read yet (counted up to
    /// 100 000).
    pub events_undispatched: u64,
}

/// How many events a fan-out read and how many deliveries it queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FanOut {
    /// Events read past the cursor.
    pub events: u64,
    /// Deliveries queued for them.
    pub deliveries: u64,
    /// The cursor afterwards.
    pub cursor: i64,
}

/// How one attempt went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptResult {
    /// The HTTP status answered, if an answer came.
    pub response_code: Option<u16>,
    /// A short summary of the answer (see [`WebhookDelivery::response_body`]).
    pub response_body: Option<String>,
    /// Why it failed without an answer (connection refused, timeout…).
    pub error: Option<String>,
}

impl AttemptResult {
    /// Whether the receiver took it: a 2xx answer.
    pub fn succeeded(&self) -> bool {
        matches!(self.response_code, Some(200..=299))
    }

    /// The stored form: the summary cut to [`MAX_RESPONSE_BODY_BYTES`] on a character
    /// boundary, the error to 1000 bytes, and a non-2xx answer described as the error
    /// when none is given.
    pub fn normalised(mut self) -> Self {
        self.response_body = self.response_body.map(|b| cut(b, MAX_RESPONSE_BODY_BYTES));
        if self.error.is_none() && !self.succeeded() {
            self.error = Some(match self.response_code {
                Some(code) => format!("the receiver answered HTTP {code}"),
                None => "no answer".into(),
            });
        }
        self.error = self.error.map(|e| cut(e, 1000));
        if self.succeeded() {
            self.error = None;
        }
        self
    }
}

fn cut(mut s: String, max: usize) -> String {
    s.retain(|c| c != '\0');
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// How failed deliveries are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; then the delivery is dead.
    pub max_attempts: i32,
    /// The delay before the first retry (doubled for each one after).
    pub base_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// What follows attempt number `attempt` that ended with `result`: the status and
    /// when the next attempt is due.
    pub fn resolve(
        &self,
        attempt: i32,
        result: &AttemptResult,
        now: Timestamp,
    ) -> (DeliveryStatus, Option<Timestamp>) {
        if result.succeeded() {
            (DeliveryStatus::Succeeded, None)
        } else if attempt >= self.max_attempts {
            (DeliveryStatus::Dead, None)
        } else {
            let delay = retry_delay(attempt, self.base_delay, self.max_delay);
            let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            (
                DeliveryStatus::Failed,
                Some(crate::time::truncate(now + delay)),
            )
        }
    }
}

/// The delay after failed attempt number `attempt` (1 for the first): `base` doubled
/// for each attempt before it, at most `max`, with jitter over the upper half so that
/// deliveries that failed together do not all come back together.
pub fn retry_delay(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exp = (attempt.clamp(1, 30) - 1) as u32;
    let ceiling = base.saturating_mul(1u32 << exp.min(20)).min(max);
    let half = ceiling / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..40 {
            let d = retry_delay(attempt, base, max);
            let ceiling = base.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn outcomes_resolve() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let now = crate::time::now();
        let ok = AttemptResult {
            response_code: Some(204),
            ..Default::default()
        };
        assert_eq!(p.resolve(1, &ok, now), (DeliveryStatus::Succeeded, None));
        let bad = AttemptResult {
            response_code: Some(500),
            ..Default::default()
        };
        let (s, next) = p.resolve(2, &bad, now);
        assert_eq!(s, DeliveryStatus::Failed);
        assert!(next.unwrap() > now);
        assert_eq!(p.resolve(3, &bad, now), (DeliveryStatus::Dead, None));
        let n = bad.normalised();
        assert_eq!(n.error.as_deref(), Some("the receiver answered HTTP 500"));
        let long = AttemptResult {
            response_code: Some(200),
            response_body: Some("é".repeat(5000)),
            error: Some("x".into()),
        }
        .normalised();
        assert!(long.response_body.unwrap().len() <= MAX_RESPONSE_BODY_BYTES);
        assert_eq!(long.error, None);
    }
}
