//! A real server on port 0, spoken to with reqwest: graceful shutdown with a request
//! in flight, and event streams resumed with `Last-Event-ID`.

use flowstore_testkit::{both_backends, Served};
use std::sync::Arc;
use std::time::Duration;

use flowstore_core::model::identity::Role;
use flowstore_core::Backend;
use flowstore_server::AppState;
use serde_json::{json, Value};

both_backends!(
    shutdown_lets_requests_in_flight_finish,
    events_resume_after_last_event_id,
    idle_and_trickling_connections_are_closed
);

struct Live {
    base: String,
    key: String,
    http: reqwest::Client,
    served: Served,
}

async fn start(b: Arc<dyn Backend>) -> Live {
    let key = flowstore_testkit::fixtures::api_key(&b, Role::Admin).await;
    let served = Served::start(AppState::new(b)).await;
    Live {
        base: served.base.clone(),
        key,
        http: reqwest::Client::new(),
        served,
    }
}

impl Live {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}

async fn shutdown_lets_requests_in_flight_finish(b: Arc<dyn Backend>) {
    let mut live = start(b).await;
    let ok = live
        .http
        .get(format!("{}/healthz", live.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // A long poll with nothing to claim is in flight when shutdown begins.
    let in_flight = {
        let http = live.http.clone();
        let url = format!("{}/api/v1/worker/claim", live.base);
        let key = live.key.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1, "lease_ms": 1000, "wait_ms": 20000}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(live.served.begin_stop(), "the server was running");
    let answer = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the request in flight is answered promptly")
        .unwrap()
        .expect("the request in flight is answered, not cut off");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!([]));
    tokio::time::timeout(Duration::from_secs(5), live.served.stopped())
        .await
        .expect("the server stops");
    assert!(reqwest::Client::new()
        .get(format!("{}/healthz", live.base))
        .send()
        .await
        .is_err());
}

/// Reads server-sent events until one of type `until` arrives: `(id, type)` pairs.
async fn read_events(
    live: &Live,
    query: &str,
    last: Option<i64>,
    until: &str,
) -> Vec<(i64, String)> {
    let mut req = live
        .http
        .get(format!("{}/api/v1/events?{query}", live.base))
        .bearer_auth(&live.key);
    if let Some(id) = last {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let mut res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let (mut id, mut kind) = (None, None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = Some(v.trim().to_string());
                }
            }
            if let (Some(id), Some(kind)) = (id, kind) {
                let done = kind == until;
                out.push((id, kind));
                if done {
                    return out;
                }
            }
        }
    }
}

async fn events_resume_after_last_event_id(b: Arc<dyn Backend>) {
    let live = start(b).await;
    live.post(
        "/api/v1/handlers",
        json!({"handler_type": "shell", "handler_name": "shell"}),
    )
    .await;
    let wf = live
        .post("/api/v1/workflows", json!({"name": "w", "status": "active",
            "definition": {"steps": [{"key": "a", "handler": "shell"}, {"key": "b", "handler": "shell", "depends_on": ["a"]}]}}))
        .await;
    let started = live
        .post(
            &format!("/api/v1/workflows/{}/runs", wf["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    let run = started["run"]["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let claimed = live
            .post("/api/v1/worker/claim", json!({"worker_id": "w", "handler_types": ["shell"], "limit": 1, "lease_ms": 10000, "wait_ms": 5000}))
            .await;
        let t = &claimed[0];
        live.post(
            "/api/v1/worker/complete",
            json!({"task_id": t["task_id"], "attempt": t["attempt"], "output": {}}),
        )
        .await;
    }
    let query = format!("run_id={run}");
    let all = read_events(&live, &query, None, "run.completed").await;
    assert!(all.len() >= 6, "{all:?}");
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "ids increase: {all:?}"
    );
    let mid = all.len() / 2;
    let resumed = read_events(&live, &query, Some(all[mid - 1].0), "run.completed").await;
    assert_eq!(resumed, all[mid..].to_vec(), "exactly the later events");
    let bad = live
        .http
        .get(format!("{}/api/v1/events", live.base))
        .bearer_auth(&live.key)
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

/// A client that connects and sends nothing, one that trickles a request head one
/// byte at a time, and one that stays idle after an answer are all disconnected
/// once the head time limit passes; a prompt client is served.
async fn idle_and_trickling_connections_are_closed(b: Arc<dyn Backend>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = flowstore_server::ServerConfig {
        header_timeout: Duration::from_secs(1),
        ..flowstore_server::ServerConfig::default()
    };
    let served = Served::start(AppState::with_config(b, config)).await;
    let addr = served.addr;
    // Reads until the server closes the connection; what it sent.
    async fn until_closed(conn: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        String::from_utf8_lossy(&got).into_owned()
    }

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    until_closed(&mut silent).await;

    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let writer = tokio::spawn(async move {
        for byte in head {
            if trickle.write_all(&[*byte]).await.is_err() {
                return trickle;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        trickle
    });
    let mut trickle = writer.await.unwrap();
    let answer = until_closed(&mut trickle).await;
    assert!(
        !answer.contains("200 OK"),
        "a trickled head was served: {answer}"
    );

    let mut prompt = tokio::net::TcpStream::connect(addr).await.unwrap();
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    prompt.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // then idle on a kept-alive connection: closed as well
    until_closed(&mut prompt).await;

    served.stop().await;
}
