//! The example worker (`examples/worker/`) runs the demo workflows to their end over
//! HTTP against a real server on port 0, on SQLite and on PostgreSQL: every run ends
//! as the demo intends (completed, or failed where a step is made to fail), and every
//! task is completed exactly once, retries and heartbeats included.

use std::collections::HashMap;
use std::time::Duration;

use flowstore::Store;
use serde_json::{json, Value};

#[path = "conformance/common.rs"]
#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

#[path = "../examples/worker/worker.rs"]
#[allow(dead_code)]
mod worker;

conformance!(demo_workflows_run_to_their_end);

/// A running server and a client with an admin key.
pub struct Served {
    pub url: String,
    pub key: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Served {
    async fn start(store: &Store) -> Served {
        let backend = store.backend_arc();
        let key = flowstore_server::bootstrap_admin_key(&backend)
            .await
            .unwrap()
            .expect("a fresh database has no key yet");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = flowstore_server::AppState::new(backend);
        let task = tokio::spawn(flowstore_server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Served {
            url,
            key,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.key);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, want, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// Polls each run until it has ended; returns their statuses. Bounded: a run still
/// going after two minutes fails the test with every status.
async fn wait_for_ends(s: &Served, runs: &[String]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut statuses = Vec::new();
        for id in runs {
            let run = s
                .call("GET", &format!("/api/v1/runs/{id}"), None, 200)
                .await;
            statuses.push(run["status"].as_str().unwrap().to_string());
        }
        if statuses
            .iter()
            .all(|st| !matches!(st.as_str(), "pending" | "running"))
        {
            return statuses;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs still going: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn demo_workflows_run_to_their_end(store: Store) {
    flowstore::demo::seed(&store, 0)
        .await
        .expect("the demo catalog seeds");
    let s = Served::start(&store).await;

    // The demo's workflows, but the smoke check: its one-second deadline makes its
    // outcome depend on the machine's speed.
    let page = s
        .call("GET", "/api/v1/workflows?limit=100", None, 200)
        .await;
    let mut workflows: Vec<(String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["timeout_seconds"] != 1)
        .map(|w| {
            (
                w["id"].as_str().unwrap().to_string(),
                w["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(workflows.len(), 4, "{page}");
    // One more workflow shows a retry, a long step kept alive by heartbeats, and a
    // step that fails for good (under fail_fast, so the run fails).
    let failing = s
        .call("POST", "/api/v1/workflows", Some(json!({
            "name": "flaky then broken", "status": "active",
            "definition": {"steps": [
                {"key": "flaky", "handler": "shell", "max_retries": 2, "parameters": {"fail_attempts": 1}},
                {"key": "long", "handler": "docker", "depends_on": ["flaky"], "max_retries": 2,
                 "parameters": {"duration_ms": 1500}},
                {"key": "broken", "handler": "http", "depends_on": ["long"], "parameters": {"fail": true}},
                {"key": "never", "handler": "llm", "depends_on": ["broken"]}]}})), 201)
        .await;
    workflows.push((
        failing["id"].as_str().unwrap().to_string(),
        "flaky then broken".into(),
    ));

    let mut runs = Vec::new();
    for (id, _) in &workflows {
        let started = s
            .call(
                "POST",
                &format!("/api/v1/workflows/{id}/runs"),
                Some(json!({})),
                201,
            )
            .await;
        runs.push(started["run"]["id"].as_str().unwrap().to_string());
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = worker::Config {
        url: s.url.clone(),
        key: s.key.clone(),
        worker_id: "example".into(),
        handler_types: ["shell", "docker", "http", "llm"]
            .map(String::from)
            .to_vec(),
        concurrency: 4,
        // Three seconds, renewed every second: long enough that a heartbeat delayed
        // by a busy machine does not lose the lease, short enough that the 1.5 s
        // step still needs one.
        lease_ms: 3000,
        wait_ms: 1000,
    };
    let running = tokio::spawn(worker::run(config, stopped));
    let statuses = wait_for_ends(&s, &runs).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap().expect("the worker ends cleanly");

    let mut completions: HashMap<String, u32> = HashMap::new();
    for ((_, name), (run, status)) in workflows.iter().zip(runs.iter().zip(&statuses)) {
        let tasks = s
            .call("GET", &format!("/api/v1/runs/{run}/tasks"), None, 200)
            .await;
        let failing = name == "flaky then broken";
        assert_eq!(
            status,
            if failing { "failed" } else { "completed" },
            "{name}: {tasks}"
        );
        for t in tasks.as_array().unwrap() {
            let (id, step, st) = (
                t["id"].as_str().unwrap(),
                t["step_key"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
            );
            let done = report.completed.get(id).copied().unwrap_or(0);
            completions.insert(id.to_string(), done);
            match (failing, step) {
                (false, _) | (true, "flaky" | "long") => {
                    assert_eq!(
                        (st, done),
                        ("completed", 1),
                        "{name}/{step} completed exactly once"
                    );
                }
                (true, "broken") => assert_eq!((st, done), ("failed", 0), "{name}/{step}"),
                (true, _) => assert!(done == 0 && st != "completed", "{name}/{step}: {st}"),
            }
            if step == "flaky" {
                assert_eq!(t["attempt"], 2, "flaky failed once, then succeeded: {t}");
            }
        }
    }
    // Nothing the worker completed lies outside these runs, and nothing twice.
    assert_eq!(
        report.completed.len(),
        completions.values().filter(|n| **n > 0).count()
    );
    assert!(
        report.completed.values().all(|n| *n == 1),
        "{:?}",
        report.completed
    );
    assert!(
        report.heartbeats > 0,
        "the long step was kept alive by heartbeats"
    );
    assert!(
        report.failed.iter().any(|(_, attempt)| *attempt == 1),
        "{:?}",
        report.failed
    );
    s.stop().await;
}
