//! Where webhooks may send, on SQLite and PostgreSQL: URLs that point at this
//! machine, the private network or a metadata service are refused when a webhook
//! is written (422 naming `url`) unless the operator allows them (`webhook_allow`);
//! a delivery to a refused address, written as such or reached through a name,
//! fails with the reason recorded and nothing sent; and the deliveries list shows
//! a summary of a receiver's answer, never its text (answers kept by earlier
//! versions are dropped by migration 12).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use flowstore_core::ids::WebhookId;
use flowstore_core::model::identity::Role;
use flowstore_core::model::integration::{
    Destinations, NewDelivery, NewWebhook, RetryPolicy, WebhookDelivery,
};
use flowstore_core::{Backend, PageRequest};
use flowstore_server::webhooks::{self, WebhookConfig};
use flowstore_server::{AppState, ServerConfig};
use flowstore_testkit::{both_backends, TestApp};
use serde_json::{json, Value};

both_backends!(
    hostile_urls_are_refused_when_written,
    allowed_receivers_get_deliveries_and_their_answers_stay_private,
    refused_addresses_fail_at_delivery,
    answers_kept_before_are_dropped
);

/// What the receiver answers; the deliveries list must never show it.
const ANSWER: &str = "internal-answer-7f3c: the receiver's private text";

/// Paths the receiver was called on.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<String>>>,
}

/// `/fail` answers 500, every other path 200; both with [`ANSWER`] as the body.
async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    r.got.lock().unwrap().push(path.clone());
    let status = if path == "fail" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        ANSWER,
    )
}

/// A receiver on loopback, port 0: (its record, its port).
async fn receiver() -> (Receiver, u16) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/{path}", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, port)
}

fn config(allow: &[&str]) -> ServerConfig {
    ServerConfig {
        webhooks: WebhookConfig {
            interval: Duration::from_millis(50),
            retry: RetryPolicy {
                max_attempts: 1,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
            },
            destinations: Destinations::new(allow).unwrap(),
            ..WebhookConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// A webhook for every event with one test delivery waiting: its ID.
pub(crate) async fn webhook_with_a_delivery(
    b: &Arc<dyn Backend>,
    name: &str,
    url: &str,
) -> WebhookId {
    let mut tx = b.begin().await.unwrap();
    let h = tx
        .create_webhook(NewWebhook {
            name: name.into(),
            url: url.into(),
            events: vec!["*".into()],
            ..NewWebhook::default()
        })
        .await
        .unwrap();
    tx.record_delivery(NewDelivery::test(h.webhook.id, flowstore_core::time::now()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    h.webhook.id
}

/// An in-process client of a server with `config`.
async fn client(b: &Arc<dyn Backend>, config: ServerConfig) -> TestApp {
    TestApp::with_config(b.clone(), config).await
}

/// Runs dispatcher rounds until every delivery of `hooks` was attempted.
async fn deliver(state: &AppState, hooks: &[WebhookId]) -> Vec<WebhookDelivery> {
    let http = webhooks::client(&state.config().webhooks);
    let start = Instant::now();
    loop {
        webhooks::round(state, &http).await.unwrap();
        let mut all = Vec::new();
        let mut tx = state.backend().begin_read().await.unwrap();
        for id in hooks {
            let page = tx
                .list_deliveries(*id, None, &PageRequest::first(10))
                .await
                .unwrap();
            all.extend(page.items);
        }
        drop(tx);
        if all
            .iter()
            .all(|d| (d.attempts >= 1 && d.error.is_some()) || d.response_code == Some(200))
        {
            return all;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "deliveries not attempted: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn hostile_urls_are_refused_when_written(b: Arc<dyn Backend>) {
    let c = client(&b, config(&[])).await;
    let (_, ada) = c.user_key(Role::User, "ada@example.com").await;
    let hostile = [
        "http://127.0.0.1:8080/api/v1/webhooks",
        "http://127.0.0.1:5432/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://instance-data/latest/",
        "http://[::1]:8080/",
        "http://localhost:8080/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://0.0.0.0:8080/",
        "http://[::]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://redis:6379/",
        "http://db.internal/",
    ];
    for url in hostile {
        let body = json!({"name": "probe", "url": url, "events": ["*"]});
        let r = c.by(&ada).create_webhook(body).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some("url")),
            "{url}: {}",
            r.body
        );
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{url}"
        );
        let detail = r.body.to_string();
        assert!(detail.contains("webhook_allow"), "{url}: {detail}");
    }
    let r = c
        .by(&ada)
        .create_webhook(json!({"name": "probe", "url": "http://2130706433/", "events": ["*"]}))
        .await;
    assert!(
        r.body.to_string().contains("127.0.0.1 (loopback)"),
        "the address meant is named: {}",
        r.body
    );

    // A public destination is taken; changing it to a hostile one is refused.
    let r = c
        .by(&ada)
        .create_webhook(
            json!({"name": "ok", "url": "https://hooks.example.com/in", "events": ["*"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let one = format!(
        "/api/v1/webhooks/{}",
        r.body["webhook"]["id"].as_str().unwrap()
    );
    for url in [
        "http://169.254.169.254/",
        "http://[::1]/",
        "http://localhost/",
    ] {
        let r = c.by(&ada).patch(&one, json!({"url": url})).await;
        assert_eq!(
            (r.status.as_u16(), r.body["field"].as_str()),
            (422, Some("url")),
            "{url}: {}",
            r.body
        );
    }
    let r = c.by(&ada).get(&one).await;
    assert_eq!(r.body["url"], "https://hooks.example.com/in");
    let r = c.by(&ada).patch(&one, json!({"name": "renamed"})).await;
    assert_eq!(r.status, 200, "a patch without a URL is not judged on it");
    let r = c.admin().list_webhooks().await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        1,
        "nothing else stored"
    );

    // What the operator allows is taken, by address and by name; nothing more.
    let c = client(&b, config(&["127.0.0.1/32", "hooks.corp.internal"])).await;
    for (url, want) in [
        ("http://127.0.0.1:9000/in", 201),
        ("http://2130706433:9001/in", 201),
        ("http://hooks.corp.internal/in", 201),
        ("http://127.0.0.2:9000/in", 422),
        ("http://[::1]:9000/in", 422),
        ("http://other.corp.internal/in", 422),
        ("http://169.254.169.254/", 422),
    ] {
        let body = json!({"name": url, "url": url, "events": ["*"]});
        let r = c.by(&ada).create_webhook(body).await;
        assert_eq!(r.status.as_u16(), want, "{url}: {}", r.body);
    }
}

async fn allowed_receivers_get_deliveries_and_their_answers_stay_private(b: Arc<dyn Backend>) {
    let (r, port) = receiver().await;
    let c = client(&b, config(&["127.0.0.1/32"])).await;
    let (_, ada) = c.user_key(Role::User, "ada@example.com").await;
    let mut hooks = Vec::new();
    for path in ["ok", "fail"] {
        let url = format!("http://127.0.0.1:{port}/{path}");
        let body = json!({"name": path, "url": url, "events": ["*"]});
        let created = c.by(&ada).create_webhook(body).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["webhook"]["id"].as_str().unwrap().to_string();
        let test = c
            .by(&ada)
            .post_empty(&format!("/api/v1/webhooks/{id}/test"))
            .await;
        assert_eq!(test.status, 202, "{}", test.body);
        assert!(!test.body.to_string().contains(ANSWER));
        hooks.push((path, id));
    }
    let ids: Vec<WebhookId> = hooks.iter().map(|(_, id)| id.parse().unwrap()).collect();
    deliver(&c.state, &ids).await;
    assert_eq!(r.got.lock().unwrap().len(), 2, "both receivers were called");

    let len = ANSWER.len();
    for (path, id) in &hooks {
        let page = c.by(&ada).webhook_deliveries(id).await;
        assert_eq!(page.status, 200);
        let text = page.body.to_string();
        assert!(
            !text.contains(ANSWER),
            "{path}: the answer's text is shown: {text}"
        );
        assert!(!text.contains("internal-answer"), "{path}: {text}");
        let d: &Value = &page.body["items"][0];
        if *path == "ok" {
            assert_eq!(d["status"], "succeeded");
            assert_eq!(d["response_code"], 200);
            assert_eq!(
                d["response_body"],
                format!("OK; text/plain; {len} bytes"),
                "a summary of the answer"
            );
            assert_eq!(d["error"], Value::Null);
        } else {
            assert_eq!(d["status"], "dead");
            assert_eq!(d["response_code"], 500);
            assert_eq!(
                d["response_body"],
                format!("Internal Server Error; text/plain; {len} bytes")
            );
            assert_eq!(d["error"], "the receiver answered HTTP 500");
        }
    }
}

async fn refused_addresses_fail_at_delivery(b: Arc<dyn Backend>) {
    let (r, port) = receiver().await;
    // Written straight into the store (as a library user, or an older version,
    // could have): only the delivery-time checks stand between them and loopback.
    // `localhost` is a name; the client's resolver judges what it resolves to.
    let mut hooks = Vec::new();
    for (name, url) in [
        ("literal", format!("http://127.0.0.1:{port}/literal")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}/mapped")),
        ("decimal", format!("http://2130706433:{port}/decimal")),
        ("name", format!("http://localhost:{port}/name")),
    ] {
        hooks.push((name, webhook_with_a_delivery(&b, name, &url).await));
    }
    let c = client(&b, config(&[])).await;
    let ids: Vec<WebhookId> = hooks.iter().map(|(_, id)| *id).collect();
    let done = deliver(&c.state, &ids).await;
    assert!(r.got.lock().unwrap().is_empty(), "nothing reached loopback");
    assert_eq!(done.len(), 4);
    for (name, id) in &hooks {
        let page = c.admin().webhook_deliveries(id).await;
        let d = &page.body["items"][0];
        assert_eq!(d["status"], "dead", "{name}: {d}");
        assert_eq!(d["response_code"], Value::Null, "{name}");
        let error = d["error"].as_str().unwrap();
        if *name == "name" {
            // 127.0.0.1 or ::1, whichever the system's resolver lists first.
            assert!(
                error.starts_with("destination ")
                    && error.ends_with(" is not allowed (loopback); see webhook_allow"),
                "{name}: {error}"
            );
        } else {
            assert_eq!(
                error, "destination 127.0.0.1 is not allowed (loopback); see webhook_allow",
                "{name}"
            );
        }
    }

    // Allowed by name, the same name is delivered to.
    let c = client(&b, config(&["localhost"])).await;
    let name_hook = hooks.iter().find(|(n, _)| *n == "name").unwrap().1;
    let mut tx = b.begin().await.unwrap();
    tx.record_delivery(NewDelivery::test(name_hook, flowstore_core::time::now()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let http = webhooks::client(&c.state.config().webhooks);
    let start = Instant::now();
    while r.got.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "never delivered");
        webhooks::round(&c.state, &http).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(*r.got.lock().unwrap(), ["name"]);
}

async fn answers_kept_before_are_dropped(b: Arc<dyn Backend>) {
    b.migrate_down(11).await.unwrap();
    let hook = webhook_with_a_delivery(&b, "old", "https://hooks.example.com/old").await;
    // What an earlier version kept of an answer.
    b.execute_raw(&format!(
        "UPDATE webhook_deliveries SET response_code = 200, response_body = '{}'",
        ANSWER.replace('\'', "''")
    ))
    .await
    .unwrap();
    let listed = async || {
        let mut tx = b.begin_read().await.unwrap();
        tx.list_deliveries(hook, None, &PageRequest::first(10))
            .await
            .unwrap()
            .items
    };
    assert_eq!(listed().await[0].response_body.as_deref(), Some(ANSWER));
    assert_eq!(
        b.migrate_up(None).await.unwrap(),
        [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]
    );
    let d = &listed().await[0];
    assert_eq!(
        (d.response_code, d.response_body.as_deref()),
        (Some(200), None)
    );
}
