//! The webhook dispatcher against a real receiver (axum on port 0), on SQLite and
//! PostgreSQL: deliveries are signed (HMAC-SHA256 over `timestamp.body`), a 500 is
//! retried until it succeeds, every attempt is recorded with its response code,
//! inactive and unsubscribed webhooks get nothing, and an event is delivered once,
//! also with two dispatchers at once; a served app dispatches by itself.

use flowstore_testkit::{both_backends, Served};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flowstore_core::crypto::SecretString;
use flowstore_core::ids::WebhookId;
use flowstore_core::model::integration::{
    DeliveryStatus, Destinations, NewWebhook, RetryPolicy, WebhookDelivery,
};
use flowstore_core::{Backend, PageRequest};
use flowstore_server::webhooks::{self, WebhookConfig};
use flowstore_server::{AppState, ServerConfig};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

both_backends!(
    deliveries_are_signed_retried_recorded_once,
    a_served_app_dispatches
);

const SECRET: &str = "receiver-shared-secret-0001";

/// A request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn on(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

/// `/flaky` answers 500 to its first request and 200 afterwards; `/fail` always 500;
/// every other path 200.
async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut got = r.got.lock().unwrap();
    let before = got.iter().filter(|g| g.path == path).count();
    got.push(Got {
        path: path.clone(),
        headers,
        body,
    });
    match (path.as_str(), before) {
        ("flaky", 0) | ("fail", _) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    }
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/{path}", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, base)
}

fn config() -> ServerConfig {
    ServerConfig {
        webhooks: WebhookConfig {
            interval: Duration::from_millis(50),
            batch: 10,
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
            },
            // The receivers listen on loopback, which only the allow-list opens.
            destinations: Destinations::new(["127.0.0.1/32"]).unwrap(),
            ..WebhookConfig::default()
        },
        ..ServerConfig::default()
    }
}

async fn hook(b: &Arc<dyn Backend>, url: String, events: &[&str], active: bool) -> WebhookId {
    let mut tx = b.begin().await.unwrap();
    let h = tx
        .create_webhook(NewWebhook {
            name: url.clone(),
            url,
            events: events.iter().map(|e| e.to_string()).collect(),
            secret: Some(SecretString::new(SECRET)),
            active: Some(active),
            ..Default::default()
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    h.webhook.id
}

/// Appends numbered outbox events as the engine would.
async fn events(b: &Arc<dyn Backend>, seqs: std::ops::RangeInclusive<i64>, event_type: &str) {
    for seq in seqs {
        let now = flowstore_core::time::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        b.execute_raw(&format!(
            "INSERT INTO events (seq, event_type, payload, created_at)
             VALUES ({seq}, '{event_type}', '{{\"n\": {seq}}}', '{now}')"
        ))
        .await
        .unwrap();
    }
}

async fn deliveries(b: &Arc<dyn Backend>, id: WebhookId) -> Vec<WebhookDelivery> {
    let mut tx = b.begin_read().await.unwrap();
    tx.list_deliveries(id, None, &PageRequest::first(100))
        .await
        .unwrap()
        .items
}

/// Runs dispatcher rounds until `done` holds (failing after a generous minute).
async fn rounds_until(state: &AppState, what: &str, done: impl AsyncFn() -> bool) {
    let http = webhooks::client(&state.config().webhooks);
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting: {what}"
        );
        webhooks::round(state, &http).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn verify(g: &Got) {
    let h = |name: &str| g.headers.get(name).unwrap().to_str().unwrap().to_string();
    let ts = h("x-flowstore-timestamp");
    let sig = h("x-flowstore-signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&g.body);
    let hex_sig = sig.strip_prefix("sha256=").expect("sha256= prefix");
    mac.verify_slice(&hex::decode(hex_sig).unwrap())
        .expect("the signature verifies with the webhook's secret");
    assert_eq!(h("content-type"), "application/json");
    assert!(!h("x-flowstore-delivery").is_empty());
    let body: Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(body["id"].as_str().unwrap(), h("x-flowstore-event-id"));
    assert_eq!(body["type"].as_str().unwrap(), h("x-flowstore-event"));
}

async fn deliveries_are_signed_retried_recorded_once(b: Arc<dyn Backend>) {
    let (r, base) = receiver().await;
    let runs = hook(&b, format!("{base}/runs"), &["run.*"], true).await;
    let flaky = hook(&b, format!("{base}/flaky"), &["task.completed"], true).await;
    let fail = hook(&b, format!("{base}/fail"), &["task.completed"], true).await;
    hook(&b, format!("{base}/inactive"), &["*"], false).await;
    hook(
        &b,
        format!("{base}/unsubscribed"),
        &["workflow.archived"],
        true,
    )
    .await;
    events(&b, 1..=1, "run.completed").await;
    events(&b, 2..=2, "task.completed").await;
    let state = AppState::with_config(b.clone(), config());

    rounds_until(&state, "runs and flaky delivered, fail dead", async || {
        let ok =
            |d: &Vec<WebhookDelivery>| d.len() == 1 && d[0].status == DeliveryStatus::Succeeded;
        let dead = deliveries(&b, fail).await;
        ok(&deliveries(&b, runs).await)
            && ok(&deliveries(&b, flaky).await)
            && dead.len() == 1
            && dead[0].status == DeliveryStatus::Dead
    })
    .await;

    let got = r.on("runs");
    assert_eq!(got.len(), 1, "delivered once");
    verify(&got[0]);
    assert_eq!(got[0].headers["x-flowstore-event-id"], "1");
    assert_eq!(got[0].headers["x-flowstore-event"], "run.completed");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["data"]["n"], 1);

    // The flaky receiver answered 500 once: the same delivery came again.
    let got = r.on("flaky");
    assert_eq!(got.len(), 2);
    got.iter().for_each(verify);
    assert_eq!(
        got[0].headers["x-flowstore-delivery"],
        got[1].headers["x-flowstore-delivery"]
    );
    assert_eq!(got[1].headers["x-flowstore-event-id"], "2");
    let d = &deliveries(&b, flaky).await[0];
    assert_eq!(
        (d.attempts, d.response_code, d.error.clone()),
        (2, Some(200), None)
    );
    let d = &deliveries(&b, fail).await[0];
    assert_eq!((d.attempts, d.response_code), (3, Some(500)));
    assert_eq!(r.on("fail").len(), 3, "max_attempts attempts, then no more");
    assert!(r.on("inactive").is_empty() && r.on("unsubscribed").is_empty());

    // More rounds send nothing again.
    let http = webhooks::client(&state.config().webhooks);
    for _ in 0..3 {
        let round = webhooks::round(&state, &http).await.unwrap();
        assert_eq!((round.queued, round.attempted), (0, 0));
    }

    // Two dispatchers at once (as two servers on one database) deliver each event once.
    events(&b, 3..=22, "run.started").await;
    let other = AppState::with_config(b.clone(), config());
    let both = |s: AppState| async move {
        let http = webhooks::client(&s.config().webhooks);
        for _ in 0..20 {
            webhooks::round(&s, &http).await.unwrap();
        }
    };
    tokio::join!(both(state.clone()), both(other));
    rounds_until(&state, "20 more run events", async || {
        r.on("runs").len() >= 21
    })
    .await;
    let mut ids: Vec<String> = r
        .on("runs")
        .iter()
        .map(|g| {
            g.headers["x-flowstore-event-id"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort_by_key(|s| s.parse::<i64>().unwrap());
    assert_eq!(
        ids,
        (1..=22)
            .filter(|n| *n != 2)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    );
    let recorded = deliveries(&b, runs).await;
    assert_eq!(recorded.len(), 21);
    assert!(recorded
        .iter()
        .all(|d| d.status == DeliveryStatus::Succeeded && d.attempts == 1));
    assert!(recorded.iter().all(|d| d.response_code == Some(200)));
}

async fn a_served_app_dispatches(b: Arc<dyn Backend>) {
    let (r, base) = receiver().await;
    hook(&b, format!("{base}/served"), &["*"], true).await;
    let served = Served::start(AppState::with_config(b.clone(), config())).await;
    events(&b, 1..=1, "run.completed").await;
    let start = Instant::now();
    while r.on("served").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the server dispatched nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    verify(&r.on("served")[0]);
    served.stop().await;
}
