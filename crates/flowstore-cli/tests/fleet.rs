//! Three `flowstore serve` processes on one database, as behind a load balancer:
//! workers spread over them run DAGs to the end while one server is killed
//! (SIGKILL) holding claimed tasks; nothing is lost or done twice, every surviving
//! server's event stream hears every run end, and a revoked key stops working on
//! every server. On SQLite, on PostgreSQL, and on PostgreSQL through a PgBouncer in
//! transaction pooling mode (with migrations and `LISTEN` on the direct URL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowstore_postgres::Pooler;
use flowstore_testkit::TestDb;
use serde_json::{json, Value};

use crate::faults::{call, Served};

flowstore_testkit::__per_backend!(pooled; db => &db; three_servers_share_runs_and_survive_losing_one);

/// How long a claim's lease lasts: short, so that the killed server's tasks come
/// back soon.
const LEASE_MS: u64 = 1500;
const RUNS: usize = 8;
/// Steps per run: `a`, then `b` and `c`, then `d`.
const STEPS: usize = 4;

/// Starts a server on `db`; the first one on a database prints the bootstrap key.
fn server(db: &TestDb, dir: &std::path::Path) -> Served {
    let settings = db.settings();
    let mut env = vec![
        ("FLOWSTORE_RATE_PER_SECOND", "100000".to_string()),
        ("FLOWSTORE_RATE_BURST", "100000".to_string()),
        ("FLOWSTORE_POLL_INTERVAL", "200ms".to_string()),
        ("FLOWSTORE_KEY_CACHE_TTL", "1s".to_string()),
        ("FLOWSTORE_MAINTENANCE_INTERVAL", "250ms".to_string()),
    ];
    if settings.pooler != Pooler::None {
        env.push(("DB_POOLER", "transaction".to_string()));
    }
    if let Some(direct) = &settings.direct_url {
        env.push(("DATABASE_DIRECT_URL", direct.clone()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Served::start_with(db.url(), dir, &env)
}

fn address(s: &mut Served) -> String {
    s.wait_for("its address", |l| {
        l.strip_prefix("flowstore is listening on ")
            .map(str::to_string)
    })
}

/// Reads `base`'s event stream until it has seen `run.completed` for every run in
/// `runs`, or 90 s have passed; returns the runs it heard complete.
async fn completions_heard(base: String, key: String, runs: Arc<Mutex<Vec<String>>>) -> usize {
    let mut stream = reqwest::Client::new()
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let wanted = runs.lock().unwrap().clone();
        let heard = wanted
            .iter()
            .filter(|id| {
                text.split("\n\n")
                    .any(|e| e.contains("run.completed") && e.contains(id.as_str()))
            })
            .count();
        if wanted.len() == RUNS && heard == RUNS {
            return heard;
        }
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return heard,
        }
    }
}

/// What one worker saw: for each task it completed, how many times the server
/// answered 200 to its completion.
type Completions = Arc<Mutex<HashMap<String, usize>>>;

/// Claims from `base` and completes what it claims until `stop`, or until its
/// server no longer answers.
async fn worker(
    base: String,
    key: String,
    name: String,
    done: Completions,
    stop: Arc<tokio::sync::Notify>,
) {
    let http = reqwest::Client::new();
    loop {
        let claim = http
            .post(format!("{base}/api/v1/worker/claim"))
            .bearer_auth(&key)
            .json(
                &json!({"worker_id": name, "handler_types": ["shell"], "limit": 2,
                "lease_ms": LEASE_MS, "wait_ms": 300}),
            );
        let answer = tokio::select! {
            a = claim.send() => a,
            _ = stop.notified() => return,
        };
        let Ok(answer) = answer else { return };
        assert_eq!(answer.status(), 200, "{name}: the claim");
        let claimed: Value = answer.json().await.unwrap();
        for t in claimed.as_array().unwrap() {
            let Ok(done_answer) = http
                .post(format!("{base}/api/v1/worker/complete"))
                .bearer_auth(&key)
                .json(&json!({"task_id": t["task_id"], "attempt": t["attempt"],
                    "output": {"by": name}}))
                .send()
                .await
            else {
                return;
            };
            match done_answer.status().as_u16() {
                200 => {
                    *done
                        .lock()
                        .unwrap()
                        .entry(t["task_id"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
                // A lease that ran out while the task was held: another worker has it.
                409 => {}
                other => panic!("{name}: completing answered {other}"),
            }
        }
    }
}

async fn three_servers_share_runs_and_survive_losing_one(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut s1 = server(db, dir.path());
    let (key, a) = s1.ready();
    let mut s2 = server(db, dir.path());
    let b = address(&mut s2);
    let mut s3 = server(db, dir.path());
    let c = address(&mut s3);

    // A key made on one server works on every server, and once revoked on one it
    // stops working on all of them (pushed on PostgreSQL; on SQLite, whose servers
    // in other processes are not heard, within the key cache time of 1 s).
    let (status, created) = call(
        &a,
        &key,
        "POST",
        "/api/v1/apikeys",
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let ci = created["key"].as_str().unwrap().to_string();
    for base in [&a, &b, &c] {
        assert_eq!(
            call(base, &ci, "GET", "/api/v1/workflows", None).await.0,
            200
        );
    }
    let id = created["api_key"]["id"].as_str().unwrap();
    assert_eq!(
        call(&a, &key, "DELETE", &format!("/api/v1/apikeys/{id}"), None)
            .await
            .0,
        204
    );
    for base in [&a, &b, &c] {
        let mut refused = false;
        for _ in 0..50 {
            if call(base, &ci, "GET", "/api/v1/workflows", None).await.0 == 401 {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(refused, "the revoked key is refused on {base} within 5 s");
    }

    let (status, body) = call(
        &a,
        &key,
        "POST",
        "/api/v1/handlers",
        Some(json!({"handler_type": "shell", "handler_name": "Shell"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, wf) = call(
        &b,
        &key,
        "POST",
        "/api/v1/workflows",
        Some(json!({
        "name": "fleet", "status": "active", "definition": {"steps": [
            {"key": "a", "handler": "shell", "max_retries": 3},
            {"key": "b", "handler": "shell", "max_retries": 3, "depends_on": ["a"]},
            {"key": "c", "handler": "shell", "max_retries": 3, "depends_on": ["a"]},
            {"key": "d", "handler": "shell", "max_retries": 3, "depends_on": ["b", "c"]}]}})),
    )
    .await;
    assert_eq!(status, 201, "{wf}");
    let wf = wf["id"].as_str().unwrap().to_string();

    // The survivors' streams are open before the first run starts.
    let runs: Arc<Mutex<Vec<String>>> = Arc::default();
    let streams: Vec<_> = [&a, &b]
        .into_iter()
        .map(|base| tokio::spawn(completions_heard(base.clone(), key.clone(), runs.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The third server's worker claims the first tasks and never reports them:
    // they are what its server holds when it is killed.
    for i in 0..RUNS {
        let base = [&a, &b, &c][i % 3];
        let path = format!("/api/v1/workflows/{wf}/runs");
        let (status, started) = call(base, &key, "POST", &path, Some(json!({}))).await;
        assert_eq!(status, 201, "{started}");
        runs.lock()
            .unwrap()
            .push(started["run"]["id"].as_str().unwrap().to_string());
    }
    let (status, held) = call(
        &c,
        &key,
        "POST",
        "/api/v1/worker/claim",
        Some(json!({
        "worker_id": "held", "handler_types": ["shell"], "limit": 3,
        "lease_ms": LEASE_MS, "wait_ms": 0})),
    )
    .await;
    assert_eq!(status, 200, "{held}");
    let held: Vec<String> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(held.len(), 3, "the held worker claimed three first steps");

    let done: Completions = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for (i, base) in [&a, &a, &b, &b, &c, &c].into_iter().enumerate() {
        workers.push(tokio::spawn(worker(
            base.clone(),
            key.clone(),
            format!("w{i}"),
            done.clone(),
            stop.clone(),
        )));
    }
    // Once some work is done, the third server dies mid-flight.
    for _ in 0..300 {
        if done.lock().unwrap().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s3.kill();

    let mut heard = Vec::new();
    for stream in streams {
        heard.push(stream.await.unwrap());
    }
    stop.notify_waiters();
    for w in workers {
        w.await.expect("a worker saw only expected answers");
    }
    assert_eq!(
        heard,
        vec![RUNS, RUNS],
        "both survivors' streams heard every run end"
    );

    // A completion the killed server committed but could not answer is done
    // without its worker hearing so: the workers heard at most one success per
    // task, and the attempts below say what the database holds.
    let done = done.lock().unwrap().clone();
    assert!(
        done.len() <= RUNS * STEPS && done.len() >= RUNS * STEPS / 2,
        "{done:?}"
    );
    assert!(
        done.values().all(|n| *n == 1),
        "no task was completed twice: {done:?}"
    );
    let mut tasks = std::collections::HashSet::new();
    let runs = runs.lock().unwrap().clone();
    for run in &runs {
        let (status, r) = call(&b, &key, "GET", &format!("/api/v1/runs/{run}"), None).await;
        assert_eq!(status, 200);
        assert_eq!(r["status"], "completed", "{r}");
        let (status, attempts) = call(
            &a,
            &key,
            "GET",
            &format!("/api/v1/runs/{run}/attempts"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let attempts = attempts.as_array().unwrap();
        for step_task in attempts.iter().map(|t| t["task_id"].as_str().unwrap()) {
            tasks.insert(step_task.to_string());
            let completed = attempts
                .iter()
                .filter(|t| t["task_id"] == step_task && t["execution_status"] == "completed")
                .count();
            assert_eq!(
                completed, 1,
                "one completed attempt of {step_task}: {attempts:?}"
            );
        }
        // What the killed server's worker held was taken over after its lease ran
        // out (each step may be retried): a first attempt whose lease expired, then
        // one completed by another worker.
        for task in &held {
            let tried: Vec<(&Value, &Value)> = attempts
                .iter()
                .filter(|t| t["task_id"] == task.as_str())
                .map(|t| (&t["worker_id"], &t["execution_status"]))
                .collect();
            if let (Some(first), Some(last)) = (tried.first(), tried.last()) {
                assert_eq!(
                    *first,
                    (&json!("held"), &json!("lease_expired")),
                    "{tried:?}"
                );
                assert_eq!(last.1, "completed", "{tried:?}");
            }
        }
    }
    assert_eq!(
        tasks.len(),
        RUNS * STEPS,
        "every task of every run was completed once"
    );
    for task in &held {
        assert!(
            tasks.contains(task),
            "the held task {task} was taken over and completed"
        );
    }
    drop((s1, s2));
}
