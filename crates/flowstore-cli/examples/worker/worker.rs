//! A flowstore worker in plain HTTP: it long-polls `POST /api/v1/worker/claim` for
//! the handler types it serves, runs each task, heartbeats while a task takes long,
//! and reports `complete` or `fail` with the attempt number it was given (the
//! fencing token). Nothing here uses flowstore's Rust types: any language with an
//! HTTP client can do the same.
//!
//! It rides out an unavailable or busy server. Every call goes through one retry
//! policy ([`Backoff`]): a connection error, a timeout, 408, 429 or any 5xx is
//! retried after an exponential, jittered delay, or after `Retry-After` when the
//! server sends one; another 4xx is an answer and is not repeated. Repeating a
//! report is safe because the server answers a repeat of an accepted report with
//! the same outcome, so a report whose answer was lost is simply sent again. Each
//! claimed task has its own heartbeat loop, running beside its handler until the
//! report is answered; a 409 (on a heartbeat or a report) means the attempt is no
//! longer this worker's: its handler is dropped and nothing more is sent for it.
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

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long one try of a call other than a claim may take before it counts as
/// failed and is retried: a server that took the connection but never answers must
/// not hold a task forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The retry policy of every call (the worker uses [`Backoff::default`]). The delay
/// before a retry starts at `first` and doubles after each failure of the same
/// call, up to `max`; each delay is drawn at random between half and all of that,
/// so that workers that failed together do not come back together. A
/// `Retry-After` (in seconds) from the server takes its place: it is waited in
/// full, plus up to `first` of jitter.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The delay before the first retry.
    pub first: Duration,
    /// The longest delay between two tries (a `Retry-After` may ask for more).
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 10 s.
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first) of a call, given the
    /// server's `Retry-After` if it sent one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let mut rng = rand::thread_rng();
        match retry_after {
            Some(wait) => wait + self.first.mul_f64(rng.gen_range(0.0..=1.0)),
            None => {
                let ceiling = self
                    .first
                    .saturating_mul(1u32 << retry.min(20))
                    .min(self.max);
                ceiling.mul_f64(rng.gen_range(0.5..=1.0))
            }
        }
    }
}

/// What the worker did, for its caller (and the tests).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// How many times each task was completed by this worker (task ID → count).
    pub completed: HashMap<String, u32>,
    /// Attempts reported as failed: (task ID, attempt).
    pub failed: Vec<(String, i64)>,
    /// Heartbeats the server accepted.
    pub heartbeats: u32,
    /// Attempts whose lease was lost (a heartbeat or report refused with 409): the
    /// work is someone else's now.
    pub lost: u32,
    /// Calls sent again after a connection error, a timeout, 408, 429 or a 5xx.
    pub retries: u32,
    /// Tasks dropped because the server refused a heartbeat or a report with a 4xx
    /// other than 408, 409 and 429 (each logged as an error). Their leases expire
    /// and the server hands them out again.
    pub refused: u32,
}

/// A worker's error: what went wrong (with the server's status and answer, when
/// it answered).
#[derive(Debug)]
pub struct WorkerError {
    /// What went wrong.
    pub message: String,
}

impl WorkerError {
    fn new(message: impl Into<String>) -> Self {
        WorkerError {
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
    backoff: Backoff,
    report: Mutex<Report>,
}

/// How the server answered a call, once retries are over.
enum Answer {
    /// 2xx, with its body (`null` when it is not JSON).
    Ok(Value),
    /// 409: the attempt is no longer current (lease lost, or the run ended).
    Stale,
}

/// Why one try of a call failed.
enum Failure {
    /// No answer, or 408, 429 or a 5xx: worth trying again, after the server's
    /// `Retry-After` when it sent one.
    Transient {
        error: WorkerError,
        retry_after: Option<Duration>,
    },
    /// An answer that asking again will not change.
    Refused(WorkerError),
}

impl Api {
    /// Sends `POST /api/v1/worker/{path}` until the server answers it: each failure
    /// is logged (`what` names the call) and the call retried under the backoff
    /// policy, however long the server stays away. An error is a 4xx other than 408,
    /// 409 and 429, which asking again would not change. `timeout` bounds each try.
    async fn call(
        &self,
        path: &str,
        what: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Answer, WorkerError> {
        let mut retry = 0u32;
        loop {
            match self.try_once(path, body, timeout).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Transient { error, retry_after }) => {
                    let wait = self.backoff.delay(retry, retry_after);
                    tracing::warn!(
                        call = what, error = %error, retry = retry + 1,
                        wait_ms = wait.as_millis() as u64, "call failed; retrying"
                    );
                    self.report.lock().unwrap().retries += 1;
                    tokio::time::sleep(wait).await;
                    retry = retry.saturating_add(1);
                }
            }
        }
    }

    /// One try of a call.
    async fn try_once(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let url = format!(
            "{}/api/v1/worker/{path}",
            self.config.url.trim_end_matches('/')
        );
        let unanswered = |e: reqwest::Error| Failure::Transient {
            error: WorkerError::new(format!("POST {url}: {}", causes(&e))),
            retry_after: None,
        };
        let res = self
            .http
            .post(&url)
            .bearer_auth(&self.config.key)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(unanswered)?;
        let status = res.status().as_u16();
        // Seconds only; an HTTP date falls back to the backoff.
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // An answer cut short is no answer: the call is tried again.
        let text = res.text().await.map_err(unanswered)?;
        let error = || WorkerError::new(format!("POST {url}: {status} {text}"));
        match status {
            200..=299 => Ok(Answer::Ok(
                serde_json::from_str(&text).unwrap_or(Value::Null),
            )),
            409 => Ok(Answer::Stale),
            408 | 429 | 500..=599 => Err(Failure::Transient {
                error: error(),
                retry_after,
            }),
            _ => Err(Failure::Refused(error())),
        }
    }
}

/// An error and its causes, which say what actually went wrong (such as "Connection
/// refused") where reqwest's own message says only which request failed.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs the worker until `stop` turns true; then finishes the tasks in hand and
/// returns what it did. A server that does not answer, or answers 408, 429 or a
/// 5xx, is retried with backoff for as long as it takes; only a claim refused with
/// another 4xx (a revoked key, a rejected request) ends the worker with an error,
/// after the tasks in hand are finished.
pub async fn run(config: Config, mut stop: watch::Receiver<bool>) -> Result<Report, WorkerError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| WorkerError::new(format!("HTTP client: {e}")))?;
    let api = Arc::new(Api {
        http,
        config,
        backoff: Backoff::default(),
        report: Mutex::new(Report::default()),
    });
    // A claim may wait `wait_ms` for work before the server answers it.
    let claim_timeout = Duration::from_millis(api.config.wait_ms) + CALL_TIMEOUT;
    let mut working: JoinSet<()> = JoinSet::new();
    let mut fatal = None;
    // Stop when told to, or when whoever could tell us is gone.
    let stopped = |stop: &watch::Receiver<bool>| *stop.borrow() || stop.has_changed().is_err();
    while !stopped(&stop) {
        while let Some(done) = working.try_join_next() {
            reap(done);
        }
        let free = api.config.concurrency.saturating_sub(working.len());
        if free == 0 {
            tokio::select! {
                done = working.join_next() => {
                    if let Some(done) = done {
                        reap(done);
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
            a = api.call("claim", "claim", &claim, claim_timeout) => a,
            _ = stop.changed() => continue,
        };
        let tasks = match answer {
            Ok(Answer::Ok(Value::Array(tasks))) => tasks,
            Ok(_) => {
                fatal = Some(WorkerError::new("claim: expected an array of tasks"));
                break;
            }
            // A refused key or request will not get better by asking again.
            Err(e) => {
                tracing::error!(error = %e, "claim refused; stopping after the tasks in hand");
                fatal = Some(e);
                break;
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
        reap(done);
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(api.report.lock().unwrap().clone()),
    }
}

/// Logs a task's work that panicked. The worker goes on: the task's lease expires
/// and the server hands it out again.
fn reap(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a task's work panicked; its lease will expire");
    }
}

/// How a task's heartbeat loop ended.
enum Beats {
    /// The run was cancelled: the work should stop and fail.
    Cancelled,
    /// 409: the attempt is no longer this worker's.
    Lost,
    /// Refused with another 4xx.
    Refused(WorkerError),
}

/// Renews an attempt's lease every third of it, for as long as it is polled, until
/// the server says the attempt is lost, refuses the heartbeat, or says its run was
/// cancelled. A heartbeat that fails is retried by [`Api::call`], so an unavailable
/// server only delays the next one.
async fn heartbeats(api: &Api, task_id: &Value, attempt: &Value) -> Beats {
    let every = Duration::from_millis((api.config.lease_ms / 3).max(50));
    // A try that takes longer than the lease is no use: give up on it and try again.
    let timeout =
        Duration::from_millis(api.config.lease_ms).clamp(Duration::from_secs(1), CALL_TIMEOUT);
    let body = json!({"task_id": task_id, "attempt": attempt, "lease_ms": api.config.lease_ms});
    let what = format!("heartbeat {}", task_id.as_str().unwrap_or_default());
    loop {
        // The claim, or the last heartbeat, has just set the lease.
        tokio::time::sleep(every).await;
        match api.call("heartbeat", &what, &body, timeout).await {
            Ok(Answer::Ok(hb)) => {
                api.report.lock().unwrap().heartbeats += 1;
                if hb["cancel_requested"] == true {
                    return Beats::Cancelled;
                }
            }
            Ok(Answer::Stale) => return Beats::Lost,
            Err(e) => return Beats::Refused(e),
        }
    }
}

/// Works on one claimed task: runs its handler beside its heartbeat loop, then
/// reports the outcome, heartbeating until the report is answered. A lost lease
/// drops the handler (the work stops) and nothing is reported.
async fn work(api: Arc<Api>, task: Value) {
    let task_id = task["task_id"].clone();
    let attempt = task["attempt"].clone();
    let id = task_id.as_str().unwrap_or_default().to_string();
    let beats = heartbeats(&api, &task_id, &attempt);
    tokio::pin!(beats);
    let handler = handle(&task);
    tokio::pin!(handler);
    let mut beating = true;
    let outcome = tokio::select! {
        outcome = &mut handler => outcome,
        end = &mut beats => {
            beating = false;
            match end {
                Beats::Cancelled => Err((json!({"message": "the run was cancelled"}), false)),
                // Returning drops the handler: the work is someone else's now.
                Beats::Lost => {
                    api.report.lock().unwrap().lost += 1;
                    tracing::warn!(task = %id, "lease lost; dropping the work");
                    return;
                }
                Beats::Refused(e) => {
                    api.report.lock().unwrap().refused += 1;
                    tracing::error!(task = %id, error = %e, "heartbeat refused; dropping the work");
                    return;
                }
            }
        }
    };
    let (path, body) = match &outcome {
        Ok(output) => (
            "complete",
            json!({"task_id": task_id, "attempt": attempt, "output": output}),
        ),
        Err((error, retryable)) => (
            "fail",
            json!({"task_id": task_id, "attempt": attempt, "error": error, "retryable": retryable}),
        ),
    };
    let what = format!("{path} {id}");
    // The same body every time: the server answers a repeat of a report it accepted
    // with the same outcome, so a report whose answer was lost is safe to send again.
    let answer = {
        let report = api.call(path, &what, &body, CALL_TIMEOUT);
        tokio::pin!(report);
        loop {
            tokio::select! {
                answer = &mut report => break answer,
                // The lease is kept while the report is retried. Whatever the
                // heartbeats learn meanwhile, the report's own answer decides.
                _ = &mut beats, if beating => beating = false,
            }
        }
    };
    match (answer, &outcome) {
        (Ok(Answer::Ok(_)), Ok(_)) => {
            *api.report
                .lock()
                .unwrap()
                .completed
                .entry(id.clone())
                .or_default() += 1;
            tracing::info!(task = %id, "completed");
        }
        (Ok(Answer::Ok(_)), Err((_, retryable))) => {
            let n = attempt.as_i64().unwrap_or_default();
            api.report.lock().unwrap().failed.push((id.clone(), n));
            tracing::info!(task = %id, retryable, "failed");
        }
        (Ok(Answer::Stale), _) => {
            api.report.lock().unwrap().lost += 1;
            tracing::warn!(task = %id, "{path} refused: the attempt is no longer current");
        }
        (Err(e), _) => {
            api.report.lock().unwrap().refused += 1;
            tracing::error!(task = %id, error = %e, "{path} refused; dropping the task");
        }
    }
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
