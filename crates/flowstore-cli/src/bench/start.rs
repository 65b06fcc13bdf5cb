//! The `start` workload: runs of a one-step workflow started through the HTTP API
//! (`flowstore serve` in this process), by W clients, one run per request and in
//! batches of 1,000 (`POST /workflows/{id}/runs/batch`, one transaction each). A run
//! is one task, so runs/s here is tasks/s started. Beside them, the floor: the same W
//! writers enqueueing jobs into the minimal job table (`claim_min.rs`), one narrow
//! row per transaction and 1,000 per statement, on the raw pool without HTTP.

use std::future::Future;
use std::time::Instant;

use flowstore_core::StoreResult;
use serde_json::{json, Value};

use super::claim::{count, count_tasks, insert_series};
use super::{
    admin_key, bar, claim_min, fail, median, BenchOptions, InProcess, Raw, Report, Row, Samples,
    Target,
};

/// Runs per request of the batched variant.
const BATCH: u32 = 1000;

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    let key = admin_key(target, "bench-start").await?;
    let server = InProcess::start(target.backend.clone()).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.workers as usize * 2)
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let http = Http {
        client,
        base: server.base.clone(),
        auth: format!("Bearer {key}"),
    };
    let result = measure(target, opts, report, &http).await;
    server.stop().await;
    result?;
    floor(target, opts, report).await
}

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
    auth: String,
}

impl Http {
    /// POSTs `body` to `path` (after `/api/v1`), expecting `want`: the answer.
    async fn post(&self, path: &str, body: &Value, want: u16) -> StoreResult<Value> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .json(body)
            .send()
            .await
            .map_err(|e| fail(format!("POST {path}: {e}")))?;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status != want {
            return Err(fail(format!("POST {path} answered {status}: {answer}")));
        }
        Ok(answer)
    }
}

async fn measure(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
    http: &Http,
) -> StoreResult<()> {
    let n = opts.tasks;
    let w = opts.workers;
    for batch in [1, BATCH] {
        let mut rates = Vec::new();
        let mut latency = Samples::default();
        for round in 0..opts.rounds {
            // A workflow and handler type of their own, so that the check counts only
            // this round's tasks.
            let handler = format!("bench-start-b{batch}-r{round}");
            http.post(
                "/handlers",
                &json!({"handler_type": handler, "handler_name": handler}),
                201,
            )
            .await?;
            let wf = http
                .post(
                    "/workflows",
                    &json!({"name": handler, "status": "active",
                            "definition": {"steps": [{"key": "a", "handler": handler}]}}),
                    201,
                )
                .await?;
            let wf = wf["id"]
                .as_str()
                .ok_or_else(|| fail("the workflow has no id"))?
                .to_string();
            let (http, wf) = (http.clone(), wf.clone());
            let start = move |size| start(http.clone(), wf.clone(), size);
            let (elapsed, lat) = drive(batch, w, n, opts, start).await?;
            let ready = count_tasks(&target.raw, &handler, "ready").await?;
            if ready != i64::from(n) {
                return Err(fail(format!(
                    "{handler}: {ready} ready tasks after {n} runs started"
                )));
            }
            rates.push(f64::from(n) / elapsed.max(1e-9));
            latency.extend(lat);
        }
        let (variant, note) = if batch == 1 {
            (
                format!("start, one run per request, W={w}"),
                "POST /workflows/{id}/runs per run; p50/p99 of the requests",
            )
        } else {
            (
                format!("start, {batch} runs per request, W={w}"),
                "POST /workflows/{id}/runs/batch, one transaction per request; p50/p99 of the requests",
            )
        };
        let note = format!(
            "{note}; a run of a one-step workflow, so each run is one ready task; each round checks that {n} tasks are ready"
        );
        report.rows.push(row(variant, &rates, &latency, n, note));
    }
    Ok(())
}

/// Starts `size` runs of `wf`: one run per request when `size` is 1, else one batch.
async fn start(http: Http, wf: String, size: u32) -> StoreResult<()> {
    if size == 1 {
        http.post(&format!("/workflows/{wf}/runs"), &json!({}), 201)
            .await?;
        return Ok(());
    }
    let runs: Vec<Value> = (0..size).map(|_| json!({})).collect();
    let answer = http
        .post(
            &format!("/workflows/{wf}/runs/batch"),
            &json!({ "runs": runs }),
            201,
        )
        .await?;
    let started = answer["runs"].as_array().map_or(0, Vec::len);
    if started != size as usize {
        return Err(fail(format!("a batch of {size} started {started} runs")));
    }
    Ok(())
}

/// The floor: W writers on the raw pool enqueue `--tasks` jobs into the minimal job
/// table between them, one row per statement (each its own transaction) and 1,000
/// per statement; each round checks the table holds exactly its jobs.
async fn floor(target: &Target, opts: &BenchOptions, report: &mut Report) -> StoreResult<()> {
    let (n, w) = (opts.tasks, opts.workers);
    for batch in [1, BATCH] {
        let mut rates = Vec::new();
        let mut latency = Samples::default();
        for round in 0..opts.rounds {
            let queue = format!("bench-start-floor-b{batch}-r{round}");
            claim_min::create(&target.raw).await?;
            let (raw, q) = (target.raw.clone(), queue.clone());
            let enqueue = move |size| enqueue(raw.clone(), q.clone(), size);
            let (elapsed, lat) = drive(batch, w, n, opts, enqueue).await?;
            let sql = "SELECT count(*) FROM bench_min_jobs WHERE queue = $1";
            let made = count(&target.raw, sql, &[&queue]).await?;
            if made != i64::from(n) {
                return Err(fail(format!("{queue}: {made} jobs after {n} enqueued")));
            }
            rates.push(f64::from(n) / elapsed.max(1e-9));
            latency.extend(lat);
        }
        let variant = format!("minimal job table, {batch} per statement, W={w}");
        let note = format!(
            "the floor: INSERT of {batch} narrow row(s) into bench_min_jobs (one partial index) per statement, its own transaction, on the raw pool (no HTTP); p50/p99 of the statements"
        );
        report.rows.push(row(variant, &rates, &latency, n, note));
    }
    Ok(())
}

/// A row of this workload: `n` tasks a round, the rate the median of `rates`.
fn row(variant: String, rates: &[f64], latency: &Samples, n: u32, note: String) -> Row {
    Row {
        workload: "start".into(),
        variant,
        rate: median(rates),
        rate_unit: Some("tasks/s".into()),
        p50_ms: latency.quantile_ms(0.5),
        p99_ms: latency.quantile_ms(0.99),
        items: u64::from(n),
        note: Some(note),
        ..Row::default()
    }
}

/// Enqueues `size` jobs of `queue` into the minimal job table, in one statement.
async fn enqueue(raw: Raw, queue: String, size: u32) -> StoreResult<()> {
    insert_series(&raw, "bench_min_jobs (queue)", ["$1", "?1"], &queue, size).await
}

/// W clients make `n` items between them, `batch` per call of `make` (fewer in the
/// last): the time it took and each call's latency.
async fn drive<F, Fut>(
    batch: u32,
    workers: u32,
    n: u32,
    opts: &BenchOptions,
    make: F,
) -> StoreResult<(f64, Samples)>
where
    F: Fn(u32) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = StoreResult<()>> + Send,
{
    let pb = bar(opts, u64::from(n), format!("start B={batch}"));
    // Calls are handed out from one counter, so that the clients share the items.
    let requests = n.div_ceil(batch);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (next, pb, make) = (next.clone(), pb.clone(), make.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Samples::default();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return StoreResult::Ok(lat);
                }
                let size = batch.min(n - i * batch);
                let t = Instant::now();
                make(size).await?;
                lat.push(t.elapsed());
                pb.inc(u64::from(size));
            }
        }));
    }
    let mut latency = Samples::default();
    for h in handles {
        latency.extend(
            h.await
                .map_err(|e| fail(format!("a client panicked: {e}")))??,
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok((elapsed, latency))
}
