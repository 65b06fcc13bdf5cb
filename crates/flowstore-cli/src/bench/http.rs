//! The `http` workload: the claim/complete cycle through `flowstore serve`, run in
//! this process on 127.0.0.1:0, by W HTTP workers with reqwest.

use std::time::Instant;

use flowstore_core::StoreResult;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::claim::{
    check_done, completion_mode, insert_ready_tasks, join_round, RoundResult, BATCHES,
};
use super::{
    admin_key, bar, fail, median, peak_memory_mb, BenchOptions, InProcess, Report, Row, Samples,
    Target,
};

#[derive(Deserialize)]
struct Claimed {
    task_id: Uuid,
    attempt: i32,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    transition: Option<serde_json::Value>,
}

pub(crate) async fn run(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
) -> StoreResult<()> {
    let key = admin_key(target, "bench").await?;
    let server = InProcess::start(target.backend.clone()).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.workers as usize * 2)
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;

    let result = measure(target, opts, report, &client, &base, &key).await;
    server.stop().await;
    result
}

async fn measure(
    target: &Target,
    opts: &BenchOptions,
    report: &mut Report,
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> StoreResult<()> {
    let n = opts.tasks;
    let w = opts.workers;
    for batch in BATCHES {
        let mut rates = Vec::new();
        let (mut claim_s, mut complete_s) = (Samples::default(), Samples::default());
        let mut items = 0;
        for round in 0..opts.rounds {
            let handler = format!("bench-http-b{batch}-r{round}");
            insert_ready_tasks(&target.raw, &handler, n).await?;
            let r = drive(client, base, key, &handler, batch, w, n, opts).await?;
            check_done(&target.raw, &handler, n, &r.done).await?;
            items = r.done.len() as u64;
            rates.push(r.rate());
            claim_s.extend(r.claim);
            complete_s.extend(r.complete);
        }
        let rate = median(&rates);
        let floor = report
            .rows
            .iter()
            .find(|r| {
                r.workload == "claim" && r.variant.starts_with(&format!("raw SQL floor B={batch} "))
            })
            .and_then(|r| r.rate);
        report.rows.push(Row {
            workload: "http".into(),
            variant: format!("flowstore serve B={batch} W={w} {}", completion_mode(batch)),
            rate,
            rate_unit: Some("tasks/s".into()),
            ratio_to_floor: match (rate, floor) {
                (Some(l), Some(f)) if f > 0.0 => Some(l / f),
                _ => None,
            },
            p50_ms: claim_s.quantile_ms(0.5),
            p99_ms: claim_s.quantile_ms(0.99),
            complete_p50_ms: complete_s.quantile_ms(0.5),
            complete_p99_ms: complete_s.quantile_ms(0.99),
            items,
            peak_memory_mb: peak_memory_mb(),
            note: Some(
                "server in process: peak memory is the whole bench process's VmHWM (server, HTTP workers and everything run before); ratio is to the claim floor of the same B; cmpl=batch: POST /worker/complete-batch for the claimed batch, cmpl=each: POST /worker/complete per task"
                    .into(),
            ),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    handler: &str,
    batch: u32,
    workers: u32,
    n: u32,
    opts: &BenchOptions,
) -> StoreResult<RoundResult> {
    let pb = bar(opts, u64::from(n), format!("http B={batch}"));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        let claim_url = format!("{base}/worker/claim");
        let complete_url = format!("{base}/worker/complete");
        let batch_url = format!("{base}/worker/complete-batch");
        let auth = format!("Bearer {key}");
        let handler = handler.to_string();
        let pb = pb.clone();
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut claim_lat = Samples::default();
            let mut complete_lat = Samples::default();
            loop {
                let t0 = Instant::now();
                let resp = client
                    .post(&claim_url)
                    .header("authorization", &auth)
                    .json(&json!({
                        "worker_id": format!("http-{w}"),
                        "handler_types": [handler],
                        "limit": batch,
                        "lease_ms": 600_000,
                        "wait_ms": 0
                    }))
                    .send()
                    .await
                    .map_err(|e| fail(format!("claim request: {e}")))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    return Err(fail(format!("claim answered {status}: {body}")));
                }
                let claimed: Vec<Claimed> = resp
                    .json()
                    .await
                    .map_err(|e| fail(format!("claim answer: {e}")))?;
                if claimed.is_empty() {
                    break;
                }
                claim_lat.push(t0.elapsed());
                if batch > 1 {
                    // The claimed batch is reported in one request (one transaction).
                    let t1 = Instant::now();
                    let items: Vec<_> = claimed
                        .iter()
                        .map(|c| json!({"task_id": c.task_id, "attempt": c.attempt, "output": {"ok": true}}))
                        .collect();
                    let resp = client
                        .post(&batch_url)
                        .header("authorization", &auth)
                        .json(&json!({ "items": items }))
                        .send()
                        .await
                        .map_err(|e| fail(format!("complete-batch request: {e}")))?;
                    if !resp.status().is_success() {
                        let status = resp.status();
                        let body = resp.text().await.unwrap_or_default();
                        return Err(fail(format!("complete-batch answered {status}: {body}")));
                    }
                    let answer: BatchAnswer = resp
                        .json()
                        .await
                        .map_err(|e| fail(format!("complete-batch answer: {e}")))?;
                    if answer.results.len() != claimed.len()
                        || answer.results.iter().any(|r| r.transition.is_none())
                    {
                        return Err(fail("complete-batch refused an attempt of the batch"));
                    }
                    complete_lat.push(t1.elapsed());
                    pb.inc(claimed.len() as u64);
                    done.extend(claimed.iter().map(|c| (c.task_id, c.attempt)));
                    continue;
                }
                for c in claimed {
                    let t1 = Instant::now();
                    let resp = client
                        .post(&complete_url)
                        .header("authorization", &auth)
                        .json(&json!({"task_id": c.task_id, "attempt": c.attempt, "output": {"ok": true}}))
                        .send()
                        .await
                        .map_err(|e| fail(format!("complete request: {e}")))?;
                    if !resp.status().is_success() {
                        let status = resp.status();
                        let body = resp.text().await.unwrap_or_default();
                        return Err(fail(format!("complete answered {status}: {body}")));
                    }
                    complete_lat.push(t1.elapsed());
                    done.push((c.task_id, c.attempt));
                    pb.inc(1);
                }
            }
            StoreResult::Ok((done, claim_lat, complete_lat))
        }));
    }
    let result = join_round(start, handles).await?;
    pb.finish_and_clear();
    Ok(result)
}
