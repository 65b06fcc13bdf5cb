//! The example worker (`examples/worker/`) runs the demo workflows to their end over
//! HTTP against a real server on port 0, on SQLite and on PostgreSQL: every run ends
//! as the demo intends (completed, or failed where a step is made to fail), and every
//! task is completed exactly once, retries and heartbeats included.
//!
//! It also rides out an unreliable server: a restart on the same address in the
//! middle of the runs, and a proxy in front of the server that answers 429 with
//! `Retry-After: 1` and 503 instead of passing some requests on (claims, heartbeats,
//! completions, failures). The runs still end as they should, each task completed
//! exactly once, and a 429 is followed by a wait of at least its `Retry-After`. A
//! heartbeat answered 409 stops that attempt's work: nothing more is sent for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowstore::Store;
use serde_json::{json, Value};

use crate::worker;

conformance!(
    demo_workflows_run_to_their_end,
    worker_survives_a_server_restart,
    worker_honours_retry_after_and_survives_5xx,
    failed_heartbeats_do_not_stop_a_task,
    a_lost_lease_stops_the_work,
);

/// A running server and a client with an admin key.
pub struct Served {
    pub url: String,
    pub key: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// A server on a port of its own, with a new admin key.
    async fn start(store: &Store) -> Served {
        let key = flowstore_server::bootstrap_admin_key(&store.backend_arc())
            .await
            .unwrap()
            .expect("a fresh database has no key yet");
        Served::start_at(store, "127.0.0.1:0", key).await
    }

    /// A server listening at `addr` (the address of a stopped one, for a restart),
    /// whose client uses `key`.
    async fn start_at(store: &Store, addr: &str, key: String) -> Served {
        let backend = store.backend_arc();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("binding {addr}: {e}"));
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

    /// The address listened on (`127.0.0.1:PORT`).
    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
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
    flowstore_cli::demo::seed(&store, 0)
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

/// The handler types the example worker serves, registered on a fresh database.
async fn register_handlers(s: &Served) {
    for handler in ["shell", "docker", "http", "llm"] {
        s.call(
            "POST",
            "/api/v1/handlers",
            Some(json!({"handler_type": handler, "handler_name": handler})),
            201,
        )
        .await;
    }
}

/// Creates an active workflow of `steps` and starts `n` runs of it; returns the runs.
async fn start_runs(s: &Served, name: &str, steps: Value, n: usize) -> Vec<String> {
    let wf = s
        .call(
            "POST",
            "/api/v1/workflows",
            Some(json!({"name": name, "status": "active", "definition": {"steps": steps}})),
            201,
        )
        .await;
    let mut runs = Vec::new();
    for _ in 0..n {
        let started = s
            .call(
                "POST",
                &format!("/api/v1/workflows/{}/runs", wf["id"].as_str().unwrap()),
                Some(json!({})),
                201,
            )
            .await;
        runs.push(started["run"]["id"].as_str().unwrap().to_string());
    }
    runs
}

/// A worker of every handler type against `url`, asking for `lease_ms` leases.
fn worker_config(url: &str, key: &str, lease_ms: u64) -> worker::Config {
    worker::Config {
        url: url.to_string(),
        key: key.to_string(),
        worker_id: "resilient".into(),
        handler_types: ["shell", "docker", "http", "llm"]
            .map(String::from)
            .to_vec(),
        concurrency: 4,
        lease_ms,
        wait_ms: 1000,
    }
}

/// The tasks of `runs`, each as (task ID, step, status, attempt).
async fn tasks_of(s: &Served, runs: &[String]) -> Vec<(String, String, String, i64)> {
    let mut all = Vec::new();
    for run in runs {
        let tasks = s
            .call("GET", &format!("/api/v1/runs/{run}/tasks"), None, 200)
            .await;
        for t in tasks.as_array().unwrap() {
            all.push((
                t["id"].as_str().unwrap().to_string(),
                t["step_key"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
                t["attempt"].as_i64().unwrap(),
            ));
        }
    }
    all
}

/// Every task of `runs` is completed, and completed by the worker exactly once;
/// nothing else was completed. Returns the tasks.
async fn each_completed_once(
    s: &Served,
    runs: &[String],
    report: &worker::Report,
) -> Vec<(String, String, String, i64)> {
    let tasks = tasks_of(s, runs).await;
    for (id, step, status, _) in &tasks {
        assert_eq!(status, "completed", "{step} ({id}): {tasks:?}");
        assert_eq!(
            report.completed.get(id).copied(),
            Some(1),
            "{step} ({id}) completed by the worker exactly once: {:?}",
            report.completed
        );
    }
    assert_eq!(
        report.completed.len(),
        tasks.len(),
        "{:?}",
        report.completed
    );
    tasks
}

/// Polls until a task of `step` in `runs` is running (claimed by the worker).
/// Runs the worker against `url` with leases of `lease_ms` until `runs` have all
/// completed, then stops it: its report and the runs' tasks, each completed once.
async fn work_to_completion(
    s: &Served,
    url: &str,
    lease_ms: u64,
    runs: &[String],
) -> (worker::Report, Vec<(String, String, String, i64)>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker::run(worker_config(url, &s.key, lease_ms), stopped));
    let statuses = wait_for_ends(s, runs).await;
    assert_eq!(statuses, ["completed"]);
    stop.send(true).unwrap();
    let report = running.await.unwrap().expect("the worker ends cleanly");
    let tasks = each_completed_once(s, runs, &report).await;
    (report, tasks)
}

async fn wait_until_running(s: &Served, runs: &[String], step: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = tasks_of(s, runs).await;
        if tasks
            .iter()
            .any(|(_, st, status, _)| st == step && status == "running")
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{step} never started: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server stops in the middle of the runs (with tasks claimed and running, and
/// their heartbeats and reports due), stays away for two seconds, and a new server
/// on the same store comes back on the same address. The worker neither exits nor
/// loses a lease; every run completes, each task exactly once.
async fn worker_survives_a_server_restart(store: Store) {
    let s = Served::start(&store).await;
    register_handlers(&s).await;
    let runs = start_runs(
        &s,
        "restarted under the worker",
        json!([
            {"key": "first", "handler": "shell", "parameters": {"duration_ms": 200}},
            {"key": "long", "handler": "docker", "depends_on": ["first"],
             "parameters": {"duration_ms": 4000}},
            {"key": "after", "handler": "http", "depends_on": ["long"]},
            {"key": "flaky", "handler": "llm", "depends_on": ["long"], "max_retries": 2,
             "parameters": {"fail_attempts": 1}}
        ]),
        3,
    )
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Ten-second leases: the two seconds away, plus the worker's backoff before it
    // finds the server back, are well within one, so no lease is lost.
    let running = tokio::spawn(worker::run(worker_config(&s.url, &s.key, 10_000), stopped));

    wait_until_running(&s, &runs, "long").await;
    let (addr, key) = (s.addr(), s.key.clone());
    s.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !running.is_finished(),
        "the worker keeps going while the server is away: {:?}",
        running.await
    );
    let s = Served::start_at(&store, &addr, key).await;

    let statuses = wait_for_ends(&s, &runs).await;
    assert!(statuses.iter().all(|st| st == "completed"), "{statuses:?}");
    stop.send(true).unwrap();
    let report = running.await.unwrap().expect("the worker ends cleanly");
    let tasks = each_completed_once(&s, &runs, &report).await;
    for (_, step, _, attempt) in &tasks {
        let want = if step == "flaky" { 2 } else { 1 };
        assert_eq!(*attempt, want, "{step}: {tasks:?}");
    }
    assert_eq!(report.lost, 0, "no lease was lost: {report:?}");
    assert_eq!(report.refused, 0, "{report:?}");
    assert!(
        report.retries > 0,
        "the calls made while the server was away were retried: {report:?}"
    );
    assert!(report.heartbeats > 0, "{report:?}");
    s.stop().await;
}

/// The proxy answers 429 with `Retry-After: 1`, then 503, to the first two tries
/// of every call (each claim, and each task's heartbeat, completion and failure).
/// The runs still end as they should, each task completed exactly once, and every
/// 429 is followed by a wait of at least a second before the call is tried again.
async fn worker_honours_retry_after_and_survives_5xx(store: Store) {
    let s = Served::start(&store).await;
    register_handlers(&s).await;
    let proxy = Proxy::start(&s.url, |_, nth| match nth {
        0 => Some(Inject::TooMany),
        1 => Some(Inject::Unavailable),
        _ => None,
    })
    .await;
    let runs = start_runs(
        &s,
        "behind a busy proxy",
        json!([
            {"key": "first", "handler": "shell"},
            {"key": "long", "handler": "docker", "depends_on": ["first"],
             "parameters": {"duration_ms": 4000}},
            {"key": "flaky", "handler": "llm", "depends_on": ["long"], "max_retries": 2,
             "parameters": {"fail_attempts": 1}}
        ]),
        1,
    )
    .await;
    // Six-second leases, renewed every two: a heartbeat held back by a 429 and a 503
    // still lands within the lease.
    let (report, tasks) = work_to_completion(&s, &proxy.url, 6000, &runs).await;
    for (id, step, _, attempt) in &tasks {
        let want = if step == "flaky" { 2 } else { 1 };
        assert_eq!(*attempt, want, "{step}: {tasks:?}");
        if step == "flaky" {
            assert_eq!(report.failed, [(id.clone(), 1)], "{report:?}");
        }
    }
    assert_eq!((report.lost, report.refused), (0, 0), "{report:?}");

    let seen = proxy.seen();
    let injected: Vec<&Seen> = seen.iter().filter(|r| r.injected.is_some()).collect();
    for kind in ["claim", "heartbeat", "complete", "fail"] {
        assert!(
            injected
                .iter()
                .any(|r| r.kind == kind && r.injected == Some(Inject::TooMany)),
            "a {kind} was answered 429: {seen:?}"
        );
    }
    for r in &injected {
        // Every refused call was tried again, after Retry-After for a 429.
        let next = seen
            .iter()
            .find(|n| n.key == r.key && n.nth == r.nth + 1)
            .unwrap_or_else(|| panic!("{} was not tried again: {seen:?}", r.key));
        if r.injected == Some(Inject::TooMany) {
            let waited = next.arrived.duration_since(r.answered);
            assert!(
                waited >= Duration::from_millis(950),
                "{} was tried again {waited:?} after a 429 with Retry-After: 1",
                r.key
            );
        }
    }
    assert!(
        report.retries as usize >= injected.len(),
        "{} retries for {} refusals",
        report.retries,
        injected.len()
    );
    s.stop().await;
}

/// The first three heartbeats of each task are answered 503: the worker retries
/// them, the tasks' handlers go on meanwhile, and each task completes on its first
/// attempt (its lease was kept, not lost and handed out again).
async fn failed_heartbeats_do_not_stop_a_task(store: Store) {
    let s = Served::start(&store).await;
    register_handlers(&s).await;
    let proxy = Proxy::start(&s.url, |kind, nth| {
        (kind == "heartbeat" && nth < 3).then_some(Inject::Unavailable)
    })
    .await;
    let runs = start_runs(
        &s,
        "heartbeats refused",
        json!([{"key": "long", "handler": "docker", "parameters": {"duration_ms": 5000}}]),
        2,
    )
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker::run(
        worker_config(&proxy.url, &s.key, 6000),
        stopped,
    ));
    let statuses = wait_for_ends(&s, &runs).await;
    assert_eq!(statuses, ["completed", "completed"]);
    stop.send(true).unwrap();
    let report = running.await.unwrap().expect("the worker ends cleanly");
    let tasks = each_completed_once(&s, &runs, &report).await;
    assert!(tasks.iter().all(|t| t.3 == 1), "first attempts: {tasks:?}");
    assert_eq!((report.lost, report.refused), (0, 0), "{report:?}");

    let seen = proxy.seen();
    for (id, ..) in &tasks {
        let beats: Vec<&Seen> = seen
            .iter()
            .filter(|r| r.key == format!("heartbeat {id}"))
            .collect();
        assert!(
            beats.len() >= 4 && beats[..3].iter().all(|r| r.injected.is_some()),
            "three refused heartbeats, then one that passed: {beats:?}"
        );
        assert!(beats[3].injected.is_none(), "{beats:?}");
    }
    assert!(
        report.heartbeats >= 2,
        "each task's lease was renewed: {report:?}"
    );
    assert!(report.retries >= 6, "{report:?}");
    s.stop().await;
}

/// The first heartbeat of the task's first attempt is answered 409, as when its
/// lease has been lost. The worker stops that work at once: it sends no further
/// heartbeat and no report for the attempt, though its handler would have finished
/// long before the run ends. The server hands the task out again when the lease
/// expires, and the second attempt completes it.
async fn a_lost_lease_stops_the_work(store: Store) {
    let s = Served::start(&store).await;
    register_handlers(&s).await;
    let proxy = Proxy::start(&s.url, |kind, nth| {
        (kind == "heartbeat" && nth == 0).then_some(Inject::Conflict)
    })
    .await;
    let runs = start_runs(
        &s,
        "lease lost",
        json!([{"key": "long", "handler": "docker", "max_retries": 2,
                "parameters": {"duration_ms": 3000}}]),
        1,
    )
    .await;
    let (report, tasks) = work_to_completion(&s, &proxy.url, 2000, &runs).await;
    assert_eq!(tasks[0].3, 2, "handed out again: {tasks:?}");
    assert_eq!((report.lost, report.refused), (1, 0), "{report:?}");

    let seen = proxy.seen();
    let first: Vec<&Seen> = seen.iter().filter(|r| r.attempt == Some(1)).collect();
    assert_eq!(first.len(), 1, "only the refused heartbeat: {first:?}");
    assert_eq!(
        (first[0].kind.as_str(), first[0].injected),
        ("heartbeat", Some(Inject::Conflict))
    );
    assert!(
        seen.iter()
            .any(|r| r.kind == "complete" && r.attempt == Some(2) && r.injected.is_none()),
        "{seen:?}"
    );
    s.stop().await;
}

/// What the proxy answers in place of the server.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Inject {
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// 503 without `Retry-After`.
    Unavailable,
    /// 409, as for an attempt that is no longer current.
    Conflict,
}

/// A request the proxy received.
#[derive(Clone, Debug)]
struct Seen {
    /// The call: `claim`, `heartbeat`, `complete`, `fail`, …
    kind: String,
    /// The call and the task it is about (`heartbeat TASK`), or the call alone.
    key: String,
    /// How many requests with the same key came before this one.
    nth: usize,
    /// The attempt named in the body, if any.
    attempt: Option<i64>,
    /// What the proxy answered instead of the server, if anything.
    injected: Option<Inject>,
    /// When the request had been read.
    arrived: tokio::time::Instant,
    /// When its answer had been written.
    answered: tokio::time::Instant,
}

/// Chooses, from a call's kind and how many requests with its key came before,
/// whether the proxy answers in place of the server.
type Plan = fn(&str, usize) -> Option<Inject>;

/// A small HTTP/1.1 proxy in front of the server: it passes requests on, except
/// those its plan answers itself, and records every request.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str, plan: Plan) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (upstream, log) = (upstream.to_string(), seen.clone());
        let http = reqwest::Client::new();
        let accepting = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (upstream, http, log) = (upstream.clone(), http.clone(), log.clone());
                tokio::spawn(async move {
                    let _ = proxy_connection(conn, &upstream, &http, plan, &log).await;
                });
            }
        });
        Proxy {
            url,
            seen,
            accepting,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Serves one client connection, request after request (keep-alive), until the
/// client closes it. Requests carry a `content-length` body (reqwest's JSON bodies
/// do); answers are sent with one too.
async fn proxy_connection(
    conn: tokio::net::TcpStream,
    upstream: &str,
    http: &reqwest::Client,
    plan: Plan,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::io::BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if conn.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        conn.read_exact(&mut body).await?;
        let arrived = tokio::time::Instant::now();
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap(), parts.next().unwrap().to_string());

        let kind = path.rsplit('/').next().unwrap_or_default().to_string();
        let json = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        let task = json["task_id"].as_str().map(String::from);
        let attempt = json["attempt"].as_i64();
        let key = match task {
            Some(task) => format!("{kind} {task}"),
            None => kind.clone(),
        };
        let nth = log.lock().unwrap().iter().filter(|r| r.key == key).count();
        let injected = plan(&kind, nth);
        // Recorded before answering, so that the next request of this key counts it.
        let at = {
            let mut log = log.lock().unwrap();
            log.push(Seen {
                kind,
                key,
                nth,
                attempt,
                injected,
                arrived,
                answered: arrived,
            });
            log.len() - 1
        };

        let (status, extra, content_type, answer) = match injected {
            Some(Inject::TooMany) => (
                429,
                "retry-after: 1\r\n".to_string(),
                "application/problem+json".to_string(),
                br#"{"status": 429, "detail": "slow down"}"#.to_vec(),
            ),
            Some(Inject::Unavailable) => (
                503,
                String::new(),
                "application/problem+json".to_string(),
                br#"{"status": 503, "detail": "unavailable"}"#.to_vec(),
            ),
            Some(Inject::Conflict) => (
                409,
                String::new(),
                "application/problem+json".to_string(),
                br#"{"status": 409, "detail": "stale attempt"}"#.to_vec(),
            ),
            None => {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut req = http.request(method, format!("{upstream}{path}")).body(body);
                for name in ["authorization", "content-type"] {
                    if let Some(v) = header(name) {
                        req = req.header(name, v);
                    }
                }
                match req.send().await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let extra = match res.headers().get("retry-after") {
                            Some(v) => format!("retry-after: {}\r\n", v.to_str().unwrap()),
                            None => String::new(),
                        };
                        let content_type = res
                            .headers()
                            .get("content-type")
                            .map_or("application/json", |v| v.to_str().unwrap())
                            .to_string();
                        let answer = res.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                        (status, extra, content_type, answer)
                    }
                    Err(_) => (
                        502,
                        String::new(),
                        "text/plain".into(),
                        b"bad gateway".to_vec(),
                    ),
                }
            }
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}\r\n",
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Unknown"),
            answer.len()
        );
        let conn = conn.get_mut();
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(&answer).await?;
        conn.flush().await?;
        log.lock().unwrap()[at].answered = tokio::time::Instant::now();
    }
}

/// The backoff doubles from its first delay up to its ceiling, each delay drawn
/// between half and all of that; a `Retry-After` is waited in full.
#[test]
fn backoff_doubles_with_jitter_and_honours_retry_after() {
    let backoff = worker::Backoff::default();
    let ms = Duration::from_millis;
    for _ in 0..200 {
        for (retry, ceiling) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (6, 6400),
            (7, 10_000),
            (40, 10_000),
        ] {
            let d = backoff.delay(retry, None);
            assert!(
                d >= ms(ceiling / 2) && d <= ms(ceiling),
                "retry {retry}: {d:?}"
            );
        }
        let d = backoff.delay(0, Some(Duration::from_secs(3)));
        assert!(d >= ms(3000) && d <= ms(3100), "{d:?}");
        // The server's word takes the place of the backoff, however many tries failed.
        let d = backoff.delay(9, Some(Duration::from_secs(1)));
        assert!(d >= ms(1000) && d <= ms(1100), "{d:?}");
    }
}
