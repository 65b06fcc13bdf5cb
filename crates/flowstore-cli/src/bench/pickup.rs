//! The `pickup` workload: how soon a task is in a worker's hands when work arrives at
//! a steady rate. One server in this process; W workers wait in long-poll claims
//! (`wait_ms`) over HTTP, each completing what it takes and claiming again, while one
//! client starts a run of a one-step workflow every 10 ms (100 tasks/s offered). For
//! each run: from sending its start until a worker's claim answers with its task
//! (enqueue to start), and the same from the start's answer (what the start request
//! itself does not explain).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowstore_core::StoreResult;
use serde_json::json;

use super::fleet::{one_step_workflow, post};
use super::{admin_key, bar, fail, BenchOptions, InProcess, Report, Row, Samples, Target};

/// Tasks offered per second.
const RATE: u32 = 100;

/// When each run's task reached a worker, by run ID.
type Claimed = Arc<Mutex<HashMap<String, Instant>>>;

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    let key = admin_key(target, "bench-pickup").await?;
    let server = InProcess::start(target.backend.clone()).await?;
    let result = measure(opts, report, &server.base, &key).await;
    server.stop().await;
    result
}

async fn measure(
    opts: &BenchOptions,
    report: &mut Report,
    base: &str,
    key: &str,
) -> StoreResult<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.workers as usize * 2 + 2)
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let handler = format!("bench-pickup-{}", uuid::Uuid::new_v4().simple());
    let runs_url = one_step_workflow(&client, base, key, &handler).await?;
    // Ten seconds of arrivals at full size, fewer in the smoke tests.
    let per_round = opts.tasks.clamp(1, 10 * RATE);
    let (mut from_send, mut from_answer, mut request) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..opts.rounds {
        let claimed: Claimed = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..opts.workers.max(1))
            .map(|w| {
                tokio::spawn(worker(
                    client.clone(),
                    base.to_string(),
                    key.to_string(),
                    handler.clone(),
                    format!("pickup-{w}"),
                    claimed.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        // Let every worker's first claim reach its wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pb = bar(opts, u64::from(per_round), "pickup".into());
        let mut started = Vec::with_capacity(per_round as usize);
        let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..per_round {
            tick.tick().await;
            let sent = Instant::now();
            let run = post(&client, runs_url.clone(), key, json!({})).await?;
            let answered = Instant::now();
            let id = run["run"]["id"]
                .as_str()
                .ok_or_else(|| fail(format!("a start answered {run}")))?
                .to_string();
            started.push((id, sent, answered));
            pb.inc(1);
        }
        pb.finish_and_clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        while claimed.lock().expect("not poisoned").len() < started.len() {
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.abort();
        }
        let claimed = claimed.lock().expect("not poisoned");
        if claimed.len() != started.len() {
            return Err(fail(format!(
                "{} runs started, {} of their tasks claimed within 10 s",
                started.len(),
                claimed.len()
            )));
        }
        for (id, sent, answered) in &started {
            let at = claimed
                .get(id)
                .ok_or_else(|| fail(format!("run {id}'s task was not claimed")))?;
            from_send.push(at.saturating_duration_since(*sent));
            from_answer.push(at.saturating_duration_since(*answered));
            request.push(*answered - *sent);
        }
    }
    let w = opts.workers.max(1);
    let q = |s: &Samples, p| s.quantile_ms(p).unwrap_or(0.0);
    report.rows.push(Row {
        workload: "pickup".into(),
        variant: format!("enqueue to start at {RATE} tasks/s, W={w}"),
        p50_ms: from_send.quantile_ms(0.5),
        p99_ms: from_send.quantile_ms(0.99),
        items: u64::from(per_round),
        note: Some(format!(
            "from sending POST /workflows/{{id}}/runs (a one-step run) until a waiting worker's claim (wait_ms) answers with its task; {w} workers over HTTP, a start every {} ms; the start request itself took p50 {:.2} / p99 {:.2} ms, and from its answer to the claim's p50 {:.2} / p99 {:.2} ms",
            1000 / RATE,
            q(&request, 0.5),
            q(&request, 0.99),
            q(&from_answer, 0.5),
            q(&from_answer, 0.99),
        )),
        ..Row::default()
    });
    Ok(())
}

/// Claims one task at a time with a long poll until `stop`, noting when each run's
/// task arrived, and completes it.
async fn worker(
    client: reqwest::Client,
    base: String,
    key: String,
    handler: String,
    name: String,
    claimed: Claimed,
    stop: Arc<AtomicBool>,
) -> StoreResult<()> {
    let body = json!({"worker_id": name, "handler_types": [handler], "limit": 1,
        "lease_ms": 60000, "wait_ms": 5000});
    while !stop.load(Ordering::Relaxed) {
        let got = post(&client, format!("{base}/worker/claim"), &key, body.clone()).await?;
        let at = Instant::now();
        for t in got.as_array().into_iter().flatten() {
            let run = t["run_id"].as_str().unwrap_or_default().to_string();
            if claimed
                .lock()
                .expect("not poisoned")
                .insert(run, at)
                .is_some()
            {
                return Err(fail(format!("a run's task was claimed twice: {t}")));
            }
            post(
                &client,
                format!("{base}/worker/complete"),
                &key,
                json!({"task_id": t["task_id"], "attempt": t["attempt"], "output": {}}),
            )
            .await?;
        }
    }
    Ok(())
}
