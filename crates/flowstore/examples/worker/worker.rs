//! A flowstore worker in plain HTTP: it long-polls `POST /api/v1/worker/claim` for
//! the handler types it serves, runs each task, heartbeats while a task takes long,
//! and reports `complete` or `fail` with the attempt number it was given (the
//! fencing token). Nothing here uses flowstore's Rust types: any language with an
//! HTTP client can do the same.
//!
//! The handlers simulate the demo's handler types (`shell`, `docker`, `http`,
//! `llm`; any other type served gets a generic answer) rather than running
//! commands. Each honours three optional step parameters, so that a workflow can
//! show every path of the protocol:
//! - `duration_ms`: how long the work takes (heartbeats keep the lease meanwhile);
//! - `fail_attempts`: fail this many attempts first, as retryable;
//! - `fail`: fail every attempt, as not retryable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server, such as `http://127.0.0.1:8080`.
    pub url: String,
    /// An API key (`Authorization: Bearer KEY`).
    pub key: String,
    /// The name recorded on each attempt.
    pub worker_id: String,
    /// The handler types served.
    pub handler_types: Vec<String>,
    /// Most tasks worked on at once.
    pub concurrency: usize,
    /// The lease asked for; a heartbeat renews it every third of it.
    pub lease_ms: u64,
    /// How long one claim waits for work when none is ready.
    pub wait_ms: u64,
}

/// What the worker did, for its caller (and the tests).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// How many times each task was completed by this worker (task ID → count).
    pub completed: HashMap<String, u32>,
    /// Attempts reported as failed: (task ID, attempt).
    pub failed: Vec<(String, i64)>,
    /// Heartbeats sent.
    pub heartbeats: u32,
    /// Attempts whose lease was lost (a report refused with 409): the work is
    /// someone else's now.
    pub lost: u32,
}

/// A worker's error: what went wrong, and the HTTP status when the server answered.
#[derive(Debug)]
pub struct WorkerError {
    /// The status of the server's answer, if there was one.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl WorkerError {
    fn new(message: impl Into<String>) -> Self {
        WorkerError {
            status: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WorkerError {}

/// The HTTP side: the client, where, and with which key.
struct Api {
    http: reqwest::Client,
    config: Config,
    report: Mutex<Report>,
}

/// How a report was answered.
enum Answer {
    Ok(Value),
    /// 409: the attempt is no longer current (lease lost, or the run ended).
    Stale,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Result<Answer, WorkerError> {
        let url = format!(
            "{}/api/v1/worker/{path}",
            self.config.url.trim_end_matches('/')
        );
        let res = self
            .http
            .post(&url)
            .bearer_auth(&self.config.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| WorkerError::new(format!("POST {url}: {e}")))?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        match status {
            200 => serde_json::from_str(&text)
                .map(Answer::Ok)
                .map_err(|e| WorkerError::new(format!("POST {url}: not JSON ({e}): {text}"))),
            409 => Ok(Answer::Stale),
            _ => Err(WorkerError {
                status: Some(status),
                message: format!("POST {url}: {status} {text}"),
            }),
        }
    }
}

/// Runs the worker until `stop` turns true; then finishes the tasks in hand and
/// returns what it did. A refused key or a malformed answer ends it with an error;
/// a server that does not answer is retried every second.
pub async fn run(config: Config, mut stop: watch::Receiver<bool>) -> Result<Report, WorkerError> {
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        config,
        report: Mutex::new(Report::default()),
    });
    let mut working: JoinSet<Result<(), WorkerError>> = JoinSet::new();
    // Stop when told to, or when whoever could tell us is gone.
    let stopped = |stop: &watch::Receiver<bool>| *stop.borrow() || stop.has_changed().is_err();
    while !stopped(&stop) {
        while let Some(done) = working.try_join_next() {
            done.map_err(|e| WorkerError::new(format!("a task panicked: {e}")))??;
        }
        let free = api.config.concurrency.saturating_sub(working.len());
        if free == 0 {
            tokio::select! {
                done = working.join_next() => {
                    if let Some(done) = done {
                        done.map_err(|e| WorkerError::new(format!("a task panicked: {e}")))??;
                    }
                }
                _ = stop.changed() => {}
            }
            continue;
        }
        let claim = json!({
            "worker_id": api.config.worker_id,
            "handler_types": api.config.handler_types,
            "limit": free,
            "lease_ms": api.config.lease_ms,
            "wait_ms": api.config.wait_ms,
        });
        let answer = tokio::select! {
            a = api.post("claim", claim) => a,
            _ = stop.changed() => continue,
        };
        let tasks = match answer {
            Ok(Answer::Ok(Value::Array(tasks))) => tasks,
            Ok(_) => return Err(WorkerError::new("claim: expected an array of tasks")),
            // A refused key or request will not get better by asking again.
            Err(e) if e.status.is_some_and(|s| (400..500).contains(&s)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "claim failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for task in tasks {
            tracing::info!(
                task = %task["task_id"], step = %task["step_key"], handler = %task["handler_type"],
                attempt = %task["attempt"], "claimed"
            );
            working.spawn(work(api.clone(), task));
        }
    }
    while let Some(done) = working.join_next().await {
        done.map_err(|e| WorkerError::new(format!("a task panicked: {e}")))??;
    }
    let report = api.report.lock().unwrap().clone();
    Ok(report)
}

/// Works on one claimed task: runs its handler while heartbeating, then reports.
async fn work(api: Arc<Api>, task: Value) -> Result<(), WorkerError> {
    let task_id = task["task_id"].clone();
    let attempt = task["attempt"].clone();
    let every = Duration::from_millis((api.config.lease_ms / 3).max(50));
    let handler = handle(&task);
    tokio::pin!(handler);
    let mut beat = tokio::time::interval(every);
    beat.tick().await; // the first tick is immediate; the claim just set the lease
    let outcome = loop {
        tokio::select! {
            outcome = &mut handler => break outcome,
            _ = beat.tick() => {
                let body = json!({"task_id": task_id, "attempt": attempt, "lease_ms": api.config.lease_ms});
                match api.post("heartbeat", body).await? {
                    Answer::Ok(hb) => {
                        api.report.lock().unwrap().heartbeats += 1;
                        if hb["cancel_requested"] == true {
                            break Err((json!({"message": "the run was cancelled"}), false));
                        }
                    }
                    Answer::Stale => {
                        api.report.lock().unwrap().lost += 1;
                        tracing::warn!(task = %task_id, "lease lost; dropping the work");
                        return Ok(());
                    }
                }
            }
        }
    };
    let id = task_id.as_str().unwrap_or_default().to_string();
    let answer = match outcome {
        Ok(output) => {
            let body = json!({"task_id": task_id, "attempt": attempt, "output": output});
            let a = api.post("complete", body).await?;
            if matches!(a, Answer::Ok(_)) {
                *api.report.lock().unwrap().completed.entry(id).or_default() += 1;
                tracing::info!(task = %task_id, "completed");
            }
            a
        }
        Err((error, retryable)) => {
            let body = json!({"task_id": task_id, "attempt": attempt, "error": error, "retryable": retryable});
            let a = api.post("fail", body).await?;
            if matches!(a, Answer::Ok(_)) {
                let n = attempt.as_i64().unwrap_or_default();
                api.report.lock().unwrap().failed.push((id, n));
                tracing::info!(task = %task_id, retryable, "failed");
            }
            a
        }
    };
    if matches!(answer, Answer::Stale) {
        api.report.lock().unwrap().lost += 1;
    }
    Ok(())
}

/// The simulated handlers: the output of a success, or the error of a failure and
/// whether another attempt may succeed.
async fn handle(task: &Value) -> Result<Value, (Value, bool)> {
    let params = &task["parameters"];
    let attempt = task["attempt"].as_i64().unwrap_or(1);
    let step = task["step_key"].as_str().unwrap_or("task");
    let duration = params["duration_ms"].as_u64().unwrap_or(20);
    tokio::time::sleep(Duration::from_millis(duration)).await;
    if params["fail"] == true {
        return Err((
            json!({"message": format!("{step} failed (asked to by its parameters)")}),
            false,
        ));
    }
    if params["fail_attempts"]
        .as_i64()
        .is_some_and(|n| attempt <= n)
    {
        return Err((
            json!({"message": format!("{step}: transient failure on attempt {attempt}")}),
            true,
        ));
    }
    let command = params["command"].as_str().unwrap_or(step);
    Ok(match task["handler_type"].as_str().unwrap_or_default() {
        "shell" => json!({"exit_code": 0, "stdout": format!("{command}: ok\n")}),
        "docker" => json!({"exit_code": 0, "image": format!("demo/{step}:latest")}),
        "http" => json!({"status": 200, "url": format!("https://example.invalid/{step}")}),
        "llm" => json!({"summary": format!("{step}: no issues found"), "tokens": 512}),
        other => json!({"handled_by": other, "step": step}),
    })
}
